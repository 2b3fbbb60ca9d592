"""Segmentation panel: automatic anatomy, lesions from a click, corrections, review, .seg.nrrd.

The anatomy comes from :func:`gui.core.segment_tasks.segment_ct` (the engine's
``segment_anatomy``) in a worker with staged progress and Cancel in the status
bar; lesions from :func:`gui.core.segment_tasks.grow_at` (``grow_lesion``). The
label map under correction is a :class:`gui.core.label_editing.EditableLabels`;
every change is shown at once in the slice views (the display's label array is
refreshed, at most every ``segmentation_edits.FAST_REDRAW_MS`` while a brush stroke runs) and then
handed to the window (``set_labels``: US overlay, 3D surfaces, planning) in a
worker. Tools: Navigate (the views' own mouse), Lesion from click, Paint and
Erase (brush radius in mm, optional HU range, in the plane of the view clicked).
"Mark anatomy reviewed" sets the review state the plan and the PDF state.
"Target at crosshair" grows a lesion at the crosshair and plans; where no lesion
is found it plans a point target there and says so.
"""
from __future__ import annotations

from html import escape
from typing import Callable, Optional

import numpy as np
from PyQt5.QtCore import QTimer
from PyQt5.QtGui import QColor, QIcon, QPixmap
from PyQt5.QtWidgets import QDockWidget, QWidget

from gui.core.label_editing import EditableLabels, new_automatic
from gui.core.segment_tasks import grow_at, segment_ct
from gui.views.qimage import structure_colour
from planner.anatomy.provenance import origin_text
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

from .docking import add_left_dock
from .segmentation_edits import SegmentationEditsMixin
from .segmentation_files import SegmentationFilesMixin
from .segmentation_layout import SegmentationLayoutMixin
from .segmentation_tools import BrushFilter

REFUSED = "color:#c0221b"


