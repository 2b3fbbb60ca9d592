"""Guidance panel: the tracked needle's distances to the plan in large type, and its warning.

Set-up: a plan (a ``ctus plan`` / Export folder with its ``labels.nrrd``, or
the plan shown in the Planning panel with the window's labels), one of its
paths, and the needle calibration (a PLUS config with ``NeedleTip`` ->
``Needle``, a pivot recording, or sent by the server as ``NeedleTipToNeedle``).
The set-up (distance maps) runs off the GUI thread
(:class:`gui.core.needle_guidance.NeedleGuidance`). Then, for every state,
in one slot (so panel, views and warning change together): tip-to-target
distance, miss distance of the projected path, angle to the plan and offset
from the US plane in large type; the breach (red) or caution (amber) line
naming the structure and distance, with an optional beep (off by default);
"PLANNED PATH UNSAFE (least-risk only)" when guiding along a least-risk path;
"NEEDLE HIDDEN: why" and "--" for every number when the needle is missing,
INVALID, stale or uncalibrated. The needle on the views:
:mod:`.needle_overlay` (2D) and :mod:`gui.views.view3d_needle` (3D).
"""
from __future__ import annotations

import os
from typing import Optional

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (QApplication, QCheckBox, QComboBox, QDockWidget, QFileDialog, QGridLayout, QGroupBox,
                             QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget)

from gui.core.guidance_text import UNSAFE_PATH_TEXT, alert, details, hidden_text, numbers
from gui.core.needle_guidance import NeedleGuidance
from registration.spatial.errors import InputError

from .needle_overlay import NeedleOverlay

NUMBERS = (("to_target", "Tip to target"), ("miss", "Miss (projected path)"), ("angle", "Angle to plan"),
           ("off_plane", "Off US plane"))
STYLE = {"breach": "background:#c0221b; color:white;", "caution": "background:#e89b00; color:black;",
         "hidden": "background:#444; color:#ffcf70;", "ok": "background:#1d5e24; color:white;"}


