"""Registration panel: paired landmarks (CT view click, then US view click) and LC2 refinement.

Frames: CT points are LPS mm (from the slice views); US points are picked as
frame pixels ``(col, row)`` (Image frame, pixel centres at integers) and
mapped to Reference mm through the current frame's ``image_to_reference``.
The landmark fit (:func:`registration.landmarks.register_landmarks`) gives
``reference_to_ct`` with residuals, leave-one-out errors, outliers, FRE and
a predicted TRE at the chosen target; it is applied to the window live once
>= 3 usable pairs exist. "Refine automatically" runs
:func:`registration.intensity_registration.register_sweep` (LC2) in a worker;
its result is only a *candidate* until the user accepts it, shown with its
verdict and numbers (never a bare "good").
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import QEvent, QPointF, Qt
from PyQt5.QtGui import QColor, QPainter, QPen
from PyQt5.QtWidgets import (QAbstractItemView, QComboBox, QDockWidget, QHBoxLayout, QHeaderView, QLabel,
                             QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from registration.errors import InputError
from registration.landmarks import LandmarkResult, register_landmarks
from registration.transforms import apply

from ..session import RegistrationState
from .convergence_plot import ConvergencePlot

COLUMNS = ("use", "name", "CT LPS (mm)", "Reference (mm)", "residual mm", "LOO mm", "outlier")
VERDICT_COLOURS = {"good": "#1b7f2a", "check": "#b36b00", "poor": "#c0221b"}
#: Lowest fiducial localisation error (RMS mm) assumed for clicked landmarks. Clicks snap to
#: display voxels and anatomical points (vessel bifurcations) are not exact, so an FRE of
#: nearly 0 must not turn into a predicted TRE of 0 mm.
FLE_FLOOR_MM = 1.0


@dataclass
class LandmarkPair:
    name: str
    ct: np.ndarray            # CT LPS mm
    reference: np.ndarray     # Reference mm
    frame: int                # sweep frame the US point was picked on
    pixel: Tuple[float, float]  # (col, row) in that frame
    included: bool = True


class LandmarkList:
    """Pairs with undo and the fit of the included ones (no Qt: testable alone)."""

    def __init__(self):
        self.pairs: List[LandmarkPair] = []
        self._undo: List[List[LandmarkPair]] = []
        self._count = 0
        self.result: Optional[LandmarkResult] = None
        self.message = "no landmark pairs yet"
        self.fle_floor_mm = FLE_FLOOR_MM
        self.fle_from_fre_mm: Optional[float] = None   # the FRE-based estimate before the floor

    def _push(self) -> None:
        self._undo.append(copy.deepcopy(self.pairs))

    def add(self, ct, reference, frame: int, pixel) -> LandmarkPair:
        self._push()
        self._count += 1
        p = LandmarkPair(f"L{self._count}", np.asarray(ct, float), np.asarray(reference, float), int(frame),
                         (float(pixel[0]), float(pixel[1])))
        self.pairs.append(p)
        return p

    def delete(self, index: int) -> None:
        self._push()
        del self.pairs[index]

    def set_included(self, index: int, on: bool) -> None:
        if self.pairs[index].included != bool(on):
            self._push()
            self.pairs[index].included = bool(on)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self.pairs = self._undo.pop()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def usable(self) -> List[int]:
        return [i for i, p in enumerate(self.pairs) if p.included]

    def fit(self) -> Optional[LandmarkResult]:
        """Fit the included pairs; sets ``result`` (None below 3 or when degenerate) and ``message``."""
        use = self.usable()
        self.result = None
        if len(use) < 3:
            self.message = (f"{len(use)} usable pair(s): a rigid registration needs at least 3 "
                            "(better 4-6, spread around the target)")
            return None
        args = ([self.pairs[i].ct for i in use], [self.pairs[i].reference for i in use])
        names = [self.pairs[i].name for i in use]
        try:
            self.result = register_landmarks(*args, names=names)
        except InputError as exc:   # collinear / coincident: say why, keep the pairs
            self.message = str(exc)
            return None
        self.fle_from_fre_mm = self.result.fle_mm
        if self.result.fle_mm < self.fle_floor_mm:
            self.result = register_landmarks(*args, names=names, fle_mm=self.fle_floor_mm)
        self.message = ""
        return self.result

    def to_json(self) -> List[dict]:
        return [{"name": p.name, "ct_lps": p.ct.tolist(), "reference": p.reference.tolist(), "frame": p.frame,
                 "pixel": list(p.pixel), "included": p.included} for p in self.pairs]

    @classmethod
    def from_json(cls, items, path=None) -> "LandmarkList":
        """Inverse of :meth:`to_json`; InputError naming the pair and field when unusable."""
        lm = cls()
        for n, d in enumerate(items or []):
            try:
                ct, ref = np.asarray(d["ct_lps"], float), np.asarray(d["reference"], float)
                pair = LandmarkPair(str(d["name"]), ct, ref, int(d["frame"]),
                                    (float(d["pixel"][0]), float(d["pixel"][1])), bool(d.get("included", True)))
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise InputError(f"landmark pair {n + 1} is unusable ({exc.__class__.__name__}: {exc})", path=path,
                                 fix="pick the landmarks again") from None
            if ct.shape != (3,) or ref.shape != (3,) or not (np.all(np.isfinite(ct)) and np.all(np.isfinite(ref))):
                raise InputError(f"landmark pair {n + 1}: points must be 3 finite numbers (mm)", path=path,
                                 fix="pick the landmarks again")
            lm.pairs.append(pair)
            digits = pair.name[1:]
            if pair.name.startswith("L") and digits.isdigit():
                lm._count = max(lm._count, int(digits))
        lm._count = max(lm._count, len(lm.pairs))
        return lm

    def residual(self, index: int) -> Optional[float]:
        """|T ref - ct| (mm) of any pair (excluded ones too: shows whether to take them back)."""
        if self.result is None:
            return None
        p = self.pairs[index]
        return float(np.linalg.norm(apply(self.result.reference_to_ct, p.reference) - p.ct))


class LandmarkOverlay(QWidget):
    """Transparent child of the US view marking the US points picked on the frame being shown.
    (The CT points are drawn by the slice views themselves: SliceView.set_markers.)"""

    def __init__(self, view, panel):
        super().__init__(view)
        self.setObjectName("landmark_overlay_us")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.view, self.panel = view, panel
        self.setGeometry(view.rect())
        view.installEventFilter(self)
        self.show()

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() == QEvent.Resize:
            self.setGeometry(obj.rect())
        return False

    def marks(self) -> List[Tuple[str, QPointF, bool]]:
        """(label, widget point, included) of what this view shows now."""
        v, out = self.view, []
        sw = self.panel.window.sweep
        if sw is None or v.frame_index < 0:
            return out
        for p in self.panel.landmarks.pairs:
            if p.frame == v.frame_index:
                out.append((p.name, v.pixel_to_widget(*p.pixel), p.included))
        return out

    def paintEvent(self, event):  # noqa: N802
        marks = self.marks()
        if not marks:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        for name, pt, inc in marks:
            colour = QColor(255, 230, 0) if name == "?" else (QColor(0, 255, 120) if inc else QColor(150, 150, 150))
            p.setPen(QPen(colour, 1.5))
            p.drawLine(pt + QPointF(-7, 0), pt + QPointF(-2, 0))
            p.drawLine(pt + QPointF(2, 0), pt + QPointF(7, 0))
            p.drawLine(pt + QPointF(0, -7), pt + QPointF(0, -2))
            p.drawLine(pt + QPointF(0, 2), pt + QPointF(0, 7))
            p.drawText(pt + QPointF(6, -6), name)
        p.end()


class RegistrationPanel(QWidget):
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
        self.candidate_targets: Dict[str, dict] = {}
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
        self.refresh_targets()
        self._refresh_table()

    # ------------------------------------------------------------ layout
    def _build(self) -> None:
        self.pick_button = QPushButton("Pick landmarks")
        self.pick_button.setObjectName("pick_landmarks")
        self.pick_button.setCheckable(True)
        self.pick_button.setToolTip("click a point in a CT view, then the same point in the US view")
        self.pick_button.toggled.connect(self._pick_toggled)
        self.instructions = QLabel("Landmarks: press 'Pick landmarks'.")
        self.instructions.setObjectName("landmark_instructions")
        self.instructions.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("landmark_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.itemChanged.connect(self._item_changed)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("delete_landmark")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("undo_landmark")
        self.undo_button.clicked.connect(self.undo)
        self.target_box = QComboBox()
        self.target_box.setObjectName("tre_target")
        self.target_box.currentIndexChanged.connect(lambda _: self._target_changed())
        self.quality = QLabel()
        self.quality.setObjectName("landmark_quality")
        self.quality.setWordWrap(True)
        self.refine_button = QPushButton("Refine automatically (LC2)")
        self.refine_button.setObjectName("refine_button")
        self.refine_button.clicked.connect(self.refine)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("refine_cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_refine)
        self.progress = QProgressBar()
        self.progress.setObjectName("refine_progress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("refine_progress_text")
        self.plot = ConvergencePlot()
        self.verdict = QLabel("No automatic refinement yet.")
        self.verdict.setObjectName("refine_verdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.RichText)
        self.accept_button = QPushButton("Accept")
        self.accept_button.setObjectName("refine_accept")
        self.accept_button.clicked.connect(self.accept)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setObjectName("refine_revert")
        self.revert_button.clicked.connect(self.revert)

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

    def _update_overlays(self) -> None:
        """Landmark crosses: CT points on the slice views (their own markers), US points here."""
        marks = [(p.ct, p.name if p.included else f"{p.name} (excluded)") for p in self.landmarks.pairs]
        if self.pending_ct is not None:
            marks.append((self.pending_ct, "? (now click it on the US)"))
        for view in self.window.views.values():
            view.set_markers(marks)
        self.us_overlay.update()

    # ------------------------------------------------------------ targets (TRE at ...)
    def refresh_targets(self) -> None:
        """Lesions of the loaded labels (as the US view found them) + the CT centre."""
        current = self.target_box.currentText()
        self.target_box.blockSignals(True)
        self.target_box.clear()
        self.target_box.addItem("CT centre", None)
        for les in self.window.us_view.engine.lesions:
            self.target_box.addItem(les.name, les)
        i = self.target_box.findText(current)
        self.target_box.setCurrentIndex(max(i, 0))
        self.target_box.blockSignals(False)

    def target(self) -> Tuple[str, Optional[np.ndarray], Optional[float]]:
        """(name, CT LPS point or None, radius mm or None) of the chosen TRE target."""
        les = self.target_box.currentData()
        if les is not None:
            return les.name, np.asarray(les.centroid_lps, float), float(les.radius_mm)
        if self.window.display is not None:
            return "CT centre", self.window.display.center_lps(), None
        return "CT centre", None, None

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
            self._show_verdict(self.candidate.uncertainty or {})

    # ------------------------------------------------------------ picking
    def _pick_toggled(self, on: bool) -> None:
        self.pending_ct = None
        self.instructions.setText("Click a landmark in a CT view (axial, coronal or sagittal)." if on
                                  else "Landmarks: press 'Pick landmarks'.")

    def on_ct_click(self, view_name: str, lps) -> None:
        if not self.pick_button.isChecked():
            return
        self.pending_ct = np.asarray(lps, float)
        x, y, z = self.pending_ct
        self.instructions.setText(f"CT point ({x:.1f}, {y:.1f}, {z:.1f}) mm LPS picked in the {view_name} view; "
                                  "now click the same point in the US view.")
        self._update_overlays()

    def invalid_reason(self, index: int) -> str:
        sw = self.window.sweep
        bad = [name for name, st in sw.statuses.items() if index < len(st) and not st[index]]
        return (f"frame {index + 1}: tracking INVALID"
                + (f" ({', '.join(bad)} status INVALID)" if bad else " (no valid Image->Reference chain)"))

    def on_us_pixel(self, col: float, row: float) -> None:
        """A left click on the US frame at pixel (col, row) (Image frame, pixel centres at integers)."""
        if not self.pick_button.isChecked():
            return
        w = self.window
        if self.pending_ct is None:
            self.instructions.setText("Click the landmark in a CT view first, then in the US view.")
            return
        if w.sweep is None:
            self.instructions.setText("No sweep loaded: File > Open sweep.")
            return
        index = int(w.us_view.frame_index)
        i2r = w.sweep.image_to_reference(index)
        if i2r is None:
            self.instructions.setText(f"Refused: {self.invalid_reason(index)}. Step to a frame with "
                                      "tracking OK and click the point again.")
            return
        px = (float(col), float(row))
        ref = apply(i2r, np.array([px[0], px[1], 0.0]))
        pair = self.landmarks.add(self.pending_ct, ref, index, px)
        self.pending_ct = None
        self.instructions.setText(f"{pair.name} added (frame {index + 1}, pixel {px[0]:.0f}, {px[1]:.0f}). "
                                  "Next: click another landmark in a CT view.")
        self.recompute()

    # ------------------------------------------------------------ table edits
    def _item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() == 0 and item.row() < len(self.landmarks.pairs):
            self.set_included(item.row(), item.checkState() == Qt.Checked)

    def set_included(self, index: int, on: bool) -> None:
        self.landmarks.set_included(index, on)
        self.recompute()

    def delete_selected(self) -> None:
        rows = sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True)
        if not rows:
            self.instructions.setText("Select a landmark row to delete.")
            return
        for r in rows:
            self.landmarks.delete(r)
        self.recompute()

    def undo(self) -> None:
        if self.landmarks.undo():
            self.recompute()

    def restore_landmarks(self, pairs) -> None:
        """Pairs saved in a session (``session.notes["landmarks"]["pairs"]``): shown and fitted, but
        the window keeps the session's own registration until the user edits them."""
        self.landmarks = LandmarkList.from_json(pairs)
        self.recompute(apply_to_window=False)

    # ------------------------------------------------------------ landmark fit
    def recompute(self, apply_to_window: bool = True) -> None:
        """Refit the included pairs, refresh the table and (by default) apply the fit to the window."""
        self.refresh_targets()
        res = self.landmarks.fit()
        w = self.window
        if apply_to_window:
            self._apply_fit(res)
        self._refresh_table()
        self._show_quality()
        self._update_buttons()
        self._update_overlays()

    def _apply_fit(self, res: Optional[LandmarkResult]) -> None:
        w = self.window
        if res is None:
            if self.applied is not None and w.registration is self.applied:
                # The table no longer supports a registration: go back to what was there before.
                w.set_registration(self.baseline)
            self.applied = None
            return
        if self.applied is None or w.registration is not self.applied:
            self.baseline = w.registration
        name, point, _ = self.target()
        tre = None if point is None else float(res.predicted_tre(point))
        self.applied = RegistrationState(res.reference_to_ct, "landmarks", tre_mm=tre, fre_mm=res.fre_mm,
                                         raw={"landmarks": res.to_dict(), "tre_target": name})
        w.set_registration(self.applied)

    def _refresh_table(self) -> None:
        lm = self.landmarks
        res = lm.result
        use = lm.usable()
        pos_in_fit = {i: k for k, i in enumerate(use)}
        self.table.blockSignals(True)
        self.table.setRowCount(len(lm.pairs))
        for r, p in enumerate(lm.pairs):
            # Items are updated in place: this runs inside the table's own itemChanged signal.
            chk = self._cell(r, 0)
            chk.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled | Qt.ItemIsSelectable)
            chk.setCheckState(Qt.Checked if p.included else Qt.Unchecked)
            resid = lm.residual(r)
            loo, outlier = "", ""
            if res is not None and r in pos_in_fit:
                v = res.loo_errors_mm[pos_in_fit[r]]
                loo = "n/a" if np.isnan(v) else f"{v:.2f}"
                outlier = "OUTLIER" if res.outliers[pos_in_fit[r]] else "no"
            elif not p.included:
                outlier = "excluded"
            cells = [p.name, " ".join(f"{v:.1f}" for v in p.ct), " ".join(f"{v:.1f}" for v in p.reference),
                     "" if resid is None else f"{resid:.2f}", loo, outlier]
            for c, text in enumerate(cells, start=1):
                it = self._cell(r, c)
                it.setText(text)
                it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                colour = QColor(200, 30, 20) if text == "OUTLIER" else (
                    QColor(140, 140, 140) if not p.included else QColor(0, 0, 0))
                it.setForeground(colour)
        self.table.blockSignals(False)

    def _cell(self, r: int, c: int) -> QTableWidgetItem:
        it = self.table.item(r, c)
        if it is None:
            it = QTableWidgetItem()
            self.table.setItem(r, c, it)
        return it

    def _show_quality(self) -> None:
        res = self.landmarks.result
        name, point, radius = self.target()
        if res is None:
            self.quality.setText(f"<b>Landmarks:</b> {self.landmarks.message}")
            return
        tre = float(res.predicted_tre(point)) if point is not None else float("nan")
        n_out = int(res.outliers.sum())
        fle = (f"FLE {res.fle_mm:.1f} mm (estimated from FRE)" if res.fle_estimated else
               f"FLE {res.fle_mm:.1f} mm (floor for clicked points; FRE gives {self.landmarks.fle_from_fre_mm:.1f})")
        text = (f"<b>FRE {res.fre_mm:.2f} mm</b> (N = {res.n}), {fle}; "
                f"<b>predicted TRE {tre:.1f} mm</b> at {name}")
        if n_out:
            text += f"; <span style='color:#c0221b'>{n_out} outlier(s): check or exclude</span>"
        if res.n == 3:
            text += "; with 3 pairs the FRE says little about the error: add more"
        self.quality.setText(text)

    # ------------------------------------------------------------ automatic refinement
    def refine(self) -> None:
        w = self.window
        missing = [what for what, ok in (("a CT", w.ct is not None), ("a sweep", w.sweep is not None),
                                         ("a starting registration (>= 3 landmarks or a loaded one)",
                                          w.registration is not None)) if not ok]
        if missing:
            self.progress_text.setText("Refinement needs " + ", ".join(missing) + ".")
            return
        if self.worker is not None:
            return
        ct, sweep, init = w.ct, w.sweep, w.registration.reference_to_ct.copy()
        self.candidate_targets = self._targets()
        targets, options = dict(self.candidate_targets), dict(self.refine_options)

        def work(progress):
            from registration.intensity_registration import register_sweep
            return register_sweep(ct, sweep, init, method="lc2", progress=progress, targets=targets, **options)

        self.candidate = None
        self.plot.set_history([], message="running...")
        self.verdict.setText("Refinement running...")
        self.progress.setValue(0)
        self.worker = w.run_worker("Refine registration (LC2)", work, self._refine_done)
        self.worker.progress.connect(self._on_progress)
        self.worker.failed.connect(self._refine_failed)
        self.worker.finished.connect(self._worker_finished)
        self._update_buttons()

    def _targets(self) -> Dict[str, dict]:
        """Every lesion and the CT centre (as ``ctus register --labels`` does): the engine's
        verdict covers all of them, and changing the TRE target afterwards only picks a row."""
        out = {}
        if self.window.display is not None:
            out["CT centre"] = {"point": [float(v) for v in self.window.display.center_lps()], "radius_mm": None}
        for les in self.window.us_view.engine.lesions:
            out[les.name] = {"point": [float(v) for v in les.centroid_lps], "radius_mm": float(les.radius_mm)}
        return out

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(100 * fraction)))
        self.progress_text.setText(message)

    def cancel_refine(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_text.setText("cancelling...")

    def _refine_failed(self, exc, tb) -> None:
        from registration.errors import CancelledError
        if isinstance(exc, CancelledError):
            self.verdict.setText("Refinement cancelled; the registration is unchanged.")
        else:
            self.verdict.setText(f"Refinement failed: {exc}")
        self.plot.set_history([], message="no result")

    def _worker_finished(self) -> None:
        self.worker = None
        self._update_buttons()

    def _refine_done(self, result) -> None:
        self.candidate = result
        self.plot.set_history(result.history, result.method.upper(),
                              f"finest level {result.metric_initial:.3f} -> {result.metric_final:.3f}")
        self.progress.setValue(100)
        self.progress_text.setText(f"{result.iterations} evaluations in {result.wall_time_s:.1f} s")
        self._show_verdict(result.uncertainty or {})
        self._update_buttons()

    def target_row(self, u: dict) -> dict:
        """The engine's uncertainty row for the chosen TRE target ({} if it was not assessed)."""
        name = self.target()[0]
        return next((r for r in u.get("targets") or [] if r.get("name") == name), {})

    def _show_verdict(self, u: dict) -> None:
        verdict = u.get("verdict", "poor")
        t = self.target_row(u)
        n = len(u.get("targets") or [])

        def mm(v):
            return "unknown" if v is None else f"{v:.1f} mm"
        hp = t.get("hit_probability")
        numbers = (f"registration TRE est. {mm(t.get('tre_registration_mm'))} "
                   f"(95 %: {mm(t.get('tre_registration_95_mm'))}), total error {mm(t.get('tre_total_mm'))}")
        if hp is not None:
            numbers += f", hit probability {100 * hp:.0f} % (lesion radius {t['radius_mm']:.1f} mm)"
        colour = VERDICT_COLOURS.get(verdict, "#c0221b")
        reasons = "; ".join(u.get("reasons", []))
        if not t:
            numbers = f"{self.target()[0]} was not assessed (it was not loaded when the refinement ran)"
        own = t.get("verdict")
        if own and own != verdict:
            numbers += (f"; this target's own verdict: <b style='color:{VERDICT_COLOURS.get(own, '#c0221b')}'>"
                        f"{own.upper()}</b> ({'; '.join(t.get('why') or [])})")
        self.verdict.setText(f"<b style='color:{colour}'>Verdict: {verdict.upper()}</b> ({n} target(s) assessed); "
                             f"at {t.get('name', self.target()[0])}: {numbers}.<br><small>{reasons}</small>")

    def accept(self) -> None:
        if self.candidate is None:
            return
        r = self.candidate
        u = r.uncertainty or {}
        rows = u.get("targets") or []
        tre = self.target_row(u).get("tre_registration_mm")
        raw = r.to_dict()
        raw.update({"targets": rows, "verdict": u.get("verdict"), "tre_target": self.target()[0]})
        if self.landmarks.result is not None:
            raw["landmarks"] = self.landmarks.result.to_dict()
        self.previous.append(self.window.registration)
        self.window.set_registration(RegistrationState(r.reference_to_ct, "lc2", tre_mm=tre, raw=raw))
        self.candidate = None
        self.verdict.setText(self.verdict.text().replace("Verdict:", "Accepted, verdict:", 1))
        self._update_buttons()

    def revert(self) -> None:
        """Drop a pending candidate, else go back to the registration before the last Accept."""
        if self.candidate is not None:
            self.candidate = None
            self.verdict.setText("Refinement discarded; the registration is unchanged.")
        elif self.previous:
            self.window.set_registration(self.previous.pop())
            self.verdict.setText("Reverted to the registration before the last Accept.")
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.worker is not None
        self.refine_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.accept_button.setEnabled(self.candidate is not None and not running)
        self.revert_button.setEnabled((self.candidate is not None or bool(self.previous)) and not running)
        self.undo_button.setEnabled(self.landmarks.can_undo)
        self.delete_button.setEnabled(bool(self.landmarks.pairs))


def install(window) -> QDockWidget:
    """Create the Registration dock on ``window`` (a gui.main_window.MainWindow) and return it."""
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
