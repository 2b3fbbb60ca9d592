"""The widgets of the Segmentation panel (a mixin of :class:`.segmentation_panel.SegmentationPanel`).

Segment button and message; the tools (Navigate, Lesion from click, Paint, Erase);
the correction box (structure, brush radius in mm, HU range, grow / shrink by
1 mm, undo); the lesion table; Target at crosshair; the review button with the
words the exports will use; save / load ``.seg.nrrd``. All in a scroll area, so
a short dock squashes nothing.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDoubleSpinBox, QGridLayout, QGroupBox,
                             QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from .segmentation_tools import LesionRows

TOOLS = (("navigate", "Navigate"), ("lesion", "Lesion from click"), ("paint", "Paint"), ("erase", "Erase"))


class SegmentationLayoutMixin:
    """Builds the panel's widgets; the slots are the panel's."""

    def _build(self) -> None:
        self.segment_button = QPushButton("Segment")
        self.segment_button.setObjectName("segment_button")
        self.segment_button.clicked.connect(lambda: self.segment())
        self.status = QLabel()
        self.status.setObjectName("segmentation_status")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)
        tools = QGroupBox("Tool")
        tl = QHBoxLayout(tools)
        self.tool_group = QButtonGroup(self)
        self.tool_buttons = {}
        for key, text in TOOLS:
            b = QPushButton(text)
            b.setObjectName(f"tool_{key}")
            b.setCheckable(True)
            self.tool_group.addButton(b)
            b.clicked.connect(lambda _=False, key=key: self.set_tool(key))
            tl.addWidget(b)
            self.tool_buttons[key] = b
        self.tool_buttons["navigate"].setChecked(True)
        edit = QGroupBox("Correct")
        g = QGridLayout(edit)
        self.structure_box = QComboBox()
        self.structure_box.setObjectName("structure_box")
        self.brush_spin = _spin("brush_mm", 0.5, 50.0, 5.0, " mm", 0.5)
        self.hu_check = QCheckBox("only HU")
        self.hu_check.setObjectName("hu_range_check")
        self.hu_min = _spin("hu_min", -1024.0, 3000.0, 0.0, " HU", 10.0)
        self.hu_max = _spin("hu_max", -1024.0, 3000.0, 250.0, " HU", 10.0)
        self.grow_button = QPushButton("Grow 1 mm")
        self.grow_button.setObjectName("grow_button")
        self.grow_button.clicked.connect(lambda: self.grow(1.0))
        self.shrink_button = QPushButton("Shrink 1 mm")
        self.shrink_button.setObjectName("shrink_button")
        self.shrink_button.clicked.connect(lambda: self.grow(-1.0))
        self.undo_button = QPushButton("Undo")
        self.undo_button.setObjectName("undo_edit_button")
        self.undo_button.clicked.connect(self.undo)
        g.addWidget(QLabel("structure"), 0, 0)
        g.addWidget(self.structure_box, 0, 1, 1, 3)
        g.addWidget(QLabel("brush"), 1, 0)
        g.addWidget(self.brush_spin, 1, 1)
        g.addWidget(self.hu_check, 2, 0)
        g.addWidget(self.hu_min, 2, 1)
        g.addWidget(QLabel("to"), 2, 2)
        g.addWidget(self.hu_max, 2, 3)
        row = QHBoxLayout()
        for b in (self.grow_button, self.shrink_button, self.undo_button):
            row.addWidget(b)
        g.addLayout(row, 3, 0, 1, 4)
        self.lesions = LesionRows(self.rename, self._lesion_selected)
        self.lesions.setMinimumHeight(110)
        self.target_button = QPushButton("Target at crosshair")
        self.target_button.setObjectName("target_button")
        self.target_button.clicked.connect(self.target_at_crosshair)
        self.review_button = QPushButton("Mark anatomy reviewed")
        self.review_button.setObjectName("review_button")
        self.review_button.setCheckable(True)
        self.review_button.clicked.connect(lambda on: self.set_reviewed(bool(on)))
        self.origin_label = QLabel()
        self.origin_label.setObjectName("anatomy_origin")
        self.origin_label.setWordWrap(True)
        self.save_button = QPushButton("Save .seg.nrrd...")
        self.save_button.setObjectName("save_seg_button")
        self.save_button.clicked.connect(self.ask_save)
        self.load_button = QPushButton("Load .seg.nrrd...")
        self.load_button.setObjectName("load_seg_button")
        self.load_button.clicked.connect(self.ask_load)

        content = QWidget()
        lay = QVBoxLayout(content)
        lay.addWidget(self.segment_button)
        lay.addWidget(self.status)
        lay.addWidget(tools)
        lay.addWidget(edit)
        lay.addWidget(QLabel("Lesions (double-click a name to rename):"))
        lay.addWidget(self.lesions, 1)
        lay.addWidget(self.target_button)
        lay.addWidget(self.review_button)
        lay.addWidget(self.origin_label)
        files = QHBoxLayout()
        files.addWidget(self.save_button)
        files.addWidget(self.load_button)
        lay.addLayout(files)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)


def _spin(name: str, lo: float, hi: float, value: float, suffix: str, step: float) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setObjectName(name)
    s.setRange(lo, hi)
    s.setValue(value)
    s.setSuffix(suffix)
    s.setSingleStep(step)
    s.setDecimals(1)
    return s