class GuidancePanel(QWidget):
    def __init__(self, window, guidance: NeedleGuidance, parent=None):
        super().__init__(parent)
        self.setObjectName("guidance_panel")
        self.window, self.guidance = window, guidance
        self.plan: Optional[dict] = None
        self.plan_path = None
        self.labels = None                      # LabelMap or path of the plan's labels
        self.overlays = []
        self.needle3d = None
        self._beeped = False
        self._build()
        guidance.state_changed.connect(self.show_state)
        guidance.setup_changed.connect(self._setup_changed)

    # ------------------------------------------------------------ widgets
    def _build(self) -> None:
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        box = QGroupBox("Plan and needle")
        grid = QVBoxLayout(box)
        self.plan_label = QLabel("No plan: open a plan folder, or plan in the Planning panel.")
        self.plan_label.setObjectName("guidance_plan")
        self.plan_label.setWordWrap(True)
        row = QHBoxLayout()
        self.open_button = QPushButton("Open plan folder...")
        self.open_button.setObjectName("guidance_open_plan")
        self.open_button.clicked.connect(self._ask_plan_folder)
        self.current_button = QPushButton("Use the current plan")
        self.current_button.setObjectName("guidance_current_plan")
        self.current_button.clicked.connect(self.use_current_plan)
        row.addWidget(self.open_button)
        row.addWidget(self.current_button)
        self.path_box = QComboBox()
        self.path_box.setObjectName("guidance_path")
        self.start_button = QPushButton("Start guidance")
        self.start_button.setObjectName("guidance_start")
        self.start_button.clicked.connect(self.start)
        self.start_button.setEnabled(False)
        row2 = QHBoxLayout()
        self.calibration_button = QPushButton("Needle calibration...")
        self.calibration_button.setObjectName("guidance_calibration")
        self.calibration_button.setToolTip("a PLUS config with NeedleTip -> Needle, or a recorded pivot "
                                           "calibration of the needle (.mha/.mhd)")
        self.calibration_button.clicked.connect(self._ask_calibration)
        self.sound_box = QCheckBox("beep on breach")
        self.sound_box.setObjectName("guidance_sound")
        self.sound_box.setChecked(False)
        row2.addWidget(self.calibration_button)
        row2.addWidget(self.sound_box)
        for w in (self.plan_label,):
            grid.addWidget(w)
        grid.addLayout(row)
        grid.addWidget(self.path_box)
        grid.addWidget(self.start_button)
        grid.addLayout(row2)
        lay.addWidget(box)
        self.setup_label = QLabel(self.guidance.setup_text)
        self.setup_label.setObjectName("guidance_setup")
        self.setup_label.setWordWrap(True)
        lay.addWidget(self.setup_label)
        self.unsafe_label = self._banner("guidance_unsafe", UNSAFE_PATH_TEXT, STYLE["breach"], 13)
        self.alert_label = self._banner("guidance_alert", "", STYLE["hidden"], 14)
        lay.addWidget(self.unsafe_label)
        lay.addWidget(self.alert_label)
        nums = QGridLayout()
        self.values = {}
        big = QFont(self.font())
        big.setPointSize(24)
        big.setBold(True)
        for k, (key, caption) in enumerate(NUMBERS):
            cap = QLabel(caption)
            val = QLabel("--")
            val.setObjectName(f"guidance_{key}")
            val.setFont(big)
            val.setAlignment(Qt.AlignLeft | Qt.AlignVCenter)
            nums.addWidget(cap, 2 * (k // 2), k % 2)
            nums.addWidget(val, 2 * (k // 2) + 1, k % 2)
            self.values[key] = val
        lay.addLayout(nums)
        self.details_label = QLabel("")
        self.details_label.setObjectName("guidance_details")
        self.details_label.setWordWrap(True)
        lay.addWidget(self.details_label)
        lay.addStretch(1)
        self.show_state(None)

    def _banner(self, name: str, text: str, style: str, size: int) -> QLabel:
        lab = QLabel(text)
        lab.setObjectName(name)
        lab.setWordWrap(True)
        f = QFont(self.font())
        f.setPointSize(size)
        f.setBold(True)
        lab.setFont(f)
        lab.setStyleSheet(f"QLabel {{ {style} padding: 4px; }}")
        lab.hide()
        return lab

    def _setup_changed(self, text: str) -> None:
        self.setup_label.setText(text)
        self.show_state(self.guidance.state)     # the UNSAFE line and the views follow the new guide

    # ------------------------------------------------------------ plan
    def _ask_plan_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Plan folder (ctus plan --out, or Export)")
        if path:
            self.open_plan_folder(path)

    def open_plan_folder(self, folder) -> None:
        """A plan folder: plan.json and the label map it keeps (``labels.nrrd``)."""
        from planner.export.plan_files import plan_labels_path
        from planner.guidance.planned_path import read_plan
        with self.window.reporter.action("Open plan for guidance"):
            plan, path = read_plan(folder)
            labels = plan_labels_path(os.path.dirname(path))
            self._set_plan(plan, path, labels, f"{path} (labels: {os.path.basename(labels)})")

    def use_current_plan(self) -> None:
        """The plan shown in the Planning panel (or the last exported one) with the window's labels."""
        with self.window.reporter.action("Use the current plan for guidance"):
            dock = getattr(self.window, "panel_docks", {}).get("planning")
            result = getattr(dock.widget(), "result", None) if dock is not None else None
            plan = result.plan if result is not None else self.window.plan
            if plan is None or self.window.labels is None:
                raise InputError("there is no plan in the window", fix="plan in the Planning panel, or open a "
                                                                        "plan folder")
            self._set_plan(plan, None, self.window.labels, "the plan in the window")

    def _set_plan(self, plan: dict, path, labels, text: str) -> None:
        self.plan, self.plan_path, self.labels = plan, path, labels
        self.plan_label.setText(f"Plan: {text}")
        self.path_box.clear()
        first = (plan.get("recommendation") or {}).get("biopsy_first")
        for les in plan.get("lesions", []):
            for i, t in enumerate(les.get("trajectories") or [], start=1):
                unsafe = "  UNSAFE (least-risk only)" if t.get("safe", True) is False else ""
                self.path_box.addItem(f"{les['name']} path {i} ({t.get('guidance', '')}, "
                                      f"{float(t.get('length_mm', 0)):.0f} mm){unsafe}", (les["name"], i))
                if les["name"] == first and i == 1:
                    self.path_box.setCurrentIndex(self.path_box.count() - 1)
        self.start_button.setEnabled(self.path_box.count() > 0)
        if not self.path_box.count():
            self.plan_label.setText(f"Plan: {text}: no lesion has a path to guide along")

    def select_path(self, lesion: str, trajectory: int = 1) -> None:
        i = next((k for k in range(self.path_box.count())
                  if tuple(self.path_box.itemData(k)) == (lesion, trajectory)), -1)
        if i < 0:
            raise InputError(f"no path {trajectory} of {lesion} in the plan", fix="choose one of the list")
        self.path_box.setCurrentIndex(i)

    def start(self) -> None:
        """Set up guidance along the selected path (off the GUI thread)."""
        from planner.guidance.planned_path import plan_reference_to_ct
        with self.window.reporter.action("Start needle guidance"):
            if self.plan is None or self.path_box.currentData() is None:
                raise InputError("no plan path selected", fix="open a plan folder or use the current plan")
            lesion, trajectory = self.path_box.currentData()
            reg = self.window.registration
            r2c = reg.reference_to_ct if reg is not None else plan_reference_to_ct(self.plan, path=self.plan_path)
            self.guidance.start_setup(self.plan, self.labels, r2c, lesion=lesion, trajectory=trajectory,
                                      plan_path=self.plan_path, on_error=lambda e, tb: self.window.reporter.report(
                                          "Set up needle guidance", e, tb))
            dock = self.parentWidget()
            if isinstance(dock, QDockWidget):
                dock.raise_()

    # ------------------------------------------------------------ calibration
    def _ask_calibration(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Needle calibration", "",
                                              "PLUS config or pivot recording (*.xml *.mha *.mhd)")
        if path:
            self.load_calibration(path)

    def load_calibration(self, path) -> None:
        """A PLUS config (``NeedleTip`` -> ``Needle``) at once; a pivot recording in a worker."""
        from registration.tracking.needle_tool import calibration_from_config, calibration_from_pivot_recording
        tool = self.guidance.tool
        with self.window.reporter.action("Needle calibration"):
            if str(path).lower().endswith(".xml"):
                self.guidance.set_calibration(calibration_from_config(path, tool=tool))
                return
            self.window.run_worker("Pivot calibration of the needle",
                                   lambda progress: calibration_from_pivot_recording(path, tool=tool)[0],
                                   self.guidance.set_calibration)

    # ------------------------------------------------------------ per state
    def show_state(self, state) -> None:
        """Panel, view overlays and 3D needle for ``state`` (GuidanceState or None), together."""
        a = alert(state)
        for key, text in numbers(state).items():
            self.values[key].setText(text)
        guide = self.guidance.guide
        self.unsafe_label.setVisible(guide is not None and not guide.path.safe)
        if a is not None:
            self.alert_label.setText(a.text)
            self.alert_label.setStyleSheet(f"QLabel {{ {STYLE[a.level]} padding: 4px; }}")
        elif state is not None and not state.valid:
            self.alert_label.setText(hidden_text(state))
            self.alert_label.setStyleSheet(f"QLabel {{ {STYLE['hidden']} padding: 4px; }}")
        elif state is not None:
            self.alert_label.setText("no breach: projected path clear of every risk margin")
            self.alert_label.setStyleSheet(f"QLabel {{ {STYLE['ok']} padding: 4px; }}")
        self.alert_label.setVisible(state is not None or guide is not None)
        if state is None and guide is not None:
            self.alert_label.setText("waiting for the needle (connect to the tracker, or play a sweep "
                                     "recorded with the needle)")
            self.alert_label.setStyleSheet(f"QLabel {{ {STYLE['hidden']} padding: 4px; }}")
        self.details_label.setText(details(state))
        breach = a is not None and a.level == "breach"
        if breach and not self._beeped and self.sound_box.isChecked():
            QApplication.beep()
        self._beeped = breach
        level = None if a is None else a.level
        for o in self.overlays:
            o.set_state(state)
        if self.needle3d is not None:
            self.needle3d.set_state(state, level)


class _OnClose(QObject):
    """Ends the guidance's workers when the window closes."""

    def __init__(self, window, guidance):
        super().__init__(window)
        self.guidance = guidance
        window.installEventFilter(self)

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() == QEvent.Close:
            self.guidance.shutdown()
        return False


def install(window) -> QDockWidget:
    """The Guidance dock on ``window`` (a MainWindow): the panel, the needle on every view, the
    live link and the player wired to the guidance."""
    guidance = NeedleGuidance(window)
    window.guidance = guidance
    panel = GuidancePanel(window, guidance)
    panel.on_close = _OnClose(window, guidance)
    if getattr(window, "live", None) is not None:
        guidance.attach_live(window.live)
    window.player.frame_changed.connect(guidance.show_frame)
    window.data_changed.connect(lambda: guidance.set_sweep(window.sweep) if window.sweep is not guidance.sweep
                                else None)
    window.registration_changed.connect(lambda reg: guidance.set_reference_to_ct(reg.reference_to_ct)
                                        if reg is not None else None)
    panel.overlays = [NeedleOverlay(window.us_view, window, guidance, "us"),
                      NeedleOverlay(window.fused_view, window, guidance, "fused")]
    panel.overlays += [NeedleOverlay(v, window, guidance, "slice") for v in window.views.values()]
    if window.view3d is not None:
        from gui.views.view3d_needle import Needle3D
        panel.needle3d = Needle3D(window.view3d)
    dock = QDockWidget("Guidance", window)
    dock.setObjectName("dock_guidance")
    dock.setWidget(panel)
    window.addDockWidget(Qt.LeftDockWidgetArea, dock)
    dock.show()
    from .planning_panel import _tabify_left
    _tabify_left(window, dock)
    return dock
