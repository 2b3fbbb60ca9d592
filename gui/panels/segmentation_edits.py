"""Corrections of the Segmentation panel (a mixin of :class:`.segmentation_panel.SegmentationPanel`).

Brush strokes (paint / erase discs in mm in the plane of the view, optional HU
range; the slice views redraw at most every ``FAST_REDRAW_MS`` during a stroke,
the rest of the window after it), grow / shrink the selected structure by 1 mm
(at least one voxel), undo, lesion renames, and the review state. Every change goes
through :class:`gui.core.label_editing.EditableLabels` and is handed to the window
by the panel's ``_commit``.
"""
from __future__ import annotations

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

from .segmentation_tools import plane_of

FAST_REDRAW_MS = 60


class SegmentationEditsMixin:
    """Brush, grow/shrink, undo, rename, review; the panel supplies ``edit``, ``_commit``, ``say``."""

    def stroke_started(self) -> None:
        edit = self._editable()
        if edit is not None:
            edit.begin_stroke(f"{self.tool} {self.structure_box.currentText()}")

    def dab(self, view, lps) -> None:
        edit = self.edit
        name = self.structure_box.currentText()
        if edit is None or not name:
            return
        axis, half = plane_of(view)
        if edit.brush(lps, self.brush_mm(), axis, half, name=name, erase=self.tool == "erase",
                      hu_range=self.hu_range()) and not self._redraw.isActive():
            self._redraw.start(FAST_REDRAW_MS)

    def stroke_ended(self) -> None:
        if self.edit is not None and self.edit.end_stroke():
            self._redraw.stop()
            self._fast_redraw()
            self._commit()
        self.refresh()

    def _fast_redraw(self) -> None:
        """Show the edited labels in the slice views now (the rest follows in :meth:`_commit`)."""
        w, edit = self.window, self.edit
        if edit is None or w.display is None:
            return
        lm = LabelMap(edit.array, w.ct.spacing, w.ct.origin, w.ct.direction, edit.names)
        w.display.labels_array = w.display.labels_on_grid(lm)
        w.display.label_names = dict(edit.names)
        for view in w.views.values():
            view.labels_changed()

    def grow(self, distance_mm: float) -> None:
        edit = self._editable()
        name = self.structure_box.currentText()
        if edit is None or not name:
            return
        with self.window.reporter.action("Grow / shrink"):
            n = edit.grow(name, distance_mm)
            self.say(f"{name} {'grown' if distance_mm > 0 else 'shrunk'} by {edit.last_reach_mm:.1f} mm "
                     f"({n} voxels)" if n else f"{name}: nothing changed")
            if n:
                self._commit(sync=True)

    def undo(self) -> None:
        edit = self._editable()
        if edit is None:
            return
        what = edit.undo()
        if what is None:
            self.say("Nothing to undo.")
            return
        self._commit(sync=True)
        self.say(f"Undone: {what}.")

    def rename(self, old: str, new: str) -> None:
        edit = self._editable()
        try:
            edit.rename(old, new)
        except InputError as exc:
            self.say(f"Not renamed: {exc}", refused=True)
            self.refresh()
            return
        self._commit(sync=True)
        self.say(f"{old} renamed {new.strip()}.")

    def _lesion_selected(self, name: str) -> None:
        row = (self.edit.lesion_rows.get(name) if self.edit is not None else None) or {}
        if row.get("centroid_lps") is not None:
            self.window.set_cursor(np.asarray(row["centroid_lps"], float))
        if self.structure_box.findText(name) >= 0:
            self.structure_box.setCurrentText(name)

    def set_reviewed(self, reviewed: bool) -> None:
        edit = self._editable()
        if edit is None:
            return
        edit.set_reviewed(reviewed)
        self._commit(sync=True)
        self.say("Anatomy marked reviewed: the plan and the report will say so." if reviewed else
                 "Anatomy marked not reviewed.")
