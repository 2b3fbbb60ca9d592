"""Editing the selected needle path: entry/target spin boxes, marker dragging, live re-check, keep.

All points are CT LPS mm. Entry and target are edited in spin boxes or by
dragging their markers in a slice view; the edited path is re-checked by the
planner (:mod:`planner.paths.path_check`: the lesion's constraint maps built
once per lesion in a worker, then one check per edit), and a path that passes
can be kept with the plan. This module only gathers the inputs and shows the
verdict.
"""
from __future__ import annotations

from html import escape

import numpy as np
from PyQt5.QtCore import QEvent, QObject, Qt
from PyQt5.QtWidgets import QDoubleSpinBox, QGridLayout, QGroupBox, QLabel, QPushButton

from planner.paths.path_check import check_path, constraints_from_plan, lesion_maps

from .path_overlay import NEAR_MM


class _DragFilter(QObject):
    """Drag the selected path's entry or target in a slice view (grab within ``GRAB_PX`` of its
    marker on the shown slice). Other mouse use (W/L, zoom, clicks) is left to the view."""

    GRAB_PX = 8.0

    def __init__(self, panel):
        super().__init__(panel)
        self.panel = panel
        self.drag = None          # (view, "entry" | "target")

    def _grab(self, view, pos):
        if self.panel.path() is None or view.display is None:
            return None
        entry, target = self.panel.edited()
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[view.view]
        plane = view.display.pixel_to_lps(view.view, view.slice_index)[ax, 3]
        best = None
        for which, p in (("target", target), ("entry", entry)):
            if abs(p[ax] - plane) > NEAR_MM:
                continue
            q = view.lps_to_widget(p)
            d = float(np.hypot(q.x() - pos.x(), q.y() - pos.y()))
            if d <= self.GRAB_PX and (best is None or d < best[0]):
                best = (d, which)
        return None if best is None else best[1]

    def eventFilter(self, view, ev):  # noqa: N802
        t = ev.type()
        if t == QEvent.MouseButtonPress and ev.button() == Qt.LeftButton:
            which = self._grab(view, ev.pos())
            if which is None:
                return False
            self.drag = (view, which)
            return True
        if self.drag is not None and self.drag[0] is view and t in (QEvent.MouseMove, QEvent.MouseButtonRelease):
            self.panel.set_point(self.drag[1], view.widget_to_lps(ev.pos()))
            if t == QEvent.MouseButtonRelease:
                self.drag = None
            return True
        return False


def _spin(name: str) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setObjectName(name)
    s.setRange(-2000.0, 2000.0)
    s.setDecimals(1)
    s.setSingleStep(1.0)
    s.setSuffix(" mm")
    s.setKeyboardTracking(False)
    return s


