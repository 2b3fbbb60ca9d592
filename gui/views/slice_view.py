"""One CT slice view (axial, coronal or sagittal) drawn from numpy as a QImage.

Mouse like Slicer: wheel = next/previous slice, left-drag = window/level,
right-drag = zoom, middle-drag = pan, left click = move the crosshair.
The crosshair position is an LPS point shared by the three views (the main
window links them through :attr:`SliceView.cursor_moved`).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QPainter, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

from .display import DisplayVolume
from .qimage import gray_to_qimage, label_lut, outline_rgba, rgba_to_qimage, window_level

# Screen-edge letters: (left, right, top, bottom) of the radiological display.
EDGE_LETTERS = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}
_CLICK_PX = 3  # a press/release closer than this is a click, not a drag


class SliceView(QWidget):
    """Shows ``display.slice(view, index)`` with W/L, label outlines and the crosshair."""

    cursor_moved = pyqtSignal(object)            # LPS (3,) ndarray
    window_level_changed = pyqtSignal(float, float)
    point_clicked = pyqtSignal(str, object)      # view name, LPS (3,) (for landmark picking)

    def __init__(self, view: str, parent=None):
        super().__init__(parent)
        self.view = view
        self.setObjectName(f"slice_{view}")
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setFocusPolicy(Qt.ClickFocus)
        self.display: Optional[DisplayVolume] = None
        self.cursor_lps = np.zeros(3)
        self.window, self.level = 400.0, 40.0
        self.show_labels = True
        self.zoom = 1.0
        self.pan = QPointF(0.0, 0.0)
        self._image = None
        self._outline = None
        self._lut = None
        self._drag_button = None
        self._drag_start = None
        self._drag_last = None
        self._dirty = True
        self.markers: List[Tuple[np.ndarray, str]] = []   # (LPS mm, label), e.g. CT landmarks

    # ------------------------------------------------------------ model
    def set_display(self, display: Optional[DisplayVolume]) -> None:
        self.display = display
        self._lut = None
        if display is not None:
            self._lut = label_lut(display.label_names, display.max_label)
            self.cursor_lps = display.center_lps()
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self._dirty = True
        self.update()

    def labels_changed(self) -> None:
        if self.display is not None:
            self._lut = label_lut(self.display.label_names, self.display.max_label)
        self._dirty = True
        self.update()

    def set_cursor(self, lps) -> None:
        lps = np.asarray(lps, float)
        old = self.slice_index
        self.cursor_lps = lps
        if self.slice_index != old:
            self._dirty = True
        self.update()

    def set_window_level(self, window: float, level: float) -> None:
        self.window, self.level = float(max(window, 1.0)), float(level)
        self._dirty = True
        self.update()

    def set_show_labels(self, on: bool) -> None:
        self.show_labels = bool(on)
        self.update()

    @property
    def slice_index(self) -> int:
        if self.display is None:
            return 0
        return self.display.slice_index(self.view, self.cursor_lps)

    @property
    def n_slices(self) -> int:
        return 0 if self.display is None else self.display.n_slices(self.view)

    def step_slice(self, delta: int) -> None:
        """Move the cursor by ``delta`` slices along this view's normal and tell the others."""
        if self.display is None:
            return
        g = self.display.grid
        xyz = g.lps_to_index(self.cursor_lps)
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[self.view]
        xyz[ax] = float(np.clip(np.rint(xyz[ax]) + delta, 0, g.size_xyz[ax] - 1))
        self.set_cursor(g.index_to_lps(xyz))
        self.cursor_moved.emit(self.cursor_lps.copy())

    # ------------------------------------------------------------ geometry
    def image_rect(self) -> QRectF:
        """Where the slice image is drawn, in widget pixels (aspect from the mm spacing)."""
        if self.display is None:
            return QRectF()
        img = self.display.slice(self.view, 0)
        rows, cols = img.shape
        sc, sr = self.display.pixel_spacing(self.view)
        w_mm, h_mm = cols * sc, rows * sr
        scale = min(self.width() / w_mm, self.height() / h_mm) * self.zoom
        w, h = w_mm * scale, h_mm * scale
        x0 = (self.width() - w) / 2.0 + self.pan.x()
        y0 = (self.height() - h) / 2.0 + self.pan.y()
        return QRectF(x0, y0, w, h)

    def widget_to_pixel(self, pos) -> Tuple[float, float]:
        """Widget point -> continuous (col, row) of the slice image (pixel centres at .5)."""
        r = self.image_rect()
        rows, cols = self.display.slice(self.view, 0).shape
        col = (pos.x() - r.left()) / r.width() * cols - 0.5
        row = (pos.y() - r.top()) / r.height() * rows - 0.5
        return col, row

    def pixel_to_widget(self, col: float, row: float) -> QPointF:
        r = self.image_rect()
        rows, cols = self.display.slice(self.view, 0).shape
        return QPointF(r.left() + (col + 0.5) / cols * r.width(),
                       r.top() + (row + 0.5) / rows * r.height())

    def widget_to_lps(self, pos) -> np.ndarray:
        col, row = self.widget_to_pixel(pos)
        m = self.display.pixel_to_lps(self.view, self.slice_index)
        return (m @ np.array([col, row, 0.0, 1.0]))[:3]

    def lps_to_widget(self, lps) -> QPointF:
        col, row = self.display.lps_to_pixel(self.view, lps)
        return self.pixel_to_widget(col, row)

    # ------------------------------------------------------------ drawing
    def _refresh_images(self) -> None:
        k = self.slice_index
        sl = self.display.slice(self.view, k)
        self._image = gray_to_qimage(window_level(sl, self.window, self.level))
        lab = self.display.slice(self.view, k, labels=True)
        self._outline = None
        if lab is not None and self._lut is not None and lab.any():
            self._outline = rgba_to_qimage(outline_rgba(lab, self._lut))
        self._dirty = False

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        if self.display is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, f"{self.view}: no CT loaded")
            p.end()
            return
        if self._dirty or self._image is None:
            self._refresh_images()
        r = self.image_rect()
        # Nearest-neighbour scaling: a radiologist wants to see voxels, not a blur.
        p.drawImage(r, self._image)
        if self.show_labels and self._outline is not None:
            p.drawImage(r, self._outline)
        self._draw_crosshair(p, r)
        self._draw_markers(p)
        self._draw_text(p)
        p.end()

    def _draw_crosshair(self, p: QPainter, r: QRectF) -> None:
        c = self.lps_to_widget(self.cursor_lps)
        p.setPen(QPen(QColor(255, 200, 0, 170), 1, Qt.DashLine))
        p.drawLine(QPointF(r.left(), c.y()), QPointF(c.x() - 6, c.y()))
        p.drawLine(QPointF(c.x() + 6, c.y()), QPointF(r.right(), c.y()))
        p.drawLine(QPointF(c.x(), r.top()), QPointF(c.x(), c.y() - 6))
        p.drawLine(QPointF(c.x(), c.y() + 6), QPointF(c.x(), r.bottom()))

    def set_markers(self, markers) -> None:
        self.markers = [(np.asarray(lps, float), str(label)) for lps, label in markers]
        self.update()

    def _draw_markers(self, p: QPainter) -> None:
        """Markers within one slice of this plane: a cross and the label."""
        if not self.markers:
            return
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[self.view]
        half = self.display.grid.spacing[ax] * 0.75
        p.setPen(QPen(QColor(0, 255, 255), 2))
        for lps, label in self.markers:
            if abs(lps[ax] - self.cursor_lps[ax]) > half:
                continue
            c = self.lps_to_widget(lps)
            p.drawLine(QPointF(c.x() - 5, c.y()), QPointF(c.x() + 5, c.y()))
            p.drawLine(QPointF(c.x(), c.y() - 5), QPointF(c.x(), c.y() + 5))
            p.drawText(QPointF(c.x() + 6, c.y() - 6), label)

    def _draw_text(self, p: QPainter) -> None:
        f = QFont(self.font())
        f.setPointSize(9)
        p.setFont(f)
        p.setPen(QColor(230, 230, 230))
        w, h = self.width(), self.height()
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[self.view]
        pos_mm = self.cursor_lps[ax]
        letter = "SPL"[2 - ax] if pos_mm >= 0 else "IAR"[2 - ax]
        p.drawText(6, 14, f"{self.view.capitalize()}  {self.slice_index + 1}/{self.n_slices}"
                          f"  {abs(pos_mm):.1f} mm {letter}")
        p.drawText(6, h - 6, f"W {self.window:.0f}  L {self.level:.0f}")
        left, right, top, bottom = EDGE_LETTERS[self.view]
        p.setPen(QColor(255, 220, 120))
        p.drawText(4, h // 2, left)
        p.drawText(w - 12, h // 2, right)
        p.drawText(w // 2 - 4, 34, top)   # below the header line
        p.drawText(w // 2 - 4, h - 20, bottom)

    # ------------------------------------------------------------ mouse
    def wheelEvent(self, event):  # noqa: N802
        steps = event.angleDelta().y() // 120 or (1 if event.angleDelta().y() > 0 else -1)
        self.step_slice(int(steps))
        event.accept()

    def mousePressEvent(self, event):  # noqa: N802
        self._drag_button = event.button()
        self._drag_start = self._drag_last = event.pos()
        event.accept()

    def mouseMoveEvent(self, event):  # noqa: N802
        if self._drag_button is None or self.display is None:
            return
        d = event.pos() - self._drag_last
        self._drag_last = event.pos()
        if self._drag_button == Qt.LeftButton:
            # Slicer: horizontal = window, vertical = level (drag down = brighter... we keep up = brighter).
            self.set_window_level(self.window + 2.0 * d.x(), self.level - 1.0 * d.y())
            self.window_level_changed.emit(self.window, self.level)
        elif self._drag_button == Qt.RightButton:
            self.zoom = float(np.clip(self.zoom * (1.0 - 0.01 * d.y()), 0.2, 20.0))
            self.update()
        elif self._drag_button == Qt.MiddleButton:
            self.pan += QPointF(d.x(), d.y())
            self.update()

    def mouseReleaseEvent(self, event):  # noqa: N802
        button, start = self._drag_button, self._drag_start
        self._drag_button = None
        if self.display is None or button != Qt.LeftButton or start is None:
            return
        if (event.pos() - start).manhattanLength() <= _CLICK_PX:
            lps = self.widget_to_lps(event.pos())
            self.set_cursor(lps)
            self.cursor_moved.emit(lps.copy())
            self.point_clicked.emit(self.view, lps.copy())
