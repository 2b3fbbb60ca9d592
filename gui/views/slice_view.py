"""One CT slice view (axial, coronal or sagittal) drawn from numpy as a QImage.

Mouse like Slicer (:mod:`gui.views.slice_mouse`): wheel = slice, left-drag = window/level,
right-drag = zoom, middle-drag = pan, right double-click = fit, left click = crosshair; a
shaky click (less than ``CLICK_PX`` of motion) is still a click. The crosshair position is
an LPS point shared by the three views (the main window links them through
:attr:`SliceView.cursor_moved`).

The slice is resampled for display onto square pixels in physical mm,
linearly by default (:mod:`gui.views.slice_resample`), so a CT with 5 mm
slices is smooth in coronal and sagittal and shown at its true aspect; the
label outlines are computed on the same grid (thin lines). The probe, when
set (:meth:`set_probe`), is drawn by :mod:`gui.views.slice_graphics`.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QPainter, QPixmap
from PyQt5.QtWidgets import QSizePolicy, QWidget

from . import slice_graphics as gfx
from .display import NORMAL_AXIS, DisplayVolume
from .probe_geometry import ProbeGeometry
from .qimage import LESION_COLOUR, MR_ONLY_COLOUR, gray_to_qimage, outline_rgba, rgba_to_qimage, window_level
from .slice_mouse import CLICK_PX, SliceMouseMixin  # noqa: F401 (CLICK_PX: part of this module's API)
from .slice_resample import INTERPOLATIONS, display_shape, resample
from .structure_style import CT_ALPHA, LESION_LEGEND, label_anchors, mr_only_values, outline_lut, target_values


class SliceView(SliceMouseMixin, QWidget):
    """Shows ``display.slice(view, index)`` with W/L, label outlines, crosshair and probe."""

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
        self.interpolation = "linear"
        self.outline_alpha = dict(CT_ALPHA)
        self.zoom = 1.0
        self.pan = QPointF(0.0, 0.0)
        self.probe: Optional[ProbeGeometry] = None
        self.markers: List[Tuple[np.ndarray, str]] = []   # (LPS mm, label), e.g. CT landmarks
        self._image = self._outline = None
        self._scaled = {}             # 'image' / 'outline' -> (QImage, size, scaled QPixmap)
        self._text_layer = None       # (key, QPixmap, [(text, box)]) of the fixed texts
        self._shown = None            # the display-resolution slice (float32 or raw) last drawn
        self._anchors = {}
        self._lut = None
        self._dotted = ()             # label values drawn with a dotted outline (seen on MR only)
        self._init_mouse()
        self._dirty = True
        self.drawn_text = []

    # ------------------------------------------------------------ model
    def set_display(self, display: Optional[DisplayVolume]) -> None:
        self.display = display
        self._make_lut()
        if display is not None:
            self.cursor_lps = display.center_lps()
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self._dirty = True
        self.update()

    def _make_lut(self) -> None:
        d = self.display
        self._lut = None if d is None else outline_lut(d.label_names, d.max_label, self.outline_alpha, d.mr_only)
        self._dotted = () if d is None else mr_only_values(d.label_names, d.mr_only)

    def labels_changed(self) -> None:
        self._make_lut()
        self._dirty = True
        self.update()

    def set_outline_alpha(self, alpha: dict) -> None:
        """Outline strength per structure kind (see :mod:`gui.views.structure_style`)."""
        self.outline_alpha = dict(alpha)
        self.labels_changed()

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
        self._dirty = True
        self.update()

    def set_interpolation(self, interpolation: str) -> None:
        """'linear' (default: smooth, as a workstation) or 'nearest' (voxels as blocks)."""
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}")
        self.interpolation = interpolation
        self._dirty = True
        self.update()

    def set_probe(self, probe: Optional[ProbeGeometry]) -> None:
        """The US frame plane to draw on this slice (None = none)."""
        if probe is None and self.probe is None:
            return
        self.probe = probe
        self.update()

    def set_markers(self, markers) -> None:
        self.markers = [(np.asarray(lps, float), str(label)) for lps, label in markers]
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
        ax = NORMAL_AXIS[self.view]
        xyz[ax] = float(np.clip(np.rint(xyz[ax]) + delta, 0, g.size_xyz[ax] - 1))
        self.set_cursor(g.index_to_lps(xyz))
        self.cursor_moved.emit(self.cursor_lps.copy())

    def ensure_visible(self, lps, margin: float = 0.2) -> None:
        """Pan (when zoomed in) so that ``lps`` is not within ``margin`` of the view's edge."""
        if self.display is None or self.zoom <= 1.0:
            return
        c = self.lps_to_widget(lps)
        w, h = self.width(), self.height()
        if margin * w <= c.x() <= (1 - margin) * w and margin * h <= c.y() <= (1 - margin) * h:
            return
        self.pan += QPointF(w / 2.0 - c.x(), h / 2.0 - c.y())
        self.update()

    # ------------------------------------------------------------ geometry
    def _native_shape(self) -> Tuple[int, int]:
        """(rows, cols) of this view's native slice (sizes of the display grid)."""
        x, y, z = self.display.grid.size_xyz
        return {"axial": (y, x), "coronal": (z, x), "sagittal": (z, y)}[self.view]

    def image_rect(self) -> QRectF:
        """Where the slice image is drawn, in widget pixels (aspect from the mm spacing)."""
        if self.display is None:
            return QRectF()
        rows, cols = self._native_shape()
        sc, sr = self.display.pixel_spacing(self.view)
        w_mm, h_mm = cols * sc, rows * sr
        scale = min(self.width() / w_mm, self.height() / h_mm) * self.zoom
        w, h = w_mm * scale, h_mm * scale
        x0 = (self.width() - w) / 2.0 + self.pan.x()
        y0 = (self.height() - h) / 2.0 + self.pan.y()
        return QRectF(x0, y0, w, h)

    def widget_to_pixel(self, pos) -> Tuple[float, float]:
        """Widget point -> continuous (col, row) of the native slice (pixel centres at integers)."""
        r = self.image_rect()
        rows, cols = self._native_shape()
        return ((pos.x() - r.left()) / r.width() * cols - 0.5, (pos.y() - r.top()) / r.height() * rows - 0.5)

    def pixel_to_widget(self, col: float, row: float) -> QPointF:
        r = self.image_rect()
        rows, cols = self._native_shape()
        return QPointF(r.left() + (col + 0.5) / cols * r.width(), r.top() + (row + 0.5) / rows * r.height())

    def widget_to_lps(self, pos) -> np.ndarray:
        col, row = self.widget_to_pixel(pos)
        m = self.display.pixel_to_lps(self.view, self.slice_index)
        return (m @ np.array([col, row, 0.0, 1.0]))[:3]

    def lps_to_widget(self, lps) -> QPointF:
        col, row = self.display.lps_to_pixel(self.view, lps)
        return self.pixel_to_widget(col, row)

    def lps_to_widget_many(self, pts) -> np.ndarray:
        """LPS points [n, 3] -> widget (x, y) [n, 2] (one rect computation for all: polylines)."""
        pts = np.atleast_2d(np.asarray(pts, float))
        xyz = self.display.grid.lps_to_index(pts)
        nz = self.display.grid.shape_zyx[0]
        col, row = {"axial": (xyz[:, 0], xyz[:, 1]), "coronal": (xyz[:, 0], nz - 1 - xyz[:, 2]),
                    "sagittal": (xyz[:, 1], nz - 1 - xyz[:, 2])}[self.view]
        r = self.image_rect()
        rows, cols = self._native_shape()
        return np.c_[r.left() + (col + 0.5) / cols * r.width(), r.top() + (row + 0.5) / rows * r.height()]

    # ------------------------------------------------------------ drawing
    def displayed_slice(self) -> np.ndarray:
        """The slice as drawn: on square display pixels, interpolated as set ([rows, cols])."""
        if self._dirty or self._shown is None:
            self._refresh_images()
        return self._shown

    def _refresh_images(self) -> None:
        k = self.slice_index
        sl = self.display.slice(self.view, k)
        shape = display_shape(sl.shape, self.display.pixel_spacing(self.view))
        self._shown = resample(sl, shape, self.interpolation)
        self._image = gray_to_qimage(window_level(self._shown, self.window, self.level))
        lab = self.display.slice(self.view, k, labels=True) if self.show_labels else None
        self._outline, self._anchors = None, {}
        if lab is not None and self._lut is not None and lab.any():
            lab = resample(lab, shape, "nearest")
            self._outline = rgba_to_qimage(outline_rgba(lab, self._lut, self._dotted))
            if self.outline_alpha.get("target", 0) > 0:
                self._anchors = label_anchors(lab, target_values(self.display.label_names))
        self._dirty = False

    def _draw_view_text(self, p: QPainter) -> list:
        """Header, W/L and edge letters from a cached transparent layer (redrawn when their text
        or the view's size changes): the boxes they take."""
        key = gfx.view_text_key(self)
        if self._text_layer is None or self._text_layer[0] != key:
            pix = QPixmap(self.size())
            pix.fill(Qt.transparent)
            q = QPainter(pix)
            q.setFont(self.font())
            drawn = gfx.draw_view_text(q, self)
            q.end()
            self._text_layer = (key, pix, drawn)
        _key, pix, drawn = self._text_layer
        p.drawPixmap(0, 0, pix)
        self.drawn_text.extend(drawn)
        return [box for _text, box in drawn]

    def _draw_scaled(self, p: QPainter, r: QRectF, key: str, image, smooth: bool) -> None:
        """Draw ``image`` into ``r``, scaled once per (image, size) and then only blitted: while
        the views follow a playing sweep the crosshair and probe move on every frame, the slice
        image only when the slice changes (software scaling costs milliseconds per view)."""
        size = (int(round(r.width())), int(round(r.height())))
        if size[0] > 2 * self.width() + 64 or size[1] > 2 * self.height() + 64:    # zoomed far in
            p.setRenderHint(QPainter.SmoothPixmapTransform, smooth)
            p.drawImage(r, image)
            p.setRenderHint(QPainter.SmoothPixmapTransform, False)
            return
        cache = self._scaled.get(key)
        if cache is None or cache[0] is not image or cache[1] != size:
            mode = Qt.SmoothTransformation if smooth else Qt.FastTransformation
            cache = (image, size, QPixmap.fromImage(image.scaled(size[0], size[1], Qt.IgnoreAspectRatio, mode)))
            self._scaled[key] = cache
        p.drawPixmap(QPointF(r.left(), r.top()), cache[2])

    def _display_to_widget(self, col: float, row: float) -> QPointF:
        r = self.image_rect()
        rows, cols = self._shown.shape
        return QPointF(r.left() + (col + 0.5) / cols * r.width(), r.top() + (row + 0.5) / rows * r.height())

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        self.drawn_text = []          # (text, box) of every text drawn (view_text fills it)
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
        bounds = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        # Linear: Qt's bilinear filter does the last step to screen pixels; nearest shows blocks.
        self._draw_scaled(p, r, "image", self._image, self.interpolation == "linear")
        if self.show_labels and self._outline is not None:
            self._draw_scaled(p, r, "outline", self._outline, False)
        gfx.draw_crosshair(p, self, r)
        gfx.draw_probe(p, self)
        taken = self._draw_view_text(p)          # fixed text first; names and markers move off it
        if self.show_labels and self._outline is not None:
            mr_only = self.display.mr_only
            gfx.draw_names(p, self._anchors, self._display_to_widget, bounds, QColor(*LESION_COLOUR), taken,
                           colour_of=lambda name: QColor(*MR_ONLY_COLOUR) if name in mr_only else None)
            if mr_only:
                gfx.draw_legend(p, bounds, LESION_LEGEND, taken)
        gfx.draw_markers(p, self, bounds, taken)
        p.end()
