"""The landmark part of the registration panel: picking pairs, the pair table and its edits, the live fit.

Frames: CT points are LPS mm (from the slice views); US points are picked as
frame pixels ``(col, row)`` (Image frame, pixel centres at integers) and
mapped to Reference mm through the current frame's ``image_to_reference``.
The fit of the included pairs (:class:`.landmark_list.LandmarkList`) is
applied to the window live once >= 3 usable pairs exist, as a
``RegistrationState`` carrying the predicted TRE at the chosen target.

Pick mode turns itself off after the pair that completes the set (``pairs_wanted``
usable pairs), or after every pair when "one pair at a time" is ticked, and says so
in the status bar: a click meant for navigation after the last pair must not add a
pair. The table is compact (pair, frame, residual, leave-one-out error, outlier;
coordinates in each row's tooltip) so six pairs and every column fit a 1366x768 screen.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
)

from gui.core.session import RegistrationState
from gui.core.verdict_text import landmark_line
from registration.align.landmarks import LandmarkResult
from registration.spatial.transforms import apply

from .landmark_list import LandmarkList

COLUMNS = ("use", "pair", "frame", "res. mm", "LOO mm", "outlier")
#: Cell text of the outlier column: flagged, not flagged, excluded from the fit (greyed row).
OUTLIER_TEXT = {True: "yes", False: "no", None: "\u2013"}
COLUMN_TIPS = (
    "tick to use the pair in the fit (untick to exclude it without deleting it)",
    "pair name (CT point, then the same point on the ultrasound)",
    "sweep frame the ultrasound point was picked on (1-based)",
    "residual: distance (mm) between the pair's CT point and its ultrasound point after the fit",
    "leave-one-out error (mm): how far the pair lands when the fit is made without it; "
    "large = this pair disagrees with the others",
    "yes (red): the leave-one-out error is far above the others: check or exclude the pair; "
    "\u2013: excluded from the fit",
)
#: Rows the table shows without scrolling (a full set of pairs).
VISIBLE_PAIRS = 6
#: Usable pairs after which picking stops by itself (the set; the user may change it).
DEFAULT_PAIRS_WANTED = 6


class LandmarkEditorMixin:
    """Landmark methods of :class:`.registration_panel.RegistrationPanel` (a mixin: it uses the
    panel's ``window``, ``landmarks``, ``pending_ct``, ``baseline``, ``applied``, ``us_overlay``,
    ``target()``, ``refresh_targets()``, ``has_automatic_result()`` and ``_update_buttons()``)."""

    def _build_landmarks(self) -> None:
        """Pick / Delete / Undo, when picking stops, the instructions and the pair table."""
        self.pick_button = QPushButton("Pick landmarks")
        self.pick_button.setObjectName("pick_landmarks")
        self.pick_button.setCheckable(True)
        self.pick_button.toggled.connect(self._pick_toggled)
        self.pairs_wanted = QSpinBox()
        self.pairs_wanted.setObjectName("pairs_wanted")
        self.pairs_wanted.setRange(3, 30)
        self.pairs_wanted.setValue(DEFAULT_PAIRS_WANTED)
        self.pairs_wanted.setSuffix(" pairs")
        self.pairs_wanted.setToolTip("picking stops by itself once this many usable pairs exist")
        self.one_at_a_time = QCheckBox("one pair at a time")
        self.one_at_a_time.setObjectName("one_pair_at_a_time")
        self.one_at_a_time.setToolTip("stop picking after every pair (press P for the next one)")
        self.instructions = QLabel("Landmarks: press 'Pick landmarks' (P).")
        self.instructions.setObjectName("landmark_instructions")
        self.instructions.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("landmark_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)   # every header and cell readable
        header.setStretchLastSection(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.table.itemChanged.connect(self._item_changed)
        self.delete_button = QPushButton("Delete")
        self.delete_button.setObjectName("delete_landmark")
        self.delete_button.setToolTip("delete the selected pair(s)")
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("undo_landmark")
        self.undo_button.setToolTip("undo the last landmark edit (add, delete, include/exclude)")
        self.undo_button.clicked.connect(self.undo)

    def table_height_for(self, rows: int) -> int:
        """Pixel height showing the header and ``rows`` rows without a scroll bar."""
        t = self.table
        return (t.horizontalHeader().sizeHint().height() + rows * t.verticalHeader().defaultSectionSize()
                + 2 * t.frameWidth() + 2)

    def _update_overlays(self) -> None:
        """Landmark crosses: CT points on the slice views (their own markers), US points here."""
        marks = [(p.ct, p.name if p.included else f"{p.name} (excluded)") for p in self.landmarks.pairs]
        if self.pending_ct is not None:
            marks.append((self.pending_ct, "? (now click it on the US)"))
        for view in self.window.views.values():
            view.set_markers(marks)
        self.us_overlay.update()

    # ------------------------------------------------------------ picking
    def _pick_toggled(self, on: bool) -> None:
        self.pending_ct = None
        self.instructions.setText("Click a landmark in a CT view (axial, coronal or sagittal)." if on
                                  else "Landmarks: press 'Pick landmarks' (P).")
        self._update_overlays()

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
        self._stop_picking_if_done(pair.name)

    def _stop_picking_if_done(self, added: str) -> None:
        """Turn pick mode off after the pair completing the set (or after each pair when chosen),
        with the reason in the instructions and the status bar."""
        usable = len(self.landmarks.usable())
        wanted = self.pairs_wanted.value()
        if self.one_at_a_time.isChecked():
            why = f"{added} added; picking stops after each pair (as chosen). Press P for the next pair."
            short = f"{added} added, one pair at a time (P picks the next)"
        elif usable >= wanted:
            why = (f"{usable} usable landmark pairs: the set of {wanted} is complete, picking stopped. "
                   "Press P to add more, or refine automatically (Ctrl+R).")
            short = f"the set of {wanted} landmark pairs is complete (P picks more)"
        else:
            return
        self.pick_button.setChecked(False)      # _pick_toggled resets the instructions: say why after it
        self.instructions.setText(why)
        self.window.statusBar().showMessage(f"Pick mode off: {short}", 15000)

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
            flagged = False
            if res is not None and r in pos_in_fit:
                v = res.loo_errors_mm[pos_in_fit[r]]
                loo = "n/a" if np.isnan(v) else f"{v:.1f}"
                flagged = bool(res.outliers[pos_in_fit[r]])
                outlier = OUTLIER_TEXT[flagged]
            elif not p.included:
                outlier = OUTLIER_TEXT[None]
            cells = [p.name, str(p.frame + 1), "" if resid is None else f"{resid:.1f}", loo, outlier]
            tip = ("OUTLIER: check or exclude. " if flagged else "excluded from the fit. " if not p.included else "") \
                + (f"{p.name}: CT ({', '.join(f'{v:.1f}' for v in p.ct)}) mm LPS; ultrasound frame {p.frame + 1}, "
                   f"pixel ({p.pixel[0]:.0f}, {p.pixel[1]:.0f}) = Reference ({', '.join(f'{v:.1f}' for v in p.reference)}) mm")
            chk.setToolTip(tip)
            for c, text in enumerate(cells, start=1):
                it = self._cell(r, c)
                it.setText(text)
                it.setToolTip(tip)
                it.setTextAlignment(Qt.AlignCenter)
                it.setFlags(Qt.ItemIsEnabled | Qt.ItemIsSelectable)
                colour = QColor(200, 30, 20) if (flagged and c == 5) else (
                    QColor(140, 140, 140) if not p.included else QColor(0, 0, 0))
                it.setForeground(colour)
                font = it.font()
                font.setBold(flagged and c == 5)
                it.setFont(font)
        self.table.blockSignals(False)

    def _cell(self, r: int, c: int) -> QTableWidgetItem:
        it = self.table.item(r, c)
        if it is None:
            it = QTableWidgetItem()
            self.table.setItem(r, c, it)
        return it

    def _show_quality(self) -> None:
        """The landmark fit in plain words; its error estimate only until an automatic result
        exists (then the automatic verdict is the one figure per target)."""
        res = self.landmarks.result
        name, point, _ = self.target()
        if res is None:
            self.quality.setText(f"Landmarks: {self.landmarks.message}")
            self.quality.setToolTip("")
            return
        n_out = int(res.outliers.sum())
        if self.has_automatic_result():
            text = (f"Landmarks ({res.n} pairs, mismatch {res.fre_mm:.1f} mm): used as the start of the "
                    "automatic result below.")
        elif point is None:
            text = f"Landmark fit ({res.n} pairs, mismatch {res.fre_mm:.1f} mm)."
        else:
            text = landmark_line(name, float(res.predicted_tre(point)), res.n) + f"; mismatch {res.fre_mm:.1f} mm."
        if n_out:
            text += f" <span style='color:#c0221b'>{n_out} outlier(s): check or exclude.</span>"
        if res.n == 3:
            text += " With 3 pairs the mismatch says little about the error: add more."
        self.quality.setText(text)
        fle = (f"FLE {res.fle_mm:.1f} mm (estimated from FRE)" if res.fle_estimated else
               f"FLE {res.fle_mm:.1f} mm (floor for clicked points; FRE gives {self.landmarks.fle_from_fre_mm:.1f})")
        tre = "" if point is None else f"; predicted TRE {float(res.predicted_tre(point)):.1f} mm RMS at {name}"
        self.quality.setToolTip(f"mismatch = FRE {res.fre_mm:.2f} mm (N = {res.n}); {fle}{tre}. "
                                "The overlay figure is the 95 % radius of the predicted TRE.")
