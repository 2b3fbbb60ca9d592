"""Mouse on a CT slice view, as in Slicer: wheel = next/previous slice, left-drag =
window/level, right-drag = zoom, middle-drag = pan, right double-click = fit the slice
again, left click = move the crosshair (and report the point, for landmark picking).

A press and release less than ``CLICK_PX`` apart is a click: a hand's tremor must place
a landmark, not change the window/level; a drag starts once the mouse has moved further.
The click's point is where the press was, not where the button came up. A mixin of
:class:`gui.views.slice_view.SliceView` (it uses the view's geometry and signals).
"""
from __future__ import annotations

import numpy as np
from PyQt5.QtCore import QPointF, Qt

CLICK_PX = 8.0   # press-release distance (px) still counted as a click


class SliceMouseMixin:
    """Mouse handlers of a slice view; needs ``display``, ``window``/``level``, ``zoom``/``pan``,
    ``set_window_level``, ``set_cursor``, ``step_slice``, ``widget_to_lps`` and the signals."""

    def _init_mouse(self) -> None:
        self._press = self._drag_last = self._drag_button = None
        self._dragging = False
        self._wl_at_press = (self.window, self.level)

    def fit(self) -> None:
        """The whole slice in the view again (zoom 1, no pan)."""
        self.zoom, self.pan = 1.0, QPointF(0.0, 0.0)
        self.update()

    def wheelEvent(self, event):  # noqa: N802
        steps = event.angleDelta().y() // 120 or (1 if event.angleDelta().y() > 0 else -1)
        self.step_slice(int(steps))
        event.accept()

    def mouseDoubleClickEvent(self, event):  # noqa: N802
        """Double-click with the right button: fit the slice (undo zoom and pan)."""
        if event.button() == Qt.RightButton:
            self.fit()
        else:
            super().mouseDoubleClickEvent(event)       # Qt's default: a second press

    def mousePressEvent(self, event):  # noqa: N802
        self._drag_button = event.button()
        self._press = self._drag_last = event.pos()
        self._dragging = False
        self._wl_at_press = (self.window, self.level)
        event.accept()

    def mouseMoveEvent(self, event):  # noqa: N802
        if self._drag_button is None or self.display is None:
            return
        if not self._dragging:
            d = event.pos() - self._press
            if (d.x() ** 2 + d.y() ** 2) ** 0.5 <= CLICK_PX:
                return          # still a click
            self._dragging = True
        d = event.pos() - self._drag_last
        self._drag_last = event.pos()
        if self._drag_button == Qt.LeftButton:
            # Slicer: horizontal = window, vertical = level (up = brighter), from the press point.
            total = event.pos() - self._press
            w0, l0 = self._wl_at_press
            self.set_window_level(w0 + 2.0 * total.x(), l0 - 1.0 * total.y())
            self.window_level_changed.emit(self.window, self.level)
        elif self._drag_button == Qt.RightButton:
            self.zoom = float(np.clip(self.zoom * (1.0 - 0.01 * d.y()), 0.2, 20.0))
            self.update()
        elif self._drag_button == Qt.MiddleButton:
            self.pan += QPointF(d.x(), d.y())
            self.update()

    def mouseReleaseEvent(self, event):  # noqa: N802
        button, dragged = self._drag_button, self._dragging
        self._drag_button, self._dragging = None, False
        if self.display is None or button != Qt.LeftButton or self._press is None or dragged:
            return
        lps = self.widget_to_lps(self._press)      # where the click started, not where it ended
        self.set_cursor(lps)
        self.cursor_moved.emit(lps.copy())
        self.point_clicked.emit(self.view, lps.copy())
