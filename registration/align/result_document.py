"""RESULT.json: the one place that writes it (:func:`result_document`) and reads it back (:func:`parse_result`).

The document (DESIGN section 6) holds ``reference_to_ct`` (4x4 row-major,
Reference mm -> CT LPS mm), the registration's metrics, time and history, its
uncertainty (``uncertainty``: :class:`~registration.align.assessment.Assessment`
as a dict), the start (``init``), the landmark fit when the start came from
landmarks, and, for readers that want only the verdict and the per-target rows,
``verdict``, ``targets`` and ``focus`` (the target a focused refinement was about, or
null: :mod:`.focus`) copied from the uncertainty. ``ctus register`` and the
GUI's Accept write the same fields; the GUI adds its own session keys, and
``focused_targets`` (``{lesion: focused_entry(...)}``: "refine near this lesion" run
on this whole-sweep result): the planner uses that lesion's focused row.

Reading (:func:`parse_result`, :func:`read_result_file`) accepts an INIT.json too
(only ``reference_to_ct``, maybe a global ``tre_rms_mm``) and returns a
:class:`ResultRecord`; anything unusable raises InputError naming the file and the field.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Mapping, Optional

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.transforms import as_matrix

from .assessment import Assessment, TargetEstimate, optional_number, parse_verdict
from .registration_result import RegistrationResult
from .uncertainty import GOOD_TRE_MM, LOCAL_MM, POOR_TRE_MM, RADIUS_95_PER_RMS, hit_probability, total_error_mm

RESULT_VERSION = 1
#: Keys of a single, global TRE (mm RMS) in hand-written INIT/RESULT files, in order of preference.
GLOBAL_TRE_KEYS = ("tre_rms_mm", "tre_mm", "predicted_tre_mm")
_FIX = "give a RESULT.json or INIT.json written by 'ctus register'"


def result_document(result: RegistrationResult, *, ct_path, sweep_path, calibration_path,
                    init_source: str, init_file, landmarks=None,
                    targets: Optional[Mapping[str, dict]] = None) -> dict:
    """The RESULT.json document of ``result`` (JSON-ready dict).

    ``init_source``: "landmarks" or "init" (where ``result.init_reference_to_ct`` came from),
    ``init_file`` its file (None when it was not a file); ``landmarks``: the
    :class:`~registration.align.landmarks.LandmarkResult` of that start (its predicted TRE is
    reported at each of ``targets``, the ``{name: {"point": ...}}`` given to the registration)."""
    doc = {"version": RESULT_VERSION, "ct": _path(ct_path), "sweep": _path(sweep_path),
           "calibration": _path(calibration_path)}
    doc.update(result.to_dict())
    init = result.init_reference_to_ct
    doc["init"] = {"source": init_source, "file": _path(init_file),
                   "reference_to_ct": None if init is None else np.asarray(init).tolist()}
    if landmarks is not None:
        lm = landmarks.to_dict()
        if targets:
            pts = np.array([t["point"] for t in targets.values()])
            lm["predicted_tre_mm"] = dict(zip(targets, map(float, landmarks.predicted_tre(pts))))
        doc["landmarks"] = lm
    doc["targets"] = (doc.get("uncertainty") or {}).get("targets", [])
    doc["verdict"] = (doc.get("uncertainty") or {}).get("verdict")
    doc["focus"] = (doc.get("uncertainty") or {}).get("focus")
    return doc


def focused_entry(focused: RegistrationResult) -> dict:
    """What a whole-sweep RESULT keeps of a focused refinement (:func:`.focus.refine_near_target`)
    of one of its lesions (``focused_targets[name]``): the focused pose, the focus, and the focus
    target's row and verdict."""
    focus = (focused.uncertainty.focus or {}) if focused.uncertainty is not None else {}
    name = focus.get("name")
    row = focused.uncertainty.target(name) if focused.uncertainty is not None and name else None
    return {"reference_to_ct": np.asarray(focused.reference_to_ct).tolist(), "focus": focus,
            "target": None if row is None else row.to_dict(), "verdict": focused.uncertainty.verdict,
            "uncertainty": focused.uncertainty.to_dict() if focused.uncertainty is not None else None,
            "wall_time_s": round(float(focused.wall_time_s), 3)}


#: How a row's reason list says that a focused refinement disputed it (:func:`with_focus_disputes`).
DISPUTED_WHY = "a focused refinement near it moved it"


def raised_tre_mm(tre_mm: float, disputes_mm: float) -> float:
    """A whole-sweep RMS error (mm) at a target whose focused refinement disputed it by moving the
    target ``disputes_mm``: raised until its 95 % radius covers that move (one of the two results is
    wrong, which is unknown; :func:`registration.align.focus.dispute_mm`)."""
    return max(float(tre_mm), float(disputes_mm) / RADIUS_95_PER_RMS) if disputes_mm else float(tre_mm)


