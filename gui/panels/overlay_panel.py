"""Overlay and CT display controls: CT-on-US mode and opacity, which outlines, CT window/level,
interpolation.

The window/level boxes always show the values the CT views use (a W/L drag in
a slice view updates them through :meth:`OverlayPanel.set_window_level`); the
preset box shows the matching preset or "custom". Outlines are chosen per
kind of structure (:mod:`gui.views.structure_style`): lesions (named next to
their contour) and vessels on, other organs off on the ultrasound by default.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel, QSlider,
                             QWidget)

from gui.views.qimage import WL_PRESETS
from gui.views.us_view import DEFAULT_OPACITY, MODES

OUTLINE_KINDS = (("target", "lesions (named)"), ("vessel", "vessels"), ("organ", "other organs"))


class OverlayPanel(QWidget):
    mode_changed = pyqtSignal(str)
    opacity_changed = pyqtSignal(float)
    contours_toggled = pyqtSignal(bool)
    outline_kinds_changed = pyqtSignal(dict)      # {'target': bool, 'vessel': bool, 'organ': bool}
    preset_chosen = pyqtSignal(str)
    window_level_edited = pyqtSignal(float, float)
    interpolation_changed = pyqtSignal(str)       # 'linear' | 'nearest'

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("overlay_panel")
        self.mode_box = QComboBox()
        self.mode_box.setObjectName("overlay_mode")
        for m in MODES:
            self.mode_box.addItem(m)
        self.mode_box.currentTextChanged.connect(self.mode_changed)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setObjectName("overlay_opacity")
        self.opacity.setRange(0, 100)
        self.opacity.setValue(int(round(DEFAULT_OPACITY * 100)))
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        self.contours = QCheckBox("outlines")
        self.contours.setObjectName("overlay_outlines")
        self.contours.setChecked(True)
        self.contours.toggled.connect(self.contours_toggled)
        self.kind_boxes = {}
        kinds = QHBoxLayout()
        kinds.setContentsMargins(0, 0, 0, 0)
        for kind, text in OUTLINE_KINDS:
            box = QCheckBox(text)
            box.setObjectName(f"outline_{kind}")
            box.setChecked(kind != "organ")
            box.toggled.connect(lambda _on: self.outline_kinds_changed.emit(self.outline_kinds()))
            self.kind_boxes[kind] = box
            kinds.addWidget(box)
        kinds.addStretch(1)
        self.preset = QComboBox()
        self.preset.setObjectName("wl_preset")
        for name, (w, l) in WL_PRESETS.items():
            self.preset.addItem(f"{name} (W{w:.0f}/L{l:.0f})", name)
        self.preset.addItem("custom", "")
        self.preset.activated.connect(self._preset_activated)
        self.window_box = self._spin("ct_window", 1, 4000)
        self.level_box = self._spin("ct_level", -1000, 3000)
        wl = QHBoxLayout()
        wl.setContentsMargins(0, 0, 0, 0)
        for text, box in (("W", self.window_box), ("L", self.level_box)):
            wl.addWidget(QLabel(text))
            wl.addWidget(box, 1)
        self.smooth = QCheckBox("linear interpolation (smooth)")
        self.smooth.setObjectName("ct_linear")
        self.smooth.setChecked(True)
        self.smooth.toggled.connect(lambda on: self.interpolation_changed.emit("linear" if on else "nearest"))
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.addRow("CT on US", self.mode_box)
        form.addRow("opacity", self.opacity)
        form.addRow(self.contours, kinds)
        form.addRow("CT window", self.preset)
        form.addRow("", wl)
        form.addRow("", self.smooth)
        self.set_window_level(*WL_PRESETS["abdomen"])

    def _spin(self, name: str, lo: float, hi: float) -> QDoubleSpinBox:
        s = QDoubleSpinBox()
        s.setObjectName(name)
        s.setRange(lo, hi)
        s.setDecimals(0)
        s.setKeyboardTracking(False)
        s.valueChanged.connect(lambda _v: self.window_level_edited.emit(self.window_box.value(),
                                                                        self.level_box.value()))
        return s

    def outline_kinds(self) -> dict:
        return {k: b.isChecked() for k, b in self.kind_boxes.items()}

    def _preset_activated(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name:
            self.preset_chosen.emit(name)

    def set_mode(self, mode: str) -> None:
        self.mode_box.setCurrentText(mode)

    def set_window_level(self, window: float, level: float) -> None:
        """Show the CT views' window/level (HU) without emitting an edit."""
        for box, v in ((self.window_box, window), (self.level_box, level)):
            box.blockSignals(True)
            box.setValue(round(float(v)))
            box.blockSignals(False)
        match = [i for i, (w, l) in enumerate(WL_PRESETS.values()) if abs(w - window) < 0.5 and abs(l - level) < 0.5]
        self.preset.setCurrentIndex(match[0] if match else self.preset.count() - 1)
