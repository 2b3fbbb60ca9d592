"""The ctus main window: three CT slice views, the US view, the player and panels.

The window holds the loaded data (``ct``, ``labels``, ``sweep``,
``registration``) and wires views and panels together. File loading runs in
:class:`~gui.core.workers.Worker` threads; every user action goes through
:meth:`~gui.core.errors.ErrorReporter.action`, so a failure shows one dialog, is
logged, and leaves the previous state untouched.

The window's other parts are mixins, one module each: file actions and sessions
(:mod:`gui.window.file_actions`), view grid (fusion / landmark layouts), layout bar and docks
(:mod:`gui.window.window_layout`),
menus, toolbar, shortcuts and About (:mod:`gui.window.window_menus`), status bar
(:mod:`gui.window.window_status`), cursor, W/L, overlay, shown frame and the slice views
following the probe (:mod:`gui.window.window_view_state`), and background workers (:mod:`gui.window.window_workers`).
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
from PyQt5.QtCore import Qt, QTimer, pyqtSignal
from PyQt5.QtWidgets import QDockWidget, QMainWindow

from gui.core import loaders
from gui.core.errors import ErrorReporter, LogPanel
from gui.core.session import RegistrationState, Session
from gui.core.workers import Worker
from gui.panels.data_panel import DataPanel
from gui.panels.overlay_panel import OverlayPanel
from gui.views.display import DisplayVolume
from gui.views.fused_view import FusedCTView
from gui.views.player_widget import PlayerWidget
from gui.views.slice_view import SliceView
from gui.views.us_view import USView
from registration.spatial.errors import InputError

from .file_actions import FileActionsMixin
from .live import install_live
from .window_layout import WindowLayoutMixin
from .window_menus import MenuActionsMixin
from .window_status import StatusBarMixin
from .window_view_state import ViewStateMixin
from .window_workers import WorkerMixin
from .workflow_bar import WorkflowBar


class MainWindow(FileActionsMixin, WindowLayoutMixin, MenuActionsMixin, StatusBarMixin, ViewStateMixin,
                 WorkerMixin, QMainWindow):
    registration_changed = pyqtSignal(object)   # RegistrationState or None
    data_changed = pyqtSignal()                   # CT, labels, sweep or registration replaced

    def __init__(self, *, enable_3d: bool = True, autosave_path=None, autosave_interval_s: float = 30.0,
                 panels: bool = False):
        """``autosave_path``: where the session is saved every ``autosave_interval_s`` when it
        changed (None = no autosave; the app passes :func:`default_autosave_path`).
        ``panels``: add the Registration and Planning docks (:meth:`install_panels`; the app
        does; tests that install them themselves leave it off)."""
        super().__init__()
        self.setObjectName("main_window")
        self.setWindowTitle("ctus: CT-ultrasound fusion for liver biopsy")
        self.resize(1500, 950)
        self.ct = None
        self.labels = None
        self.sweep = None
        self.registration: Optional[RegistrationState] = None
        self.display: Optional[DisplayVolume] = None
        self.session = Session()
        self.workers: List[Worker] = []
        self._i2r = None
        self._valid = None
        self._shut_down = False
        self.plan: Optional[dict] = None
        self.exported: dict = {}
        self.demo_folder: Optional[Path] = None

        self.log_panel = LogPanel()
        self.reporter = ErrorReporter(self, self.log_panel)
        self.views = {v: SliceView(v) for v in ("axial", "coronal", "sagittal")}
        self.us_view = USView()
        self.fused_view = FusedCTView(self.us_view)
        self.player = PlayerWidget()
        self.overlay_panel = OverlayPanel()
        self.data_panel = DataPanel()
        self.view3d = None
        if enable_3d:
            from gui.views.view3d import View3D
            self.view3d = View3D()
        self._build_central()
        self.fused_view.image_changed.connect(self.name_fused_image)
        self._build_docks(enable_3d)
        self._build_status_bar()
        self._build_actions()
        self.workflow = WorkflowBar(self)   # Load -> Register -> Verify -> Plan -> Export
        self._connect()
        self.live = install_live(self)   # File > Connect to PlusServer, Record, Freeze
        self._update_status()
        self.autosave_path = None if autosave_path is None else Path(autosave_path)
        self._autosaved_text = None
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(int(autosave_interval_s * 1000))
        self._autosave_timer.timeout.connect(self.autosave)
        if self.autosave_path is not None:
            self._autosave_timer.start()
        self.session_parts: dict = {}        # name -> (save() -> dict, restore(dict)); see register_session_part
        self.panel_docks: dict = {}
        if panels:
            self.install_panels()

    # ------------------------------------------------------------ panels
    def install_panels(self) -> dict:
        """Add the Registration, Planning, Segmentation, MR and Guidance panels (gui/panels/*: each
        module's ``install(window) -> QDockWidget``) and list them in the View menu."""
        from gui.panels import guidance_panel, mr_panel, planning_panel, registration_panel, segmentation_panel
        for name, module in (("registration", registration_panel), ("planning", planning_panel),
                             ("segmentation", segmentation_panel), ("mr", mr_panel), ("guidance", guidance_panel)):
            if name in self.panel_docks:
                continue
            with self.reporter.action(f"Add the {name} panel"):
                dock = module.install(self)
                self.panel_docks[name] = dock
                self.docks.append(dock)
                self.view_menu.addAction(dock.toggleViewAction())
        self._panels_in_left_column()
        pick = getattr(self.panel_docks.get("registration") and self.panel_docks["registration"].widget(),
                       "pick_button", None)
        if pick is not None and not getattr(self, "_pick_hooked", False):
            # Picking landmarks wants the large CT view: the landmark layout while it is on.
            pick.toggled.connect(self._layout_for_picking)
            self._pick_hooked = True
        self.update_workflow()      # the workflow bar shows the current step's panel
        return self.panel_docks

    def _panels_in_left_column(self) -> None:
        """Every panel dock a tab of the ONE left column (see gui/window/window_layout.py): a
        second column on the right (the MR dock, 504 px) made the window at least 1567 px wide,
        wider than a 1366x768 screen. The user can still drag a panel out."""
        left = [d for d in self.findChildren(QDockWidget)
                if self.dockWidgetArea(d) == Qt.LeftDockWidgetArea and not d.isFloating()]
        for dock in self.panel_docks.values():
            if self.dockWidgetArea(dock) != Qt.LeftDockWidgetArea and not dock.isFloating() and left:
                self.addDockWidget(Qt.LeftDockWidgetArea, dock)
                self.tabifyDockWidget(left[0], dock)

    # ------------------------------------------------------------ data in (synchronous, tested)
    def set_ct(self, ct, labels=None, display: Optional[DisplayVolume] = None, prepared=None) -> None:
        """Show a CT Volume (and optional LabelMap); replaces labels and resets the views.
        ``display`` (DisplayVolume) and ``prepared`` (OverlayEngine.prepare) may come from a
        worker; they are built here when None."""
        if display is None:
            display = DisplayVolume(ct, labels)
        elif labels is not None:
            display.set_labels(labels)
        self.ct, self.labels, self.display = ct, labels, display
        for view in self.views.values():
            view.set_display(display)
        self.us_view.set_ct(ct, labels, prepared)
        if self.view3d is not None:
            self.view3d.set_labels(labels, ct=ct)
        self.set_cursor(display.center_lps())
        self.session.ct_path = ct.metadata.get("source")
        self._data_changed()

    def set_labels(self, labels, display_array: Optional[np.ndarray] = None, prepared=None) -> None:
        """Show a LabelMap on the current CT (``display_array``: precomputed labels_on_grid,
        ``prepared``: precomputed OverlayEngine.prepare(ct, labels))."""
        if self.ct is None:
            raise InputError("open a CT before its label map", fix="File > Open CT first")
        loaders.check_labels_match(labels, self.ct, labels.metadata.get("source", "label map"))
        self.labels = labels
        self.display.set_labels(labels, display_array)
        for view in self.views.values():
            view.labels_changed()
        self.us_view.set_ct(self.ct, labels, prepared)
        if self.view3d is not None:
            self.view3d.set_labels(labels)
        self.session.labels_path = labels.metadata.get("source")
        self._data_changed()

    def set_sweep(self, sweep) -> None:
        i2r, valid = sweep.image_to_reference_all()
        self.sweep, self._i2r, self._valid = sweep, i2r, valid
        self.us_view.set_sweep_geometry(sweep.pixel_spacing, sweep.fan_mask)
        self.player.set_sweep(sweep, valid)
        self.session.sweep_path = sweep.source
        self.show_frame(self.player.index)
        self._data_changed()

    def set_registration(self, registration: Optional[RegistrationState]) -> None:
        self.registration = registration
        self._layout_for_registration(registration)
        self.us_view.set_registration(registration)
        self.session.registration = None if registration is None else registration.to_dict()
        self._data_changed()
        self.registration_changed.emit(registration)

    def _data_changed(self) -> None:
        self.data_panel.update_facts(self.ct, self.labels, self.sweep, self.registration)
        self._update_status()
        self.data_changed.emit()

    # ------------------------------------------------------------ shutdown
    def closeEvent(self, event):  # noqa: N802
        # Once only: Qt may deliver a second close while the children are being destroyed.
        if not self._shut_down:
            self._shut_down = True
            self.cancel_work()
            self.wait_for_workers(5000)
            if self.live is not None:
                self.live.disconnect()   # finishes a running recording
            self.player.pause()
            if self.view3d is not None:
                self.view3d.close_renderer()
        super().closeEvent(event)
