"""The ultrasound view: the current sweep frame with the CT overlay.

The frame is drawn from numpy (QImage) with its true pixel aspect. The
overlay (resliced CT, blended or as a checkerboard, plus outlines) is shown
only when a registration exists AND the frame's tracking is valid; otherwise
the view states why. An overlay is never shown without its registration
quality. What keeps the B-mode readable (issue: twenty unlabelled outlines at
40 % buried it): the blend defaults to ``DEFAULT_OPACITY``, only targets
(named beside their contour) and vessels are outlined by default
(:mod:`gui.views.structure_style`), and :meth:`set_compare` (held key in the
window) shows the plain ultrasound while it is held. Text wraps inside the
view on translucent boxes (:mod:`gui.views.us_graphics`).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Tuple

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtWidgets import QSizePolicy, QWidget

from planner.anatomy.mr_lesions import mr_only_lesions

from . import us_graphics as gfx
from .overlay import FrameOverlay, OverlayEngine
from .plane_sampler import OUTSIDE_HU
from .qimage import gray_to_qimage, outline_rgba, rgba_to_qimage, window_level
from .structure_style import US_ALPHA, label_anchors, mr_only_values, outline_lut, target_values

MODES = ("blend", "checker", "off")
# Chosen on screenshots of the demo at 0, 0.15, 0.25, 0.35 and 0.4 (the old default): from
# 0.25 up the uniform CT grey lifts the B-mode's blacks and the speckle, vessels and lesion
# lose contrast; at 0.15 the B-mode reads as before and the CT still shows where bone, vessels
# and organ borders are. The full CT is beside it, in the fused CT view.
DEFAULT_OPACITY = 0.15


class USView(QWidget):
    pixel_clicked = pyqtSignal(float, float)     # (col, row) of the frame pixel under a left click
    hover_pixel = pyqtSignal(object)             # (col, row) under the mouse, or None when it left the frame
    frame_updated = pyqtSignal()                 # a new frame (and its overlay) is shown

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("us_view")
        self.setMinimumSize(200, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMouseTracking(True)
        self.engine = OverlayEngine()
        self.registration = None
        self.mode = "blend"
        self.opacity = DEFAULT_OPACITY
        self.show_contours = True
        self.outline_alpha = dict(US_ALPHA)
        self.compare = False                 # True while the compare key is held: plain US
        # CT plane interpolation: 'nearest' is the fast path; the window asks for linear when the
        # fused CT view is shown, which then reuses this plane instead of reslicing again.
        self.overlay_interpolation = "nearest"
        self.ct_window, self.ct_level = 400.0, 40.0
        self.checker_px = 48                 # checkerboard square, frame pixels
        self.pixel_spacing: Tuple[float, float] = (1.0, 1.0)   # (col, row) mm
        self.fan_mask: Optional[np.ndarray] = None
        self.frame_index = -1
        self.n_frames = 0
        self.timestamp = 0.0
        self.tracking_ok = False
        self.overlay = FrameOverlay(False, "no sweep loaded")
        self.marks: List[Tuple[Tuple[float, float], str]] = []   # cursor marks, frame px
        self._tracking_reason = ""
        self._frame_img = self._ct_img = self._outline_img = None
        self._anchors = {}
        self._labels = None
        self._lut = None
        self._dotted = ()             # label values drawn dotted (lesions seen on the MR only)
        self._frame = None
        self._i2r = None

    # ------------------------------------------------------------ model
    def set_ct(self, ct, labels, prepared=None) -> None:
        """``prepared``: ``OverlayEngine.prepare(ct, labels)`` computed off the GUI thread."""
        self.engine.set_data(ct, labels, prepared)
        self._labels = labels
        self._make_lut()
        self._recompute()

    def _make_lut(self) -> None:
        lab = self._labels
        mr_only = mr_only_lesions(lab)
        self._lut = None if lab is None else outline_lut(lab.names, int(lab.array.max()), self.outline_alpha, mr_only)
        self._dotted = () if lab is None else mr_only_values(lab.names, mr_only)

    def set_outline_alpha(self, alpha: dict) -> None:
        """Outline strength per kind ('target', 'vessel', 'organ'; 0 = not drawn)."""
        self.outline_alpha = dict(alpha)
        self._make_lut()
        self._build_overlay_images()
        self.update()

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

    def set_contours(self, on: bool) -> None:
        self.show_contours = bool(on)
        self._build_overlay_images()
        self.update()

    def set_compare(self, on: bool) -> None:
        """While ``on``: the plain ultrasound, no CT, no outlines (the overlay state is kept)."""
        if bool(on) != self.compare:
            self.compare = bool(on)
            self.update()

    def set_marks(self, marks) -> None:
        """Frame-pixel marks ``[((col, row), label)]`` (e.g. the point the CT views follow)."""
        marks = list(marks)
        if marks != self.marks:
            self.marks = marks
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
        self.frame_updated.emit()

    # ------------------------------------------------------------ state for tests / status bar
    @property
    def frame_shape(self) -> Optional[Tuple[int, int]]:
        return None if self._frame is None else tuple(self._frame.shape)

    @property
    def image_to_reference(self) -> Optional[np.ndarray]:
        return self._i2r

    @property
    def overlay_visible(self) -> bool:
        return bool(self.overlay.visible and self.mode != "off" and not self.compare)

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
        self.overlay = self.engine.compute(self._frame.shape, self._i2r, self.registration,
                                           self.overlay_interpolation)
        if self._i2r is None and self._tracking_reason and not self.overlay.visible:
            self.overlay = dataclasses.replace(self.overlay, reason=f"{self._tracking_reason}: overlay off")
        self._build_overlay_images()
        self.update()
        self.frame_updated.emit()

    def _fan_on_grid(self, shape, step: int) -> Optional[np.ndarray]:
        """The fan mask sampled at the overlay pixel centres (the reslice's sampling)."""
        if self.fan_mask is None:
            return None
        o = (step - 1) // 2
        fan = np.zeros(shape, bool)
        sub = self.fan_mask[o::step, o::step][:shape[0], :shape[1]]
        fan[:sub.shape[0], :sub.shape[1]] = sub
        return fan

    def _build_overlay_images(self) -> None:
        ov = self.overlay
        self._ct_img = self._outline_img = None
        self._anchors = {}
        if not ov.visible or self.mode == "off":
            return
        gray = window_level(ov.ct, self.ct_window, self.ct_level)
        rgba = np.empty(gray.shape + (4,), np.uint8)
        # CT tinted slightly warm so it can be told apart from the grey ultrasound.
        rgba[..., 0] = gray
        rgba[..., 1] = (gray * 0.85).astype(np.uint8)
        rgba[..., 2] = (gray * 0.6).astype(np.uint8)
        inside = ov.ct > OUTSIDE_HU         # outside the CT volume stays clear (air inside is drawn)
        fan = self._fan_on_grid(gray.shape, ov.step)
        if fan is not None:
            inside &= fan
        if self.mode == "blend":
            alpha = np.where(inside, int(round(255 * self.opacity)), 0)
        else:
            alpha = np.where(inside & self._checker(gray.shape, max(1, self.checker_px // ov.step)), 255, 0)
        rgba[..., 3] = alpha.astype(np.uint8)
        self._ct_img = rgba_to_qimage(rgba)
        if self.show_contours and ov.labels is not None and self._lut is not None and ov.labels.any():
            lab = ov.labels if fan is None else np.where(fan, ov.labels, 0)   # outlines only in the fan
            outline = outline_rgba(lab, self._lut, self._dotted)
            self._outline_img = rgba_to_qimage(outline)
            if self.outline_alpha.get("target", 0) > 0:
                self._anchors = label_anchors(lab, target_values(self._labels.names))

    def _checker(self, shape, square: int) -> np.ndarray:
        """bool [rows, cols] checkerboard of ``square``-pixel squares (cached: same every frame)."""
        key = (tuple(shape), square)
        if getattr(self, "_checker_key", None) != key:
            rr, cc = np.indices(shape)
            self._checker_mask = ((rr // square) + (cc // square)) % 2 == 0
            self._checker_key = key
        return self._checker_mask

    # ------------------------------------------------------------ geometry
    def frame_rect(self) -> QRectF:
        """Where the frame is drawn (widget pixels), true aspect from the pixel spacing, above
        the steering hints' reserved area."""
        if self._frame is None:
            return QRectF()
        return gfx.fit_frame(self, self._frame.shape, self.pixel_spacing, gfx.hint_area_height(self))

    def pixel_to_widget(self, col: float, row: float) -> QPointF:
        """Frame pixel (col, row) (centre of pixel = integer) -> widget point."""
        r = self.frame_rect()
        rows, cols = self._frame.shape
        return QPointF(r.left() + (col + 0.5) / cols * r.width(), r.top() + (row + 0.5) / rows * r.height())

    def widget_to_pixel(self, pos) -> Tuple[float, float]:
        r = self.frame_rect()
        rows, cols = self._frame.shape
        return ((pos.x() - r.left()) / r.width() * cols - 0.5, (pos.y() - r.top()) / r.height() * rows - 0.5)

    def _pixel_at(self, pos) -> Optional[Tuple[float, float]]:
        if self._frame is None:
            return None
        col, row = self.widget_to_pixel(pos)
        rows, cols = self._frame.shape
        return (col, row) if -0.5 <= col <= cols - 0.5 and -0.5 <= row <= rows - 0.5 else None

    # ------------------------------------------------------------ mouse
    def mouseReleaseEvent(self, event):  # noqa: N802
        if event.button() != Qt.LeftButton:
            return
        px = self._pixel_at(event.pos())
        if px is not None:
            self.pixel_clicked.emit(*px)

    def mouseMoveEvent(self, event):  # noqa: N802
        self.hover_pixel.emit(self._pixel_at(event.pos()))

    def leaveEvent(self, event):  # noqa: N802
        self.hover_pixel.emit(None)

    # ------------------------------------------------------------ drawing
    def paintEvent(self, event):  # noqa: N802
        gfx.paint_us_view(self)
