"""File actions of the main window: open CT / labels / sweep / registration / demo case,
sessions (save, open, autosave), plan export, the PACS dialogs (open from, send to), and the
file dialogs in front of them.

A mixin of :class:`gui.window.main_window.MainWindow` (it uses the window's data
setters, ``run_worker`` and ``reporter``). Loading runs in workers; each step
can chain the next with ``then=``; every failure is reported once and leaves
the window's state as it was.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from PyQt5.QtWidgets import QFileDialog, QInputDialog, QMessageBox

from gui.core import loaders
from gui.core.session import RegistrationState, Session, load_registration_file
from gui.views.display import DisplayVolume
from gui.views.overlay import OverlayEngine
from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError


def default_autosave_path() -> Path:
    """$CTUS_AUTOSAVE, else ~/.cache/ctus/autosave.ctus.json."""
    env = os.environ.get("CTUS_AUTOSAVE")
    return Path(env) if env else Path.home() / ".cache" / "ctus" / "autosave.ctus.json"


class FileActionsMixin:
    """Open/save/export actions; mixed into MainWindow (needs its attributes)."""

    # ------------------------------------------------------------ file actions (used by menus + tests)
    def open_ct(self, path, series_uid: Optional[str] = None, then: Optional[Callable] = None) -> None:
        """Load a CT in a worker; ``then()`` runs after it is shown (chains loading steps)."""
        path = str(path)
        if series_uid is None and Path(path).is_dir():
            with self.reporter.action("Open CT"):
                series = loaders.list_series(path)
                if len(series) > 1:
                    items = [s.summary() for s in series]
                    item, ok = QInputDialog.getItem(self, "Choose the CT series",
                                                    "Several series in this folder:", items, 0, False)
                    if not ok:
                        return
                    series_uid = series[items.index(item)].series_uid
        self.session.ct_series_uid = series_uid
        def work(progress):
            ct = loaders.load_ct(path, series_uid, progress=progress)
            progress(0.7, "preparing the slice views")
            display = DisplayVolume(ct)
            progress(0.85, "preparing the overlay")
            return ct, display, OverlayEngine.prepare(ct, None)

        def done(r):
            self.set_ct(r[0], display=r[1], prepared=r[2])
            if then is not None:
                then()

        self.run_worker("Open CT", work, done)

    def open_labels(self, path, names_path=None, then: Optional[Callable] = None) -> None:
        if self.ct is None:
            self.reporter.report("Open labels", InputError("open a CT before its label map",
                                                           path=path, fix="File > Open CT first"))
            return
        ct = self.ct

        display = self.display

        def work(progress):
            labels = loaders.load_labels(str(path), names_path, ct, progress=progress)
            progress(0.6, "preparing the slice views")
            on_grid = display.labels_on_grid(labels)
            progress(0.8, "preparing the overlay")
            return labels, on_grid, OverlayEngine.prepare(ct, labels)

        def done(result):
            if self.display is not display:      # another CT was opened meanwhile
                raise InputError("the CT changed while the labels were loading", path=path,
                                 fix="open the label map again")
            self.set_labels(*result)
            self.session.label_names_path = None if names_path is None else str(names_path)
            if then is not None:
                then()

        self.run_worker("Open labels", work, done)

    def open_sweep(self, path, calibration=None, then: Optional[Callable] = None) -> None:
        def done(sweep):
            self.set_sweep(sweep)
            self.session.calibration_path = None if calibration is None else str(calibration)
            if then is not None:
                then()

        self.run_worker("Open sweep", loaders.load_sweep, done, str(path), calibration)

    def open_demo(self, then: Optional[Callable] = None) -> None:
        """The synthetic demo case (generated once, cached): portal-phase CT, labels, first sweep.
        The registration is left to the user (the case's truth is never loaded as a result)."""
        try:
            from sample_data.case.demo_case import ensure_demo_case
        except ImportError:
            self.reporter.report("Open demo case", InputError(
                "the demo case generator (sample_data.case.demo_case) is not in this build",
                fix="open your own data with File > Open CT / Open sweep"))
            return

        def work(progress):
            # sample_data reports (stage, fraction); our workers take (fraction, message).
            return Path(ensure_demo_case(progress=lambda stage, f: progress(f, stage)))

        def prepared(folder: Path):
            names = folder / "label_names.json"
            sweeps = sorted(folder.glob("sweep_*.igs.mha")) or sorted(folder.glob("*.igs.mha"))
            configs = sorted(folder.glob("*.xml"))
            self.demo_folder = folder

            def after_labels():
                if sweeps:
                    self.open_sweep(sweeps[0], configs[0] if configs else None, then=then)
                elif then is not None:
                    then()

            self.open_ct(folder / "ct_portal.nrrd",
                         then=lambda: self.open_labels(folder / "labels.nrrd",
                                                       names if names.exists() else None, then=after_labels))

        self.run_worker("Prepare demo case", work, prepared)

    def open_registration(self, path) -> None:
        with self.reporter.action("Load registration"):
            self.set_registration(load_registration_file(path))

    # ------------------------------------------------------------ sessions
    def register_session_part(self, name: str, save: Callable[[], dict], restore: Callable[[dict], None]) -> None:
        """Let a panel keep its user edits in the session: ``save()`` returns a JSON-ready dict
        (stored under ``session.notes[name]``), ``restore(dict)`` puts it back after the data of a
        reopened session has loaded."""
        self.session_parts[str(name)] = (save, restore)

    def _collect_session_parts(self) -> None:
        for name, (save, _) in self.session_parts.items():
            self.session.notes[name] = save()

    def save_session(self, path) -> None:
        with self.reporter.action("Save session"):
            self._collect_session_parts()
            self.session.save(path)
            self.reporter.info(f"session saved to {path}")

    def autosave(self) -> bool:
        """Save the session to ``autosave_path`` if it changed; True if written. Never raises:
        a failing autosave is logged, not shown as a dialog every 30 s."""
        if self.autosave_path is None or self.session.ct_path is None and self.session.sweep_path is None:
            return False
        try:
            self._collect_session_parts()
        except Exception as exc:  # a panel's bug must not stop the autosave of the rest
            self.reporter.info(f"autosave: a panel's state could not be collected: {exc}")
        text = self.session.to_json()
        if text == self._autosaved_text:
            return False
        try:
            self.autosave_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.autosave_path, text)
        except OSError as exc:
            self.reporter.info(f"autosave to {self.autosave_path} failed: {exc}")
            return False
        self._autosaved_text = text
        return True

    def restore_autosave(self) -> None:
        path = self.autosave_path or default_autosave_path()
        if not Path(path).exists():
            self.reporter.report("Restore autosaved session", InputError(
                "no autosaved session", path=path, fix="sessions are autosaved every 30 s once data is open"))
            return
        self.open_session(path)

    def open_session(self, path) -> None:
        with self.reporter.action("Open session"):
            s = Session.load(path)
            if s.ct_path:
                self.open_ct(s.ct_path, s.ct_series_uid)
                self.wait_for_workers()
            if s.labels_path and self.ct is not None:
                self.open_labels(s.labels_path, s.label_names_path)
            if s.sweep_path:
                self.open_sweep(s.sweep_path, s.calibration_path)
            self.wait_for_workers()
            if s.registration is not None:
                self.set_registration(RegistrationState.from_dict(s.registration, path))
            self._on_window_level(s.window, s.level)
            if s.cursor_lps is not None and self.ct is not None:
                self.set_cursor(s.cursor_lps)
            self.player.seek(s.frame_index, force=True)
            for name, data in s.notes.items():
                if name in self.session_parts:
                    self.session_parts[name][1](data)
            self.session.notes.update(s.notes)

    # ------------------------------------------------------------ dialogs
    def _ask_file(self, title: str, filt: str) -> Optional[str]:
        path, _ = QFileDialog.getOpenFileName(self, title, "", filt)
        return path or None

    def ask_open_ct_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open CT DICOM folder")
        if path:
            self.open_ct(path)

    def ask_open_ct_file(self) -> None:
        path = self._ask_file("Open CT image", "Images (*.nrrd *.nii *.nii.gz *.mha *.mhd *.dcm);;All files (*)")
        if path:
            self.open_ct(path)

    def ask_open_labels(self) -> None:
        path = self._ask_file("Open label map", "Label maps (*.nrrd *.nii *.nii.gz *.mha *.dcm);;All files (*)")
        if not path:
            return
        names, _ = QFileDialog.getOpenFileName(self, "Label names (optional: cancel to skip)", str(Path(path).parent),
                                               "Names (*.json *.txt)")
        self.open_labels(path, names or None)

    def ask_open_sweep(self) -> None:
        path = self._ask_file("Open sweep", "Sequences (*.mha *.mhd *.seq.nrrd);;All files (*)")
        if not path:
            return
        calib = None
        if QMessageBox.question(self, "Calibration", "Load a PLUS config XML with the probe calibration "
                                "(needed when the sweep has no ImageToProbe)?") == QMessageBox.Yes:
            calib = self._ask_file("PLUS device-set config", "PLUS config (*.xml)")
        self.open_sweep(path, calib)

    def ask_open_registration(self) -> None:
        path = self._ask_file("Load registration", "Registration (*.json)")
        if path:
            self.open_registration(path)

    def ask_open_session(self) -> None:
        path = self._ask_file("Open session", "ctus session (*.json)")
        if path:
            self.open_session(path)

    def ask_save_session(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", "session.ctus.json", "ctus session (*.json)")
        if path:
            self.save_session(path)

    def ask_export_plan(self):
        """The export dialog (one for every way in: File > Export, Ctrl+E, the workflow bar, the
        Planning panel): it exports the Planning panel's plan, or plans first when there is none."""
        planning = getattr(self, "panel_docks", {}).get("planning")
        if planning is not None:
            return planning.widget().open_export()  # exports the panel's plan, with the user's kept paths
        from gui.panels.export_dialog import ExportDialog
        self.export_dialog = ExportDialog(self, None)
        self.export_dialog.show()
        return self.export_dialog

    def ask_open_from_pacs(self):
        """File > Open from PACS: find, pick and retrieve a CT series, then open it like a CT folder."""
        from gui.panels.pacs_dialog import PacsDialog
        return self._show_pacs_dialog("pacs_dialog", PacsDialog)

    def ask_send_to_pacs(self):
        """Export > Send to PACS: the plan's results into the CT's study."""
        from gui.panels.pacs_send import SendDialog
        return self._show_pacs_dialog("pacs_send_dialog", SendDialog)

    def _show_pacs_dialog(self, attr: str, cls):
        dlg = getattr(self, attr, None)
        if dlg is None or not dlg.isVisible():    # one at a time; a running one is raised, not replaced
            dlg = cls(self)
            setattr(self, attr, dlg)
        dlg.show()
        dlg.raise_()
        dlg.activateWindow()
        return dlg

    def export_plan(self, out_dir, force: bool = False) -> None:
        """Plan every lesion (planner, in a worker) and write the planner's files into ``out_dir``:
        plan.json, plan.mrk.json, plan.pdf and reference_to_ct.tfm when registered."""
        with self.reporter.action("Export plan"):
            if self.ct is None or self.labels is None:
                raise InputError("a plan needs the CT and its label map with lesions",
                                 fix="File > Open CT, then File > Open labels")
            from planner.case.case_plan import plan_case
            from planner.export.plan_files import write_outputs
            ct, labels, reg = self.ct, self.labels, self.registration
            sweep = self.sweep if reg is not None else None
            ref_to_ct = None if reg is None else reg.reference_to_ct
            kwargs = dict(sweep=sweep, reference_to_ct=ref_to_ct,
                          registration=None if reg is None else reg.to_dict(),
                          labels_path=labels.metadata.get("source"), ct_path=ct.metadata.get("source"))
            out = Path(out_dir)

            def work(progress):
                result = plan_case(ct, labels, progress=progress, **kwargs)
                progress(0.95, "writing plan.json, plan.mrk.json, plan.pdf")
                written = write_outputs(result, out, force=force, ct_metadata=ct.metadata,
                                        reference_to_ct=ref_to_ct)
                return result.plan, written

            self.run_worker("Export plan", work, lambda r: self._plan_done(r[0], r[1]))

    def _plan_done(self, plan: dict, written: dict) -> None:
        self.plan = plan
        self.exported = dict(written)
        for les in plan.get("lesions", []):
            rec = les.get("recommendation", {})
            self.reporter.info(f"{les.get('name')}: {rec.get('guidance', '?')} "
                               f"({'; '.join(map(str, rec.get('reasons', [])))})")
        if self.view3d is not None:
            self.view3d.set_trajectories([(t["entry_ct"], t["target_ct"]) for les in plan.get("lesions", [])
                                          for t in les.get("trajectories", []) if t.get("safe", True) is not False])
        for name, path in written.items():
            self.reporter.info(f"wrote {path}")
        if "plan.pdf" in written:
            self.statusBar().showMessage(f"Plan exported; report: {written['plan.pdf']}", 15000)

