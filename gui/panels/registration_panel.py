"""Registration panel: paired landmarks (CT view click, then US view click) and automatic refinement.

Frames: CT points are LPS mm (from the slice views); US points are picked as
frame pixels ``(col, row)`` (Image frame, pixel centres at integers) and
mapped to Reference mm through the current frame's ``image_to_reference``.
The landmark fit (:func:`registration.align.landmarks.register_landmarks`) gives
``reference_to_ct`` with residuals, leave-one-out errors, outliers and a
predicted error at the chosen target; it is applied to the window live once
>= 3 usable pairs exist. "Refine automatically" runs
:func:`registration.align.intensity_registration.register_sweep` (LC2) in a worker;
its result is only a *candidate* until the user accepts it, shown per lesion in
plain words with one error figure each (never a bare "good").

The error target ("Error at") defaults to the lesion selected in the Planning panel,
else the first lesion (the CT centre only when there is no lesion). Every button is
enabled only when it can act, its tooltip saying why not. The content sits in a
vertical scroll area and every text wraps, so no message widens the dock.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import QPoint, Qt, QTimer
from PyQt5.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from gui.core.session import RegistrationState
from registration.align.targets import targets_from_labels
from registration.spatial.errors import InputError

from .docking import add_left_dock
from .focus_box import FocusRefineMixin
from .landmark_editor import VISIBLE_PAIRS, LandmarkEditorMixin
from .landmark_list import LandmarkList
from .landmark_overlay import LandmarkOverlay
from .refinement_box import RefinementMixin

CT_CENTRE = "CT centre"
#: Narrowest width of the panel (px): the pair table's six columns and the buttons fit.
PANEL_MIN_WIDTH = 360


def _section(title: str) -> QLabel:
    lab = QLabel(f"<b>{title}</b>")
    lab.setTextFormat(Qt.RichText)
    return lab


class RegistrationPanel(LandmarkEditorMixin, RefinementMixin, FocusRefineMixin, QWidget):
    """Landmarks (:mod:`.landmark_editor`) and automatic refinement (:mod:`.refinement_box`)
    around one chosen error target (a lesion, or the CT centre when there is none), and the
    refinement near that lesion (:mod:`.focus_box`)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("registration_panel")
        self.window = window
        self.landmarks = LandmarkList()
        self.pending_ct: Optional[np.ndarray] = None
        self.baseline: Optional[RegistrationState] = None   # registration before landmarks took over
        self.applied: Optional[RegistrationState] = None    # the landmark registration we set
        self.candidate = None                              # RegistrationResult awaiting accept
        self.candidate_context: dict = {}                  # its inputs, for its RESULT document
        #: error targets {name: {"point": CT LPS mm, "radius_mm"}}: the lesions and the CT centre
        self.targets: Dict[str, dict] = {}
        self._targets_of: Optional[tuple] = None           # the (display, labels) they were computed for
        self.previous: List[Optional[RegistrationState]] = []  # for Undo accept
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
        window.data_changed.connect(self._data_changed)
        self.refresh_targets()
        self._refresh_table()
        self._show_quality()
        self.show_verdict()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self._build_landmarks()
        self.target_box = QComboBox()
        self.target_box.setObjectName("tre_target")
        self.target_box.setToolTip("the lesion the landmark estimate and the bold verdict line are about")
        self.target_box.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.target_box.setMinimumContentsLength(10)
        self.target_box.currentIndexChanged.connect(lambda _: self._target_changed())
        self.quality = QLabel()
        self.quality.setObjectName("landmark_quality")
        self.quality.setWordWrap(True)
        self.quality.setTextFormat(Qt.RichText)
        self._build_refinement()
        self._build_focus()
        for lab in (self.instructions, self.quality):
            lab.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.table.setFixedHeight(self.table_height_for(VISIBLE_PAIRS))

        self.content = content = QWidget()
        content.setObjectName("registration_content")
        lay = QVBoxLayout(content)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(4)
        self.landmarks_title = _section("1. Landmarks")
        lay.addWidget(self.landmarks_title)
        row = QHBoxLayout()
        row.addWidget(self.pick_button, 1)
        row.addWidget(self.delete_button)
        row.addWidget(self.undo_button)
        lay.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(QLabel("stop after"))
        row.addWidget(self.pairs_wanted)
        row.addWidget(self.one_at_a_time, 1)
        lay.addLayout(row)
        lay.addWidget(self.instructions)
        lay.addWidget(self.table)
        row = QHBoxLayout()
        row.addWidget(QLabel("Error at"))
        row.addWidget(self.target_box, 1)
        lay.addLayout(row)
        lay.addWidget(self.quality)
        line = QFrame()
        line.setFrameShape(QFrame.HLine)
        line.setFrameShadow(QFrame.Sunken)
        lay.addWidget(line)
        self.refinement_title = _section("2. Automatic refinement and verdict")
        lay.addWidget(self.refinement_title)
        row = QHBoxLayout()
        row.addWidget(self.refine_button, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        lay.addWidget(self.progress)
        lay.addWidget(self.progress_text)
        row = QHBoxLayout()
        for b in (self.accept_button, self.reject_button, self.undo_accept_button):
            row.addWidget(b)
        lay.addLayout(row)
        lay.addWidget(self.verdict)
        lay.addWidget(self.focus_button)
        lay.addWidget(self.focus_text)
        lay.addWidget(self.plot_button)
        lay.addWidget(self.plot)
        lay.addStretch(1)
        self.plot.setMinimumHeight(150)

        self.scroll = QScrollArea()
        self.scroll.setObjectName("registration_scroll")
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.scroll)
        self.setMinimumWidth(PANEL_MIN_WIDTH)
        content.setMinimumWidth(PANEL_MIN_WIDTH - self.scroll.verticalScrollBar().sizeHint().width() - 4)
        self.progress.hide()
        self._update_buttons()

    def scroll_to(self, widget: QWidget) -> None:
        """Scroll the panel so ``widget`` is at the top (a section start: what follows it shows too).
        Also once the layout has settled (new verdict lines change the content's height)."""
        def go():
            y = widget.mapTo(self.content, QPoint(0, 0)).y()
            self.scroll.verticalScrollBar().setValue(max(0, y - 6))
        go()
        QTimer.singleShot(0, go)

    def show_section(self, step: str) -> None:
        """The part of the panel for a workflow step: the landmarks (register) or the automatic
        refinement with its verdict and Accept / Reject (verify)."""
        self.scroll_to(self.refinement_title if step == "verify" else self.landmarks_title)

    # ------------------------------------------------------------ targets (error at ...)
    def _data_changed(self) -> None:
        self.refresh_targets()
        self._update_buttons()

    def refresh_targets(self) -> None:
        """The error targets: every lesion of the window's labels, found as ``ctus register
        --labels`` finds them (:func:`registration.align.targets.targets_from_labels`), then the CT
        centre; recomputed only when the CT or the labels change. A new set of lesions selects
        the Planning panel's selected lesion, else the first one."""
        w = self.window
        if self._targets_of is not None and self._targets_of[0] is w.display and self._targets_of[1] is w.labels:
            return
        self._targets_of = (w.display, w.labels)
        self.targets = {} if w.labels is None else dict(targets_from_labels(w.labels))
        if w.display is not None:
            self.targets[CT_CENTRE] = {"point": [float(v) for v in w.display.center_lps()], "radius_mm": None}
        current = self.target_box.currentText()
        self.target_box.blockSignals(True)
        self.target_box.clear()
        for name in self.targets:
            self.target_box.addItem(name)
        lesions = [n for n in self.targets if n != CT_CENTRE]
        default = self._selected_lesion() or (lesions[0] if lesions else CT_CENTRE)
        keep = current if current in lesions else default
        self.target_box.setCurrentIndex(max(self.target_box.findText(keep), 0))
        self.target_box.blockSignals(False)

    def _selected_lesion(self) -> Optional[str]:
        """The lesion selected in the Planning panel, if it is one of our targets."""
        dock = getattr(self.window, "panel_docks", {}).get("planning")
        lesion = getattr(dock.widget(), "lesion", None) if dock is not None else None
        try:
            les = lesion() if callable(lesion) else None
        except (AttributeError, IndexError, KeyError, TypeError):
            les = None
        name = les.get("name") if isinstance(les, dict) else None
        return name if name in self.targets else None

    def target(self) -> Tuple[str, Optional[np.ndarray], Optional[float]]:
        """(name, CT LPS point or None, radius mm or None) of the chosen error target."""
        name = self.target_box.currentText() or CT_CENTRE
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
        w = self.window
        if self.applied is not None and w.registration is self.applied:
            self.recompute()      # the window's landmark registration carries the error at this target
        elif w.registration is not None and w.registration.method != "landmarks":
            self._retarget_accepted(w.registration)
        self._show_quality()
        self.show_verdict()

    def _retarget_accepted(self, reg: RegistrationState) -> None:
        """An accepted/loaded result's summary follows the chosen target (its row of the same
        assessment; no new registration)."""
        name = self.target()[0]
        rows = (reg.raw or {}).get("targets") or []
        row = next((r for r in rows if isinstance(r, dict) and r.get("name") == name), None)
        if row is None:
            return
        reg.tre_mm = row.get("tre_registration_mm")
        reg.raw["tre_target"] = name
        self.window.session.registration = reg.to_dict()     # saved with the target shown
        self.window._data_changed()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        why = self.refine_blocker()
        self.refine_button.setEnabled(not why)
        self.refine_button.setToolTip("Refine automatically (Ctrl+R): match the CT to the ultrasound sweep, "
                                      "starting from the current registration" if not why
                                      else f"Refine automatically: {why}")
        self.cancel_button.setEnabled(running)
        has_candidate = self.candidate is not None and not running
        self.accept_button.setEnabled(has_candidate)
        self.reject_button.setEnabled(has_candidate)
        self.accept_button.setToolTip("use the automatic result for the overlay and the plan (Ctrl+Return)"
                                      if has_candidate else "Accept result: no automatic result waiting")
        self.reject_button.setToolTip("drop the automatic result; the registration stays as it is"
                                      if has_candidate else "Reject result: no automatic result waiting")
        can_undo = bool(self.previous) and not running
        self.undo_accept_button.setEnabled(can_undo)
        self.undo_accept_button.setToolTip("go back to the registration before the last Accept" if can_undo
                                           else "Undo accept: nothing accepted yet")
        self.undo_button.setEnabled(self.landmarks.can_undo)
        self.delete_button.setEnabled(bool(self.landmarks.pairs))
        pick_why = "" if self.window.ct is not None and self.window.sweep is not None else \
            "needs a CT and a tracked sweep (File > Open)"
        self.pick_button.setEnabled(not pick_why or self.pick_button.isChecked())
        self.pick_button.setToolTip(f"Pick landmarks: {pick_why}" if pick_why else
                                    "Pick landmark pairs (P): click a point in a CT view, then the same "
                                    "point in the ultrasound view")
        self._update_focus_button()
        update = getattr(self.window, "update_workflow", None)
        if callable(update):
            update()


def install(window) -> QDockWidget:
    """Create the Registration dock on ``window`` (a gui.window.main_window.MainWindow) and return it."""
    panel = RegistrationPanel(window)
    return add_left_dock(window, panel, "Registration", "dock_registration", raise_dock=True)
