"""Transparent overlays drawing the selected needle path on the slice views and the US view.

Path points are CT LPS mm. On a slice view the path is projected onto the
shown slice; on the US view it is mapped through the window's registration
(``reference_to_ct``) and the frame's ``image_to_reference`` to frame pixels.
Solid where it lies within ``NEAR_MM`` of the displayed plane, dashed (slice
views only) elsewhere; target red, entry green. An unsafe least-risk path is
drawn in its own colour (red), dash-dotted even in plane, labelled "UNSAFE".
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QEvent, QObject, QPointF, Qt
from PyQt5.QtGui import QColor, QPainter, QPen
from PyQt5.QtWidgets import QWidget

NEAR_MM = 3.0          # a path point this close to the shown plane is "in plane"
PATH_COLOURS = {"us": QColor(0, 220, 255), "ct": QColor(255, 120, 255), "unsafe": QColor(255, 30, 30)}


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
        self.setGeometry(view.rect())
        self.show()

    def set_path(self, path) -> None:
        self.path = path
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
        """The path as 60 segments: solid where within NEAR_MM of the plane, dashed (slice views) elsewhere."""
        if self.path is None:
            return
        entry, target, guidance = self.path[:3]
        safe = self.path[3] if len(self.path) > 3 else True
        pts = target + np.linspace(0.0, 1.0, 60)[:, None] * (entry - target)
        proj = self.project(pts)
        if proj is None:
            return
        xy, dist = proj
        near = np.abs(dist) <= NEAR_MM
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        if self.kind == "us":
            # Only on the image, and only the part in this plane: a projection of a path far out
            # of the US plane would look like a needle where there is none.
            p.setClipRect(self.view.frame_rect())
        else:
            p.setClipRect(self.view.image_rect())
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
        p.end()
