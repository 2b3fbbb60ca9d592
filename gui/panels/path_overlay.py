"""Transparent overlays drawing the selected needle path on the slice views and the US view.

Path points are CT LPS mm. On a slice view the path is projected onto the
shown slice; on the US view it is mapped through the window's registration
(``reference_to_ct``) and the frame's ``image_to_reference`` to frame pixels.
Solid where it lies within ``NEAR_MM`` of the displayed plane, dashed (slice
views only) elsewhere; target red, entry green. An unsafe least-risk path is
drawn in its own colour (red), dash-dotted even in plane, labelled "UNSAFE".
For a lesion without a safe path the other rejected candidates that came
closest (:mod:`.no_path_box`) are drawn on the slice views too, dashed in a
warning colour (amber) and labelled at the skin end with their letter and
first violation ("B: crosses bone"), each label on a dark plate, kept inside
the image and off the other labels.
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPen
from PyQt5.QtWidgets import QWidget

NEAR_MM = 3.0          # a path point this close to the shown plane is "in plane"
PATH_COLOURS = {"us": QColor(0, 220, 255), "ct": QColor(255, 120, 255), "unsafe": QColor(255, 30, 30)}
#: Rejected candidates of a lesion without a safe path: amber, the highlighted one brighter.
REJECTED_COLOUR, REJECTED_HIGHLIGHT = QColor(255, 165, 0), QColor(255, 230, 60)
LABEL_PLATE = QColor(0, 0, 0, 170)
#: A rejected path projected shorter than this (px) is labelled with its letter only.
FULL_LABEL_MIN_PX = 60.0


class _Follow(QObject):
    """Keeps an overlay child the size of its parent view."""

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() == QEvent.Resize:
            for child in obj.findChildren(PathOverlay):
                child.setGeometry(obj.rect())
        return False


class PathOverlay(QWidget):
    """Transparent child of a SliceView or the USView drawing the selected needle path."""

    def __init__(self, view, window, kind: str):
        super().__init__(view)
        self.setObjectName(f"path_overlay_{kind}")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WA_NoSystemBackground)
        self.view, self.window, self.kind = view, window, kind
        self.path = None          # (entry, target, guidance[, safe])
        self.rejected = []        # [(entry, target, label, highlighted)] (slice views only)
        self.setGeometry(view.rect())
        self.show()

    def set_path(self, path) -> None:
        self.path = path
        self.update()

    def set_rejected(self, rejected) -> None:
        """Rejected candidates to draw: [(entry, target, label, highlighted)] (CT LPS mm); the US
        view draws none (a projection of an out-of-plane path would look like a needle)."""
        self.rejected = [] if self.kind == "us" else [
            (np.asarray(e, float), np.asarray(t, float), str(label), bool(hi)) for e, t, label, hi in rejected]
        self.update()

    def project(self, pts: np.ndarray):
        """(widget points [n, 2], distance from the shown plane mm [n]) or None."""
        v = self.view
        if self.kind == "us":
            w = self.window
            if w.sweep is None or w.registration is None or v.frame_index < 0:
                return None
            i2r = w.sweep.image_to_reference(v.frame_index)
            if i2r is None:
                return None
            m = w.registration.reference_to_ct @ i2r          # Image (pixels) -> CT
            x, y = m[:3, 0], m[:3, 1]
            n = np.cross(x, y)
            n /= np.linalg.norm(n)
            d = pts - m[:3, 3]
            col, row = d @ x / (x @ x), d @ y / (y @ y)
            xy = np.array([[q.x(), q.y()] for q in (v.pixel_to_widget(c, r) for c, r in zip(col, row))])
            return xy, d @ n
        if v.display is None:
            return None
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[v.view]
        plane = v.display.pixel_to_lps(v.view, v.slice_index)[ax, 3]
        xy = np.array([[p.x(), p.y()] for p in (v.lps_to_widget(q) for q in pts)])
        return xy, pts[:, ax] - plane

    def paintEvent(self, event):  # noqa: N802
        """The rejected candidates, then the selected path (on top)."""
        if self.path is None and not self.rejected:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        if self.kind == "us":
            # Only on the image, and only the part in this plane: a projection of a path far out
            # of the US plane would look like a needle where there is none.
            p.setClipRect(self.view.frame_rect())
        else:
            p.setClipRect(self.view.image_rect())
        if self.rejected:
            self._paint_rejected(p)
        if self.path is not None:
            self._paint_path(p)
        p.end()

    def _paint_path(self, p: QPainter) -> None:
        """The path as 60 segments: solid where within NEAR_MM of the plane, dashed (slice views) elsewhere."""
        entry, target, guidance = self.path[:3]
        safe = self.path[3] if len(self.path) > 3 else True
        pts = target + np.linspace(0.0, 1.0, 60)[:, None] * (entry - target)
        proj = self.project(pts)
        if proj is None:
            return
        xy, dist = proj
        near = np.abs(dist) <= NEAR_MM
        colour = PATH_COLOURS["unsafe"] if not safe else PATH_COLOURS.get(guidance, QColor(0, 220, 255))
        faint = QColor(colour)
        faint.setAlpha(110)
        solid = Qt.SolidLine if safe else Qt.DashDotLine
        for i in range(1, len(pts)):
            on = near[i] and near[i - 1]
            if self.kind == "us" and not on:
                continue
            p.setPen(QPen(colour if on else faint, 2.5 if on else 1.2, solid if on else Qt.DashLine))
            p.drawLine(QPointF(*xy[i - 1]), QPointF(*xy[i]))
        if not safe and near.any():
            p.setPen(colour)
            p.drawText(QPointF(*xy[int(np.flatnonzero(near)[-1])]) + QPointF(6, -6), "UNSAFE")
        for k, (sym, c) in enumerate((("target", QColor(255, 60, 60)), ("entry", QColor(60, 255, 90)))):
            i = 0 if k == 0 else len(pts) - 1
            if near[i]:
                p.setPen(QPen(c, 2))
                p.drawEllipse(QPointF(*xy[i]), 5, 5)

    def _paint_rejected(self, p: QPainter) -> None:
        """Each rejected candidate dashed in the warning colour (bolder within NEAR_MM of the
        plane), its label at the skin end on a dark plate, inside the image, off other labels."""
        f = QFont(self.font())
        f.setPointSize(8)
        p.setFont(f)
        fm = p.fontMetrics()
        bounds = self.view.image_rect().intersected(QRectF(self.rect()))
        taken = []
        for entry, target, label, hi in self.rejected:
            pts = target + np.linspace(0.0, 1.0, 40)[:, None] * (entry - target)
            proj = self.project(pts)
            if proj is None:
                continue
            xy, dist = proj
            near = np.abs(dist) <= NEAR_MM
            colour = QColor(REJECTED_HIGHLIGHT if hi else REJECTED_COLOUR)
            faint = QColor(colour)
            faint.setAlpha(200 if hi else 160)
            for i in range(1, len(pts)):
                on = near[i] and near[i - 1]
                p.setPen(QPen(colour if on else faint, (3.0 if hi else 2.2) if on else (2.2 if hi else 1.6), Qt.DashLine))
                p.drawLine(QPointF(*xy[i - 1]), QPointF(*xy[i]))
            if np.linalg.norm(xy[-1] - xy[0]) < FULL_LABEL_MIN_PX:
                label = label.split(":")[0]     # seen end-on: the letter only, the anatomy stays visible
            rect = _outside_of(QRectF(fm.boundingRect(label)).adjusted(-3, -1, 3, 1), xy[-1], xy[-1] - xy[0])
            rect = _inside(rect, bounds)
            step = rect.height() + 1 if rect.bottom() + rect.height() <= bounds.bottom() else -(rect.height() + 1)
            for _ in range(len(self.rejected)):
                if not any(rect.intersects(r) for r in taken):
                    break
                rect.translate(0, step)
            taken.append(rect)
            p.fillRect(rect, LABEL_PLATE)
            p.setPen(colour)
            p.drawText(rect, Qt.AlignCenter, label)


def _outside_of(rect: QRectF, anchor, outward) -> QRectF:
    """``rect`` placed beside ``anchor`` (widget px, the skin entry) on the side ``outward`` points
    to (away from the target): the label sits over the skin or air, not over the path's anatomy."""
    r = QRectF(rect)
    x, y = float(anchor[0]), float(anchor[1])
    r.moveCenter(QPointF(x, y))
    if abs(outward[0]) > abs(outward[1]):
        if outward[0] < 0:
            r.moveRight(x - 6)
        else:
            r.moveLeft(x + 6)
    elif outward[1] < 0:
        r.moveBottom(y - 6)
    else:
        r.moveTop(y + 6)
    return r


def _inside(rect: QRectF, bounds: QRectF) -> QRectF:
    """``rect`` moved (not shrunk) to lie inside ``bounds`` where it fits."""
    r = QRectF(rect)
    if r.right() > bounds.right():
        r.moveRight(bounds.right())
    if r.left() < bounds.left():
        r.moveLeft(bounds.left())
    if r.bottom() > bounds.bottom():
        r.moveBottom(bounds.bottom())
    if r.top() < bounds.top():
        r.moveTop(bounds.top())
    return r
