"""The workflow bar: Load -> Segment -> Register -> Verify -> Plan -> Export, what is done and where the user is.

A toolbar row under the menu: one button per step (:mod:`gui.core.workflow` decides
done / available / blocked from what the window holds), the current step
highlighted, a done step ticked, a blocked step disabled with a tooltip saying what
is missing, and a hint of what to do now. A click goes to the step: Load offers the
open actions, Register and Verify raise the Registration panel (at its landmarks or
its verdict), Plan the Planning panel, Export opens the export dialog. When the
loaded data changes (start-up, a case opened) and nothing is loading any more, the
window shows the panel of the current step, so the app opens where the data leaves off.
"""
from __future__ import annotations

from typing import Dict, Optional

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QMenu, QSizePolicy, QToolBar, QToolButton

from gui.core.workflow import STEPS, StepState, WorkflowFacts, current_step, steps

#: What to do at each step (shown beside the bar when it is the current one).
HINTS = {
    "load": "Open the CT, its labels and the sweep (File menu or click Load).",
    "segment": "Segment the CT (Ctrl+G), click each lesion (K), correct and mark the anatomy reviewed.",
    "register": "Pick 3-6 landmark pairs (P), then Refine automatically (Ctrl+R).",
    "verify": "Check the overlay and the verdict at each lesion, then Accept (Ctrl+Return) or Reject.",
    "plan": "Plan all lesions (Ctrl+P) and review the paths.",
    "export": "Export the plan (Ctrl+E).",
}
STYLE = """
QToolButton#workflow_step { padding: 3px 10px; border: 1px solid #b8b8b8; border-radius: 3px; }
QToolButton#workflow_step[state="done"] { color: #1b6b2a; }
QToolButton#workflow_step[state="current"] { background: #2a62b8; color: white; font-weight: bold;
                                             border-color: #1d4a8c; }
QToolButton#workflow_step:disabled { color: #9a9a9a; border-style: dashed; }
"""


def facts_of(window) -> WorkflowFacts:
    """What the window holds, as :class:`WorkflowFacts` (panels are optional)."""
    docks = getattr(window, "panel_docks", {}) or {}
    reg_panel = docks["registration"].widget() if "registration" in docks else None
    plan_panel = docks["planning"].widget() if "planning" in docks else None
    labels = window.labels
    # Named lesion labels (the planner's and the registration's targets are found the same way;
    # counted from the names here: the panels may not have seen the new labels yet).
    n_lesions = 0 if labels is None else sum(str(n).startswith("lesion") for n in labels.names)
    has_plan = window.plan is not None or (plan_panel is not None and plan_panel.result is not None)
    stale = False
    if plan_panel is not None and plan_panel.result is not None and hasattr(plan_panel, "stale"):
        stale = bool(plan_panel.stale())
    reg = window.registration
    return WorkflowFacts(
        has_ct=window.ct is not None, has_labels=labels is not None, n_lesions=n_lesions,
        has_sweep=window.sweep is not None, registration_method=None if reg is None else reg.method,
        registration_verdict=None if reg is None else reg.verdict,
        candidate=reg_panel is not None and reg_panel.candidate is not None,
        refining=reg_panel is not None and reg_panel.worker is not None,
        has_plan=has_plan, plan_stale=stale, exported=bool(window.exported) and has_plan and not stale)


class WorkflowBar(QToolBar):
    """The step buttons and the hint; :meth:`refresh` after anything changed."""

    def __init__(self, window):
        super().__init__("Workflow", window)
        self.setObjectName("workflow_bar")
        self.setMovable(False)
        self.setStyleSheet(STYLE)
        self.window_ = window
        self.buttons: Dict[str, QToolButton] = {}
        self.states: Dict[str, StepState] = {}
        self.current: Optional[str] = None
        self._shown_for = None        # the (ct, labels, sweep, panels) the current step was shown for
        for n, key in enumerate(STEPS, 1):
            if n > 1:
                arrow = QLabel("\u2192")
                arrow.setObjectName("workflow_arrow")
                self.addWidget(arrow)
            b = QToolButton()
            b.setObjectName("workflow_step")
            b.setProperty("step", key)
            b.clicked.connect(lambda _=False, key=key: self.go_to(key))
            self.addWidget(b)
            self.buttons[key] = b
        self.hint = QLabel()
        self.hint.setObjectName("workflow_hint")
        self.hint.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.hint.setContentsMargins(12, 0, 4, 0)
        self.addWidget(self.hint)
        window.addToolBarBreak(Qt.TopToolBarArea)
        window.addToolBar(Qt.TopToolBarArea, self)
        window.data_changed.connect(window.update_workflow)     # actions and this bar
        self.refresh()

    def refresh(self) -> None:
        """Recompute the steps; show the current step's panel when the loaded data changed and
        nothing is loading any more."""
        w = self.window_
        states = steps(facts_of(w))
        self.states = {s.key: s for s in states}
        self.current = current_step(states)
        for n, s in enumerate(states, 1):
            b = self.buttons[s.key]
            state = "current" if s.key == self.current else "done" if s.done else "todo"
            b.setText(f"\u2713 {s.title}" if s.done else f"{n} {s.title}")
            b.setProperty("state", state)
            b.setEnabled(s.enabled)
            b.setToolTip(f"{s.title}: {s.summary}" if s.enabled else f"{s.title}: {s.why_not}")
            b.style().unpolish(b)
            b.style().polish(b)
        self.hint.setText(f"Now: {self.states[self.current].title}. {HINTS[self.current]}")
        loaded = (id(w.ct), id(w.labels), id(w.sweep), tuple(sorted(getattr(w, "panel_docks", {}) or {})))
        if loaded != self._shown_for and not getattr(w, "workers", []):
            self._shown_for = loaded
            self.show_step(self.current)

    def data_edited(self, labels) -> None:
        """``labels`` (about to be shown) are an edit of the current ones (a correction, a clicked
        lesion), not newly opened data: the panel in front stays (the step buttons still follow).
        Call it before ``set_labels``."""
        w = self.window_
        self._shown_for = (id(w.ct), id(labels), id(w.sweep), tuple(sorted(getattr(w, "panel_docks", {}) or {})))

    def show_step(self, key: str) -> None:
        """Bring the step's panel to the front (no dialog opens by itself)."""
        docks = getattr(self.window_, "panel_docks", {}) or {}
        dock = docks.get("planning" if key in ("plan", "export") else
                         "segmentation" if key == "segment" else "registration")
        if dock is None:
            return
        dock.show()
        dock.raise_()
        panel = dock.widget()
        if key in ("register", "verify") and hasattr(panel, "show_section"):
            panel.show_section(key)

    def go_to(self, key: str) -> None:
        """A click on a step: Load shows the open actions, Export opens the export dialog, the
        others show their panel."""
        w = self.window_
        if key == "load":
            menu = QMenu(self)
            menu.setObjectName("workflow_load_menu")
            for a in (w.act_open_demo, w.act_open_ct_folder, w.act_open_ct_file, w.act_open_labels,
                      w.act_open_sweep, w.act_open_reg, w.act_open_session):
                menu.addAction(a)
            self.load_menu = menu
            b = self.buttons["load"]
            menu.popup(b.mapToGlobal(b.rect().bottomLeft()))
        elif key == "export":
            w.ask_export_plan()
        else:
            self.show_step(key)
