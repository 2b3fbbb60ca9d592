"""Choose one series of an MR DICOM study (issue 18): its sequences and phases listed in words.

An MR study holds several sequences and contrast phases (T1 pre-contrast,
arterial, portal venous, hepatobiliary, T2, diffusion ...). The listing is the
engine's (:func:`registration.io.mr_series.list_mr_series`: sequence name, TR/TE,
weighting and contrast phase with the reason for each guess); this dialog only
shows it and returns the chosen series UID. A series that does not load as one
3D volume (diffusion, dynamic, multi-echo) is listed greyed out with the reason
and cannot be chosen; the hepatobiliary phase, when there is one, is preselected
(for liver metastases it is usually the one to register and to find lesions on).
"""
from __future__ import annotations

from typing import List, Optional

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

COLUMNS = ("description", "sequence", "TR / TE ms", "weighting", "contrast phase", "size", "note")


def _ms(v) -> str:
    return "-" if v is None else f"{v:g}"


def series_row(info) -> List[str]:
    """The table cells of one :class:`~registration.io.mr_series.MRSeriesInfo`."""
    s = info.series
    n = info.n_positions or s.size[2]
    return [s.series_description or s.series_uid, info.sequence_name or "-",
            f"{_ms(info.repetition_time_ms)} / {_ms(info.echo_time_ms)}", info.weighting, info.mr_phase,
            f"{s.size[0]}x{s.size[1]}x{n}", info.unusable or (s.modality if s.modality not in ("MR", "") else "")]


class MRSeriesDialog(QDialog):
    """The series of one study; :meth:`chosen_uid` after ``accepted``."""

    def __init__(self, series, folder: str, parent=None):
        super().__init__(parent)
        self.setObjectName("mr_series_dialog")
        self.setWindowTitle("Choose the MR series")
        self.series = list(series)
        text = QLabel(f"{folder} holds {len(self.series)} series. Choose the one to open (for liver "
                      "metastases usually the T1 hepatobiliary phase).")
        text.setWordWrap(True)
        self.table = QTableWidget(len(self.series), len(COLUMNS))
        self.table.setObjectName("mr_series_table")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        for row, info in enumerate(self.series):
            tip = "; ".join(x for x in (info.weighting_reason, info.mr_phase_reason, info.series_uid) if x)
            for col, cell in enumerate(series_row(info)):
                item = QTableWidgetItem(cell)
                item.setToolTip(tip)
                if info.unusable:
                    item.setFlags(item.flags() & ~Qt.ItemIsSelectable & ~Qt.ItemIsEnabled)
                self.table.setItem(row, col, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Open | QDialogButtonBox.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.table.itemSelectionChanged.connect(self._update)
        self.table.cellDoubleClicked.connect(lambda r, c: self.accept() if self.chosen_uid() else None)
        lay = QVBoxLayout(self)
        lay.addWidget(text)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.buttons)
        self.resize(820, 120 + 30 * len(self.series))
        best = self._default_row()
        if best is not None:
            self.table.selectRow(best)
        self._update()

    def _default_row(self) -> Optional[int]:
        usable = [r for r, s in enumerate(self.series) if not s.unusable]
        hbp = [r for r in usable if self.series[r].mr_phase == "hepatobiliary"]
        return (hbp or usable or [None])[0]

    def select_uid(self, uid: str) -> None:
        """Select the row of series ``uid`` (ValueError if it is not listed or not loadable)."""
        row = next((r for r, s in enumerate(self.series) if s.series_uid == uid), None)
        if row is None or self.series[row].unusable:
            raise ValueError(f"series {uid} is not a loadable series of this study")
        self.table.selectRow(row)

    def chosen_uid(self) -> Optional[str]:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        info = self.series[rows[0].row()]
        return None if info.unusable else info.series_uid

    def _update(self) -> None:
        self.buttons.button(QDialogButtonBox.Open).setEnabled(self.chosen_uid() is not None)
