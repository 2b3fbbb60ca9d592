"""Layout of the main window: the view grid in the centre, a layout bar above it, docks around.

A mixin of :class:`gui.window.main_window.MainWindow` (it places the widgets the window
created: ``views``, ``us_view``, ``fused_view``, ``view3d``, ``player``, ``data_panel``,
``log_panel``, ``overlay_panel``).

Two view layouts, as on a fusion workstation:

- ``fusion`` (with an accepted registration): the ultrasound and the CT resliced in
  its plane side by side and equal in size on top; axial, coronal, sagittal and 3D
  in a row below.
- ``ct_us`` (before a registration, for picking landmarks): a large axial slice
  beside the ultrasound on top; coronal, sagittal and 3D below.

The window switches to ``fusion`` when a registration arrives and back to
``ct_us`` when it is cleared or while landmarks are picked, unless the user
picked a layout on the bar; an automatic switch fits the slices in their new panes. The
bar also holds "CT follows probe" (unlink the slice views from the probe) and
the reminder of the hold-to-compare key. Docks: Player under the views (the
side columns reach the window's bottom); Overlay, Data and Log tabbed in ONE
left column with the Registration and Planning panels, so the views keep the
width at 1366x768. The 3D view is a pane of the grid (it renders off-screen,
see :mod:`gui.views.view3d`), never a window over the menu bar.
"""
from __future__ import annotations

from typing import Dict, List

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (QButtonGroup, QCheckBox, QDockWidget, QHBoxLayout, QLabel, QSizePolicy, QSplitter,
                             QToolButton, QVBoxLayout, QWidget)

from gui.views.us_graphics import COMPARE_KEY

LAYOUTS: Dict[str, str] = {"fusion": "Fusion: US | CT in US plane", "ct_us": "Landmarks: CT | US"}


def fusion_button_text(image: str) -> str:
    """The fusion layout button names the image the fused view shows ("CT", "MR")."""
    return f"Fusion: US | {image} in US plane"


