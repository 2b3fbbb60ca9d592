"""The ctus main window: three CT slice views, the US view, the player and panels.

The window holds the loaded data (``ct``, ``labels``, ``sweep``,
``registration``) and wires views and panels together. File loading runs in
:class:`~gui.workers.Worker` threads; every user action goes through
:meth:`~gui.errors.ErrorReporter.action`, so a failure shows one dialog, is
logged, and leaves the previous state untouched.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
from PyQt5.QtCore import QEventLoop, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (QAction, QActionGroup, QApplication, QDockWidget, QLabel,
                             QMainWindow, QMessageBox, QProgressBar, QPushButton, QSizePolicy, QSplitter,
                             QWidget)

from registration.errors import InputError

from . import __version__, loaders
from .display import DisplayVolume
from .errors import ErrorReporter, LogPanel
from .live import install_live
from .file_actions import FileActionsMixin, default_autosave_path  # noqa: F401 (re-exported)
from .panels.data_panel import DataPanel
from .panels.overlay_panel import OverlayPanel
from .player_widget import PlayerWidget
from .qimage import WL_PRESETS
from .session import RegistrationState, Session
from .slice_view import SliceView
from .us_view import USView
from .workers import Worker

DISCLAIMER = ("Decision support only. Every overlay, distance and recommendation is an estimate "
              "with the error shown beside it; the physician decides. Not a certified medical device.")


class MainWindow(FileActionsMixin, QMainWindow):
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
        self.player = PlayerWidget()
        self.overlay_panel = OverlayPanel()
        self.data_panel = DataPanel()
        self.view3d = None
        self._build_central()
        self._build_docks(enable_3d)
        self._build_status_bar()
        self._build_actions()
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
            from .view3d import View3D
            self.view3d = View3D()
            self.view3d_dock = self._dock("3D", self.view3d, Qt.RightDockWidgetArea)
            self.docks.append(self.view3d_dock)
            # A QOpenGLWidget inside the main window makes Qt composite the WHOLE window through
            # OpenGL on every update; with software GL that drops the US view from ~50 to ~2
            # frames/s (benchmarks/gui_frame_rate.py --with-3d). As its own top-level window the
            # 3D view costs the 2D views nothing.
            self.view3d_dock.setFloating(True)
            self.view3d_dock.resize(520, 480)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.tracking_label = QLabel()
        self.tracking_label.setObjectName("tracking_status")
        self.registration_label = QLabel()
        self.registration_label.setObjectName("registration_status")
        self.cursor_label = QLabel()
        self.cursor_label.setObjectName("cursor_status")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_work)
        sb.addWidget(self.cursor_label, 1)
        for w in (self.progress, self.cancel_button, self.tracking_label, self.registration_label):
            sb.addPermanentWidget(w)

    def _action(self, menu, text: str, slot: Callable, shortcut=None, name: str = "") -> QAction:
        a = QAction(text, self)
        if name:
            a.setObjectName(name)
        if shortcut:
            a.setShortcut(QKeySequence(shortcut))
            a.setShortcutContext(Qt.WindowShortcut)
        a.triggered.connect(lambda checked=False: slot())
        menu.addAction(a)
        self.addAction(a)     # shortcuts work whichever dock has focus
        return a

    def _build_actions(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open_ct_folder = self._action(f, "Open CT &folder (DICOM)...", self.ask_open_ct_folder,
                                               "Ctrl+O", "open_ct_folder")
        self.act_open_ct_file = self._action(f, "Open CT &file (NRRD, NIfTI, MHA)...", self.ask_open_ct_file,
                                             "Ctrl+Shift+O", "open_ct_file")
        self.act_open_labels = self._action(f, "Open &labels...", self.ask_open_labels, "Ctrl+L", "open_labels")
        self.act_open_sweep = self._action(f, "Open &sweep...", self.ask_open_sweep, "Ctrl+U", "open_sweep")
        self.act_open_reg = self._action(f, "Load &registration (RESULT.json)...", self.ask_open_registration,
                                         None, "open_registration")
        f.addSeparator()
        self._action(f, "Open session...", self.ask_open_session, None, "open_session")
        self._action(f, "&Save session...", self.ask_save_session, "Ctrl+S", "save_session")
        self._action(f, "Restore autosaved session", self.restore_autosave, None, "restore_autosave")
        self.act_export = self._action(f, "&Export plan...", self.ask_export_plan, "Ctrl+E", "export_plan")
        f.addSeparator()
        self._action(f, "&Quit", self.close, "Ctrl+Q", "quit")

        v = self.view_menu = mb.addMenu("&View")
        for d in self.docks:
            v.addAction(d.toggleViewAction())
        v.addSeparator()
        for n, (name, (w, l)) in enumerate(WL_PRESETS.items(), 1):
            self._action(v, f"W/L {name} (W{w:.0f} L{l:.0f})", lambda name=name: self.apply_preset(name),
                         str(n), f"preset_{name}")
        v.addSeparator()
        group = QActionGroup(self)
        self.mode_actions = {}
        for mode, key in (("blend", "B"), ("checker", "C"), ("off", "O")):
            a = self._action(v, f"Overlay: {mode}", lambda mode=mode: self.set_overlay_mode(mode), key,
                             f"overlay_{mode}")
            a.setCheckable(True)
            group.addAction(a)
            self.mode_actions[mode] = a
        self.mode_actions["blend"].setChecked(True)
        self.act_labels = self._action(v, "Show label outlines", self.toggle_labels, "L", "toggle_labels")
        self.act_labels.setCheckable(True)
        self.act_labels.setChecked(True)

        p = mb.addMenu("&Play")
        self.act_play = self._action(p, "Play / pause", self.player.toggle, "Space", "play_pause")
        self._action(p, "Previous frame", lambda: self.player.step(-1), "Left", "step_back")
        self._action(p, "Next frame", lambda: self.player.step(1), "Right", "step_forward")
        self._action(p, "First frame", lambda: self.player.seek(0), "Home", "first_frame")
        self._action(p, "Last frame", lambda: self.player.seek(self.player.n_frames - 1), "End", "last_frame")

        h = mb.addMenu("&Help")
        self._action(h, "&About ctus", self.show_about, None, "about")

        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        for a in (self.act_open_ct_folder, self.act_open_labels, self.act_open_sweep, self.act_open_reg):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.act_play)
        for mode in ("blend", "checker", "off"):
            tb.addAction(self.mode_actions[mode])
        self._update_export_action()

    def _connect(self) -> None:
        for view in self.views.values():
            view.cursor_moved.connect(self.set_cursor)
            view.window_level_changed.connect(self._on_window_level)
        self.player.frame_changed.connect(self.show_frame)
        self.player.playing_changed.connect(self._on_playing_changed)
        self.overlay_panel.mode_changed.connect(self.set_overlay_mode)
        self.overlay_panel.opacity_changed.connect(self.us_view.set_opacity)
        self.overlay_panel.contours_toggled.connect(self._set_us_contours)
        self.overlay_panel.preset_chosen.connect(self.apply_preset)

    def install_panels(self) -> dict:
        """Add the Registration and Planning panels (gui/panels/*: each module's
        ``install(window) -> QDockWidget``) and list them in the View menu."""
        from .panels import planning_panel, registration_panel
        for name, module in (("registration", registration_panel), ("planning", planning_panel)):
            if name in self.panel_docks:
                continue
            with self.reporter.action(f"Add the {name} panel"):
                dock = module.install(self)
                self.panel_docks[name] = dock
                self.docks.append(dock)
                self.view_menu.addAction(dock.toggleViewAction())
        return self.panel_docks

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
            self.view3d.set_labels(labels)
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
        self.us_view.set_registration(registration)
        self.session.registration = None if registration is None else registration.to_dict()
        self._data_changed()
        self.registration_changed.emit(registration)

    # ------------------------------------------------------------ view state
    def set_cursor(self, lps) -> None:
        lps = np.asarray(lps, float)
        for view in self.views.values():
            view.set_cursor(lps)
        self.session.cursor_lps = lps.tolist()
        if self.display is not None:
            xyz = self.display.grid.clamp_index(self.display.grid.lps_to_index(lps))
            hu = self.display.array[xyz[2], xyz[1], xyz[0]]
            structure = ""
            if self.display.labels_array is not None:
                value = int(self.display.labels_array[xyz[2], xyz[1], xyz[0]])
                if value:
                    names = {v: n for n, v in self.display.label_names.items()}
                    structure = "   " + names.get(value, f"label {value}")
            self.cursor_label.setText(f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm   {hu:.0f} HU"
                                      + structure)

    def apply_preset(self, name: str) -> None:
        """W/L preset for the slice views and for the CT overlaid on the US view."""
        w, l = WL_PRESETS[name]
        self._on_window_level(w, l)
        self.us_view.set_ct_window(w, l)

    def _on_window_level(self, window: float, level: float) -> None:
        for view in self.views.values():
            view.set_window_level(window, level)
        self.session.window, self.session.level = float(window), float(level)

    def set_overlay_mode(self, mode: str) -> None:
        self.us_view.set_mode(mode)
        self.mode_actions[mode].setChecked(True)
        if self.overlay_panel.mode_box.currentText() != mode:
            self.overlay_panel.set_mode(mode)
        self._update_status()

    def toggle_labels(self) -> None:
        on = self.act_labels.isChecked()
        for view in self.views.values():
            view.set_show_labels(on)

    def _set_us_contours(self, on: bool) -> None:
        self.us_view.show_contours = on
        self.us_view._build_overlay_images()
        self.us_view.update()

    def show_frame(self, index: int) -> None:
        if self.sweep is None or index >= len(self.sweep):
            return
        i2r = self._i2r[index] if self._valid[index] else None
        self.us_view.set_frame(self.sweep.frames[index], index, len(self.sweep),
                               self.sweep.timestamps[index] - self.sweep.timestamps[0], i2r)
        self.session.frame_index = int(index)
        if self.view3d is not None and i2r is not None and self.registration is not None:
            self.view3d.set_us_plane(self.registration.reference_to_ct @ i2r, self.sweep.image_shape)
        self._update_status()

    def _on_playing_changed(self, playing: bool) -> None:
        # The 3D plane follows slowly while playing (renders are expensive), at once when paused.
        if self.view3d is not None:
            self.view3d.plane_interval_ms = 2000 if playing else 150
            if not playing:
                self.view3d.flush_plane()

    def _update_status(self) -> None:
        live = getattr(self, "live", None)
        if live is not None and live.client is not None:
            self.tracking_label.setText(live.status_text)   # live mode owns the tracking field
        elif self.sweep is None:
            self.tracking_label.setText("no tracking")
        elif self._valid[self.player.index]:
            self.tracking_label.setText(f"tracking OK (frame {self.player.index + 1})")
        else:
            self.tracking_label.setText(f"tracking INVALID (frame {self.player.index + 1})")
        self.registration_label.setText("no registration" if self.registration is None
                                        else f"registration {self.registration.quality_text()}")

    def _data_changed(self) -> None:
        self.data_panel.update_facts(self.ct, self.labels, self.sweep, self.registration)
        self._update_status()
        self.data_changed.emit()

    def _update_export_action(self) -> None:
        try:
            from planner.plan import plan_case  # noqa: F401  (lands with the planner issue)
            ok = True
        except ImportError:
            ok = False
        self.act_export.setEnabled(ok)
        self.act_export.setToolTip("plan every lesion and write plan.json" if ok
                                   else "needs the planner (planner.plan), not in this build")

    # ------------------------------------------------------------ workers
    def run_worker(self, name: str, fn, on_done: Callable, *args, **kwargs) -> Worker:
        """Run ``fn`` off the GUI thread with progress + cancel; ``on_done(result)`` on success."""
        w = Worker(name, fn, *args, **kwargs)
        self.workers.append(w)
        self.progress.setValue(0)
        self.progress.setFormat(f"{name} %p%")
        self.progress.show()
        self.cancel_button.show()
        w.progress.connect(lambda f, m: self.progress.setValue(int(100 * f)))

        def done(result):
            with self.reporter.action(name):
                on_done(result)
                self.reporter.info(f"{name}: done")

        def failed(exc, tb):
            self.reporter.report(name, exc, tb)

        def finished():
            if w in self.workers:
                self.workers.remove(w)
            if not self.workers:
                self.progress.hide()
                self.cancel_button.hide()

        w.succeeded.connect(done)
        w.failed.connect(failed)
        w.finished.connect(finished)
        self.reporter.info(f"{name}...")
        w.start()
        return w

    def cancel_work(self) -> None:
        for w in list(self.workers):
            w.cancel()

    def wait_for_workers(self, timeout_ms: int = 120000) -> None:
        """Let running workers finish while still processing events (results are delivered,
        the window repaints). Used to sequence start-up loading and session restore."""
        deadline = time.monotonic() + timeout_ms / 1000.0
        while self.workers and time.monotonic() < deadline:
            QApplication.processEvents(QEventLoop.AllEvents, 50)
            for w in list(self.workers):
                w.wait(20)
        QApplication.processEvents()

    def show_about(self) -> None:
        self.about_box = QMessageBox(QMessageBox.Information, "About ctus",
                                     f"ctus {__version__}: CT-ultrasound fusion planner for liver biopsy.\n\n{DISCLAIMER}",
                                     QMessageBox.Ok, self)
        self.about_box.setObjectName("about_box")
        self.about_box.setWindowModality(Qt.NonModal)
        self.about_box.show()

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
