"""Registration panel: paired landmarks (CT view click, then US view click) and LC2 refinement.

Frames: CT points are LPS mm (from the slice views); US points are picked as
frame pixels ``(col, row)`` (Image frame, pixel centres at integers) and
mapped to Reference mm through the current frame's ``image_to_reference``.
The landmark fit (:func:`registration.align.landmarks.register_landmarks`) gives
``reference_to_ct`` with residuals, leave-one-out errors, outliers, FRE and
a predicted TRE at the chosen target; it is applied to the window live once
>= 3 usable pairs exist. "Refine automatically" runs
:func:`registration.align.intensity_registration.register_sweep` (LC2) in a worker;
its result is only a *candidate* until the user accepts it, shown with its
verdict and numbers (never a bare "good").
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QComboBox, QDockWidget, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from gui.core.session import RegistrationState
from registration.align.targets import targets_from_labels
from registration.spatial.errors import InputError

from .landmark_editor import LandmarkEditorMixin
from .landmark_list import LandmarkList
from .landmark_overlay import LandmarkOverlay
from .refinement_box import RefinementMixin


class RegistrationPanel(LandmarkEditorMixin, RefinementMixin, QWidget):
    """Landmarks (:mod:`.landmark_editor`) and automatic refinement (:mod:`.refinement_box`)
    around one chosen TRE target (a lesion or the CT centre)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("registration_panel")
        self.setMinimumWidth(440)     # the pair table and the numbers stay readable
        self.window = window
        self.landmarks = LandmarkList()
        self.pending_ct: Optional[np.ndarray] = None
        self.baseline: Optional[RegistrationState] = None   # registration before landmarks took over
        self.applied: Optional[RegistrationState] = None    # the landmark registration we set
        self.candidate = None                              # RegistrationResult awaiting accept
        self.candidate_context: dict = {}                  # its inputs, for its RESULT document
        #: TRE targets {name: {"point": CT LPS mm, "radius_mm"}}: the CT centre and the lesions
        self.targets: Dict[str, dict] = {}
        self._targets_of: Optional[tuple] = None           # the (display, labels) they were computed for
        self.previous: List[Optional[RegistrationState]] = []  # for Revert after Accept
        self.worker = None
        #: extra keyword arguments for register_sweep (tests use fewer starts/evaluations)
        self.refine_options: dict = {}
        self._build()
        for view in window.views.values():
            view.point_clicked.connect(self.on_ct_click)
        window.us_view.pixel_clicked.connect(self.on_us_pixel)
        # The pairs are user edits: saved and autosaved with the session, restored after its data.
        window.register_session_part("landmarks", lambda: {"pairs": self.landmarks.to_json()},
                                     lambda d: self.restore_landmarks((d or {}).get("pairs", [])))
        self.us_overlay = LandmarkOverlay(window.us_view, self)
        window.player.frame_changed.connect(lambda _i: self._update_overlays())
        window.data_changed.connect(self.refresh_targets)
        self.refresh_targets()
        self._refresh_table()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self._build_landmarks()
        self.target_box = QComboBox()
        self.target_box.setObjectName("tre_target")
        self.target_box.currentIndexChanged.connect(lambda _: self._target_changed())
        self.quality = QLabel()
        self.quality.setObjectName("landmark_quality")
        self.quality.setWordWrap(True)
        self._build_refinement()

        # Dock layouts ignore a wrapped label's height-for-width: reserve the lines explicitly.
        line = self.fontMetrics().lineSpacing()
        for label, lines in ((self.instructions, 2), (self.quality, 3), (self.verdict, 5)):
            label.setMinimumHeight(lines * line + 4)
        self.table.setMinimumHeight(7 * (line + 8))
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.pick_button)
        row.addWidget(self.delete_button)
        row.addWidget(self.undo_button)
        lay.addLayout(row)
        lay.addWidget(self.instructions)
        lay.addWidget(self.table, 3)
        row = QHBoxLayout()
        row.addWidget(QLabel("TRE at"))
        row.addWidget(self.target_box, 1)
        lay.addLayout(row)
        lay.addWidget(self.quality)
        row = QHBoxLayout()
        row.addWidget(self.refine_button, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_text)
        lay.addWidget(self.plot, 2)
        lay.addWidget(self.verdict)
        row = QHBoxLayout()
        row.addWidget(self.accept_button)
        row.addWidget(self.revert_button)
        lay.addLayout(row)
        self._update_buttons()

    # ------------------------------------------------------------ targets (TRE at ...)
    def refresh_targets(self) -> None:
        """The TRE targets: the CT centre and every lesion of the window's labels, found as
        ``ctus register --labels`` finds them (:func:`registration.align.targets.targets_from_labels`);
        recomputed only when the CT or the labels change."""
        w = self.window
        if self._targets_of is None or self._targets_of[0] is not w.display or self._targets_of[1] is not w.labels:
            self._targets_of = (w.display, w.labels)
            self.targets = {}
            if w.display is not None:
                self.targets["CT centre"] = {"point": [float(v) for v in w.display.center_lps()], "radius_mm": None}
            if w.labels is not None:
                self.targets.update(targets_from_labels(w.labels))
        current = self.target_box.currentText()
        self.target_box.blockSignals(True)
        self.target_box.clear()
        self.target_box.addItem("CT centre")
        for name in self.targets:
            if name != "CT centre":
                self.target_box.addItem(name)
        i = self.target_box.findText(current)
        self.target_box.setCurrentIndex(max(i, 0))
        self.target_box.blockSignals(False)

    def target(self) -> Tuple[str, Optional[np.ndarray], Optional[float]]:
        """(name, CT LPS point or None, radius mm or None) of the chosen TRE target."""
        name = self.target_box.currentText() or "CT centre"
        t = self.targets.get(name)
        if t is None:
            return name, None, None
        return name, np.asarray(t["point"], float), t["radius_mm"]

    def select_target(self, name: str) -> None:
        self.refresh_targets()
        i = self.target_box.findText(name)
        if i < 0:
            raise InputError(f"no target called {name!r}", fix="choose a lesion listed in the box")
        self.target_box.setCurrentIndex(i)

    def _target_changed(self) -> None:
        if self.applied is not None and self.window.registration is self.applied:
            self.recompute()      # the window's landmark registration carries the TRE at this target
        self._show_quality()
        if self.candidate is not None:
            self._show_verdict(self.candidate.uncertainty)

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.refine_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.accept_button.setEnabled(self.candidate is not None and not running)
        self.revert_button.setEnabled((self.candidate is not None or bool(self.previous)) and not running)
        self.undo_button.setEnabled(self.landmarks.can_undo)
        self.delete_button.setEnabled(bool(self.landmarks.pairs))


def install(window) -> QDockWidget:
    """Create the Registration dock on ``window`` (a gui.window.main_window.MainWindow) and return it."""
    panel = RegistrationPanel(window)
    dock = QDockWidget("Registration", window)
    dock.setObjectName("dock_registration")
    dock.setWidget(panel)
    window.addDockWidget(Qt.LeftDockWidgetArea, dock)
    dock.show()     # a dock added to an already visible window is not always shown by Qt
    # Share the left area as tabs with a panel already there (Planning) instead of halving it.
    for other in window.findChildren(QDockWidget):
        if other is not dock and window.dockWidgetArea(other) == Qt.LeftDockWidgetArea:
            window.tabifyDockWidget(other, dock)
            dock.raise_()
            break
    return dock
