"""The ultrasound view: the current sweep frame with the CT overlay.

The frame is drawn from numpy (QImage) with its true pixel aspect. The
overlay (resliced CT, blended or as a checkerboard, plus label outlines) is
shown only when a registration exists AND the frame's tracking is valid;
otherwise the view states why. An overlay is never shown without its
registration quality (top-right corner).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QPainter
from PyQt5.QtWidgets import QSizePolicy, QWidget

from .overlay import FrameOverlay, OverlayEngine
from .plane_sampler import OUTSIDE_HU
from .qimage import gray_to_qimage, label_lut, outline_rgba, rgba_to_qimage, window_level

MODES = ("blend", "checker", "off")


class USView(QWidget):
    pixel_clicked = pyqtSignal(float, float)     # (col, row) of the frame pixel under a left click

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("us_view")
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.engine = OverlayEngine()
        self.registration = None
        self.mode = "blend"
        self.opacity = 0.4
        self.show_contours = True
        self.ct_window, self.ct_level = 400.0, 40.0
        self.checker_px = 48                 # checkerboard square, frame pixels
        self.pixel_spacing: Tuple[float, float] = (1.0, 1.0)   # (col, row) mm
        self.fan_mask: Optional[np.ndarray] = None
        self.frame_index = -1
        self.n_frames = 0
        self.timestamp = 0.0
        self.tracking_ok = False
        self.overlay = FrameOverlay(False, "no sweep loaded")
        self._frame_img = None
        self._ct_img = None
        self._outline_img = None
        self._lut = None
        self._frame = None
        self._i2r = None

    # ------------------------------------------------------------ model
    def set_ct(self, ct, labels, prepared=None) -> None:
        """``prepared``: ``OverlayEngine.prepare(ct, labels)`` computed off the GUI thread."""
        self.engine.set_data(ct, labels, prepared)
        self._lut = None if labels is None else label_lut(labels.names, int(labels.array.max()))
        self._recompute()

    def set_registration(self, registration) -> None:
        self.registration = registration
        self._recompute()

    def set_sweep_geometry(self, pixel_spacing, fan_mask) -> None:
        self.pixel_spacing = tuple(pixel_spacing) if pixel_spacing else (1.0, 1.0)
        self.fan_mask = fan_mask

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"overlay mode must be one of {MODES}")
        self.mode = mode
        self._build_overlay_images()
        self.update()

    def set_ct_window(self, window: float, level: float) -> None:
        """Window/level (HU) of the overlaid CT."""
        self.ct_window, self.ct_level = float(max(window, 1.0)), float(level)
        self._build_overlay_images()
        self.update()

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(np.clip(opacity, 0.0, 1.0))
        self._build_overlay_images()
        self.update()

    def set_frame(self, frame: np.ndarray, index: int, n_frames: int, timestamp: float,
                  image_to_reference: Optional[np.ndarray], tracking_reason: str = "") -> None:
        """Show frame ``index`` (uint8 [rows, cols]); ``image_to_reference`` None = INVALID.

        ``tracking_reason`` (live mode) says why tracking is not usable, e.g. "tracking
        stale: no update for 350 ms"; it replaces the generic INVALID text.
        """
        self._tracking_reason = tracking_reason
        self._frame = frame
        self.frame_index, self.n_frames, self.timestamp = int(index), int(n_frames), float(timestamp)
        self._i2r = image_to_reference
        self.tracking_ok = image_to_reference is not None
        self._frame_img = gray_to_qimage(frame)
        self._recompute()

    def clear(self) -> None:
        self._frame = self._frame_img = None
        self.frame_index, self.n_frames = -1, 0
        self.overlay = FrameOverlay(False, "no sweep loaded")
        self._ct_img = self._outline_img = None
        self.update()

    # ------------------------------------------------------------ state for tests / status bar
    @property
    def overlay_visible(self) -> bool:
        return bool(self.overlay.visible and self.mode != "off")

    @property
    def reason_text(self) -> str:
        if self.overlay.visible and self.mode == "off":
            return "overlay switched off"
        return self.overlay.reason

    @property
    def lesion_messages(self) -> List[str]:
        return list(self.overlay.messages)

    # ------------------------------------------------------------ computing
    def _recompute(self) -> None:
        if self._frame is None:
            self.update()
            return
        self.overlay = self.engine.compute(self._frame.shape, self._i2r, self.registration)
        reason = getattr(self, "_tracking_reason", "")
        if self._i2r is None and reason and not self.overlay.visible:
            self.overlay = dataclasses.replace(self.overlay, reason=f"{reason}: overlay off")
        self._build_overlay_images()
        self.update()

    def _build_overlay_images(self) -> None:
        ov = self.overlay
        self._ct_img = self._outline_img = None
        if not ov.visible or self.mode == "off":
            return
        gray = window_level(ov.ct, self.ct_window, self.ct_level)
        rgba = np.empty(gray.shape + (4,), np.uint8)
        # CT tinted slightly warm so it can be told apart from the grey ultrasound.
        rgba[..., 0] = gray
        rgba[..., 1] = (gray * 0.85).astype(np.uint8)
        rgba[..., 2] = (gray * 0.6).astype(np.uint8)
        inside = ov.ct > OUTSIDE_HU         # outside the CT volume stays clear (air inside is drawn)
        fan = None
        if self.fan_mask is not None:
            s = ov.step
            # Sample the fan at the overlay pixel centres (same sampling as the reslice).
            o = (s - 1) // 2
            fan = np.zeros(gray.shape, bool)
            sub = self.fan_mask[o::s, o::s][:gray.shape[0], :gray.shape[1]]
            fan[:sub.shape[0], :sub.shape[1]] = sub
            inside &= fan
        if self.mode == "blend":
            alpha = np.where(inside, int(round(255 * self.opacity)), 0)
        else:
            alpha = np.where(inside & self._checker(gray.shape, max(1, self.checker_px // ov.step)), 255, 0)
        rgba[..., 3] = alpha.astype(np.uint8)
        self._ct_img = rgba_to_qimage(rgba)
        if self.show_contours and ov.labels is not None and self._lut is not None and ov.labels.any():
            outline = outline_rgba(ov.labels, self._lut)
            if self.fan_mask is not None:
                # Outlines only where the ultrasound has data: outside the fan they only clutter.
                outline[~fan] = 0
            self._outline_img = rgba_to_qimage(outline)

    def _checker(self, shape, square: int) -> np.ndarray:
        """bool [rows, cols] checkerboard of ``square``-pixel squares (cached: same every frame)."""
        key = (tuple(shape), square)
        if getattr(self, "_checker_key", None) != key:
            rr, cc = np.indices(shape)
            self._checker_mask = ((rr // square) + (cc // square)) % 2 == 0
            self._checker_key = key
        return self._checker_mask

    # ------------------------------------------------------------ drawing
    def frame_rect(self) -> QRectF:
        """Where the frame is drawn (widget pixels), true aspect from the pixel spacing."""
        if self._frame is None:
            return QRectF()
        rows, cols = self._frame.shape
        sc, sr = self.pixel_spacing
        w_mm, h_mm = cols * sc, rows * sr
        top = 40.0
        avail_h = max(1.0, self.height() - top - 16.0 * (1 + min(len(self.overlay.messages), 4)))
        scale = min(self.width() / w_mm, avail_h / h_mm)
        w, h = w_mm * scale, h_mm * scale
        return QRectF((self.width() - w) / 2.0, top, w, h)

    def pixel_to_widget(self, col: float, row: float) -> QPointF:
        """Frame pixel (col, row) (centre of pixel = integer) -> widget point."""
        r = self.frame_rect()
        rows, cols = self._frame.shape
        return QPointF(r.left() + (col + 0.5) / cols * r.width(), r.top() + (row + 0.5) / rows * r.height())

    def widget_to_pixel(self, pos) -> Tuple[float, float]:
        r = self.frame_rect()
        rows, cols = self._frame.shape
        return ((pos.x() - r.left()) / r.width() * cols - 0.5, (pos.y() - r.top()) / r.height() * rows - 0.5)

    def mouseReleaseEvent(self, event):  # noqa: N802
        if self._frame is None or event.button() != Qt.LeftButton:
            return
        col, row = self.widget_to_pixel(event.pos())
        rows, cols = self._frame.shape
        if -0.5 <= col <= cols - 0.5 and -0.5 <= row <= rows - 0.5:
            self.pixel_clicked.emit(col, row)

    def paintEvent(self, event):  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        f = QFont(self.font())
        f.setPointSize(10)
        p.setFont(f)
        if self._frame_img is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "Ultrasound: no sweep loaded")
            p.end()
            return
        r = self.frame_rect()
        p.drawImage(r, self._frame_img)
        ov = self.overlay
        if self.overlay_visible and self._ct_img is not None:
            rows, cols = self._frame.shape
            s = ov.step
            # The overlay grid may extend a little past the frame (rounding up); scale per frame px.
            ov_rect = QRectF(r.left(), r.top(), r.width() * ov.ct.shape[1] * s / cols,
                             r.height() * ov.ct.shape[0] * s / rows)
            p.save()
            p.setClipRect(r)
            p.drawImage(ov_rect, self._ct_img)
            if self._outline_img is not None:
                p.drawImage(ov_rect, self._outline_img)
            p.restore()
        self._draw_text(p, r)
        p.end()

    def _draw_text(self, p: QPainter, r: QRectF) -> None:
        track = "tracking OK" if self.tracking_ok else "tracking INVALID"
        p.setPen(QColor(230, 230, 230) if self.tracking_ok else QColor(255, 90, 60))
        p.drawText(6, 16, f"Frame {self.frame_index + 1}/{self.n_frames}   t = {self.timestamp:.2f} s   {track}")
        ov = self.overlay
        if self.overlay_visible:
            p.setPen(QColor(120, 255, 120))
            text = f"Overlay ({self.mode}) | {ov.quality}"
        else:
            p.setPen(QColor(255, 170, 40))
            text = self.reason_text
        p.drawText(6, 34, text)
        if not self.overlay_visible:
            big = QFont(p.font())
            big.setPointSize(14)
            big.setBold(True)
            p.save()
            p.setFont(big)
            p.setPen(QColor(255, 170, 40))
            p.drawText(QRectF(r.left(), r.top() + 10, r.width(), 30), Qt.AlignHCenter, self.reason_text)
            p.restore()
        y = r.bottom() + 16
        p.setPen(QColor(255, 230, 0))
        shown = ov.messages[:4] if len(ov.messages) <= 4 else ov.messages[:3]
        for msg in shown:
            p.drawText(6, int(y), msg)
            y += 16
        if len(ov.messages) > len(shown):
            p.drawText(6, int(y), f"... and {len(ov.messages) - len(shown)} more lesions out of plane")
