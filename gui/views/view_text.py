"""Text on images: on a translucent dark box, kept inside the view, wrapped, never clipped.

Orientation letters, window/level, landmark names and steering hints drawn
straight onto an image vanish over bright anatomy and get cut at the view's
edge. Every text on the 2D views goes through these helpers: the text sits on
a rounded box of black at ``BOX_ALPHA``, the box is moved back inside
``bounds`` when it would leave it, and long text wraps at word boundaries to
the width available (a line that still does not fit is broken anywhere), never between a
number and its unit.
Positions and sizes are widget pixels. A view that has a ``drawn_text`` list gets
every text it drew appended as ``(text, box)`` (the view clears it per paint):
that is how the tests check that nothing is clipped.
"""
from __future__ import annotations

import re
from typing import Optional

from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFontMetricsF, QPainter

BOX_ALPHA = 165          # 0..255: dark enough for white text over bone, light enough to see through
PAD_X, PAD_Y = 4.0, 1.5  # box padding around the text
WRAP = Qt.TextWordWrap
NBSP = "\u00a0"
_UNIT = re.compile(r"(\d) (mm|cm|s|ms|HU|%|deg|px)\b")


def keep_units(text: str) -> str:
    """``text`` with a no-break space between a number and its unit ("0.5 mm"), so a wrapped
    line never ends in a number whose unit starts the next line."""
    return _UNIT.sub(lambda m: m.group(1) + NBSP + m.group(2), text)


def text_size(p: QPainter, text: str) -> QRectF:
    """Size of one unwrapped line of ``text`` with the painter's font, padding included."""
    fm = QFontMetricsF(p.font())
    return QRectF(0, 0, fm.horizontalAdvance(text) + 2 * PAD_X, fm.height() + 2 * PAD_Y)


def wrapped_height(p_or_fm, width: float, text: str) -> float:
    """Height (padding included) of ``text`` wrapped to ``width`` px."""
    fm = p_or_fm if isinstance(p_or_fm, QFontMetricsF) else QFontMetricsF(p_or_fm.font())
    r = fm.boundingRect(QRectF(0, 0, max(width - 2 * PAD_X, 10.0), 1e6), int(WRAP), keep_units(text))
    return r.height() + 2 * PAD_Y


def keep_inside(box: QRectF, bounds: QRectF) -> QRectF:
    """``box`` moved (not resized) so that it lies inside ``bounds`` as far as it fits."""
    b = QRectF(box)
    if b.right() > bounds.right():
        b.moveRight(bounds.right())
    if b.left() < bounds.left():
        b.moveLeft(bounds.left())
    if b.bottom() > bounds.bottom():
        b.moveBottom(bounds.bottom())
    if b.top() < bounds.top():
        b.moveTop(bounds.top())
    return b


def _log(p: QPainter, text: str, box: QRectF) -> None:
    log = getattr(p.device(), "drawn_text", None)
    if log is not None:
        log.append((text, QRectF(box)))


def draw_box(p: QPainter, box: QRectF, alpha: int = BOX_ALPHA) -> None:
    p.save()
    p.setPen(Qt.NoPen)
    p.setBrush(QColor(0, 0, 0, alpha))
    p.drawRoundedRect(box, 3, 3)
    p.restore()


def _free_spot(box: QRectF, bounds: QRectF, avoid) -> QRectF:
    """``box`` or the nearest vertical shift of it (inside ``bounds``) that overlaps nothing in
    ``avoid``; ``box`` itself when there is no free spot within four box heights."""
    if not avoid:
        return box
    h = box.height() / 2 + 1
    for k in (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8):
        b = keep_inside(box.translated(0, k * h), bounds)
        if not any(b.intersects(a) for a in avoid):
            return b
    return box


def draw_label(p: QPainter, anchor: QPointF, text: str, colour: QColor, bounds: QRectF, *,
               align: int = Qt.AlignLeft | Qt.AlignTop, avoid=None) -> QRectF:
    """One line of ``text`` on a box whose corner ``align`` sits at ``anchor``; kept inside
    ``bounds`` (when wider than ``bounds`` it is wrapped by :func:`draw_wrapped`). With
    ``avoid`` (a list of boxes already taken) the box moves up or down off them, and is added
    to the list. Returns the box."""
    size = text_size(p, text)
    if size.width() > bounds.width():
        top = anchor.y() - (size.height() if align & Qt.AlignBottom else 0)
        return draw_wrapped(p, QRectF(bounds.left(), top, bounds.width(), 0), text, colour, bounds, avoid=avoid)
    x, y = anchor.x(), anchor.y()
    if align & Qt.AlignRight:
        x -= size.width()
    elif align & Qt.AlignHCenter:
        x -= size.width() / 2
    if align & Qt.AlignBottom:
        y -= size.height()
    elif align & Qt.AlignVCenter:
        y -= size.height() / 2
    box = _free_spot(keep_inside(QRectF(x, y, size.width(), size.height()), bounds), bounds, avoid)
    if avoid is not None:
        avoid.append(box)
    draw_box(p, box)
    p.setPen(colour)
    p.drawText(box.adjusted(PAD_X, PAD_Y, -PAD_X, -PAD_Y), int(Qt.AlignLeft | Qt.AlignVCenter), text)
    _log(p, text, box)
    return box


def draw_wrapped(p: QPainter, area: QRectF, text: str, colour: QColor, bounds: Optional[QRectF] = None, *,
                 align: int = Qt.AlignLeft, shrink: bool = True, avoid=None) -> QRectF:
    """``text`` wrapped to ``area``'s width from ``area``'s top on a box; the box is as tall as
    the wrapped text (``area``'s height is ignored) and, with ``shrink``, only as wide as the
    longest line. Kept inside ``bounds`` (default: ``area``), off the ``avoid`` boxes (see
    :func:`draw_label`). Returns the box."""
    shown = keep_units(text)
    fm = QFontMetricsF(p.font())
    inner_w = max(area.width() - 2 * PAD_X, 10.0)
    r = fm.boundingRect(QRectF(0, 0, inner_w, 1e6), int(WRAP | align), shown)
    w = (min(r.width(), inner_w) if shrink else inner_w) + 2 * PAD_X
    h = r.height() + 2 * PAD_Y
    x = area.left()
    if align & Qt.AlignHCenter:
        x = area.left() + (area.width() - w) / 2
    elif align & Qt.AlignRight:
        x = area.right() - w
    box = QRectF(x, area.top(), w, h)
    if bounds is not None:
        box = _free_spot(keep_inside(box, bounds), bounds, avoid)
    if avoid is not None:
        avoid.append(box)
    draw_box(p, box)
    p.setPen(colour)
    p.drawText(box.adjusted(PAD_X, PAD_Y, -PAD_X, -PAD_Y), int(WRAP | align), shown)
    _log(p, text, box)
    return box