def entry_dispute_mm(entry, path, where: str) -> float:
    """``focused_targets[name]``'s dispute of the whole-sweep result (mm): its ``focus.disputes_whole_mm``
    when its row is poor (a usable focused row replaces the whole-sweep one instead), else 0.
    InputError naming ``where`` for a value that is not a number."""
    if not isinstance(entry, dict) or not isinstance(entry.get("focus"), dict):
        return 0.0
    value = optional_number(entry["focus"], "disputes_whole_mm", path, f"{where}.focus")
    row = entry.get("target")
    if not value or (isinstance(row, dict) and row.get("verdict") != "poor"):
        return 0.0
    return float(value)


def with_focus_disputes(assessment: Assessment, focused_targets, path=None) -> Assessment:
    """``assessment`` (a whole-sweep one) with the rows its kept focused refinements
    (``focused_targets``: {name: :func:`focused_entry`}) dispute raised (:func:`raised_tre_mm`),
    their hit probabilities recomputed and their verdict at best "check" (poor above
    ``POOR_TRE_MM``), with the reason: what the GUI shows and the plan uses for those lesions.
    The input is not changed; without disputes it is returned as it is."""
    if not isinstance(focused_targets, dict) or not focused_targets:
        return assessment
    rows, changed = [], False
    terms = assessment.error_terms
    for row in assessment.targets:
        d = entry_dispute_mm(focused_targets.get(row.name), path, f"focused_targets.{row.name}")
        tre = row.tre_registration_mm
        new = None if tre is None else raised_tre_mm(tre, d)
        if new is None or new <= tre:
            rows.append(row)
            continue
        total = total_error_mm(new, tracking_mm=terms.tracking_mm, needle_mm=terms.needle_mm,
                               breathing_mm=terms.breathing_mm)
        verdict = "poor" if new > POOR_TRE_MM else ("check" if row.verdict == "good" or new > GOOD_TRE_MM
                                                   else row.verdict)
        why = list(row.why) + [f"{DISPUTED_WHY} {d:.1f} mm from this result: one of the two is wrong, so its "
                               f"error here is raised to {new:.1f} mm RMS"]
        rows.append(replace(row, tre_registration_mm=new, tre_registration_95_mm=RADIUS_95_PER_RMS * new,
                            tre_total_mm=total, verdict=verdict, why=why,
                            hit_probability=None if row.radius_mm is None else hit_probability(row.radius_mm, total),
                            hit_probability_registration_only=None if row.radius_mm is None
                            else hit_probability(row.radius_mm, new)))
        changed = True
    return replace(assessment, targets=rows) if changed else assessment


@dataclass
class ResultRecord:
    """A RESULT.json / INIT.json read back: what the GUI and the planner use of it.

    ``targets``: the per-target rows (empty for an INIT.json); ``tre_rms_mm``: a global TRE
    given in the file (``GLOBAL_TRE_KEYS``), None if none; ``document``: the whole JSON."""
    reference_to_ct: Optional[np.ndarray]
    method: Optional[str] = None
    verdict: Optional[str] = None
    targets: List[TargetEstimate] = field(default_factory=list)
    assessment: Optional[Assessment] = None
    tre_rms_mm: Optional[float] = None
    fre_mm: Optional[float] = None
    source: Optional[str] = None
    document: dict = field(default_factory=dict)

    @property
    def focus(self) -> Optional[dict]:
        """The focus of a focused refinement (``name``, ``point_ct``, ``radius_mm``, ...), else None."""
        f = self.document.get("focus")
        return f if isinstance(f, dict) else None

    def target(self, name: str) -> Optional[TargetEstimate]:
        """The row of target ``name`` (None if the file has none)."""
        return next((t for t in self.targets if t.name == name), None)

    def focused_target(self, name: str) -> Optional[TargetEstimate]:
        """The row of a focused refinement near ``name`` kept in this RESULT (``focused_targets``),
        when its verdict is not "poor" and it has an estimate; else None."""
        entries = self.document.get("focused_targets")
        entry = entries.get(name) if isinstance(entries, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("target"), dict):
            return None
        row = TargetEstimate.from_dict(entry["target"], self.source, f"focused_targets.{name}.target")
        return row if row.verdict != "poor" and row.tre_registration_mm is not None else None

    def tre_at(self, name: str) -> Optional[float]:
        """RMS registration TRE (mm) at target ``name``: a focused refinement's row near it
        (:meth:`focused_target`), else its row, else the global value.

        None when unknown, and when the verdict is "poor": a result the registration does
        not trust gives no error estimate to plan with."""
        focused = self.focused_target(name)
        if focused is not None:
            return focused.tre_registration_mm
        if self.verdict == "poor":
            return None
        row = self.target(name)
        tre = row.tre_registration_mm if row is not None else self.tre_rms_mm
        # a focused refinement near the target disputed this result: its 95 % radius must cover the move
        return None if tre is None else raised_tre_mm(tre, self.disputed_mm(name))

    def disputed_mm(self, name: str) -> float:
        """How far (mm) a focused refinement near ``name`` kept in this RESULT moved the target
        when it disputed this result (:func:`entry_dispute_mm`; such a focused row is poor); 0
        otherwise. One of the two results is wrong and which is unknown, so :meth:`tre_at` raises
        this result's error there until its 95 % radius covers the move: on a deformed real-CT
        survey a lesion called good at 2.4-2.5 mm was 5.0-5.5 mm off while its focused fit moved it
        8.5-16 mm (benchmarks/results/deformation.md, 2026-12-03, seventh session)."""
        entries = self.document.get("focused_targets")
        entry = entries.get(name) if isinstance(entries, dict) else None
        if self.focused_target(name) is not None:
            return 0.0
        return entry_dispute_mm(entry, self.source, f"focused_targets.{name}")

    def overall_tre_mm(self) -> Optional[float]:
        """One TRE (mm) for the whole registration: the global value if the file gives one, else
        the largest estimate over the targets near the sweep (those the verdict is about), else
        over all targets; None for a "poor" result or when nothing is known."""
        if self.tre_rms_mm is not None:
            return self.tre_rms_mm
        if self.verdict == "poor":
            return None
        rows = [r for r in self.targets if r.tre_registration_mm is not None]
        near = [r for r in rows if (r.distance_to_sweep_mm or 0.0) <= LOCAL_MM]
        return max((r.tre_registration_mm for r in (near or rows)), default=None)


