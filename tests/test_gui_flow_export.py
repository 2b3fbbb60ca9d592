"""The export dialog always has a way out: Cancel closes it without writing, Escape too, Cancel
during an export stops it before anything is written, and after an export it reads Close.
Screenshots of the dialog over the window at 1366x768 and 1920x1080 go to tests/artifacts."""
from __future__ import annotations

import pytest
from PyQt5.QtCore import Qt

from _gui_helpers import SIZES, grab_screen, make_window, small_planning_case

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot):
    w = make_window(qtbot, size=SIZES[0], panels=True)
    w.move(0, 0)
    ct, labels = small_planning_case()
    w.set_ct(ct, labels)
    yield w
    w.close()


def _dialog(w, qtbot, folder):
    dlg = w.ask_export_plan()                 # File > Export, Ctrl+E and the workflow bar all come here
    qtbot.waitExposed(dlg)
    dlg.open_folder_when_done = False
    dlg.folder.setText(str(folder))
    return dlg


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_cancel_closes_the_export_dialog_without_writing(window, qtbot, tmp_path, artifacts_dir, size):
    w = window
    w.resize(*size)
    qtbot.wait(50)
    out = tmp_path / "plan"
    dlg = _dialog(w, qtbot, out)
    assert dlg.cancel_button.text() == "Cancel" and dlg.cancel_button.isEnabled()
    assert dlg.export_button.isEnabled() and dlg.patient_id.isChecked() is False     # de-identified by default
    # Nothing is clipped: the dialog fits the screen and its status text wraps inside it.
    assert dlg.width() <= size[0] and dlg.height() <= size[1]
    assert dlg.status.width() <= dlg.width() and dlg.status.wordWrap()
    dlg.move(w.geometry().center() - dlg.rect().center())
    qtbot.wait(100)
    grab_screen(w, artifacts_dir / f"gui_flow_export_dialog_{size[0]}x{size[1]}.png")
    qtbot.mouseClick(dlg.cancel_button, Qt.LeftButton)
    assert not dlg.isVisible() and dlg.worker is None
    assert not out.exists() and w.exported == {}
    # Escape closes a fresh dialog the same way.
    dlg = _dialog(w, qtbot, out)
    qtbot.keyClick(dlg, Qt.Key_Escape)
    assert not dlg.isVisible() and not out.exists()


@pytest.mark.slow
def test_cancel_during_an_export_stops_it_before_writing_then_close(window, qtbot, tmp_path):
    w = window
    out = tmp_path / "plan"
    dlg = _dialog(w, qtbot, out)
    qtbot.mouseClick(dlg.export_button, Qt.LeftButton)      # no plan yet: it plans first
    assert dlg.worker is not None and not dlg.export_button.isEnabled()
    qtbot.mouseClick(dlg.cancel_button, Qt.LeftButton)      # stops the export, the dialog stays
    assert dlg.isVisible()
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120000)
    assert "nothing was written" in dlg.status.text()
    assert not (out / "plan.json").exists() and w.reporter.last_dialog is None
    # Export for real: the files are written and Cancel becomes Close.
    qtbot.mouseClick(dlg.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120000)
    assert (out / "plan.json").exists() and dlg.cancel_button.text() == "Close"
    assert w.workflow.states["export"].done
    qtbot.mouseClick(dlg.cancel_button, Qt.LeftButton)
    assert not dlg.isVisible()
