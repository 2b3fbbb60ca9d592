"""Layout of the main window: the central splitter of views and the docks around it.

A mixin of :class:`gui.window.main_window.MainWindow` (it places the widgets the window
created: ``views``, ``us_view``, ``player``, ``data_panel``, ``log_panel``,
``overlay_panel``). Centre: axial slice | US view above coronal | sagittal
(initial heights 600 / 350 px). Docks: Player at the bottom; Data and Log tabbed
on the right, Overlay below them; the 3D view floats in its own window.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QDockWidget, QSizePolicy, QSplitter, QWidget


class WindowLayoutMixin:
    """Central splitter and docks; mixed into MainWindow (needs its widgets)."""

    # ------------------------------------------------------------ layout
    def _build_central(self) -> None:
        top = QSplitter(Qt.Horizontal)
        top.addWidget(self.views["axial"])
        top.addWidget(self.us_view)
        bottom = QSplitter(Qt.Horizontal)
        bottom.addWidget(self.views["coronal"])
        bottom.addWidget(self.views["sagittal"])
        outer = QSplitter(Qt.Vertical)
        outer.addWidget(top)
        outer.addWidget(bottom)
        outer.setSizes([600, 350])
        self.setCentralWidget(outer)

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def _build_docks(self, enable_3d: bool) -> None:
        self.player_dock = self._dock("Player", self.player, Qt.BottomDockWidgetArea)
        self.player.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.data_dock = self._dock("Data", self.data_panel, Qt.RightDockWidgetArea)
        self.log_dock = self._dock("Log", self.log_panel, Qt.RightDockWidgetArea)
        self.tabifyDockWidget(self.data_dock, self.log_dock)
        self.data_dock.raise_()
        self.overlay_dock = self._dock("Overlay", self.overlay_panel, Qt.RightDockWidgetArea)
        self.docks = [self.player_dock, self.log_dock, self.data_dock, self.overlay_dock]
        self.view3d_dock = None
        if enable_3d:
            from gui.views.view3d import View3D
            self.view3d = View3D()
            self.view3d_dock = self._dock("3D", self.view3d, Qt.RightDockWidgetArea)
            self.docks.append(self.view3d_dock)
            # A QOpenGLWidget inside the main window makes Qt composite the WHOLE window through
            # OpenGL on every update; with software GL that drops the US view from ~50 to ~2
            # frames/s (benchmarks/gui_frame_rate.py --with-3d). As its own top-level window the
            # 3D view costs the 2D views nothing.
            self.view3d_dock.setFloating(True)
            self.view3d_dock.resize(520, 480)
