"""The order of the work in the real window: the workflow bar follows what is loaded and done, the
app shows the panel of the current step, actions are enabled only when their inputs exist (the
tooltip says why not), the shortcuts of the frequent actions work and are listed in Help >
Shortcuts, and no long text widens a dock. Screenshots of the bar at two steps, at 1366x768 and
1920x1080, go to tests/artifacts."""
from __future__ import annotations

import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QTableWidget

from _gui_helpers import SIZES, activate, make_window, raised_panel, synthetic_labels
from gui.core.session import RegistrationState
from gui.core.workflow import WorkflowFacts, current_step, steps
from synthetic_case import TRUE_REFERENCE_TO_CT, make_ct, make_sweep

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def case():
    ct = make_ct()
    return ct, synthetic_labels(ct), make_sweep(ct, n_frames=12, invalid=(3,))


@pytest.fixture
def window(qtbot):
    w = make_window(qtbot, size=SIZES[0], panels=True)
    activate(qtbot, w)
    yield w
    w.close()


def _state(w, key):
    return w.workflow.states[key]


def test_the_steps_follow_the_facts():
    """The rules alone (no Qt): done / enabled / current for typical situations."""
    def cur(**kw):
        return current_step(steps(WorkflowFacts(**kw)))
    assert cur() == "load"
    assert cur(has_ct=True) == "segment"                                # no labels: segment the CT
    assert cur(has_ct=True, has_labels=True, n_lesions=2) == "plan"      # no sweep: CT-guided planning
    loaded = dict(has_ct=True, has_labels=True, n_lesions=2, has_sweep=True)
    assert cur(**loaded) == "register"
    assert cur(**loaded, registration_method="landmarks") == "verify"
    assert cur(**loaded, registration_method="landmarks", candidate=True) == "verify"
    assert cur(**loaded, registration_method="lc2", registration_verdict="good") == "plan"
    assert cur(**loaded, registration_method="lc2", registration_verdict="good", has_plan=True) == "export"
    stale = cur(**loaded, registration_method="lc2", registration_verdict="good", has_plan=True, plan_stale=True)
    assert stale == "plan"
    no_lesion = steps(WorkflowFacts(has_ct=True, has_labels=True, n_lesions=0))
    s = {x.key: x for x in no_lesion}
    assert not s["plan"].enabled and "no lesion" in s["plan"].why_not
    assert current_step(no_lesion) == "segment"         # labels without a lesion: click one
    s = {x.key: x for x in steps(WorkflowFacts())}
    assert not s["register"].enabled and "a CT and a tracked sweep" in s["register"].why_not


def test_the_bar_and_the_panels_follow_what_is_loaded(window, qtbot, case, artifacts_dir):
    w = window
    ct, labels, sweep = case
    bar = w.workflow
    reg = w.panel_docks["registration"].widget()
    # Nothing open: Load is the step; the others are blocked, each saying what is missing.
    assert bar.current == "load" and "Load" in bar.hint.text()
    for key, words in (("register", "needs a CT and a tracked sweep"), ("verify", "needs a registration"),
                       ("plan", "needs a CT"), ("segment", "needs a CT"), ("export", "needs a plan")):
        b = bar.buttons[key]
        assert not b.isEnabled() and words in b.toolTip(), (key, b.toolTip())
    # Actions are enabled only when their inputs exist, with the reason in the tooltip.
    assert not reg.refine_button.isEnabled() and "needs a CT and a tracked sweep" in reg.refine_button.toolTip()
    assert not reg.accept_button.isEnabled() and "no automatic result" in reg.accept_button.toolTip()
    assert not w.act_refine.isEnabled() and not w.act_export.isEnabled() and not w.act_plan.isEnabled()
    assert "needs the CT" in w.act_export.toolTip() and not reg.pick_button.isEnabled()

    # CT and labels (no sweep): the plan is next, and the Planning panel is in front.
    w.set_ct(ct, labels)
    assert bar.current == "plan" and _state(w, "load").done and raised_panel(w) == "planning"
    # The sweep too: Register is next, the Registration panel comes to the front.
    w.set_sweep(sweep)
    qtbot.wait(20)
    assert bar.current == "register" and raised_panel(w) == "registration"
    assert bar.buttons["register"].property("state") == "current"
    assert bar.buttons["load"].text().startswith("\u2713")                  # done: ticked
    # A start exists only with a registration: Refine says so until then.
    assert not reg.refine_button.isEnabled() and "starting registration" in reg.refine_button.toolTip()
    for size in SIZES:
        w.resize(*size)
        qtbot.wait(50)
        bar.grab().save(str(artifacts_dir / f"gui_flow_workflow_bar_register_{size[0]}x{size[1]}.png"))
        w.grab().save(str(artifacts_dir / f"gui_flow_window_register_{size[0]}x{size[1]}.png"))
        assert bar.hint.width() >= bar.hint.sizeHint().width(), "the hint is not cut off"

    # A landmark registration: verify next; refine now possible.
    w.set_registration(RegistrationState(TRUE_REFERENCE_TO_CT, "landmarks", tre_mm=1.5,
                                         raw={"tre_target": "lesion_1"}))
    assert bar.current == "verify" and reg.refine_button.isEnabled() and w.act_refine.isEnabled()
    assert "Accept" in bar.hint.text()
    # An accepted automatic result: the plan is next.
    w.set_registration(RegistrationState(TRUE_REFERENCE_TO_CT, "lc2", tre_mm=1.2, verdict="good",
                                         raw={"tre_target": "lesion_1"}))
    assert bar.current == "plan" and _state(w, "verify").done
    assert w.act_plan.isEnabled() and w.act_export.isEnabled()
    for size in SIZES:
        w.resize(*size)
        qtbot.wait(50)
        bar.grab().save(str(artifacts_dir / f"gui_flow_workflow_bar_plan_{size[0]}x{size[1]}.png"))
    # Clicking a step goes there: Register brings the registration panel back.
    w.panel_docks["planning"].raise_()
    assert raised_panel(w) == "planning"
    qtbot.mouseClick(bar.buttons["register"], Qt.LeftButton)
    assert raised_panel(w) == "registration"


