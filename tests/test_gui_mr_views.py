"""The MR in the window beyond its own dock view (issue 18, item 5): a series chooser for an MR
DICOM study with several series, and the MR (not only the CT) resliced in the ultrasound plane
beside the US, chosen by the user. Real window under Xvfb; screenshots in tests/artifacts/."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from _gui_helpers import demo_folder, grab_screen, make_window, open_demo
from _mri_helpers import _study
from gui.core.session import RegistrationState
from registration.spatial.transforms import apply, invert

pytestmark = [pytest.mark.gui]


def test_a_study_with_several_series_is_listed_and_one_chosen(qtbot, tmp_path, artifacts_dir):
    _study(tmp_path)
    w = make_window(qtbot, size=(1366, 768), panels=True)
    panel = w.mr_panel
    w.panel_docks["mr"].raise_()
    panel.open_mr(tmp_path)
    qtbot.waitUntil(lambda: getattr(panel, "series_dialog", None) is not None or bool(w.reporter.history),
                    timeout=60000)
    assert not w.reporter.history, w.reporter.history
    dlg = panel.series_dialog
    qtbot.waitExposed(dlg)
    table = dlg.table
    rows = {table.item(r, 0).text(): [table.item(r, c).text() for c in range(table.columnCount())]
            for r in range(table.rowCount())}
    assert table.rowCount() == 4 and panel.mr is None                # nothing loaded before the choice
    hbp = rows["t1_vibe_fs_tra"]
    assert hbp[4] == "hepatobiliary" and hbp[1] != "-"               # sequence name, phase in words
    assert rows["ax resp trig"][2] == "2500 / 90" and rows["ax resp trig"][3] == "T2"   # TR / TE, weighting
    dwi = rows["ep2d_diff b50 b800"]
    assert dwi[6]                                                   # why it cannot be opened
    dwi_row = [r for r in range(table.rowCount()) if table.item(r, 0).text() == "ep2d_diff b50 b800"][0]
    assert not table.item(dwi_row, 0).flags() & 1 << 5              # Qt.ItemIsEnabled off
    assert dlg.chosen_uid() == "1.2.3.11"                           # the hepatobiliary phase preselected
    with pytest.raises(ValueError):
        dlg.select_uid("1.2.3.13")                                  # the DWI cannot be chosen
    qtbot.wait(100)
    grab_screen(w, artifacts_dir / "gui_mr_series_chooser.png")
    dlg.select_uid("1.2.3.12")                                      # the user picks the T2
    dlg.buttons.button(dlg.buttons.Open).click()
    qtbot.waitUntil(lambda: panel.mr is not None or bool(w.reporter.history), timeout=60000)
    w.wait_for_workers()
    assert not w.reporter.history, w.reporter.history
    assert panel.mr.metadata.get("weighting") == "T2" and "T2" in panel.info.text()


def test_cancelling_the_series_chooser_loads_nothing(qtbot, tmp_path):
    _study(tmp_path)
    w = make_window(qtbot, panels=True)
    panel = w.mr_panel
    panel.open_mr(tmp_path)
    qtbot.waitUntil(lambda: getattr(panel, "series_dialog", None) is not None, timeout=60000)
    panel.series_dialog.reject()
    w.wait_for_workers()
    assert panel.mr is None and not w.reporter.history


@pytest.mark.slow
def test_the_mr_beside_the_ultrasound_on_the_demo(qtbot, tmp_path, artifacts_dir):
    folder = demo_folder()
    mr_truth = json.loads((folder / "truth.json").read_text())["mr"]
    w = make_window(qtbot, size=(1366, 768), panels=True)
    true_r2c = open_demo(qtbot, w)
    w.set_registration(RegistrationState(true_r2c, "ground truth (test)", tre_mm=0.0))
    panel = w.mr_panel
    assert not panel.fused_choice.isEnabled()
    panel.open_mr(folder / mr_truth["files"]["nifti"])
    w.wait_for_workers()
    mr_to_ct = np.asarray(mr_truth["mr_to_ct_rigid_liver"], float)
    align = tmp_path / "mr_to_ct.json"
    align.write_text(json.dumps({"mr_to_ct": mr_to_ct.tolist(), "verdict": "good", "tre_mm": 0.8}))
    panel.open_mr_to_ct(str(align))
    assert panel.fused_choice.isEnabled()
    # A frame through the MR-only lesion's neighbourhood: the middle of the sweep
    w.player.seek(w.sweep.n_frames // 2 if hasattr(w.sweep, "n_frames") else len(w.sweep.frames) // 2, force=True)
    fv = w.fused_view
    assert fv.shown == "CT" and fv.ct_plane is not None
    ct_plane = fv.ct_plane.copy()
    panel.fused_choice.setCurrentIndex(1)                           # the user: MR beside the US
    w.wait_for_workers()
    assert not w.reporter.history, w.reporter.history
    assert fv.showing_second and fv.shown_name == "MR"
    assert w.layout_buttons["fusion"].text() == "Fusion: US | MR in US plane"    # names what is shown
    plane = fv.ct_plane
    assert plane.shape == ct_plane.shape and not np.array_equal(plane, ct_plane)
    # What is shown is the MR (normalised 0..1) at the plane's points carried through inv(mr_to_ct)
    from registration.io.mr_intensity import normalise
    norm = normalise(panel.mr)
    rows, cols = np.mgrid[0:plane.shape[0]:7, 0:plane.shape[1]:7]
    pix = np.stack([cols.ravel(), rows.ravel(), np.zeros(cols.size), np.ones(cols.size)])
    p_ct = (fv.grid_to_ct @ pix)[:3].T
    ijk = norm.lps_to_index(apply(invert(mr_to_ct), p_ct))
    expect = ndimage.map_coordinates(np.asarray(norm.array, np.float32), [ijk[:, 2], ijk[:, 1], ijk[:, 0]],
                                     order=1, mode="constant", cval=0.0)
    got = plane[rows.ravel(), cols.ravel()]
    inside = expect > 0.05
    assert inside.sum() > 50
    assert np.corrcoef(got[inside], expect[inside])[0, 1] > 0.9
    assert np.median(np.abs(got[inside] - np.clip(expect[inside], 0, 1.5))) < 0.08
    w.panel_docks["mr"].raise_()
    fv.grab()
    qtbot.wait(200)
    w.grab().save(str(artifacts_dir / "gui_mr_beside_us_1366x768.png"))
    panel.fused_choice.setCurrentIndex(0)                           # back to the CT
    assert fv.shown == "CT" and np.array_equal(fv.ct_plane, ct_plane)
    assert w.layout_buttons["fusion"].text() == "Fusion: US | CT in US plane"

    # MR landmarks: with the Registration panel picking, a click on the MR view is the pair's
    # first point (on the CT through mr_to_ct); without picking it only moves the MR cursor.
    from PyQt5.QtCore import QPointF, Qt
    reg = w.panel_docks["registration"].widget()
    mv = panel.view
    w.panel_docks["mr"].raise_()
    qtbot.waitUntil(mv.isVisible, timeout=5000)
    p_mr = np.asarray(mr_truth["mr_only_lesion"]["centroid_mr"], float)

    def click_mr():
        mv.set_cursor(p_mr)
        mv.pan = QPointF(0.0, 0.0)
        mv.pan = QPointF(mv.width() / 2.0, mv.height() / 2.0) - mv.lps_to_widget(p_mr)
        qtbot.mouseClick(mv, Qt.LeftButton, pos=mv.lps_to_widget(p_mr).toPoint())
    click_mr()
    assert reg.pending_ct is None                                   # not picking: no landmark
    reg.pick_button.setChecked(True)
    click_mr()
    assert reg.pending_ct is not None and "MR view" in reg.instructions.text()
    assert np.linalg.norm(reg.pending_ct - apply(mr_to_ct, p_mr)) < 2.0
    reg.pick_button.setChecked(False)
