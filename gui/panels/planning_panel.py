"""Planning panel: lesions with visibility and recommendation, candidate needle paths, live edits.

Everything comes from the planner (:func:`planner.case.case_plan.plan_case`, run in a
worker); the panel shows it and never invents a number. All points are CT
LPS mm. A selected path is drawn on the three slice views and on the US view
(projected; solid where it lies within ``NEAR_MM`` of the displayed plane)
by transparent overlay children, and sent to the 3D view. A lesion without a
safe path gets the 'Why no safe path' box (:mod:`.no_path_box`) and its
closest rejected paths drawn on the slice views. Entry and target
are edited in spin boxes or by dragging their markers in a slice view; the
edited path is re-checked by the planner (:mod:`planner.paths.path_check`).
The panel is handed the plan it shows (:meth:`set_result`, a
:class:`planner.case.case_plan.PlanResult`) and holds no planning logic.
"""
from __future__ import annotations

from html import escape
from typing import Dict, List, Optional

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QDockWidget,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from .ct_plan_drawing import CTPlanDrawing
from .docking import add_left_dock
from .lesion_table import LesionTableMixin
from .no_path_box import NoPathBox
from .path_editor import PathEditorMixin, _DragFilter
from .path_overlay import PathOverlay, _Follow


class PlanningPanel(LesionTableMixin, PathEditorMixin, QWidget):
    """The lesion table (:mod:`.lesion_table`), the selected path on the views
    (:mod:`.path_overlay`, :mod:`.ct_plan_drawing`) and its editing (:mod:`.path_editor`)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("planning_panel")
        self.setMinimumWidth(440)
        self.window = window
        self.result = None                 # planner.case.case_plan.PlanResult
        self.planned_registration = None   # the RegistrationState the plan was made with (None: none)
        self.maps: Dict[str, object] = {}  # lesion name -> PlanningMaps (for live checks)
        self.check: Optional[dict] = None
        self.worker = None
        self._maps_worker = None
        #: extra keyword arguments for plan_case (tests use fewer directions)
        self.plan_options: dict = {}
        self._build()
        self._follow = _Follow(self)
        self.overlays: List[PathOverlay] = []
        self._drag = _DragFilter(self)
        for name, view in list(window.views.items()) + [("us", window.us_view)]:
            self.overlays.append(PathOverlay(view, window, "us" if name == "us" else "slice"))
            view.installEventFilter(self._follow)
            if name != "us":
                view.installEventFilter(self._drag)
        window.player.frame_changed.connect(lambda _i: self._update_overlays())

    def _build(self) -> None:
        """Buttons, status, lesion table, reasons, path list, path editor and CT plan, in a scroll area."""
        self.plan_button = QPushButton("Plan all lesions")
        self.plan_button.setObjectName("plan_button")
        self.plan_button.clicked.connect(lambda: self.run_plan())
        self.export_button = QPushButton("Export...")
        self.export_button.setObjectName("export_button")
        self.export_button.clicked.connect(self.open_export)
        self.status = QLabel("No plan yet: load the CT and labels, then 'Plan all lesions'.")
        self.status.setObjectName("plan_status")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)
        self._build_lesion_table()
        self.paths = QListWidget()
        self.paths.setObjectName("trajectory_list")
        # long path lines wrap instead of being cut off or scrolled sideways
        self.paths.setWordWrap(True)
        self.paths.setTextElideMode(Qt.ElideNone)
        self.paths.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.paths.setResizeMode(QListWidget.Adjust)
        self.paths.currentRowChanged.connect(self._path_selected)
        edit = self._build_path_editor()
        self.no_path = NoPathBox()
        self.no_path.changed.connect(self._draw_rejected)
        self.ct_box = QGroupBox("CT-guided plan")
        self.ct_box.setObjectName("ct_plan_box")
        ct_lay = QVBoxLayout(self.ct_box)
        self.ct_text = QLabel()
        self.ct_text.setObjectName("ct_plan_text")
        self.ct_text.setWordWrap(True)
        self.ct_drawing = CTPlanDrawing(self.window)
        ct_lay.addWidget(self.ct_text)
        ct_lay.addWidget(self.ct_drawing, 1)
        self.ct_box.hide()
        self.table.setMinimumHeight(80)
        self.paths.setMinimumHeight(90)
        self.ct_drawing.setMinimumHeight(230)

        # Content in a scroll area: in a short dock nothing gets squashed to one row.
        self.content = content = QWidget()
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        lay = QVBoxLayout(content)
        lay.setContentsMargins(4, 4, 4, 4)     # the 440 px dock fits its widest row without scrolling
        row = QHBoxLayout()
        row.addWidget(self.plan_button, 1)
        row.addWidget(self.export_button)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.table)
        lay.addWidget(self.no_path)      # right under the table: the answer to "why no path?"
        lay.addWidget(self.reasons)
        lay.addWidget(QLabel("Candidate paths (best first):"))
        lay.addWidget(self.paths, 1)
        lay.addWidget(edit)
        lay.addWidget(self.ct_box, 3)

    # ------------------------------------------------------------ planning
    def run_plan(self, target_lps=None) -> None:
        """Plan the window's CT and labels (with its registration and sweep) in a worker: every
        lesion, or a point target ``target_lps`` (LPS mm). A CT without labels is segmented first
        (Segmentation panel), then planned."""
        w = self.window
        seg = w._panel("segmentation") if hasattr(w, "_panel") else None
        if w.ct is not None and w.labels is None and seg is not None:
            self.status.setText("No label map: segmenting the anatomy first, then planning.")
            seg.segment(then=lambda: self.run_plan(target_lps))
            return
        if w.ct is None or w.labels is None:
            self.status.setText("Planning needs the CT and its label map with lesions (File > Open).")
            return
        if self.worker is not None:
            return
        if target_lps is None and not any(str(n).startswith("lesion") for n in w.labels.names):
            self.status.setText("No lesion in the label map yet: click one with 'Lesion from click' or use "
                                "'Target at crosshair' (Segmentation panel).")
            return
        from planner.case.case_plan import plan_case
        ct, labels, reg = w.ct, w.labels, w.registration
        kwargs = dict(sweep=w.sweep if reg is not None else None,
                      reference_to_ct=None if reg is None else reg.reference_to_ct,
                      registration=None if reg is None else reg.to_dict(),
                      labels_path=labels.metadata.get("source"), ct_path=ct.metadata.get("source"))
        kwargs.update(self.plan_options)
        if target_lps is not None:
            kwargs["target_lps"] = np.asarray(target_lps, float)
        self.status.setText("Planning...")
        self.plan_button.setEnabled(False)
        def finished():
            self.worker = None
            self.plan_button.setEnabled(True)
            if self.result is None:
                self.status.setText("Planning did not finish (see the log).")
        self.worker = w.run_worker("Plan lesions", lambda progress: plan_case(ct, labels, progress=progress,
                                                                               **kwargs),
                                   lambda result: self.set_result(result, reg),
                                   before_start=lambda wk: wk.finished.connect(finished))

    # ------------------------------------------------------------ selected path
    def path(self) -> Optional[dict]:
        """The selected trajectory of the selected lesion (a plan.json trajectory dict), or None."""
        les = self.lesion()
        i = self.paths.currentRow()
        if les is None or i < 0 or i >= len(les.get("trajectories", [])):
            return None
        return les["trajectories"][i]

    def _path_selected(self, _row: int) -> None:
        self._show_path(self.path())

    def _show_path(self, t: Optional[dict]) -> None:
        """Show trajectory ``t`` everywhere: spin boxes, overlays, cursor, 3D view, CT plan box."""
        for spins, key in ((self.entry_spins, "entry_ct"), (self.target_spins, "target_ct")):
            for k, s in enumerate(spins):
                s.blockSignals(True)
                s.setValue(0.0 if t is None else float(t[key][k]))
                s.setEnabled(t is not None)
                s.blockSignals(False)
        path = None if t is None else (np.asarray(t["entry_ct"], float), np.asarray(t["target_ct"], float),
                                       t["guidance"], t.get("safe", True) is not False)
        for o in self.overlays:
            o.set_path(path)
        w = self.window
        if t is not None:
            w.set_cursor(np.asarray(t["target_ct"], float))
        if w.view3d is not None:
            # A lesion without a path must not keep showing the previous lesion's needle in 3D, and
            # the 3D view has one colour for needles: an unsafe least-risk path is not drawn there.
            unsafe = t is not None and t.get("safe", True) is False
            w.view3d.set_trajectories([] if t is None or unsafe else [(t["entry_ct"], t["target_ct"])])
        # The CT plan is shown for a CT path; a CT recommendation selects its best CT path.
        show_ct = t is not None and t["guidance"] == "ct"
        self.ct_box.setVisible(bool(show_ct))
        if show_ct:
            ct = t.get("ct", {})
            self.ct_text.setText(ct.get("text", "CT description not available for an edited path"))
            self.ct_drawing.set_path(t)
            self.scroll.ensureWidgetVisible(self.ct_box)
        self.check = None
        self.check_label.setText(path_check_text(t))
        self.add_path_button.setEnabled(False)

    def _show_no_path(self, les: Optional[dict]) -> None:
        """Explain ``les`` (a lesion without a safe path) in the 'Why no safe path' box, or hide it."""
        max_length = float(((self.result.plan if self.result else {}).get("constraints") or {}).get(
            "max_length_mm", 150.0))
        self.no_path.set_lesion(les, max_length)

    def _draw_rejected(self) -> None:
        for o in self.overlays:
            o.set_rejected(self.no_path.drawn())

    def _update_overlays(self) -> None:
        for o in self.overlays:
            o.update()

    # ------------------------------------------------------------ export
    def open_export(self):
        """Open the export dialog for the plan shown."""
        from .export_dialog import ExportDialog
        self.export_dialog = ExportDialog(self.window, self)
        self.export_dialog.show()
        return self.export_dialog


def path_check_text(t: Optional[dict]) -> str:
    """What the planner says about a path it proposed: its hard rules met (and its cautions), or
    UNSAFE with every violation (a least-risk path)."""
    if t is None:
        return ""
    if t.get("safe", True) is False:
        return ("<span style='color:#c0221b'><b>UNSAFE least-risk path</b> (not a plan): "
                + escape("; ".join(v["text"] for v in t.get("violations", []))) + "</span>")
    text = "planner path: all hard rules met"
    if t.get("cautions"):
        text += "; cautions: " + "; ".join(v["text"] for v in t["cautions"])
    return escape(text)


def install(window) -> QDockWidget:
    """Create the Planning dock on ``window`` (a gui.window.main_window.MainWindow) and return it."""
    panel = PlanningPanel(window)
    if hasattr(window, "registration_changed"):
        # the stale-plan warning appears as soon as the registration changes
        window.registration_changed.connect(lambda _reg: panel._lesion_selected() if panel.result is not None else None)
    return add_left_dock(window, panel, "Planning", "dock_planning", raise_dock=True)