def parse_result(doc, path=None, *, need_matrix: bool = True) -> ResultRecord:
    """A RESULT/INIT document (parsed JSON) -> :class:`ResultRecord`; InputError naming ``path``
    and the field when it is unusable. ``need_matrix=False``: a table of target TREs without
    ``reference_to_ct`` is accepted too (the planner's fusion estimate needs only that)."""
    if not isinstance(doc, dict):
        raise InputError("not a JSON object", path=path, fix=_FIX)
    if need_matrix and "reference_to_ct" not in doc:
        raise InputError("no 'reference_to_ct' (a 4x4 row-major nested list)", path=path, fix=_FIX)
    m = doc.get("reference_to_ct")
    matrix = None if m is None and not need_matrix else as_matrix(m, name="reference_to_ct", path=path)
    unc = doc.get("uncertainty")
    assessment = Assessment.from_dict(unc, path) if isinstance(unc, dict) and "targets" in unc else None
    method = doc.get("method")
    return ResultRecord(matrix, None if method is None else str(method),
                        parse_verdict(doc.get("verdict"), path, "verdict"), _target_rows(doc.get("targets"), path),
                        assessment, _global_tre(doc), optional_number(doc, "fre_mm", path, "RESULT"),
                        None if doc.get("source") is None else str(doc["source"]), doc)


def read_result_file(path) -> ResultRecord:
    """RESULT.json / INIT.json -> :class:`ResultRecord` (InputError on anything unusable)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the file ({exc.__class__.__name__})", path=path,
                         fix="choose a RESULT.json or INIT.json") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON (line {exc.lineno})", path=path, fix="choose a RESULT.json or INIT.json") from None
    return parse_result(doc, path)


def _target_rows(rows, path) -> List[TargetEstimate]:
    """``targets`` as written (a list of rows) or hand-written as ``{name: row or TRE number}``."""
    if rows is None:
        return []
    if isinstance(rows, dict):
        return [TargetEstimate.from_dict(dict(row, name=str(name)) if isinstance(row, dict)
                                         else {"name": str(name), "tre_registration_mm": row}, path, f"targets.{name}")
                for name, row in rows.items()]
    if not isinstance(rows, list):
        raise InputError('"targets" is neither a list of rows nor an object', path=path, fix=_FIX)
    return [TargetEstimate.from_dict(r, path, f"targets[{i}]") for i, r in enumerate(rows)]


def _global_tre(doc: dict) -> Optional[float]:
    """The first number among ``GLOBAL_TRE_KEYS``, at the top level, then in ``uncertainty``
    (anything else there is ignored, as it always was: these keys are optional hints)."""
    unc = doc.get("uncertainty")
    for where in (doc, unc if isinstance(unc, dict) else {}):
        for key in GLOBAL_TRE_KEYS:
            v = where.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
    return None


def _path(p) -> Optional[str]:
    return None if p is None else os.fspath(p)