class SegmentationPanel(SegmentationLayoutMixin, SegmentationEditsMixin, SegmentationFilesMixin, QWidget):
    """The Segmentation dock's widget (see the module docstring)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("segmentation_panel")
        self.window = window
        self.edit: Optional[EditableLabels] = None
        self._committed: Optional[LabelMap] = None      # the LabelMap of ``edit`` the window shows
        self.tool = "navigate"
        self.worker = None
        self._commit_worker = None
        self.last_message = ""
        self._saved_version = -1            # edit.version last written to a file
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.timeout.connect(self._fast_redraw)
        self._build()
        self.brush_filter = BrushFilter(self, list(window.views.values()))
        for view in window.views.values():
            view.point_clicked.connect(self._clicked)
        window.data_changed.connect(self.refresh)
        if hasattr(window, "register_session_part"):
            window.register_session_part("segmentation", self.session_state, self.restore_session_state)
        self.refresh()

    # ------------------------------------------------------------ state shown
    def brush_mm(self) -> float:
        return float(self.brush_spin.value())

    def hu_range(self):
        return (self.hu_min.value(), self.hu_max.value()) if self.hu_check.isChecked() else None

    def _editable(self) -> Optional[EditableLabels]:
        """The label map under correction: the window's labels (a new file opened meanwhile is
        taken over), None without a CT or labels."""
        w = self.window
        if w.ct is None or w.labels is None:
            self.edit = self._committed = None
            return None
        mine = self.edit is not None and w.labels.metadata.get("editor") == id(self.edit)
        if self.edit is None or (w.labels is not self._committed and not mine):
            self.edit = EditableLabels(w.ct, w.labels)
            self._committed = w.labels
        return self.edit

    def refresh(self) -> None:
        """Buttons enabled by what exists (tooltips say why not), structures, lesions, origin."""
        w = self.window
        busy = self.worker is not None
        edit = self._editable()
        has_ct = w.ct is not None
        self.segment_button.setEnabled(has_ct and not busy)
        self.segment_button.setToolTip("segment the anatomy of the CT automatically (body, lungs, bone, liver, "
                                       "vessels, aorta, IVC)" if has_ct else "Segment: needs a CT (File > Open CT)")
        for b in (self.grow_button, self.shrink_button, self.review_button, self.save_button,
                  self.tool_buttons["paint"], self.tool_buttons["erase"]):
            b.setEnabled(edit is not None and not busy)
            b.setToolTip("" if edit is not None else "needs a label map: press Segment (or File > Open labels)")
        self.tool_buttons["lesion"].setEnabled(edit is not None and "liver" in edit.names and not busy)
        self.tool_buttons["lesion"].setToolTip("click in a lesion to segment it" if edit is not None and
                                               "liver" in edit.names else "needs a liver: press Segment first")
        self.target_button.setEnabled(has_ct and not busy)
        self.undo_button.setEnabled(edit is not None and bool(edit.undo_steps) and not busy)
        self.undo_button.setToolTip(f"undo: {edit.undo_steps[-1].what}" if edit is not None and edit.undo_steps
                                    else "nothing to undo")
        self.load_button.setEnabled(has_ct and not busy)
        current = self.structure_box.currentText()
        names = [] if edit is None else [n for n, _v in sorted(edit.names.items(), key=lambda kv: kv[1])]
        if names != [self.structure_box.itemText(i) for i in range(self.structure_box.count())]:
            self.structure_box.blockSignals(True)
            self.structure_box.clear()
            for name in names:                  # the outline colour beside each name: the legend
                self.structure_box.addItem(_swatch(structure_colour(name)), name)
            if current in names:
                self.structure_box.setCurrentText(current)
            self.structure_box.blockSignals(False)
        self.lesions.fill({} if edit is None else edit.lesion_rows, [] if edit is None else edit.lesion_names())
        self.review_button.blockSignals(True)
        self.review_button.setChecked(bool(edit is not None and edit.reviewed))
        self.review_button.setText("Anatomy reviewed \u2713" if edit is not None and edit.reviewed
                                   else "Mark anatomy reviewed")
        self.review_button.blockSignals(False)
        self.origin_label.setText("" if edit is None else self.origin_words())
        if not busy and not self.last_message:
            self.status.setText("No CT: open one (File > Open CT)." if not has_ct else
                                "No label map: press Segment." if edit is None else
                                f"{len(edit.names)} structures, {len(edit.lesion_names())} lesion(s).")
        if hasattr(w, "update_workflow"):
            w.update_workflow()          # the Workflow menu's actions follow these buttons

    def origin_words(self) -> str:
        """What the exports will say of this anatomy (the planner's own words)."""
        e = self.edit
        if e is None:
            return ""
        origin = {"source": e.source, "reviewed": e.reviewed}
        if e.label_path:
            origin["path"] = e.label_path
        return origin_text(origin)

    def say(self, text: str, refused: bool = False) -> None:
        """The panel's message (red when an action was refused) and the status bar."""
        self.last_message = text
        self.status.setText(f"<span style='{REFUSED}'>{escape(text)}</span>" if refused else escape(text))
        self.window.statusBar().showMessage(text.split(". ")[0].split("; ")[0], 10000)   # the gist; all in the log
        self.window.reporter.info(text)

    # ------------------------------------------------------------ segment
    def segment(self, then: Optional[Callable[[], None]] = None) -> None:
        """Segment the CT's anatomy in a worker (progress and Cancel in the status bar); ``then()``
        after the labels are shown."""
        w = self.window
        if w.ct is None or self.worker is not None:
            return
        ct = w.ct
        self.say("Segmenting the anatomy (about a minute for a 512x512x300 CT)...")
        self.worker = w.run_worker("Segment anatomy", segment_ct, lambda r: self._segmented(r, ct, then), ct)
        self.worker.finished.connect(self._worker_finished)
        self.refresh()

    def _segmented(self, result, ct, then) -> None:
        w = self.window
        if w.ct is not ct:
            raise InputError("the CT changed while it was being segmented", fix="press Segment again")
        self.edit = new_automatic(ct, result.labels)
        self._commit(sync=True)
        found = ", ".join(n for n in sorted(result.names) if n != "body")
        notes = "".join(f" Note: {x.rstrip('.')}." for x in result.warnings)
        self.say(f"Segmented: {found}.{notes} Check the outlines, correct them, then Mark anatomy reviewed.")
        if then is not None:
            then()

    def _worker_finished(self) -> None:
        self.worker = None
        self.refresh()

    # ------------------------------------------------------------ tools
    def set_tool(self, key: str) -> None:
        self.tool = key
        self.tool_buttons[key].setChecked(True)
        if key in ("paint", "erase") and self.edit is not None and not self.structure_box.currentText():
            self.structure_box.setCurrentIndex(0)

    def _clicked(self, view_name: str, lps) -> None:
        if self.tool == "lesion":
            self.lesion_at(np.asarray(lps, float))

    def lesion_at(self, lps, then: Optional[Callable[[object], None]] = None) -> None:
        """Grow a lesion from ``lps`` in a worker and add it (named lesion_N); a refused click is
        said in red. ``then(lesion or InputError)`` afterwards."""
        edit = self._editable()
        w = self.window
        if edit is None or self.worker is not None:
            self.say("Lesion from click needs a label map with a liver: press Segment first.", refused=True)
            return
        name = edit.next_lesion_name()

        def work():
            try:
                return grow_at(w.ct, edit.array.copy(), dict(edit.names), lps, name)
            except InputError as exc:
                return exc

        def done(result):
            if isinstance(result, InputError):
                self.say(f"No lesion at the click: {result}", refused=True)
            else:
                edit.add_lesion(result)
                self._commit(sync=True)
                warn = (" " + " ".join(result.warnings)) if result.warnings else ""
                self.say(f"{result.name}: {result.kind}, {result.diameter_mm:.1f} mm, {result.volume_ml:.2f} ml, "
                         f"mean {result.mean_hu:.0f} HU, contrast {result.contrast_hu:+.0f} HU.{warn}")
                self.lesions.selectRow(self.lesions.names.index(result.name))
            if then is not None:
                then(result)

        self.say(f"Growing {name} from the click...")
        self.worker = w.run_worker("Lesion from click", work, done, pass_progress=False)
        self.worker.finished.connect(self._worker_finished)
        self.refresh()

    def _commit(self, sync: bool = False) -> None:
        """Hand the edited label map to the window: at once (``sync``), or prepared in a worker
        (display grid and US overlay), repeated if edits came in meanwhile."""
        w, edit = self.window, self.edit
        if edit is None:
            return
        labels = edit.to_labelmap()
        self._committed = labels
        if sync:
            self._show(labels)
            return
        if self._commit_worker is not None:
            return                          # the running one re-commits when it sees a newer version
        from gui.views.overlay import OverlayEngine
        ct, display, version = w.ct, w.display, edit.version

        def work(progress):
            progress(0.3, "updating the slice views")
            on_grid = display.labels_on_grid(labels)
            progress(0.6, "updating the overlay")
            return on_grid, OverlayEngine.prepare(ct, labels)

        def done(r):
            self._commit_worker = None
            if w.ct is not ct or self.edit is not edit:
                return
            self._show(labels, r[0], r[1])
            if edit.version != version:
                self._commit()

        self._commit_worker = w.run_worker("Update label map", work, done)

    def _show(self, labels, on_grid=None, prepared=None) -> None:
        """The window shows ``labels``; an edit keeps the panel in front (the workflow bar would
        otherwise take new labels for newly opened data and show the next step's panel)."""
        w = self.window
        self._committed = labels
        bar = getattr(w, "workflow", None)
        if bar is not None and hasattr(bar, "data_edited"):
            bar.data_edited(labels)
        w.set_labels(labels, on_grid, prepared)

    # ------------------------------------------------------------ target at the crosshair
    def target_at_crosshair(self) -> None:
        """Segment first when there are no labels; then grow a lesion at the crosshair and plan all
        lesions, or, when no lesion is found there, plan a point target at it (said so)."""
        w = self.window
        if w.ct is None:
            return
        lps = np.asarray(w.views["axial"].cursor_lps, float).copy()
        if w.labels is None:
            self.segment(then=self.target_at_crosshair)
            return
        planning = w._panel("planning") if hasattr(w, "_panel") else None

        def grown(result):
            if planning is None:
                return
            if isinstance(result, InputError):
                self.say(f"No lesion found at the crosshair ({result}); planning a point target there.")
                planning.run_plan(target_lps=lps)
            else:
                planning.run_plan()

        self.lesion_at(lps, then=grown)


def _swatch(rgb) -> QIcon:
    pix = QPixmap(14, 14)
    pix.fill(QColor(*rgb))
    return QIcon(pix)


def install(window) -> QDockWidget:
    """Create the Segmentation dock on ``window`` (left, tabbed with the other panels)."""
    panel = SegmentationPanel(window)
    return add_left_dock(window, panel, "Segmentation", "dock_segmentation", raise_dock=False)
