"""Painting the ultrasound view: frame, overlay, target names, status text and steering hints.

Functions of a :class:`~gui.views.us_view.USView`. Every text is wrapped to
the width it has and drawn on a translucent box (:mod:`gui.views.view_text`),
so "lesion_4: 40 mm out of plane, tilt/slide towards the patient's left"
keeps its direction at any window width. The steering hints get a reserved
band under the frame, sized for the case's longest possible hint at the
current width, so the frame does not jump while a sweep plays.
"""
from __future__ import annotations

from typing import Tuple

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen

from .view_text import draw_label, draw_wrapped, wrapped_height

MARGIN = 4.0
MAX_HINTS = 4
HINT_COLOUR = QColor(255, 230, 0)
OK_COLOUR = QColor(120, 255, 120)
WARN_COLOUR = QColor(255, 170, 40)
BAD_COLOUR = QColor(255, 90, 60)
TEXT_COLOUR = QColor(235, 235, 235)
COMPARE_KEY = "X"


def _font(view, point_size: int = 10, bold: bool = False) -> QFont:
    f = QFont(view.font())
    f.setPointSize(point_size)
    f.setBold(bold)
    return f


def max_hints(view) -> int:
    """Hint lines shown: MAX_HINTS, one fewer in a short view (the frame keeps its size)."""
    return MAX_HINTS if view.height() >= 450 else MAX_HINTS - 1


def hint_area_height(view) -> float:
    """Height reserved under the frame for the steering hints: MAX_HINTS lines of the longest
    hint this case can produce, wrapped at the view's width (0 without lesions or registration)."""
    lesions = view.engine.lesions
    if not lesions or view.registration is None:
        return 0.0
    key = (view.width(), view.height(), id(lesions), len(lesions), view.font().key())
    cached = getattr(view, "_hint_height", None)
    if cached is not None and cached[0] == key:       # asked several times per paint: font metrics are slow
        return cached[1]
    h = _hint_height(view, lesions)
    view._hint_height = (key, h)
    return h


def _hint_height(view, lesions) -> float:
    longest = max(lesions, key=lambda l: len(l.name)).name
    template = f"{longest}: 888 mm out of plane, tilt/slide towards the patient's right"
    fm = QFontMetricsF(_font(view))
    n = min(len(lesions), max_hints(view))
    return n * (wrapped_height(fm, view.width() - 2 * MARGIN, template) + 2) + MARGIN


def fit_frame(view, shape: Tuple[int, int], pixel_spacing, reserve_bottom: float, scale: float = None) -> QRectF:
    """The frame's rect in ``view``: true aspect, centred horizontally, top-aligned, above a
    ``reserve_bottom`` band; ``scale`` (px per mm) forces a size (the fused view matches the US view)."""
    rows, cols = shape
    sc, sr = pixel_spacing
    w_mm, h_mm = cols * sc, rows * sr
    avail_h = max(1.0, view.height() - reserve_bottom - MARGIN)
    fit = min(view.width() / w_mm, avail_h / h_mm)
    s = fit if scale is None else min(scale, fit)
    w, h = w_mm * s, h_mm * s
    return QRectF((view.width() - w) / 2.0, MARGIN, w, h)


def paint_us_view(view) -> None:
    view.drawn_text = []
    p = QPainter(view)
    p.fillRect(view.rect(), Qt.black)
    p.setFont(_font(view))
    bounds = QRectF(view.rect()).adjusted(2, 2, -2, -2)
    if view._frame_img is None:
        p.setPen(QColor(200, 200, 200))
        p.drawText(view.rect(), Qt.AlignCenter | Qt.TextWordWrap, "Ultrasound: no sweep loaded")
        p.end()
        return
    r = view.frame_rect()
    p.drawImage(r, view._frame_img)
    ov = view.overlay
    if view.overlay_visible and view._ct_img is not None:
        rows, cols = view._frame.shape
        s = ov.step
        # The overlay grid may extend a little past the frame (rounding up); scale per frame px.
        ov_rect = QRectF(r.left(), r.top(), r.width() * ov.ct.shape[1] * s / cols,
                         r.height() * ov.ct.shape[0] * s / rows)
        p.save()
        p.setClipRect(r)
        p.drawImage(ov_rect, view._ct_img)      # unsmoothed: per frame, and faint under the B-mode
        if view._outline_img is not None:
            p.drawImage(ov_rect, view._outline_img)
        p.restore()
        _draw_names(p, view, bounds)
    _draw_marks(p, view)
    _draw_status(p, view, r, bounds)
    _draw_hints(p, view, r, bounds)
    p.end()


