"""The CT resliced in the ultrasound plane, beside the live or replayed ultrasound.

Fusion systems (GE V Nav, PercuNav, Virtual Navigator) put the CT cut in the
probe's plane next to the ultrasound image, at the same size and orientation,
updated with every frame. This view follows a :class:`~gui.views.us_view.USView`
(its ``source``): on each of its frames it shows the CT resliced linearly on the
overlay grid of that frame (:meth:`~gui.views.overlay.OverlayEngine.ct_plane`)
in the same rectangle the US view uses for the frame (same mm-per-pixel scale,
so the two images match pixel for pixel), the target and vessel outlines with
the target names, and the sector outline of the ultrasound. Without a
registration or valid tracking it says why, as the US view does.

``ct_plane`` (float32 HU ``[rows, cols]`` on the overlay grid) and
``grid_to_ct`` (4x4, overlay pixels -> CT LPS mm) are what is shown.

A second image on the CT's grid (the MR through ``mr_to_ct``, issue 18) can be
shown instead (:meth:`FusedCTView.set_second_image`, :meth:`FusedCTView.show_image`,
chosen in the MR dock): it is resliced on the same overlay grid, shown with its own
window (its normalised 0..1 range), and the title says which image it is.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from PyQt5.QtWidgets import QSizePolicy, QWidget

from . import us_graphics
from .plane_sampler import OUTSIDE_HU
from .probe_geometry import FanShape
from .qimage import gray_to_qimage, outline_rgba, rgba_to_qimage, window_level
from .structure_style import label_anchors, target_values
from .view_text import draw_label, draw_wrapped


class FusedCTView(QWidget):
    """CT in the current US frame's plane; mouse positions are reported as frame pixels."""

    pixel_clicked = pyqtSignal(float, float)
    hover_pixel = pyqtSignal(object)
    image_changed = pyqtSignal(str)         # the name of the image now shown ("CT", "MR")

    def __init__(self, source, parent=None):
        super().__init__(parent)
        self.setObjectName("fused_ct_view")
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMouseTracking(True)
        self.source = source
        self.window, self.level = 400.0, 40.0
        self.ct_plane: Optional[np.ndarray] = None
        self.grid_to_ct: Optional[np.ndarray] = None
        self.marks = []
        self._img = self._outline = None
        self._anchors = {}
        self._fan: Optional[FanShape] = None
        self.second_name: Optional[str] = None      # e.g. "MR": a second image on the CT grid
        self._second = None                         # its OverlayEngine (own plane sampler)
        self.shown = "CT"                           # "CT" or second_name
        source.frame_updated.connect(self.refresh)

    # ------------------------------------------------------------ model
    def set_window_level(self, window: float, level: float) -> None:
        self.window, self.level = float(max(window, 1.0)), float(level)
        self._build()
        self.update()

    def set_marks(self, marks) -> None:
        marks = list(marks)
        if marks != self.marks:
            self.marks = marks
            self.update()

    def set_second_image(self, volume, name: str) -> None:
        """A second image on the CT's grid (values 0..1: black..white), e.g. the MR; None removes it."""
        from .overlay import OverlayEngine
        if volume is None:
            self.second_name, self._second, self.shown = None, None, "CT"
        else:
            self._second = OverlayEngine(interpolation="linear")
            self._second.set_data(volume, None)
            self.second_name = str(name)
        self.refresh()
        self.image_changed.emit(self.shown_name)

    def show_image(self, name: str) -> None:
        """Show the CT ("CT") or the second image (its name) in the US plane."""
        if name != "CT" and name != self.second_name:
            have = "CT" + (f", {self.second_name}" if self.second_name else "")
            raise ValueError(f"no image '{name}' to show (have {have})")
        self.shown = name
        self.refresh()
        self.image_changed.emit(self.shown_name)

    @property
    def showing_second(self) -> bool:
        return self.shown != "CT" and self._second is not None

    def refresh(self) -> None:
        """Reslice the CT in the source's current frame plane (called on every shown frame;
        skipped while this view is hidden, redone when it is shown)."""
        if not self.isVisible():
            self._stale = True
            return
        self._stale = False
        ov = self.source.overlay
        if ov.visible and ov.ct is not None:
            self.grid_to_ct = ov.grid_to_ct
            engine = self.source.engine
            # The overlay's own plane when it was resliced as this view wants it (one reslice a frame).
            if self.showing_second:
                self.ct_plane = self._second.ct_plane(ov.grid_to_ct, ov.ct.shape)
            else:
                self.ct_plane = ov.ct if ov.interpolation == engine.interpolation else \
                    engine.ct_plane(ov.grid_to_ct, ov.ct.shape)
        else:
            self.ct_plane = self.grid_to_ct = None
        shape = self.source.frame_shape
        fan_mask = self.source.fan_mask
        if shape is not None and (self._fan is None or self._fan.shape != shape or self._fan.mask is not fan_mask):
            usable = fan_mask if fan_mask is not None and fan_mask.shape == shape else None
            self._fan = FanShape.from_mask(shape, usable)
        self._build()
        self.update()

    def _build(self) -> None:
        self._img = self._outline = None
        self._anchors = {}
        if self.ct_plane is None:
            return
        if self.showing_second:
            gray = window_level(self.ct_plane, 1.0, 0.5)       # the second image's 0..1 range
        else:
            gray = window_level(self.ct_plane, self.window, self.level)
        gray[self.ct_plane <= OUTSIDE_HU] = 0
        self._img = gray_to_qimage(gray)
        src = self.source
        lab = src.overlay.labels
        if src.show_contours and lab is not None and src._lut is not None and lab.any():
            self._outline = rgba_to_qimage(outline_rgba(lab, src._lut, getattr(src, "_dotted", ())))
            if src.outline_alpha.get("target", 0) > 0:
                self._anchors = label_anchors(lab, target_values(src._labels.names))

    @property
    def shown_name(self) -> str:
        return self.second_name if self.showing_second else "CT"

    def showEvent(self, event):  # noqa: N802
        if getattr(self, "_stale", True):
            self.refresh()

    # ------------------------------------------------------------ geometry (the US view's)
    def frame_rect(self) -> QRectF:
        """Same size as the frame in the US view (same mm per pixel), same place in the widget."""
        shape = self.source.frame_shape
        if shape is None:
            return QRectF()
        src_rect = self.source.frame_rect()
        scale = src_rect.width() / (shape[1] * self.source.pixel_spacing[0])
        return us_graphics.fit_frame(self, shape, self.source.pixel_spacing,
                                     us_graphics.hint_area_height(self.source), scale=scale)

    def pixel_to_widget(self, col: float, row: float) -> QPointF:
        r = self.frame_rect()
        rows, cols = self.source.frame_shape
        return QPointF(r.left() + (col + 0.5) / cols * r.width(), r.top() + (row + 0.5) / rows * r.height())

    def _pixel_at(self, pos):
        shape = self.source.frame_shape
        if shape is None:
            return None
        r = self.frame_rect()
        rows, cols = shape
        col = (pos.x() - r.left()) / r.width() * cols - 0.5
        row = (pos.y() - r.top()) / r.height() * rows - 0.5
        return (col, row) if -0.5 <= col <= cols - 0.5 and -0.5 <= row <= rows - 0.5 else None

    def mouseReleaseEvent(self, event):  # noqa: N802
        px = self._pixel_at(event.pos()) if event.button() == Qt.LeftButton else None
        if px is not None:
            self.pixel_clicked.emit(*px)

    def mouseMoveEvent(self, event):  # noqa: N802
        self.hover_pixel.emit(self._pixel_at(event.pos()))

    def leaveEvent(self, event):  # noqa: N802
        self.hover_pixel.emit(None)

    # ------------------------------------------------------------ drawing
    def paintEvent(self, event):  # noqa: N802
        self.drawn_text = []
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        f = QFont(self.font())
        f.setPointSize(10)
        p.setFont(f)
        bounds = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        src = self.source
        r = self.frame_rect()
        if self._img is not None and src.frame_shape is not None:
            rows, cols = src.frame_shape
            s = src.overlay.step
            grid_rect = QRectF(r.left(), r.top(), r.width() * self.ct_plane.shape[1] * s / cols,
                               r.height() * self.ct_plane.shape[0] * s / rows)
            p.save()
            p.setClipRect(r)
            p.setRenderHint(QPainter.SmoothPixmapTransform, True)
            p.drawImage(grid_rect, self._img)
            p.setRenderHint(QPainter.SmoothPixmapTransform, False)
            if self._outline is not None:
                p.drawImage(grid_rect, self._outline)
            p.restore()
            self._draw_fan(p)
            self._draw_names(p, bounds)
            us_graphics._draw_marks(p, self)
            draw_wrapped(p, QRectF(bounds.left(), bounds.top(), bounds.width() / 2 - 2, 0),
                         f"{self.shown_name} in US plane", QColor(235, 235, 235), bounds)
            wl = "1-99.5 % range" if self.showing_second else f"W {self.window:.0f}  L {self.level:.0f}"
            draw_label(p, bounds.bottomLeft(), wl, QColor(235, 235, 235), bounds, align=Qt.AlignLeft | Qt.AlignBottom)
            draw_wrapped(p, QRectF(bounds.center().x() + 2, bounds.top(), bounds.width() / 2 - 2, 0),
                         src.overlay.quality, us_graphics.OK_COLOUR, bounds, align=Qt.AlignRight)
        else:
            reason = src.reason_text if src.frame_shape is not None else "no sweep loaded"
            if reason in ("", "overlay switched off"):
                reason = "no CT plane for this frame"
            text = f"{self.shown_name} in the US plane: {reason.replace(': overlay off', '')}"
            draw_wrapped(p, QRectF(bounds.left(), bounds.top() + 0.3 * bounds.height(), bounds.width(), 0), text,
                         us_graphics.WARN_COLOUR, bounds, align=Qt.AlignHCenter)
        p.end()

    def _draw_fan(self, p: QPainter) -> None:
        """The ultrasound sector's outline: where the CT beside the US image has US data."""
        if self._fan is None or self._fan.mask is None:
            return
        p.save()
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(QColor(60, 255, 120, 150), 1, Qt.DashLine))
        r = self.frame_rect()
        rows, cols = self._fan.shape
        pts = self._fan.outline
        xs = r.left() + (pts[:, 0] + 0.5) / cols * r.width()
        ys = r.top() + (pts[:, 1] + 0.5) / rows * r.height()
        p.drawPolygon(QPolygonF([QPointF(x, y) for x, y in zip(xs, ys)]))
        p.restore()

    def _draw_names(self, p: QPainter, bounds: QRectF) -> None:
        s = self.source.overlay.step
        c0 = (s - 1) / 2.0
        for name, (c_right, row, _c_left) in self._anchors.items():
            pt = self.pixel_to_widget(c_right * s + c0 + s / 2.0, row * s + c0)
            draw_label(p, QPointF(pt.x() + 4, pt.y()), name, us_graphics.HINT_COLOUR, bounds,
                       align=Qt.AlignLeft | Qt.AlignVCenter)
