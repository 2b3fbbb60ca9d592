"""Panel docks in the left column: one function every panel's ``install`` calls.

All panels (Registration, Planning, Segmentation, MR, Guidance) share the left dock
area as tabs instead of halving its height or adding a column: the window must fit
1366x768. Which tab shows is then chosen by ``raise_dock`` here and by the workflow bar.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QDockWidget, QWidget


def add_left_dock(window, panel: QWidget, title: str, object_name: str, *, raise_dock: bool) -> QDockWidget:
    """A dock holding ``panel`` in ``window``'s left area, tabbed with a docked (not floating)
    panel already there; ``raise_dock`` brings its tab to the front."""
    dock = QDockWidget(title, window)
    dock.setObjectName(object_name)
    dock.setWidget(panel)
    window.addDockWidget(Qt.LeftDockWidgetArea, dock)
    dock.show()     # a dock added to an already visible window is not always shown by Qt
    for other in window.findChildren(QDockWidget):
        if other is not dock and window.dockWidgetArea(other) == Qt.LeftDockWidgetArea and not other.isFloating():
            window.tabifyDockWidget(other, dock)
            if raise_dock:
                dock.raise_()
            break
    return dock