def test_frequent_actions_have_shortcuts_listed_in_help(window, qtbot, case):
    w = window
    ct, labels, sweep = case
    w.set_ct(ct, labels)
    w.set_sweep(sweep)
    listed = {(menu, action): keys for menu, action, keys in w.shortcut_list()}
    for (menu, action), keys in {("Play", "Play / pause"): "Space", ("Play", "Next frame"): "Right",
                                 ("Play", "Previous frame"): "Left", ("Workflow", "Pick landmarks"): "P",
                                 ("Workflow", "Refine automatically"): "Ctrl+R",
                                 ("Workflow", "Accept result"): "Ctrl+Return", ("View", "Overlay on / off"): "V",
                                 ("Workflow", "Plan all lesions"): "Ctrl+P", ("File", "Export plan..."): "Ctrl+E",
                                 ("Help", "Keyboard shortcuts"): "F1"}.items():
        assert listed.get((menu, action)) == keys, (menu, action, listed.get((menu, action)))
    qtbot.keyClick(w, Qt.Key_F1)
    dlg = w.shortcuts_dialog
    assert dlg.isVisible()
    table = dlg.findChild(QTableWidget, "shortcuts_table")
    shown = {(table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount())}
    assert ("Pick landmarks", "P") in shown and ("Play / pause", "Space") in shown
    dlg.close()
    activate(qtbot, w)
    # P toggles pick mode in the Registration panel; V switches the overlay off and back on.
    reg = w.panel_docks["registration"].widget()
    qtbot.keyClick(w, Qt.Key_P)
    assert reg.pick_button.isChecked() and raised_panel(w) == "registration"
    qtbot.keyClick(w, Qt.Key_P)
    assert not reg.pick_button.isChecked()
    w.set_overlay_mode("checker")
    qtbot.keyClick(w, Qt.Key_V)
    assert w.mode_actions["off"].isChecked()
    qtbot.keyClick(w, Qt.Key_V)
    assert w.mode_actions["checker"].isChecked()
    # Right / Left step through the frames; Ctrl+R refines only once a start exists.
    i = w.player.index
    qtbot.keyClick(w, Qt.Key_Right)
    assert w.player.index == i + 1
    qtbot.keyClick(w, Qt.Key_Left)
    assert w.player.index == i
    qtbot.keyClick(w, Qt.Key_R, Qt.ControlModifier)
    assert reg.worker is None                          # disabled: no starting registration


def test_long_texts_wrap_instead_of_widening_the_docks(window, qtbot, case):
    w = window
    ct, labels, sweep = case
    w.set_ct(ct, labels)
    w.set_sweep(sweep)
    qtbot.wait(50)
    reg_dock = w.panel_docks["registration"]
    width = reg_dock.width()
    reg = reg_dock.widget()
    long = " ".join(["a-very-long-stage-message-from-the-engine"] * 12)
    reg.progress_text.setText(long)
    reg.instructions.setText(long)
    reg.quality.setText(long)
    reg.verdict.show_message(long)
    w.data_panel.update_facts(ct, labels, sweep, None)
    qtbot.wait(100)
    assert reg_dock.width() == width
    for lab in (reg.progress_text, reg.instructions, reg.quality, reg.verdict.header):
        assert lab.wordWrap() and lab.width() <= reg.scroll.viewport().width()
    assert not reg.scroll.horizontalScrollBar().isVisible()
    # The status bar's stage text keeps its width; the whole message is in its tooltip.
    w.show_stage("Plan lesions", 0.4, long)
    assert w.stage_label.width() <= w.stage_label.maximumWidth() and long in w.stage_label.toolTip()
    assert w.statusBar().width() <= w.width()
