"""Files and session of the Segmentation panel (a mixin of :class:`.segmentation_panel.SegmentationPanel`).

Save / load the label map as a Slicer ``.seg.nrrd`` (names, colours, review
status; :mod:`gui.core.segment_tasks`), and the panel's part of the session: the
anatomy's origin and review state, and the label file the session refers to
(a segmentation made or changed here is written when it changed).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from PyQt5.QtWidgets import QFileDialog

from gui.core.segment_tasks import load_segmentation, save_segmentation
from registration.spatial.errors import InputError


class SegmentationFilesMixin:
    """save / load / session_state / restore_session_state of the panel."""

    def ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save segmentation", "segmentation.seg.nrrd",
                                              "Slicer segmentation (*.seg.nrrd)")
        if path:
            self.save(path)

    def save(self, path) -> Optional[str]:
        edit = self._editable()
        with self.window.reporter.action("Save segmentation"):
            if edit is None:
                raise InputError("no label map to save", fix="press Segment first")
            if not str(path).lower().endswith(".seg.nrrd"):
                path = str(path) + ".seg.nrrd"
            written = save_segmentation(edit, path)
            edit.file, self._saved_version = written, edit.version
            self.window.session.labels_path = written
            self.say(f"Saved {written}")
            return written
        return None

    def ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load segmentation", "", "Slicer segmentation (*.seg.nrrd)")
        if path:
            self.load(path)

    def load(self, path, then: Optional[Callable[[], None]] = None) -> None:
        w = self.window
        if w.ct is None:
            return
        ct = w.ct

        def done(labels):
            if w.ct is not ct:
                raise InputError("the CT changed while the segmentation was loading", path=path,
                                 fix="load it again")
            w.set_labels(labels)
            self.say(f"Loaded {path}: {len(labels.names)} structures ({self.origin_words()}).")
            if then is not None:
                then()

        w.run_worker("Load segmentation", lambda progress: load_segmentation(path, ct, progress), done)

    def session_state(self) -> dict:
        """The anatomy's origin and review state. The labels themselves are the session's label
        file: a segmentation made or changed here is written (when it changed) as a ``.seg.nrrd``
        in ``segmentations/`` beside the autosave, and the session refers to it."""
        edit = self._editable()
        if edit is None:
            return {}
        if edit.version != self._saved_version or not edit.file:
            auto = getattr(self.window, "autosave_path", None)
            folder = (Path(auto).parent if auto else Path.home() / ".cache" / "ctus") / "segmentations"
            folder.mkdir(parents=True, exist_ok=True)
            ct_name = Path(str(self.window.ct.metadata.get("source") or "ct")).name.split(".")[0] or "ct"
            edit.file = save_segmentation(edit, folder / f"{ct_name}-{id(edit):x}.seg.nrrd")
            self._saved_version = edit.version
        self.window.session.labels_path, self.window.session.label_names_path = edit.file, None
        return {"source": edit.source, "reviewed": edit.reviewed, "file": edit.file}

    def restore_session_state(self, data: dict) -> None:
        edit = self._editable()
        if edit is None or not data:
            return
        edit.source = str(data.get("source") or edit.source)
        edit.reviewed = data.get("reviewed")
        self._commit(sync=True)