def _draw_names(p: QPainter, view, bounds: QRectF) -> None:
    """Target names beside their contours (overlay grid pixel -> frame pixel -> widget)."""
    s = view.overlay.step
    c0 = (s - 1) / 2.0
    for name, (c_right, row, c_left) in view._anchors.items():
        right = view.pixel_to_widget(c_right * s + c0 + s / 2.0, row * s + c0)
        if right.x() + 60 < bounds.right():
            draw_label(p, QPointF(right.x() + 4, right.y()), name, HINT_COLOUR, bounds,
                       align=Qt.AlignLeft | Qt.AlignVCenter)
        else:
            left = view.pixel_to_widget(c_left * s + c0 - s / 2.0, row * s + c0)
            draw_label(p, QPointF(left.x() - 4, left.y()), name, HINT_COLOUR, bounds,
                       align=Qt.AlignRight | Qt.AlignVCenter)


def _draw_marks(p: QPainter, view) -> None:
    p.save()
    p.setRenderHint(QPainter.Antialiasing)
    for (col, row), _label in view.marks:
        c = view.pixel_to_widget(col, row)
        p.setPen(QPen(QColor(255, 200, 0), 1.5))
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            p.drawLine(c + QPointF(3 * dx, 3 * dy), c + QPointF(9 * dx, 9 * dy))
    p.restore()


def _draw_status(p: QPainter, view, r: QRectF, bounds: QRectF) -> None:
    """Frame / time / tracking top-left, overlay state and quality top-right (over the black
    corners of the fan), a big wrapped banner when the overlay is off for a reason."""
    half = QRectF(bounds.left(), bounds.top(), bounds.width() / 2 - 2, 0)
    # No-break spaces: each item (frame, time, tracking state) stays whole on one line.
    track = "tracking\u00a0OK" if view.tracking_ok else "tracking\u00a0INVALID"
    draw_wrapped(p, half, f"Frame\u00a0{view.frame_index + 1}/{view.n_frames}  t\u00a0{view.timestamp:.2f} s  {track}",
                 TEXT_COLOUR if view.tracking_ok else BAD_COLOUR, bounds)
    right = QRectF(bounds.center().x() + 2, bounds.top(), bounds.width() / 2 - 2, 0)
    ov = view.overlay
    if view.compare:
        text, colour = f"plain ultrasound (release {COMPARE_KEY} for the CT overlay)", TEXT_COLOUR
    elif view.overlay_visible:
        text, colour = f"Overlay ({view.mode}) | {ov.quality}", OK_COLOUR
    else:
        text, colour = view.reason_text, WARN_COLOUR
    draw_wrapped(p, right, text, colour, bounds, align=Qt.AlignRight)
    if not view.overlay_visible and not view.compare and view.reason_text:
        p.save()
        p.setFont(_font(view, 13, bold=True))
        area = QRectF(bounds.left(), r.top() + 0.3 * r.height(), bounds.width(), 0)
        draw_wrapped(p, area, view.reason_text, WARN_COLOUR, bounds, align=Qt.AlignHCenter)
        p.restore()


def _draw_hints(p: QPainter, view, r: QRectF, bounds: QRectF) -> None:
    """One wrapped line per lesion under the frame (in the image first, then nearest first)."""
    msgs = view.overlay.messages if view.overlay.visible else []
    if not msgs:
        return
    n = max_hints(view)
    shown = msgs[:n] if len(msgs) <= n else msgs[:n - 1]
    if len(msgs) > len(shown):
        shown = shown + [f"... and {len(msgs) - len(shown)} more lesions out of plane"]
    y = r.bottom() + MARGIN
    for msg in shown:
        box = draw_wrapped(p, QRectF(bounds.left(), y, bounds.width(), 0), msg, HINT_COLOUR, bounds)
        y = box.bottom() + 2
