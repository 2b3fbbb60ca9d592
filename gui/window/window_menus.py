"""Menus, toolbar and keyboard shortcuts of the main window, the About box and Help > Shortcuts.

A mixin of :class:`gui.window.main_window.MainWindow` (the actions call the window's
file actions, view-state setters, player and panels). Menus: File (open, also from a
PACS; sessions; export), View (dock toggles, W/L presets on keys 1..n, overlay modes
B/C/O and V to switch the overlay on/off, label outlines L), Play (Space, Left/Right,
Home/End), Workflow (the frequent actions of each step: pick landmarks P, refine Ctrl+R,
accept Ctrl+Return, reject, undo accept, plan Ctrl+P, export Ctrl+E), Export (the plan's
files, Send to PACS), Help (Shortcuts F1, About). Every action is also added to the
window itself so its shortcut works whichever dock has focus. An action is enabled only
when it can act; its tooltip (shown in the menus) says why not.
Help > Shortcuts lists the shortcuts of the actual actions, so the list cannot drift.
W/L presets are in HU (window, level) from :data:`gui.views.qimage.WL_PRESETS`.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QKeySequence
from PyQt5.QtWidgets import (
    QAction,
    QActionGroup,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QMessageBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from gui import __version__
from gui.views.qimage import WL_PRESETS

DISCLAIMER = ("Decision support only. Every overlay, distance and recommendation is an estimate "
              "with the error shown beside it; the physician decides. Not a certified medical device.")


class MenuActionsMixin:
    """Menu bar, toolbar, shortcuts, About; mixed into MainWindow (needs its slots)."""

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
        self.act_open_demo = self._action(f, "Open the &demo case", self.open_demo, None, "open_demo")
        self.act_open_ct_folder = self._action(f, "Open CT &folder (DICOM)...", self.ask_open_ct_folder,
                                               "Ctrl+O", "open_ct_folder")
        self.act_open_ct_file = self._action(f, "Open CT &file (NRRD, NIfTI, MHA)...", self.ask_open_ct_file,
                                             "Ctrl+Shift+O", "open_ct_file")
        self.act_open_pacs = self._action(f, "Open from &PACS...", self.ask_open_from_pacs, None, "open_from_pacs")
        self.act_open_pacs.setToolTip("find a study on a PACS, retrieve a CT series and open it")
        self.act_open_labels = self._action(f, "Open &labels...", self.ask_open_labels, "Ctrl+L", "open_labels")
        self.act_open_sweep = self._action(f, "Open &sweep...", self.ask_open_sweep, "Ctrl+U", "open_sweep")
        self.act_open_reg = self._action(f, "Load &registration (RESULT.json)...", self.ask_open_registration,
                                         None, "open_registration")
        f.addSeparator()
        self.act_open_session = self._action(f, "Open session...", self.ask_open_session, None, "open_session")
        self._action(f, "&Save session...", self.ask_save_session, "Ctrl+S", "save_session")
        self._action(f, "Restore autosaved session", self.restore_autosave, None, "restore_autosave")
        self.act_export = self._action(f, "&Export plan...", self.ask_export_plan, "Ctrl+E", "export_plan")
        self.act_send_pacs = self._action(f, "Send to PA&CS...", self.ask_send_to_pacs, None, "send_to_pacs")
        f.addSeparator()
        self._action(f, "&Quit", self.close, "Ctrl+Q", "quit")
        f.setToolTipsVisible(True)

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
        self._overlay_on_mode = "blend"
        self.act_toggle_overlay = self._action(v, "Overlay on / off", self.toggle_overlay, "V", "toggle_overlay")
        self.act_labels = self._action(v, "Show label outlines", self.toggle_labels, "L", "toggle_labels")
        self.act_labels.setCheckable(True)
        self.act_labels.setChecked(True)

        p = mb.addMenu("&Play")
        self.act_play = self._action(p, "Play / pause", self.player.toggle, "Space", "play_pause")
        self._action(p, "Previous frame", lambda: self.player.step(-1), "Left", "step_back")
        self._action(p, "Next frame", lambda: self.player.step(1), "Right", "step_forward")
        self._action(p, "First frame", lambda: self.player.seek(0), "Home", "first_frame")
        self._action(p, "Last frame", lambda: self.player.seek(self.player.n_frames - 1), "End", "last_frame")

        self._build_workflow_menu(mb.addMenu("&Workflow"))
        e = self.export_menu = mb.addMenu("&Export")
        e.addAction(self.act_export)
        e.addAction(self.act_send_pacs)
        e.setToolTipsVisible(True)

        h = mb.addMenu("&Help")
        self.act_shortcuts = self._action(h, "Keyboard &shortcuts", self.show_shortcuts, "F1", "shortcuts")
        self._action(h, "&About ctus", self.show_about, None, "about")

        # Short toolbar texts (the menus keep the long ones): the toolbar fits 1366 px.
        for a, short in ((self.act_open_ct_folder, "Open CT"), (self.act_open_labels, "Labels"),
                         (self.act_open_sweep, "Sweep"), (self.act_open_reg, "Registration file"),
                         (self.act_play, "Play"), (self.mode_actions["blend"], "Blend"),
                         (self.mode_actions["checker"], "Checker"), (self.mode_actions["off"], "Overlay off")):
            a.setIconText(short)
        tb = self.addToolBar("Main")
        tb.setObjectName("main_toolbar")
        for a in (self.act_open_ct_folder, self.act_open_labels, self.act_open_sweep, self.act_open_reg):
            tb.addAction(a)
        tb.addSeparator()
        tb.addAction(self.act_play)
        for mode in ("blend", "checker", "off"):
            tb.addAction(self.mode_actions[mode])
        self.update_workflow()

    def _build_workflow_menu(self, m) -> None:
        """The frequent actions of the registration and planning steps (they act on the panels)."""
        self.workflow_menu = m
        m.setToolTipsVisible(True)
        self.act_pick = self._action(m, "&Pick landmarks", lambda: self._panel_click("registration", "pick_button"),
                                     "P", "pick_landmarks_action")
        self.act_refine = self._action(m, "&Refine automatically",
                                       lambda: self._panel_click("registration", "refine_button"),
                                       "Ctrl+R", "refine_action")
        self.act_accept = self._action(m, "&Accept result", lambda: self._panel_click("registration", "accept_button"),
                                       "Ctrl+Return", "accept_action")
        self.act_reject = self._action(m, "Re&ject result", lambda: self._panel_click("registration", "reject_button"),
                                       None, "reject_action")
        self.act_undo_accept = self._action(m, "&Undo accept",
                                            lambda: self._panel_click("registration", "undo_accept_button"),
                                            None, "undo_accept_action")
        m.addSeparator()
        self._build_segmentation_actions(m)
        m.addSeparator()
        self.act_plan = self._action(m, "P&lan all lesions", lambda: self._panel_click("planning", "plan_button"),
                                     "Ctrl+P", "plan_action")
        m.addAction(self.act_export)

    def _build_segmentation_actions(self, m) -> None:
        """Segment, the lesion tool, target at the crosshair, undo an edit, mark reviewed (they act
        on the Segmentation panel, like its buttons)."""
        self.act_segment = self._action(m, "&Segment the CT", lambda: self._panel_click("segmentation",
                                                                                         "segment_button"),
                                        "Ctrl+G", "segment_action")
        self.act_lesion_tool = self._action(m, "Lesion from &click", lambda: self._panel_click(
            "segmentation", "tool_buttons", "lesion"), "K", "lesion_tool_action")
        self.act_target = self._action(m, "&Target at crosshair", lambda: self._panel_click(
            "segmentation", "target_button"), "T", "target_action")
        self.act_undo_edit = self._action(m, "Undo label edit", lambda: self._panel_click(
            "segmentation", "undo_edit_button"), "Ctrl+Z", "undo_edit_action")
        self.act_reviewed = self._action(m, "Mark anatomy reviewed", lambda: self._panel_click(
            "segmentation", "review_button"), None, "reviewed_action")

    # ------------------------------------------------------------ actions on panels
    def _panel(self, name: str):
        dock = (getattr(self, "panel_docks", {}) or {}).get(name)
        return None if dock is None else dock.widget()

    def _panel_click(self, panel: str, button: str, key: str = None) -> None:
        """Press a panel's button (so shortcut and button do exactly the same), showing the panel;
        ``key`` picks one of a dict of buttons (the Segmentation panel's tools)."""
        p = self._panel(panel)
        b = None if p is None else getattr(p, button, None)
        if isinstance(b, dict):
            b = b.get(key)
        if b is None or not b.isEnabled():
            self.statusBar().showMessage(self._why_not(panel, button), 8000)
            return
        dock = self.panel_docks[panel]
        dock.show()
        dock.raise_()
        b.click()

    def _why_not(self, panel: str, button: str) -> str:
        p = self._panel(panel)
        if p is None:
            return f"the {panel} panel is not open (View menu)"
        b = getattr(p, button, None)
        b = None if isinstance(b, dict) else b
        return (b.toolTip() if b is not None else "") or f"{panel}: not possible now"

    def toggle_overlay(self) -> None:
        """V: the CT overlay off, or back on in the mode it had."""
        current = next((m for m, a in self.mode_actions.items() if a.isChecked()), "blend")
        if current != "off":
            self._overlay_on_mode = current
            self.set_overlay_mode("off")
        else:
            self.set_overlay_mode(self._overlay_on_mode)

    def update_workflow(self) -> None:
        """Enable the workflow actions that can act now (tooltip: why not) and refresh the bar."""
        for action, panel, button in ((getattr(self, "act_pick", None), "registration", "pick_button"),
                                      (getattr(self, "act_refine", None), "registration", "refine_button"),
                                      (getattr(self, "act_accept", None), "registration", "accept_button"),
                                      (getattr(self, "act_reject", None), "registration", "reject_button"),
                                      (getattr(self, "act_undo_accept", None), "registration", "undo_accept_button"),
                                      (getattr(self, "act_plan", None), "planning", "plan_button"),
                                      (getattr(self, "act_segment", None), "segmentation", "segment_button"),
                                      (getattr(self, "act_target", None), "segmentation", "target_button"),
                                      (getattr(self, "act_undo_edit", None), "segmentation", "undo_edit_button"),
                                      (getattr(self, "act_reviewed", None), "segmentation", "review_button")):
            if action is None:
                continue
            p = self._panel(panel)
            b = None if p is None else getattr(p, button, None)
            ok = b is not None and b.isEnabled()
            why = "" if ok else self._why_not(panel, button)
            if ok and panel == "planning" and self.ct is None:
                ok, why = False, "Plan: needs a CT (File > Open CT; a label map is segmented from it)"
            action.setEnabled(ok)
            action.setToolTip(b.toolTip() if ok else why)
        if hasattr(self, "act_export"):
            ok = self.ct is not None and self.labels is not None
            self.act_export.setEnabled(ok)
            self.act_export.setToolTip("write plan.json, plan.mrk.json, reference_to_ct.tfm and plan.pdf "
                                       "(plans every lesion first when there is no plan)" if ok else
                                       "Export: needs the CT and its label map with lesions (File > Open)")
        if hasattr(self, "act_send_pacs"):
            from gui.panels.pacs_send import unavailable
            why = unavailable(self)
            self.act_send_pacs.setEnabled(not why)
            self.act_send_pacs.setToolTip(why or "store the plan's report, key views, segmentation and "
                                                 "registration in the CT's study on the PACS")
        bar = getattr(self, "workflow", None)
        if bar is not None:
            bar.refresh()

    # ------------------------------------------------------------ help
    def shortcut_list(self) -> List[Tuple[str, str, str]]:
        """(menu, action, shortcut) of every action that has a shortcut, in menu order."""
        out = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            if menu is None:
                continue
            for a in menu.actions():
                keys = a.shortcut().toString(QKeySequence.NativeText)
                if keys:
                    out.append((menu_action.text().replace("&", ""), a.text().replace("&", ""), keys))
        return out

    def show_shortcuts(self) -> QDialog:
        dlg = QDialog(self)
        dlg.setObjectName("shortcuts_dialog")
        dlg.setWindowTitle("Keyboard shortcuts")
        rows = self.shortcut_list()
        table = QTableWidget(len(rows), 3, dlg)
        table.setObjectName("shortcuts_table")
        table.setHorizontalHeaderLabels(("menu", "action", "keys"))
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                table.setItem(r, c, QTableWidgetItem(text))
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.Close, dlg)
        buttons.rejected.connect(dlg.close)
        lay = QVBoxLayout(dlg)
        lay.addWidget(table)
        lay.addWidget(buttons)
        dlg.resize(520, min(720, 60 + 26 * (len(rows) + 2)))
        dlg.setWindowModality(Qt.NonModal)
        dlg.show()
        self.shortcuts_dialog = dlg
        return dlg

    def show_about(self) -> None:
        self.about_box = QMessageBox(QMessageBox.Information, "About ctus",
                                     f"ctus {__version__}: CT-ultrasound fusion planner for liver biopsy.\n\n{DISCLAIMER}",
                                     QMessageBox.Ok, self)
        self.about_box.setObjectName("about_box")
        self.about_box.setWindowModality(Qt.NonModal)
        self.about_box.show()