class WindowLayoutMixin:
    """Central view grid, layout bar and docks; mixed into MainWindow (needs its widgets)."""

    # ------------------------------------------------------------ central
    def _build_central(self) -> None:
        central = QWidget()
        central.setObjectName("central_views")
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self._build_layout_bar())
        self._grid_host = QWidget()
        self._grid_host.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self._grid_lay = QVBoxLayout(self._grid_host)
        self._grid_lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._grid_host, 1)
        self._parking = QWidget()          # holds the panes a layout does not show (hidden)
        self._parking.hide()
        self.layout_name = ""
        self.layout_auto = True
        self.setCentralWidget(central)
        self.set_view_layout("ct_us", auto=True)

    def _build_layout_bar(self) -> QWidget:
        bar = QWidget()
        bar.setObjectName("layout_bar")
        row = QHBoxLayout(bar)
        row.setContentsMargins(4, 0, 4, 0)
        self.layout_buttons = {}
        group = QButtonGroup(bar)
        group.setExclusive(True)
        for name, text in LAYOUTS.items():
            b = QToolButton()
            b.setObjectName(f"layout_{name}")
            b.setText(text)
            b.setCheckable(True)
            b.setAutoRaise(True)
            b.clicked.connect(lambda _c=False, name=name: self.set_view_layout(name))
            group.addButton(b)
            row.addWidget(b)
            self.layout_buttons[name] = b
        self.follow_box = QCheckBox("CT follows probe")
        self.follow_box.setObjectName("follow_probe")
        self.follow_box.setToolTip("with a registration the slice views go to the US plane's point under "
                                   "the mouse (or the last click, or the sector centre) on every frame; "
                                   "untick to unlink them")
        self.follow_box.setChecked(True)
        self.follow_box.toggled.connect(self.set_follow_probe)
        row.addSpacing(12)
        row.addWidget(self.follow_box)
        row.addStretch(1)
        hint = QLabel(f"hold {COMPARE_KEY}: plain US")
        hint.setObjectName("compare_hint")
        row.addWidget(hint)
        return bar

    def name_fused_image(self, image: str) -> None:
        """Say on the fusion layout button which image the fused view shows (connected to
        ``fused_view.image_changed``: the MR dock can put the MR there instead of the CT)."""
        self.layout_buttons["fusion"].setText(fusion_button_text(image))

    def _layout_panes(self, name: str) -> List[List[QWidget]]:
        three_d = [self.view3d] if self.view3d is not None else []
        if name == "fusion":
            return [[self.us_view, self.fused_view],
                    [self.views["axial"], self.views["coronal"], self.views["sagittal"]] + three_d]
        return [[self.views["axial"], self.us_view],
                [self.views["coronal"], self.views["sagittal"]] + three_d]

    def set_view_layout(self, name: str, auto: bool = False) -> None:
        """Arrange the panes as ``name`` (see :data:`LAYOUTS`). A user's choice (``auto`` False)
        stops the automatic switching on registration changes."""
        if name not in LAYOUTS:
            raise ValueError(f"layout must be one of {tuple(LAYOUTS)}")
        if not auto:
            self.layout_auto = False
        self.layout_buttons[name].setChecked(True)
        if name == self.layout_name:
            return
        if auto and self.layout_name:
            # A zoom chosen in the other layout (e.g. 3x in the large axial pane to pick landmarks)
            # hides where the probe is in the small panes of this one: automatic switches refit.
            for view in self.views.values():
                view.fit()
        self.layout_name = name
        rows = self._layout_panes(name)
        old = self._grid_lay.takeAt(0)
        for pane in (self.us_view, self.fused_view, self.view3d, *self.views.values()):
            if pane is not None:
                pane.setParent(self._parking)
        if old is not None and old.widget() is not None:
            old.widget().deleteLater()
        outer = QSplitter(Qt.Vertical)
        outer.setObjectName("view_grid")
        outer.setChildrenCollapsible(False)
        for panes in rows:
            split = QSplitter(Qt.Horizontal)
            split.setChildrenCollapsible(False)
            for pane in panes:
                split.addWidget(pane)
                pane.show()
            split.setSizes([1000] * len(panes))
            outer.addWidget(split)
        outer.setSizes([600, 400] if name == "fusion" else [560, 440])
        self._sync_overlay_interpolation()
        self._grid_lay.addWidget(outer)
        outer.show()            # a layout shows a new child only on the next event loop pass
        self.view_grid = outer

    def _sync_overlay_interpolation(self) -> None:
        """The US overlay reslices the CT as the fused CT view shows it while that view is on
        screen (one reslice per frame serves both), nearest (fast) otherwise."""
        fused_on = self.layout_name == "fusion"
        self.us_view.overlay_interpolation = self.us_view.engine.interpolation if fused_on else "nearest"

    def _layout_for_picking(self, picking: bool) -> None:
        """Automatic layout: landmarks while picking, back to fusion after it with a registration."""
        if self.layout_auto:
            self.set_view_layout("ct_us" if picking or self.registration is None else "fusion", auto=True)

    def _layout_for_registration(self, registration) -> None:
        """Automatic layout: fusion with a registration (not while landmarks are being picked)."""
        if not self.layout_auto:
            return
        if registration is None:
            self.set_view_layout("ct_us", auto=True)
        elif not self._picking():
            self.set_view_layout("fusion", auto=True)

    # ------------------------------------------------------------ docks
    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        d = QDockWidget(title, self)
        d.setObjectName(f"dock_{title.lower().replace(' ', '_')}")
        d.setWidget(widget)
        self.addDockWidget(area, d)
        return d

    def _build_docks(self, enable_3d: bool) -> None:
        # The side columns reach the bottom: the player spans the views only.
        self.setCorner(Qt.BottomLeftCorner, Qt.LeftDockWidgetArea)
        self.setCorner(Qt.BottomRightCorner, Qt.RightDockWidgetArea)
        self.player_dock = self._dock("Player", self.player, Qt.BottomDockWidgetArea)
        self.player_dock.setTitleBarWidget(QWidget())     # one compact row under the views
        self.player.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.overlay_dock = self._dock("Overlay", self.overlay_panel, Qt.LeftDockWidgetArea)
        self.data_dock = self._dock("Data", self.data_panel, Qt.LeftDockWidgetArea)
        self.log_dock = self._dock("Log", self.log_panel, Qt.LeftDockWidgetArea)
        self.tabifyDockWidget(self.overlay_dock, self.data_dock)
        self.tabifyDockWidget(self.data_dock, self.log_dock)
        self.data_dock.raise_()
        self.docks = [self.player_dock, self.log_dock, self.data_dock, self.overlay_dock]
        self.view3d_dock = None
