"""The order of the work: Load -> Segment -> Register -> Verify -> Plan -> Export, and where the user is (no Qt).

Each step is *done*, *available* or *blocked* (with the reason and what to do), from
plain facts about what is open (:class:`WorkflowFacts`). The current step is the
first available step not yet done, so the app opens where the loaded data leaves
off (a CT with labels and a sweep: Register; with an accepted registration: Plan).

* Load: done with the CT (a label map is optional: Segment makes one; a sweep is needed only
  to register).
* Segment: needs the CT; done once a label map with lesions exists (segmented here, clicked,
  or opened). A CT alone, or labels without a lesion, make it the current step.
* Register: needs the CT and a tracked sweep; done once a registration exists (landmarks,
  automatic, or loaded).
* Verify: needs a registration or an automatic result waiting; done when an assessed
  registration (it has a verdict) was accepted or loaded and no new result waits.
* Plan: needs the CT (without labels it segments first) and, with labels, a lesion in them;
  done when a plan exists.
* Export: needs the CT and labels (without a plan it plans first); done once written.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

STEPS = ("load", "segment", "register", "verify", "plan", "export")
TITLES = {"load": "Load", "segment": "Segment", "register": "Register", "verify": "Verify", "plan": "Plan",
          "export": "Export"}


@dataclass
class WorkflowFacts:
    """What is open and done. ``registration_method``/``registration_verdict``: the window's
    registration (None when none); ``candidate``: an automatic result waits for Accept."""
    has_ct: bool = False
    has_labels: bool = False
    n_lesions: int = 0
    has_sweep: bool = False
    registration_method: Optional[str] = None
    registration_verdict: Optional[str] = None
    candidate: bool = False
    refining: bool = False
    has_plan: bool = False
    plan_stale: bool = False
    exported: bool = False


@dataclass
class StepState:
    """One step: ``done``, ``enabled`` (its inputs exist), ``why_not`` (when not enabled: what is
    missing and how to get it), ``summary`` (what it holds now, one short line)."""
    key: str
    title: str
    done: bool
    enabled: bool
    why_not: str
    summary: str


def steps(f: WorkflowFacts) -> List[StepState]:
    """The five steps' states, in order."""
    registered = f.registration_method is not None
    verified = registered and f.registration_verdict is not None and f.registration_method != "landmarks" \
        and not f.candidate
    missing = [what for what, ok in (("a CT", f.has_ct), ("its label map", f.has_labels),
                                     ("a tracked sweep", f.has_sweep)) if not ok]
    load_summary = "nothing open" if not f.has_ct else (
        "CT" + (f", labels ({f.n_lesions} lesion{'s' if f.n_lesions != 1 else ''})" if f.has_labels else "")
        + (", sweep" if f.has_sweep else "") + (f"; missing {', '.join(missing)}" if missing else ""))
    need_ct_sweep = [w for w, ok in (("a CT", f.has_ct), ("a tracked sweep", f.has_sweep)) if not ok]
    reg_summary = ("running..." if f.refining else
                   "not yet" if not registered else
                   {"landmarks": "landmarks"}.get(f.registration_method, f.registration_method))
    need_plan = [w for w, ok in (("a CT", f.has_ct), ("a label map", f.has_labels)) if not ok]
    no_lesions = f.has_labels and f.n_lesions == 0
    seg_summary = ("no label map: segment the CT" if not f.has_labels else
                   "no lesion yet: click one (Lesion from click)" if no_lesions else
                   f"{f.n_lesions} lesion{'s' if f.n_lesions != 1 else ''}")
    out = [
        StepState("load", TITLES["load"], f.has_ct, True, "", load_summary),
        StepState("segment", TITLES["segment"], f.has_labels and not no_lesions, f.has_ct,
                  "" if f.has_ct else "needs a CT: File > Open CT", seg_summary),
        StepState("register", TITLES["register"], registered, not need_ct_sweep,
                  "" if not need_ct_sweep else f"needs {' and '.join(need_ct_sweep)}: File > Open "
                  + ("CT" if not f.has_ct else "sweep"), reg_summary),
        StepState("verify", TITLES["verify"], verified, registered or f.candidate,
                  "" if registered or f.candidate else "needs a registration: pick landmarks or load one",
                  "result waiting for Accept" if f.candidate else
                  (f"accepted ({f.registration_verdict})" if verified else
                   "landmarks only: refine automatically to check" if f.registration_method == "landmarks" else
                   "not checked" if registered else "nothing to check")),
        StepState("plan", TITLES["plan"], f.has_plan and not f.plan_stale, f.has_ct and not no_lesions,
                  ("needs a CT: File > Open CT (a label map is segmented from it)" if not f.has_ct else
                   "the label map has no lesion (lesion_* labels): click one in the Segmentation panel"
                   if no_lesions else ""),
                  "outdated: the registration changed" if f.plan_stale else
                  "planned" if f.has_plan else "not yet"),
        StepState("export", TITLES["export"], f.exported, not need_plan and not no_lesions,
                  "" if not need_plan and not no_lesions else "needs a plan: the CT and labels with lesions",
                  "written" if f.exported else ("ready" if f.has_plan else "plans first, then writes")),
    ]
    return out


def current_step(states: List[StepState]) -> str:
    """The first available step not done; else the first step not done (blocked: its tooltip says
    what is missing); the last step when all are done."""
    return next((s.key for s in states if s.enabled and not s.done),
                next((s.key for s in states if not s.done), states[-1].key))