class PathEditorMixin:
    """Path-editing methods of :class:`.planning_panel.PlanningPanel` (a mixin: it uses the panel's
    ``window``, ``result`` (the PlanResult shown), ``maps``, ``check`` (the last
    :class:`planner.paths.path_check.PathCheck`), ``_maps_worker``, ``overlays``, ``table``,
    ``paths``, ``lesion()``, ``path()`` and ``_lesion_selected()``)."""

    def _build_path_editor(self) -> QGroupBox:
        """The "Selected path" box: entry and target spin boxes, the check text, "Keep edited path"."""
        edit = QGroupBox("Selected path (CT LPS mm)")
        grid = QGridLayout(edit)
        self.entry_spins = [_spin(f"entry_{a}") for a in "xyz"]
        self.target_spins = [_spin(f"target_{a}") for a in "xyz"]
        for row, (label, spins) in enumerate((("entry", self.entry_spins), ("target", self.target_spins))):
            grid.addWidget(QLabel(label), row, 0)
            for c, s in enumerate(spins):
                grid.addWidget(s, row, c + 1)
                s.valueChanged.connect(lambda _v: self.recheck())
        self.check_label = QLabel("")
        self.check_label.setObjectName("path_check")
        self.check_label.setWordWrap(True)
        self.check_label.setTextFormat(Qt.RichText)     # planner texts are escaped into it
        grid.addWidget(self.check_label, 2, 0, 1, 4)
        self.add_path_button = QPushButton("Keep edited path")
        self.add_path_button.setObjectName("keep_path")
        self.add_path_button.setEnabled(False)
        self.add_path_button.clicked.connect(self.keep_edited_path)
        grid.addWidget(self.add_path_button, 3, 0, 1, 4)
        return edit

    # ------------------------------------------------------------ live check of an edited path
    def edited(self):
        """(entry, target) as shown in the spin boxes, CT LPS mm."""
        return (np.array([s.value() for s in self.entry_spins]), np.array([s.value() for s in self.target_spins]))

    def set_point(self, which: str, lps) -> None:
        """Set the edited ``entry`` or ``target`` (CT LPS mm) and re-check once."""
        spins = self.entry_spins if which == "entry" else self.target_spins
        for s, v in zip(spins, np.asarray(lps, float)):
            s.blockSignals(True)
            s.setValue(float(v))
            s.blockSignals(False)
        self.recheck()

    def recheck(self) -> None:
        """Re-check the edited path (first building the lesion's constraint maps in a worker)."""
        les, t = self.lesion(), self.path()
        if les is None or t is None:
            return
        name = les["name"]
        entry, target = self.edited()
        for o in self.overlays:
            o.set_path((entry, target, t["guidance"], self.check is None or self.check.ok))
        if name not in self.maps:
            self.check_label.setText("preparing the constraint maps of this lesion...")
            if self._maps_worker is None:
                result = self.result

                def done(maps, name=name, result=result):
                    # Free the slot first: the lesion shown now may be another one whose maps
                    # are still missing (edited while these were built); recheck starts them.
                    self._maps_worker = None
                    if self.result is result:          # not a plan replaced meanwhile
                        self.maps[name] = maps
                        self.recheck()

                def build(progress, name=name, result=result):
                    constraints = constraints_from_plan(result.plan["constraints"])
                    return lesion_maps(result.anatomy, result.lesion_masks, name, constraints)

                self._maps_worker = self.window.run_worker(
                    f"Prepare path check ({name})", build, done,
                    before_start=lambda wk: wk.finished.connect(lambda: setattr(self, "_maps_worker", None)))
            return
        self.check = check_path(self.maps[name], entry, target, t["guidance"], self.result.lesion_masks.get(name),
                                lesion=name)
        rec = self.check.record
        if self.check.ok:
            self.check_label.setText(f"<span style='color:#1b7f2a'><b>OK</b></span>: {rec['length_mm']:.0f} mm to "
                                     f"the skin, clearance {rec['min_hard_clearance_mm']:.1f} mm, liver "
                                     f"{rec['liver_traverse_mm']:.0f} mm, capsule {rec['capsule_angle_deg']:.0f} deg")
        else:
            numbers = [v["text"] for v in (rec or {}).get("violations", [])]
            self.check_label.setText("<span style='color:#c0221b'><b>Violates</b></span>: " + escape(
                ", ".join(self.check.texts) + (f" ({'; '.join(numbers)})" if numbers else "")))
        for o in self.overlays:
            o.set_path((entry, target, t["guidance"], self.check.ok))
        self.add_path_button.setEnabled(self.check.ok)

    def keep_edited_path(self) -> None:
        """Add the checked edited path to the lesion's trajectories (it is exported with the plan)."""
        les = self.lesion()
        if les is None or self.check is None or not self.check.ok:
            return
        les["trajectories"].append(dict(self.check.record))
        row = self.table.currentRow()
        self._lesion_selected()
        self.table.selectRow(row)
        self.paths.setCurrentRow(len(les["trajectories"]) - 1)

