"""Menus, toolbar and keyboard shortcuts of the main window, and the About box.

A mixin of :class:`gui.window.main_window.MainWindow` (the actions call the window's
file actions, view-state setters and player). Menus: File, View (dock toggles,
W/L presets on keys 1..n, overlay modes B/C/O, label outlines L), Play (Space,
Left/Right, Home/End), Help. Every action is also added to the window itself
so its shortcut works whichever dock has focus. W/L presets are in HU
(window, level) from :data:`gui.views.qimage.WL_PRESETS`.
"""
from __future__ import annotations

from typing import Callable

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import QAction, QActionGroup, QMessageBox

from gui import __version__
from gui.views.qimage import WL_PRESETS

DISCLAIMER = ("Decision support only. Every overlay, distance and recommendation is an estimate "
              "with the error shown beside it; the physician decides. Not a certified medical device.")


class MenuActionsMixin:
    """Menu bar, toolbar, shortcuts and About; mixed into MainWindow (needs its slots)."""

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

    def _update_export_action(self) -> None:
        self.act_export.setEnabled(True)
        self.act_export.setToolTip("plan every lesion and write plan.json")

    def show_about(self) -> None:
        self.about_box = QMessageBox(QMessageBox.Information, "About ctus",
                                     f"ctus {__version__}: CT-ultrasound fusion planner for liver biopsy.\n\n{DISCLAIMER}",
                                     QMessageBox.Ok, self)
        self.about_box.setObjectName("about_box")
        self.about_box.setWindowModality(Qt.NonModal)
        self.about_box.show()
