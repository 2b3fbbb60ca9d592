"""What a CT slice view draws over the image: crosshair, probe and US plane, markers, text.

Functions of a :class:`~gui.views.slice_view.SliceView` and an active QPainter;
points are CT LPS mm mapped with the view's ``lps_to_widget``. The probe (see
:mod:`gui.views.probe_geometry`) is drawn as CustusX and the fusion
workstations draw it: the sector outline projected onto the slice (thin,
translucent), the line where the US plane cuts the slice (bright), and the
transducer face (thick, with a dot on the probe's marked side, when it is within
``FACE_NEAR_MM`` of the slice; thin and faint, as a projection, otherwise). Text sits on
translucent boxes inside the view (:mod:`gui.views.view_text`).
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPen, QPolygonF

from .display import NORMAL_AXIS
from .view_text import draw_label, text_size

# Screen-edge letters: (left, right, top, bottom) of the radiological display.
EDGE_LETTERS = {
    "axial": ("R", "L", "A", "P"),
    "coronal": ("R", "L", "S", "I"),
    "sagittal": ("A", "P", "S", "I"),
}
PROBE_COLOUR = QColor(60, 255, 120)
CROSSHAIR_COLOUR = QColor(255, 200, 0, 170)
TEXT_COLOUR = QColor(235, 235, 235)
LETTER_COLOUR = QColor(255, 220, 120)
MARKER_COLOUR = QColor(0, 255, 255)
FACE_NEAR_MM = 10.0      # the transducer face is drawn strong within this distance of the slice


def _poly(view, pts: np.ndarray) -> QPolygonF:
    return QPolygonF([QPointF(x, y) for x, y in view.lps_to_widget_many(pts)])


def draw_crosshair(p: QPainter, view, r: QRectF) -> None:
    c = view.lps_to_widget(view.cursor_lps)
    p.setPen(QPen(CROSSHAIR_COLOUR, 1, Qt.DashLine))
    p.drawLine(QPointF(r.left(), c.y()), QPointF(c.x() - 6, c.y()))
    p.drawLine(QPointF(c.x() + 6, c.y()), QPointF(r.right(), c.y()))
    p.drawLine(QPointF(c.x(), r.top()), QPointF(c.x(), c.y() - 6))
    p.drawLine(QPointF(c.x(), c.y() + 6), QPointF(c.x(), r.bottom()))


def draw_probe(p: QPainter, view) -> None:
    """The US sector projected onto the slice, its intersection line and the transducer face."""
    probe = view.probe
    if probe is None or view.display is None:
        return
    ax = NORMAL_AXIS[view.view]
    plane_mm = view.display.pixel_to_lps(view.view, view.slice_index)[ax, 3]
    p.save()
    faint = QColor(PROBE_COLOUR)
    faint.setAlpha(110)
    # Thin, solid and not antialiased: a dashed antialiased polygon costs milliseconds per view
    # in software, and the slice views redraw it several times a second while a sweep plays.
    p.setPen(QPen(faint, 1))
    p.setBrush(Qt.NoBrush)
    p.drawPolygon(_poly(view, probe.outline_ct()))
    p.setRenderHint(QPainter.Antialiasing)
    p.setPen(QPen(PROBE_COLOUR, 2.5))
    for a, b in probe.intersection(ax, plane_mm):
        p.drawLine(view.lps_to_widget(a), view.lps_to_widget(b))
    face = probe.face_ct()
    # Projected from far away, the footprint lands inside the body on this slice (a probe on
    # the right flank drawn mid-abdomen on a sagittal slice): full strength only near the slice.
    near = float(np.min(np.abs(face[:, ax] - plane_mm))) <= FACE_NEAR_MM
    colour = PROBE_COLOUR if near else faint
    pen = QPen(colour, 5 if near else 2.5)
    pen.setCapStyle(Qt.RoundCap)
    p.setPen(pen)
    p.drawPolyline(_poly(view, face))
    # The marked side is the last column (Image x points towards the marker).
    p.setPen(QPen(Qt.black, 1) if near else Qt.NoPen)
    p.setBrush(QColor(255, 255, 255) if near else faint)
    r = 3.5 if near else 2.5
    p.drawEllipse(view.lps_to_widget(face[-1]), r, r)
    p.restore()


def draw_markers(p: QPainter, view, bounds: QRectF, taken) -> None:
    """Markers within one slice of this plane: a cross and the label on a box (off the ``taken``
    boxes, see :func:`gui.views.view_text.draw_label`)."""
    if not view.markers:
        return
    ax = NORMAL_AXIS[view.view]
    half = view.display.grid.spacing[ax] * 0.75
    for lps, label in view.markers:
        if abs(lps[ax] - view.cursor_lps[ax]) > half:
            continue
        c = view.lps_to_widget(lps)
        p.setPen(QPen(MARKER_COLOUR, 2))
        p.drawLine(QPointF(c.x() - 5, c.y()), QPointF(c.x() + 5, c.y()))
        p.drawLine(QPointF(c.x(), c.y() - 5), QPointF(c.x(), c.y() + 5))
        draw_label(p, QPointF(c.x() + 7, c.y() - 5), label, MARKER_COLOUR, bounds,
                   align=Qt.AlignLeft | Qt.AlignBottom, avoid=taken)


def draw_names(p: QPainter, anchors, to_widget, bounds: QRectF, colour: QColor, taken=None,
               colour_of=None) -> None:
    """Target names beside their contours: ``anchors`` {name: (col_right, row, col_left)} in
    display pixels, ``to_widget(col, row)`` -> QPointF; right of the contour, or left of it
    when the right edge is near; off the ``taken`` boxes. ``colour_of(name)``: a QColor for
    that name instead of ``colour`` (None: ``colour``), e.g. lesions seen on the MR only."""
    default = colour
    for name, (c_right, row, c_left) in anchors.items():
        colour = (colour_of(name) if colour_of is not None else None) or default
        right = to_widget(c_right + 0.5, row)
        if right.x() + text_size(p, name).width() + 6 < bounds.right():
            draw_label(p, QPointF(right.x() + 4, right.y()), name, colour, bounds,
                       align=Qt.AlignLeft | Qt.AlignVCenter, avoid=taken)
        else:
            left = to_widget(c_left - 0.5, row)
            draw_label(p, QPointF(left.x() - 4, left.y()), name, colour, bounds,
                       align=Qt.AlignRight | Qt.AlignVCenter, avoid=taken)


def draw_legend(p: QPainter, bounds: QRectF, entries, taken=None) -> None:
    """A legend in the bottom-right corner: per entry ``(text, RGB, dotted)`` a short line sample
    (solid or dotted, as the outlines are drawn) and the text in that colour, stacked upwards
    and kept off the ``taken`` boxes (to which they are added)."""
    y = bounds.bottom()
    sample = 18.0
    pad = " " * 7                               # room for the line sample inside the text's box
    for text, rgb, dotted in reversed(list(entries)):
        colour = QColor(*rgb)
        box = draw_label(p, QPointF(bounds.right(), y), pad + text, colour, bounds,
                         align=Qt.AlignRight | Qt.AlignBottom, avoid=taken)
        pen = QPen(colour)
        pen.setWidthF(2.0)
        pen.setStyle(Qt.DotLine if dotted else Qt.SolidLine)
        p.setPen(pen)
        mid = box.center().y()
        p.drawLine(QPointF(box.left() + 4, mid), QPointF(box.left() + 4 + sample, mid))
        y = box.top()


def view_text_key(view) -> tuple:
    """What :func:`draw_view_text` draws depends on only this (the view caches its text layer)."""
    ax = NORMAL_AXIS[view.view]
    return (view.width(), view.height(), view.view, view.slice_index, view.n_slices,
            round(float(view.cursor_lps[ax]), 1), round(view.window), round(view.level))


def draw_view_text(p: QPainter, view) -> list:
    """Header (view, slice, position), W/L, and the four edge letters, each on a box.
    Returns [(text, box)] (names and markers are then placed off the boxes)."""
    f = QFont(view.font())
    f.setPointSize(9)
    p.setFont(f)
    bounds = QRectF(view.rect()).adjusted(2, 2, -2, -2)
    ax = NORMAL_AXIS[view.view]
    pos_mm = view.cursor_lps[ax]
    letter = "SPL"[2 - ax] if pos_mm >= 0 else "IAR"[2 - ax]
    header = f"{view.view.capitalize()}  {view.slice_index + 1}/{view.n_slices}  {abs(pos_mm):.1f} mm {letter}"
    head = draw_label(p, bounds.topLeft(), header, TEXT_COLOUR, bounds)
    wl_text = f"W {view.window:.0f}  L {view.level:.0f}"
    wl = draw_label(p, bounds.bottomLeft(), wl_text, TEXT_COLOUR, bounds, align=Qt.AlignLeft | Qt.AlignBottom)
    left, right, top, bottom = EDGE_LETTERS[view.view]
    mid_y, mid_x = bounds.center().y(), bounds.center().x()
    out = [(header, head), (wl_text, wl)]
    out.append((left, draw_label(p, QPointF(bounds.left(), mid_y), left, LETTER_COLOUR, bounds,
                                 align=Qt.AlignLeft | Qt.AlignVCenter)))
    out.append((right, draw_label(p, QPointF(bounds.right(), mid_y), right, LETTER_COLOUR, bounds,
                                  align=Qt.AlignRight | Qt.AlignVCenter)))
    out.append((top, draw_label(p, QPointF(mid_x, head.bottom() + 2), top, LETTER_COLOUR, bounds,
                                align=Qt.AlignHCenter | Qt.AlignTop)))
    # Above the W/L box when the view is too narrow for both on the bottom line.
    y = bounds.bottom() if mid_x - text_size(p, bottom).width() / 2 > wl.right() + 2 else wl.top() - 2
    out.append((bottom, draw_label(p, QPointF(mid_x, y), bottom, LETTER_COLOUR, bounds,
                                   align=Qt.AlignHCenter | Qt.AlignBottom)))
    return out
