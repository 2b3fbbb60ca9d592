"""File > Open from PACS: find studies, pick a CT series, retrieve it and open it in the window.

The dialog gathers inputs and calls the engine (:mod:`registration.pacs`) in
a worker (:class:`~gui.panels.pacs_common.PacsTaskDialog`):

* **Find**: :func:`registration.pacs.query.find_studies` with the patient ID,
  accession number and modality filters (DICOM wildcards ``*`` and ``?``).
  Studies are listed newest first, each with its series: number and
  modality, date and time, description, slice count (as the PACS announced
  it, or counted at image level) and the contrast-phase hint
  (:func:`registration.io.contrast_phase.listed_phase_hints`, the folder
  rules applied to what a listing has), so both phases of a two-phase study
  can be told apart. A study listed under two patient IDs and series that
  are not CT are shown greyed out with the reason.
* **Retrieve and open**: :func:`registration.pacs.retrieve.retrieve_series`
  (C-GET, or C-MOVE when the server has a C-MOVE port) into
  ``<retrieve folder>/<Series Instance UID>`` (a previous copy there is
  replaced only once the new one is complete). The engine receives into a
  temporary folder and moves it in place at the end, so Cancel or an error
  leaves no folder. Then the window opens the folder exactly as File > Open
  CT folder does (:meth:`gui.window.file_actions.FileActionsMixin.open_ct`)
  and the dialog closes.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QBrush, QColor
from PyQt5.QtWidgets import (
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
)

from registration.io.contrast_phase import listed_phase_hints

from .pacs_common import PacsTaskDialog, ServerBox, settings

COLUMNS = ("Patient / series", "Date", "Description", "Slices", "Phase hint", "Accession")
MODALITIES = ("CT", "any", "MR", "PT", "US")
GREY = QColor("#8a8a8a")


def default_retrieve_folder() -> str:
    return str(settings().value("pacs/retrieve_folder", str(Path.home() / "ctus_pacs")))


def _when(date: str, time: str) -> str:
    """DICOM DA + TM -> 'YYYY-MM-DD HH:MM:SS' (what is there of it)."""
    d = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) >= 8 else date
    t = time.split(".")[0]
    t = ":".join(t[i:i + 2] for i in range(0, len(t), 2))
    return f"{d} {t}".strip()


class PacsDialog(PacsTaskDialog):
    """Find, pick, retrieve; ``retrieved`` holds the engine's RetrieveResult once done."""

    def __init__(self, window, parent=None):
        super().__init__(window, parent)
        self.setObjectName("pacs_dialog")
        self.setWindowTitle("Open from PACS")
        self.studies: list = []
        self.retrieved = None
        self.server_box = ServerBox(self)
        self.patient = QLineEdit()
        self.patient.setObjectName("pacs_patient")
        self.patient.setPlaceholderText("patient ID (* and ? allowed)")
        self.accession = QLineEdit()
        self.accession.setObjectName("pacs_accession")
        self.accession.setPlaceholderText("accession number")
        self.modality = QComboBox()
        self.modality.setObjectName("pacs_modality")
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.find_button = QPushButton("Find")
        self.find_button.setObjectName("pacs_find")
        self.find_button.setDefault(True)
        self.tree = QTreeWidget()
        self.tree.setObjectName("pacs_results")
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(True)
        head = self.tree.header()
        head.setSectionResizeMode(QHeaderView.ResizeToContents)
        head.setSectionResizeMode(2, QHeaderView.Stretch)
        head.setStretchLastSection(False)
        self.folder = QLineEdit(default_retrieve_folder())
        self.folder.setObjectName("pacs_retrieve_folder")
        self.folder.setToolTip("each series is retrieved into a folder named by its Series Instance UID here")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.buttons = QDialogButtonBox(self)
        self.retrieve_button = self.buttons.addButton("Retrieve and open", QDialogButtonBox.AcceptRole)
        self.retrieve_button.setObjectName("pacs_retrieve")
        self.retrieve_button.setEnabled(False)
        self.retrieve_button.setToolTip("pick a CT series in the list first")
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.RejectRole)
        self.find_button.clicked.connect(self.find)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        self.tree.itemDoubleClicked.connect(lambda item, _c: self.retrieve() if self._series_of(item) else None)
        self.set_status("Find studies on the PACS, pick a CT series, then Retrieve and open.")

        lay = QVBoxLayout(self)
        lay.addWidget(self.server_box)
        row = QHBoxLayout()
        for text, w in (("Patient ID", self.patient), ("Accession", self.accession), ("Modality", self.modality)):
            row.addWidget(QLabel(text))
            row.addWidget(w, 1 if w is not self.modality else 0)
        row.addWidget(self.find_button)
        lay.addLayout(row)
        lay.addWidget(self.tree, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Retrieve into"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        lay.addLayout(row)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.resize(980, 600)

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Retrieve series into folder", self.folder.text())
        if path:
            self.folder.setText(path)

    # ------------------------------------------------------------ find
    def find(self) -> None:
        if self.worker is not None:
            return
        try:
            pacs = self.server_box.server().pacs()
        except ValueError as exc:          # InputError: a field is not valid
            self._failed("Find", exc, "")
            return
        modality = self.modality.currentText().strip().upper()
        keys = dict(patient_id=self.patient.text().strip() or None,
                    accession=self.accession.text().strip() or None,
                    modality=None if modality in ("", "ANY", "*") else modality)
        from registration.pacs.query import find_studies
        self.server_box.remember()
        self.tree.clear()
        self.studies = []
        self.run_task("Find", lambda progress: find_studies(pacs, progress=progress, **keys),
                      lambda studies: self._found(str(pacs), studies))

    def _found(self, server: str, studies: list) -> None:
        self.studies = list(studies)
        n_series = sum(len(st.series) for st in studies)
        for st in studies:
            self.tree.addTopLevelItem(self._study_item(st))
        self.tree.expandAll()
        self.set_status(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'} with {n_series} series on "
                        f"{server}: pick a CT series." if studies else f"No study on {server} matches.")
        self.window.reporter.info(f"PACS {server}: {len(studies)} studies, {n_series} series found")

    def _study_item(self, st) -> QTreeWidgetItem:
        who = "/".join(st.patient_ids) + (f" ({st.patient_name})" if st.patient_name else "")
        item = QTreeWidgetItem([who, _when(st.date, st.time), st.description or "(no study description)",
                                f"{len(st.series)} series", "", st.accession])
        item.setToolTip(0, f"Study Instance UID {st.study_uid}")
        item.setFlags(Qt.ItemIsEnabled)
        broken = "; ".join(st.warnings)
        hints = listed_phase_hints([(se.description, se.date, se.time) for se in st.series])
        for se, (hint, reason) in zip(st.series, hints):
            number = "-" if se.series_number is None else str(se.series_number)
            n = "?" if se.n_instances is None else str(se.n_instances)
            child = QTreeWidgetItem([f"series {number}  {se.modality}", _when(se.date, se.time),
                                     se.description or "(no description)", n, hint, ""])
            child.setData(0, Qt.UserRole, se)
            child.setToolTip(0, f"Series Instance UID {se.series_uid}")
            child.setToolTip(3, "as the PACS announced" if se.count_source == "announced" else "counted at image level")
            child.setToolTip(4, reason or "no hint from the description or the times")
            why = broken or ("" if se.modality == "CT" else f"not a CT series ({se.modality or 'no modality'}): "
                                                           "only CT series open here")
            if why:
                child.setFlags(Qt.ItemIsEnabled)
                for c in range(len(COLUMNS)):
                    child.setForeground(c, QBrush(GREY))
                    child.setToolTip(c, why)
            item.addChild(child)
        if broken:
            item.setForeground(0, QBrush(QColor("#b3261e")))
            item.setToolTip(0, broken)
        return item

    # ------------------------------------------------------------ pick
    @staticmethod
    def _series_of(item) -> Optional[object]:
        if item is None or not (item.flags() & Qt.ItemIsSelectable):
            return None
        return item.data(0, Qt.UserRole)

    def selected_series(self):
        items = self.tree.selectedItems()
        return self._series_of(items[0]) if items else None

    def series_items(self) -> List[QTreeWidgetItem]:
        """Every series row (tests and screenshots look them up by description)."""
        return [self.tree.topLevelItem(i).child(j) for i in range(self.tree.topLevelItemCount())
                for j in range(self.tree.topLevelItem(i).childCount())]

    def _selection_changed(self) -> None:
        ok = self.selected_series() is not None and self.worker is None
        self.retrieve_button.setEnabled(ok)
        self.retrieve_button.setToolTip("retrieve this series and open it in the window" if ok else
                                        "pick a CT series in the list first")

    # ------------------------------------------------------------ retrieve
    def retrieve(self) -> None:
        se = self.selected_series()
        if self.worker is not None or se is None:
            return
        try:
            server = self.server_box.server()
            pacs = server.pacs()
        except ValueError as exc:
            self._failed("Retrieve", exc, "")
            return
        root = Path(self.folder.text().strip() or default_retrieve_folder()).expanduser()
        settings().setValue("pacs/retrieve_folder", str(root))
        out = root / se.series_uid
        from registration.pacs.retrieve import retrieve_series
        self.server_box.remember()
        self.run_task("Retrieve", lambda progress: retrieve_series(
            pacs, se.series_uid, out, study_uid=se.study_uid, move_port=server.move_port or None,
            force=True, progress=progress), lambda r: self._retrieved(str(pacs), r))

    def _retrieved(self, server: str, r) -> None:
        self.retrieved = r
        w = self.window
        text = f"retrieved {r.n_instances} instances of series {r.series_uid} by {r.method} from {server} into {r.folder}"
        w.reporter.info(text)
        for warning in r.warnings:
            w.reporter.info(f"warning: {warning}")
        self.set_status(text[0].upper() + text[1:] + "; opening it.")
        w.statusBar().showMessage(f"Retrieved {r.n_instances} images from {server}; opening the CT", 15000)
        w.open_ct(r.folder, r.series_uid)
        self.accept()

    def cancelled_text(self, name: str) -> str:
        return ("Retrieval stopped: nothing was written." if name == "Retrieve" else "Search stopped.")

    def set_busy(self, busy: bool) -> None:
        for w in (self.find_button, self.server_box, self.patient, self.accession, self.modality, self.folder):
            w.setEnabled(not busy)
        self.tree.setEnabled(not busy)
        self._selection_changed()
