"""Crosses on the US view at the landmark US points picked on the frame being shown.

Points are frame pixels ``(col, row)`` (Image frame, pixel centres at
integers), drawn through the US view's ``pixel_to_widget``; green = included,
grey = excluded.
"""
from __future__ import annotations

from typing import List, Tuple

from PyQt5.QtCore import QEvent, QPointF, Qt
from PyQt5.QtGui import QColor, QPainter, QPen
from PyQt5.QtWidgets import QWidget


class LandmarkOverlay(QWidget):
    """Transparent child of the US view marking the US points picked on the frame being shown.
    (The CT points are drawn by the slice views themselves: SliceView.set_markers.)"""

    def __init__(self, view, panel):
        super().__init__(view)
        self.setObjectName("landmark_overlay_us")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.view, self.panel = view, panel
        self.setGeometry(view.rect())
        view.installEventFilter(self)
        self.show()

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() == QEvent.Resize:
            self.setGeometry(obj.rect())
        return False

    def marks(self) -> List[Tuple[str, QPointF, bool]]:
        """(label, widget point, included) of what this view shows now."""
        v, out = self.view, []
        sw = self.panel.window.sweep
        if sw is None or v.frame_index < 0:
            return out
        for p in self.panel.landmarks.pairs:
            if p.frame == v.frame_index:
                out.append((p.name, v.pixel_to_widget(*p.pixel), p.included))
        return out

    def paintEvent(self, event):  # noqa: N802
        marks = self.marks()
        if not marks:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        for name, pt, inc in marks:
            colour = QColor(255, 230, 0) if name == "?" else (QColor(0, 255, 120) if inc else QColor(150, 150, 150))
            p.setPen(QPen(colour, 1.5))
            p.drawLine(pt + QPointF(-7, 0), pt + QPointF(-2, 0))
            p.drawLine(pt + QPointF(2, 0), pt + QPointF(7, 0))
            p.drawLine(pt + QPointF(0, -7), pt + QPointF(0, -2))
            p.drawLine(pt + QPointF(0, 2), pt + QPointF(0, 7))
            p.drawText(pt + QPointF(6, -6), name)
        p.end()
