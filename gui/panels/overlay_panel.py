"""Overlay controls: mode (blend / checkerboard / off), opacity, contours, W/L preset."""
from __future__ import annotations

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QCheckBox, QComboBox, QFormLayout, QSlider, QWidget

from gui.views.qimage import WL_PRESETS
from gui.views.us_view import MODES


class OverlayPanel(QWidget):
    mode_changed = pyqtSignal(str)
    opacity_changed = pyqtSignal(float)
    contours_toggled = pyqtSignal(bool)
    preset_chosen = pyqtSignal(str)

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
        self.opacity.setValue(40)
        self.opacity.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100.0))
        self.contours = QCheckBox("label outlines")
        self.contours.setChecked(True)
        self.contours.toggled.connect(self.contours_toggled)
        self.preset = QComboBox()
        self.preset.setObjectName("wl_preset")
        for name, (w, l) in WL_PRESETS.items():
            self.preset.addItem(f"{name} (W{w:.0f}/L{l:.0f})", name)
        self.preset.activated.connect(lambda i: self.preset_chosen.emit(self.preset.itemData(i)))
        form = QFormLayout(self)
        form.addRow("CT on US", self.mode_box)
        form.addRow("opacity", self.opacity)
        form.addRow("", self.contours)
        form.addRow("CT window", self.preset)

    def set_mode(self, mode: str) -> None:
        self.mode_box.setCurrentText(mode)
