"""The tracked needle drawn over the US view, the fused CT view and the CT slice views.

A transparent child of each view (like :mod:`.path_overlay`), fed the
:class:`~planner.guidance.guidance_state.GuidanceState` to show. It draws:

- the needle (pink): on the ultrasound (and the CT in its plane) only its
  part within ``IN_PLANE_MM`` of the image plane, plus a ringed cross where the
  needle line crosses the plane when it does not lie in it, and the tip's
  projection with its off-plane distance; on a slice view the shaft projected
  (bold within ``IN_PLANE_MM`` of the slice, faint elsewhere) and the tip;
- its projected path (dashed: light pink, amber on caution, red on breach);
- the planned path it is guided along (thin cyan dashes, red if unsafe);
- the warning: a red border (breach) or amber border (caution) around the
  view and, on the ultrasound and fused views, the message naming the
  structure and distance; "PLANNED PATH UNSAFE (least-risk only)" while
  guiding along a least-risk path; "NEEDLE HIDDEN: why" when there is no
  valid needle.

A state whose warning level or validity changes is drawn at once on every
view (within the frame it came with); otherwise slice views redraw at most
every ``SLICE_INTERVAL_MS`` (three slice repaints per tracked frame would
halve the US frame rate). Geometry: :mod:`gui.views.needle_geometry`.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PyQt5.QtCore import QEvent, QPointF, QRectF, Qt, QTimer
from PyQt5.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPen
from PyQt5.QtWidgets import QWidget

from gui.core.guidance_text import UNSAFE_PATH_TEXT, alert, hidden_text
from gui.views.needle_geometry import IN_PLANE_MM, needle_line, plane_crossing, runs, segment, to_image
from gui.views.view_text import PAD_X, PAD_Y, draw_label, keep_units

NEEDLE_COLOUR = QColor(255, 60, 200)      # apart from the lesion (yellow), vessels (blue), probe (green), plan (cyan)
PLAN_COLOUR = QColor(0, 220, 255)
AHEAD_OK = QColor(255, 150, 225)          # the projected path without a warning: the needle's colour, lighter
BREACH_COLOUR = QColor(255, 40, 40)
CAUTION_COLOUR = QColor(255, 170, 0)
HIDDEN_COLOUR = QColor(255, 170, 40)
LEVEL_COLOUR = {"breach": BREACH_COLOUR, "caution": CAUTION_COLOUR}
BORDER_PX = {"breach": 6, "caution": 4}
SLICE_INTERVAL_MS = 100
_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


class NeedleOverlay(QWidget):
    """Transparent child of a view: kind 'us' (USView), 'fused' (FusedCTView) or 'slice' (SliceView)."""

    def __init__(self, view, window, guidance, kind: str):
        super().__init__(view)
        self.setObjectName(f"needle_overlay_{kind}" + (f"_{view.view}" if kind == "slice" else ""))
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WA_NoSystemBackground)
        self.view, self.window, self.guidance, self.kind = view, window, guidance, kind
        self.state = None
        self.level: Optional[str] = None      # 'breach' | 'caution' | None: what the border shows
        self.message = ""                     # the warning text shown (tests read it)
        self.drawn_text = []                  # (text, box) drawn by the last paint (gui.views.view_text)
        self._key = None
        self._last_paint_request = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._repaint)
        view.installEventFilter(self)
        self.setGeometry(view.rect())
        self.show()
        self.raise_()

    def eventFilter(self, obj, ev):  # noqa: N802
        if obj is self.view and ev.type() == QEvent.Resize:
            self.setGeometry(self.view.rect())
        return False

    # ------------------------------------------------------------ state
    def set_state(self, state) -> None:
        a = alert(state)
        self.state = state
        self.level = None if a is None else a.level
        self.message = "" if a is None else a.text
        key = (self.level, None if state is None else (state.valid, state.planned_path_safe))
        urgent = key != self._key
        self._key = key
        if urgent or self.kind != "slice":
            self._repaint()
            return
        wait = SLICE_INTERVAL_MS - (time.perf_counter() - self._last_paint_request) * 1e3
        if wait <= 0:
            self._repaint()
        elif not self._timer.isActive():
            self._timer.start(int(wait) + 1)

    def _repaint(self) -> None:
        self._timer.stop()
        self._last_paint_request = time.perf_counter()
        self.update()

    # ------------------------------------------------------------ geometry
    def _image_to_ct(self) -> Optional[np.ndarray]:
        guide = self.guidance.guide
        i2r = self.window.us_view.image_to_reference
        if guide is None or i2r is None or self.window.us_view.frame_shape is None:
            return None
        return guide.reference_to_ct @ i2r

    def _project(self, pts: np.ndarray):
        """(widget xy [n, 2], distance from the shown plane mm [n]) or None."""
        v = self.view
        if self.kind == "slice":
            if v.display is None:
                return None
            ax = _AXIS[v.view]
            plane = v.display.pixel_to_lps(v.view, v.slice_index)[ax, 3]
            return v.lps_to_widget_many(pts), pts[:, ax] - plane
        m = self._image_to_ct()
        if m is None:
            return None
        px, dist = to_image(pts, m)
        return np.array([[q.x(), q.y()] for q in (v.pixel_to_widget(c, r) for c, r in px)]), dist

    def _image_rect(self) -> QRectF:
        return self.view.image_rect() if self.kind == "slice" else self.view.frame_rect()

    # ------------------------------------------------------------ drawing
    def paintEvent(self, event):  # noqa: N802
        state, guide = self.state, self.guidance.guide
        self.drawn_text = []
        if state is None and guide is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.save()
        p.setClipRect(self._image_rect())
        if guide is not None:
            self._paint_plan(p, guide.path)
        line = needle_line(state)
        if line is not None:
            self._paint_needle(p, line, state)
        p.restore()
        self._paint_border_and_text(p, state)
        p.end()

    def _polyline(self, p: QPainter, xy: np.ndarray, mask: np.ndarray, pen: QPen) -> None:
        p.setPen(pen)
        for a, b in runs(mask):
            for i in range(a + 1, b):
                p.drawLine(QPointF(*xy[i - 1]), QPointF(*xy[i]))

    def _paint_plan(self, p: QPainter, path) -> None:
        proj = self._project(segment(path.entry_ct, path.target_ct, 40))
        if proj is None:
            return
        xy, dist = proj
        colour = PLAN_COLOUR if path.safe else BREACH_COLOUR
        near = np.abs(dist) <= IN_PLANE_MM
        self._polyline(p, xy, near, QPen(colour, 1.5, Qt.DashLine))
        if self.kind == "slice":
            faint = QColor(colour)
            faint.setAlpha(90)
            self._polyline(p, xy, ~near, QPen(faint, 1.0, Qt.DotLine))
        if near[-1]:
            p.setPen(QPen(colour, 1.5))
            p.drawEllipse(QPointF(*xy[-1]), 6, 6)

    def _paint_needle(self, p: QPainter, line, state) -> None:
        level = self.level
        ahead_colour = LEVEL_COLOUR.get(level, AHEAD_OK)
        shaft = self._project(line.shaft)
        ahead = self._project(line.ahead)
        if shaft is None or ahead is None:
            return
        (sxy, sdist), (axy, adist) = shaft, ahead
        s_near, a_near = np.abs(sdist) <= IN_PLANE_MM, np.abs(adist) <= IN_PLANE_MM
        if self.kind == "slice":
            faint = QColor(NEEDLE_COLOUR)
            faint.setAlpha(120)
            self._polyline(p, sxy, ~s_near, QPen(faint, 1.5))
            faint_ahead = QColor(ahead_colour)
            faint_ahead.setAlpha(120)
            self._polyline(p, axy, ~a_near, QPen(faint_ahead, 1.2, Qt.DashLine))
        self._polyline(p, sxy, s_near, QPen(NEEDLE_COLOUR, 3.0, Qt.SolidLine, Qt.RoundCap))
        self._polyline(p, axy, a_near, QPen(ahead_colour, 2.0, Qt.DashLine))
        tip_xy, tip_near = QPointF(*sxy[-1]), bool(s_near[-1])
        p.setPen(QPen(Qt.black, 1))
        p.setBrush(NEEDLE_COLOUR if tip_near else Qt.NoBrush)
        if not tip_near:
            p.setPen(QPen(NEEDLE_COLOUR, 1.5))
        p.drawEllipse(tip_xy, 4.5, 4.5)
        p.setBrush(Qt.NoBrush)
        if self.kind != "slice":
            self._paint_crossing(p, line, bool(s_near.any() or a_near.any()), tip_near, tip_xy, sdist[-1])

    def _paint_crossing(self, p: QPainter, line, some_in_plane: bool, tip_near: bool, tip_xy: QPointF,
                        tip_offset_mm: float) -> None:
        """Out of plane: a ringed cross where the needle line crosses the image, and the tip's offset
        (labels on boxes, off the view's own texts)."""
        p.save()
        p.setClipping(False)          # the labels may reach past the image, not past the view
        f = QFont(self.font())
        f.setPointSize(9)
        p.setFont(f)
        bounds = QRectF(self.rect()).adjusted(2, 2, -2, -2)
        taken = [box for _t, box in getattr(self.view, "drawn_text", [])]
        m = self._image_to_ct()
        cross = None if m is None else plane_crossing(line, m)
        if cross is not None and not (some_in_plane and abs(cross[1]) < 1.0):
            c = self.view.pixel_to_widget(*cross[0])
            colour = NEEDLE_COLOUR if cross[1] <= 0 else LEVEL_COLOUR.get(self.level, AHEAD_OK)
            p.setPen(QPen(colour, 2))
            p.drawEllipse(c, 8, 8)
            p.drawLine(c + QPointF(-5, -5), c + QPointF(5, 5))
            p.drawLine(c + QPointF(-5, 5), c + QPointF(5, -5))
            text = "needle crosses here" if cross[1] <= 0 else f"path crosses here, {cross[1]:.0f} mm ahead"
            draw_label(p, c + QPointF(11, 4), text, colour, bounds, avoid=taken)
        if not tip_near:
            draw_label(p, tip_xy + QPointF(8, 6), f"tip {tip_offset_mm:+.1f} mm off-plane", NEEDLE_COLOUR, bounds,
                       avoid=taken)
        p.restore()

    def _paint_border_and_text(self, p: QPainter, state) -> None:
        r = QRectF(self.rect())
        if self.level is not None:
            w = BORDER_PX[self.level]
            p.setPen(QPen(LEVEL_COLOUR[self.level], w))
            p.setBrush(Qt.NoBrush)
            p.drawRect(r.adjusted(w / 2, w / 2, -w / 2, -w / 2))
        if self.kind == "slice":
            return
        f = QFont(self.font())
        f.setPointSize(12)
        f.setBold(True)
        p.setFont(f)
        lines = []
        if self.guidance.guide is not None and not self.guidance.guide.path.safe:
            lines.append((UNSAFE_PATH_TEXT, BREACH_COLOUR, QColor(Qt.white)))
        if self.message:
            lines.append((self.message, LEVEL_COLOUR[self.level], QColor(Qt.white if self.level == "breach"
                                                                          else Qt.black)))
        elif state is not None and not state.valid:
            lines.append((hidden_text(state), QColor(0, 0, 0, 200), HIDDEN_COLOUR))
        # Bottom of the image, above the view's steering hints: on solid plates of the warning colour.
        frame = self._image_rect()
        bottom = min(frame.bottom(), r.bottom()) - 6 if not frame.isEmpty() else r.bottom() - 6
        bounds = r.adjusted(8, 8, -8, -8)
        for text, background, colour in reversed(lines):
            bottom = _plate(p, text, background, colour, bounds, bottom) - 4


def _plate(p: QPainter, text: str, background: QColor, colour: QColor, bounds: QRectF, bottom: float) -> float:
    """``text`` wrapped to ``bounds``' width, centred, on a solid rounded plate whose bottom is at
    ``bottom`` (kept inside ``bounds``); logged in the device's ``drawn_text``. Returns its top."""
    shown = keep_units(text)
    fm = QFontMetricsF(p.font())
    inner = max(bounds.width() - 2 * PAD_X - 8, 10.0)
    t = fm.boundingRect(QRectF(0, 0, inner, 1e6), int(Qt.TextWordWrap | Qt.AlignHCenter), shown)
    w, h = min(t.width(), inner) + 2 * PAD_X + 8, t.height() + 2 * PAD_Y + 4
    box = QRectF(bounds.center().x() - w / 2, max(bounds.top(), bottom - h), w, h)
    p.save()
    p.setPen(Qt.NoPen)
    p.setBrush(background)
    p.drawRoundedRect(box, 4, 4)
    p.setPen(colour)
    p.drawText(box.adjusted(PAD_X + 4, PAD_Y + 2, -PAD_X - 4, -PAD_Y - 2), int(Qt.TextWordWrap | Qt.AlignHCenter),
               shown)
    p.restore()
    log = getattr(p.device(), "drawn_text", None)
    if log is not None:
        log.append((text, QRectF(box)))
    return box.top()
