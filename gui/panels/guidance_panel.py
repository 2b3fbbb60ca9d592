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

import time
from typing import Optional

import numpy as np

from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtGui import QFont
from PyQt5.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDockWidget,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gui.core.guidance_text import (
    UNSAFE_PATH_TEXT,
    alert,
    details,
    hidden_text,
    numbers,
)
from gui.core.needle_guidance import NeedleGuidance
from gui.views.probe_geometry import FOLLOW_INTERVAL_MS

from .docking import add_left_dock
from .guidance_setup import GuidanceSetupMixin
from .needle_overlay import NeedleOverlay

NUMBERS = (("to_target", "Tip to target"), ("miss", "Miss (projected path)"), ("angle", "Angle to plan"),
           ("off_plane", "Off US plane"))
STYLE = {"breach": "background:#c0221b; color:white;", "caution": "background:#e89b00; color:black;",
         "hidden": "background:#444; color:#ffcf70;", "ok": "background:#1d5e24; color:white;"}


class GuidancePanel(GuidanceSetupMixin, QWidget):
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
        self._guide_shown = None
        self._last_tip_follow = 0.0
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
        self.follow_tip_box = QCheckBox("slices follow the needle tip")
        self.follow_tip_box.setObjectName("guidance_follow_tip")
        self.follow_tip_box.setToolTip("while the needle is tracked the three CT slices go through its tip "
                                       "(instead of following the probe)")
        self.follow_tip_box.setChecked(True)
        self.follow_tip_box.toggled.connect(lambda on: self._follow_tip(self.guidance.state if on else None))
        row2.addWidget(self.calibration_button)
        row2.addWidget(self.sound_box)
        row2.addWidget(self.follow_tip_box)
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

    # ------------------------------------------------------------ per state
    def shown_plane_offset(self, state) -> Optional[float]:
        """The tip's offset (mm) from the US image the view shows now (the engine's
        ``plane_numbers``), so the number matches the drawing; None without a tracked frame."""
        from planner.guidance.guidance_state import plane_numbers
        us, guide = self.window.us_view, self.guidance.guide
        if state is None or not state.valid or guide is None or us.image_to_reference is None:
            return None
        return plane_numbers(state.tip_ct, state.direction_ct, guide.reference_to_ct @ us.image_to_reference,
                             us.frame_shape)["plane_offset_mm"]

    def frame_shown(self) -> None:
        """A new US frame: its offset from the needle tip (the drawing follows by itself)."""
        state = self.guidance.state
        if state is not None and state.valid:
            self.values["off_plane"].setText(numbers(state, self.shown_plane_offset(state))["off_plane"])

    def _path_to_3d(self, path) -> None:
        """The guided path in the 3D view (camera along it), as the Planning panel shows a path;
        an unsafe least-risk path is not drawn there (one colour for paths in 3D)."""
        v3 = self.window.view3d
        if v3 is not None:
            v3.set_trajectories([(path.entry_ct, path.target_ct)] if path.safe else [])

    def _follow_tip(self, state) -> None:
        """The slice views through the tracked needle tip (at most every ``FOLLOW_INTERVAL_MS``),
        while "slices follow the needle tip" is ticked and the state is valid; the window's
        probe following pauses meanwhile (the two would fight over the crosshair)."""
        on = state is not None and state.valid and self.follow_tip_box.isChecked()
        self.window.needle_follow = on
        if not on:
            return
        now = time.perf_counter()
        if (now - self._last_tip_follow) * 1000 < FOLLOW_INTERVAL_MS:
            return
        self._last_tip_follow = now
        tip = np.asarray(state.tip_ct, float)
        self.window.set_cursor(tip)
        for view in self.window.views.values():
            view.ensure_visible(tip)

    def show_state(self, state) -> None:
        """Panel, view overlays and 3D needle for ``state`` (GuidanceState or None), together."""
        a = alert(state)
        for key, text in numbers(state, self.shown_plane_offset(state)).items():
            self.values[key].setText(text)
        guide = self.guidance.guide
        if guide is not None and guide is not self._guide_shown:
            self._guide_shown = guide
            self._path_to_3d(guide.path)
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
        self._follow_tip(state)
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
    window.us_view.frame_updated.connect(panel.frame_shown)
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
    return add_left_dock(window, panel, "Guidance", "dock_guidance", raise_dock=True)
