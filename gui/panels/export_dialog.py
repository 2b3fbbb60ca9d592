"""Export dialog: write the planner's files (plan.json, plan.mrk.json, reference_to_ct.tfm, plan.pdf).

The export runs :func:`planner.export.plan_files.write_outputs` in a worker (the PDF
takes seconds). It reuses the plan shown in the Planning panel (with the
user's kept paths); without one it plans first with
:func:`planner.case.case_plan.plan_case`. Existing files are only replaced when
"overwrite" is ticked (write_outputs refuses otherwise, naming the file).
Afterwards the dialog lists the written files and opens the folder
(QDesktopServices; switched off by ``open_folder_when_done = False``).

The dialog always has a way out: *Cancel* (Escape) closes it without writing
anything; while an export runs it stops the export (nothing is half-written: the
planner's writes are atomic) and stays open to say so; after an export it reads
*Close*. *Send to PACS...* opens :class:`gui.panels.pacs_send.SendDialog` (enabled when
a plan and a DICOM CT are there; it sends the exported files when they hold the plan
shown). Every text wraps, so a long folder name never widens the dialog past the screen.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

from PyQt5.QtCore import QUrl
from PyQt5.QtGui import QDesktopServices
from PyQt5.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
)

from registration.spatial.errors import InputError

#: Progress fraction at which the files are written (planning before it, if no plan exists).
WRITING_FRACTION = 0.92


class ExportDialog(QDialog):
    def __init__(self, window, planning_panel=None, parent=None):
        super().__init__(parent or window)
        self.setObjectName("export_dialog")
        self.setWindowTitle("Export the plan")
        self.window = window
        self.panel = planning_panel
        self.worker = None
        self.written: Dict[str, str] = {}
        self.open_folder_when_done = True
        self.planned_with = None          # the RegistrationState of the plan being exported
        self.folder = QLineEdit(str(Path.home() / "ctus_plan"))
        self.folder.setObjectName("export_folder")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.overwrite = QCheckBox("overwrite existing plan files in this folder")
        self.overwrite.setObjectName("export_overwrite")
        self.patient_id = QCheckBox("include patient identifiers (default: de-identified)")
        self.patient_id.setObjectName("export_patient_id")
        self.pdf = QCheckBox("PDF report (plan.pdf)")
        self.pdf.setObjectName("export_pdf")
        self.pdf.setChecked(True)
        self.buttons = QDialogButtonBox(self)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.AcceptRole)
        self.export_button.setObjectName("export_run")
        self.export_button.setDefault(True)
        self.open_button = self.buttons.addButton("Open folder", QDialogButtonBox.ActionRole)
        self.open_button.setObjectName("export_open")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_folder)
        self.send_button = self.buttons.addButton("Send to PACS...", QDialogButtonBox.ActionRole)
        self.send_button.setObjectName("export_send_pacs")
        self.send_button.clicked.connect(lambda: window.ask_send_to_pacs())
        self._update_send()
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.Cancel)
        self.cancel_button.setObjectName("export_cancel")
        self.cancel_button.setToolTip("close without writing anything (Escape); during an export: stop it")
        self.export_button.clicked.connect(self.export)
        self.cancel_button.clicked.connect(self.cancel)
        self.status = QLabel(self._source_text())
        self.status.setObjectName("export_status")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.status.setMinimumHeight(3 * self.fontMetrics().lineSpacing())
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("Folder"))
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        lay.addLayout(row)
        lay.addWidget(self.overwrite)
        lay.addWidget(self.patient_id)
        lay.addWidget(self.pdf)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.resize(600, 230)

    def _source_text(self) -> str:
        if self.panel is not None and self.panel.result is not None:
            text = "Exports the plan shown in the Planning panel (including kept edited paths)."
            if self.panel.stale():
                text += (" Warning: it was made with another registration than the current one; its own "
                         "registration is exported. Plan again in the Planning panel to use the current one.")
            return text
        return "No plan yet: every lesion is planned first (this takes a while)."

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Export the plan into folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def export(self) -> None:
        w = self.window
        with w.reporter.action("Export plan"):
            if self.worker is not None:
                return
            if w.ct is None or w.labels is None:
                raise InputError("a plan needs the CT and its label map with lesions",
                                 fix="File > Open CT, then File > Open labels")
            text = self.folder.text().strip()
            if not text:
                raise InputError("no output folder given", fix="type or browse to a folder")
            out = Path(text).expanduser()
            from planner.export.plan_files import write_outputs
            result = None if self.panel is None else self.panel.result
            ct, labels, reg = w.ct, w.labels, w.registration
            if result is not None:
                # The .tfm and plan.json must carry the registration the plan was computed with.
                reg = self.panel.planned_registration
            ref_to_ct = None if reg is None else reg.reference_to_ct
            force, pdf, phi = self.overwrite.isChecked(), self.pdf.isChecked(), self.patient_id.isChecked()
            sweep = w.sweep if reg is not None else None

            def work(progress):
                res = result
                if res is None:
                    from planner.case.case_plan import plan_case
                    res = plan_case(ct, labels, sweep=sweep, reference_to_ct=ref_to_ct,
                                    registration=None if reg is None else reg.to_dict(),
                                    labels_path=labels.metadata.get("source"), ct_path=ct.metadata.get("source"),
                                    progress=lambda f, m: progress(0.9 * f, f"planning: {m}"))
                if progress(WRITING_FRACTION, "writing plan.json, plan.mrk.json" + (", plan.pdf" if pdf else "")) \
                        is False:
                    from registration.spatial.errors import CancelledError
                    raise CancelledError("export cancelled before writing")
                return res, write_outputs(res, out, force=force, ct_metadata=ct.metadata,
                                          reference_to_ct=ref_to_ct, pdf=pdf, include_patient_id=phi)

            self.status.setText(f"Exporting into {out} ... (Cancel stops it)")
            self.planned_with = reg
            self.export_button.setEnabled(False)
            self.send_button.setEnabled(False)
            def connect(worker):
                worker.failed.connect(self._failed)
                worker.progress.connect(self._progress)
                worker.finished.connect(self._finished)
            self.worker = w.run_worker("Export plan", work, self._done, before_start=connect)

    def _finished(self) -> None:
        self.worker = None
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(True)
        self.cancel_button.setText("Close" if self.written else "Cancel")
        self.cancel_button.setToolTip("close the dialog" if self.written else
                                      "close without writing anything (Escape)")
        self._update_send()

    def _update_send(self) -> None:
        """Send to PACS (pacs_send.SendDialog) is offered here too, enabled when it can act."""
        from .pacs_send import unavailable
        why = unavailable(self.window) if self.worker is None else "Send to PACS: wait for the export"
        self.send_button.setEnabled(not why)
        self.send_button.setToolTip(why or "store the plan's report, key views, segmentation and registration "
                                           "in the CT's study on the PACS")

    def cancel(self) -> None:
        """Cancel (Escape): stop a running export and say so, else close without writing."""
        if self.worker is not None:
            if self.cancel_button.isEnabled():      # not while the files are being written
                self.worker.cancel()
                self.status.setText("Stopping the export...")
            return
        self.reject()

    def reject(self) -> None:  # Escape and the window's close button come here too
        if self.worker is not None:
            self.cancel()
            return
        super().reject()

    def _progress(self, fraction: float, message: str) -> None:
        if fraction >= WRITING_FRACTION and self.worker is not None:
            # Writing is short and atomic per file, but not cancellable: say so instead of pretending.
            self.cancel_button.setEnabled(False)
            self.status.setText(f"{message} ...")

    def _failed(self, exc, tb) -> None:
        from registration.spatial.errors import CancelledError
        self.status.setText("Export stopped: nothing was written." if isinstance(exc, CancelledError)
                            else f"Export failed: {exc}")

    def _done(self, r) -> None:
        result, written = r
        self.written = dict(written)
        w = self.window
        w.plan, w.exported = result.plan, dict(written)
        if self.panel is not None and self.panel.result is None:
            self.panel.set_result(result, self.planned_with)
        names = ", ".join(Path(p).name for p in written.values())
        self.status.setText(f"Wrote {names} into {Path(next(iter(written.values()))).parent}")
        self.open_button.setEnabled(True)
        if self.open_folder_when_done:
            self.open_folder()

    def output_folder(self) -> Optional[Path]:
        return Path(next(iter(self.written.values()))).parent if self.written else None

    def open_folder(self) -> None:
        folder = self.output_folder()
        if folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
