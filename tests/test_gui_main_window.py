"""The real main window: real data in, shortcuts, bad input from the File menu, session, About."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QFileDialog, QMessageBox

from _gui_helpers import activate, small_planning_case
from gui.window.window_menus import DISCLAIMER
from gui.window.main_window import MainWindow
from gui.core.session import RegistrationState
from registration.spatial.volume import Volume

pytestmark = pytest.mark.gui
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def window(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    qtbot.waitExposed(w)
    activate(qtbot, w)        # window shortcuts (Space, arrows, 1/2/3) need the active window
    yield w
    w.close()


def _small_ct():
    rng = np.random.default_rng(0)
    vol = Volume(rng.normal(40, 20, (10, 20, 30)).astype(np.int16), (1, 1, 2), (0, 0, 0))
    vol.metadata["source"] = "synthetic"
    return vol


def _choose_file(monkeypatch, path):
    monkeypatch.setattr(QFileDialog, "getOpenFileName", staticmethod(lambda *a, **k: (str(path), "")))


def _wait_for_error(qtbot, w, action):
    qtbot.waitUntil(lambda: bool(w.reporter.history) and w.reporter.history[-1][0] == action, timeout=20000)
    box = w.reporter.last_dialog
    assert box is not None and box.isVisible()
    return box.informativeText()


@pytest.mark.slow
def test_real_ct_labels_and_sweep(window, qtbot, shared_data, tmp_path, artifacts_dir):
    ct_dir = shared_data("ct", "abdomen-20slice")
    sweep_path = shared_data("liver-us", "liver_sweep.igs.mha")
    w = window
    w.open_ct(ct_dir / "dicom")
    w.wait_for_workers()
    assert w.ct is not None and w.ct.shape_ijk == (512, 512, 20)
    w.open_labels(ct_dir / "labels.nii.gz", ct_dir / "label_names.txt")
    w.wait_for_workers()
    assert w.reporter.history == [] and w.labels.names["liver"] == 5
    # Axial slice: the liver (label 5) is on the screen's left half (the patient's right).
    ax = w.views["axial"]
    lab = w.display.slice("axial", ax.slice_index, labels=True)
    assert np.argwhere(lab == 5)[:, 1].mean() < lab.shape[1] / 2
    w.open_sweep(sweep_path)
    w.wait_for_workers()
    assert w.sweep is not None and w.player.n_frames == 140
    assert w.tracking_label.text() == "tracking OK (frame 1)"
    assert w.registration_label.text() == "no registration"
    assert w.us_view.reason_text == "no registration yet: overlay off"
    # Scroll the axial view with the wheel: slice index moves, coronal/sagittal crosshair follow.
    k0 = ax.slice_index
    ax.step_slice(-3)
    assert ax.slice_index == k0 - 3
    assert np.allclose(w.views["coronal"].cursor_lps, ax.cursor_lps)
    # Keyboard: W/L presets, Right steps, Space plays.
    qtbot.keyClick(w, Qt.Key_2)
    assert (ax.window, ax.level) == (150.0, 60.0)
    qtbot.keyClick(w, Qt.Key_Right)
    assert w.player.index == 1 and w.us_view.frame_index == 1
    qtbot.keyClick(w, Qt.Key_Space)
    qtbot.waitUntil(lambda: w.player.index >= 6, timeout=5000)
    qtbot.keyClick(w, Qt.Key_Space)
    assert not w.player.playing
    qtbot.keyClick(w, Qt.Key_1)
    w.grab().save(str(artifacts_dir / "gui_main_window_real_data.png"))


def test_wrong_file_type_from_file_menu_keeps_state(window, qtbot, monkeypatch, tmp_path):
    w = window
    ct = _small_ct()
    w.set_ct(ct)
    bad = tmp_path / "notes.nrrd"
    bad.write_text("this is not an image\n")
    _choose_file(monkeypatch, bad)
    w.act_open_ct_file.trigger()
    text = _wait_for_error(qtbot, w, "Open CT")
    assert "notes.nrrd" in text and ";" in text            # file: what is wrong; how to fix
    assert w.ct is ct and w.views["axial"].display is w.display
    assert "Open CT" in w.log_panel.toPlainText()


def test_sweep_without_calibration_is_refused(window, qtbot, monkeypatch, shared_data):
    path = shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha")
    w = window
    _choose_file(monkeypatch, path)
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *a, **k: QMessageBox.No))
    w.act_open_sweep.trigger()
    text = _wait_for_error(qtbot, w, "Open sweep")
    assert "SpinePhantomFreehand.igs.mha" in text and "calibration" in text
    assert w.sweep is None and w.us_view.frame_index == -1


def test_label_map_of_another_ct_is_refused(window, qtbot, monkeypatch, shared_data, tmp_path):
    seg = shared_data("ct", "liver-3slice", "liver_spine_seg.nrrd")
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"liver": 1, "spine": 2}))
    w = window
    w.set_ct(_small_ct())
    w.open_labels(seg, names)
    text = _wait_for_error(qtbot, w, "Open labels")
    assert "does not match the CT" in text and "liver_spine_seg.nrrd" in text
    assert w.labels is None


def test_session_round_trip(window, qtbot, tmp_path, qapp):
    ct = _small_ct()
    ct_path = tmp_path / "ct.mha"
    import SimpleITK as sitk
    sitk.WriteImage(ct.to_sitk(), str(ct_path))
    w = window
    w.open_ct(ct_path)
    w.wait_for_workers()
    assert w.ct is not None
    reg = RegistrationState(np.array([[1, 0, 0, 5], [0, 1, 0, -3], [0, 0, 1, 2], [0, 0, 0, 1.0]]),
                            "landmarks", tre_mm=3.0, fre_mm=1.2)
    w.set_registration(reg)
    w._on_window_level(150, 60)
    w.set_cursor([10.0, 5.0, 8.0])
    w.register_session_part("landmarks", lambda: {"pairs": [[1, 2, 3]]}, lambda d: None)
    path = tmp_path / "s.ctus.json"
    w.save_session(path)
    assert json.loads(path.read_text())["ct_path"] == str(ct_path)
    w2 = MainWindow(enable_3d=False)
    qtbot.addWidget(w2)
    restored = []
    w2.register_session_part("landmarks", lambda: {}, restored.append)
    w2.open_session(path)
    assert w2.reporter.history == []
    assert w2.ct is not None and w2.ct.shape_ijk == ct.shape_ijk
    assert np.allclose(w2.registration.reference_to_ct, reg.reference_to_ct)
    assert w2.registration.tre_mm == 3.0 and "within ~5 mm" in w2.registration_label.text()   # 95 %: 1.61 x RMS
    assert (w2.views["axial"].window, w2.views["axial"].level) == (150, 60)
    assert np.allclose(w2.views["sagittal"].cursor_lps, [10, 5, 8])
    assert restored == [{"pairs": [[1, 2, 3]]}]          # a panel's edits came back
    # A broken session file: one dialog, nothing changes.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "ct_path": str(tmp_path / "gone.nrrd")}))
    w2.open_session(bad)
    assert "gone.nrrd" in w2.reporter.history[-1][1] and w2.ct is not None
    w2.close()


def test_about_shows_version_and_disclaimer(window):
    from gui import __version__
    window.findChild(type(window.act_export), "about").trigger()
    text = window.about_box.text()
    assert __version__ in text and DISCLAIMER in text and "Decision support" in text


@pytest.mark.slow
def test_export_plan_writes_the_planner_files(window, qtbot, tmp_path):
    w = window
    w.export_plan(tmp_path / "nothing")
    assert "label map" in w.reporter.history[-1][1]           # refused: no CT/labels yet
    assert not (tmp_path / "nothing").exists()
    ct, labels = small_planning_case()
    w.set_ct(ct, labels)
    reg = RegistrationState(np.eye(4), "landmarks", tre_mm=2.0)
    w.set_registration(reg)
    w.export_plan(tmp_path / "plan")
    w.wait_for_workers()
    assert [h for h in w.reporter.history if h[0] == "Export plan"][1:] == []
    out = tmp_path / "plan"
    assert sorted(p.name for p in out.iterdir()) == ["plan.json", "plan.mrk.json", "plan.pdf", "reference_to_ct.tfm"]
    plan = json.loads((out / "plan.json").read_text())
    from planner.export.plan_files import validate_plan
    validate_plan(plan)
    (les,) = plan["lesions"]
    assert les["name"] == "lesion_1" and les["trajectories"]
    assert np.linalg.norm(np.asarray(les["trajectories"][0]["target_ct"])) < 8.0   # inside the lesion
    assert (out / "plan.pdf").read_bytes()[:5] == b"%PDF-"
    assert w.plan["lesions"][0]["name"] == "lesion_1" and "wrote" in w.log_panel.toPlainText()
    # Exporting again into the same folder without force: refused, files untouched.
    before = (out / "plan.json").stat().st_mtime_ns
    w.export_plan(out)
    w.wait_for_workers()
    assert "already exists" in w.reporter.history[-1][1]
    assert (out / "plan.json").stat().st_mtime_ns == before


def test_uncaught_exception_goes_to_the_reporter(window):
    from gui.core.errors import install_excepthook
    previous = install_excepthook(window.reporter)
    try:
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = previous
    assert window.reporter.history[-1] == ("Unexpected error", "RuntimeError: boom in a slot")
    assert "Traceback" in window.log_panel.toPlainText()


def test_without_display_prints_a_clear_message():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-c", "import sys, gui.window.app; sys.exit(gui.window.app.main([]))"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "no display" in r.stderr and "ctus" in r.stderr


def test_autosave_and_restore(qtbot, tmp_path):
    import SimpleITK as sitk
    ct_path = tmp_path / "ct.mha"
    sitk.WriteImage(_small_ct().to_sitk(), str(ct_path))
    auto = tmp_path / "auto" / "autosave.ctus.json"
    w = MainWindow(enable_3d=False, autosave_path=auto, autosave_interval_s=0.05)
    qtbot.addWidget(w)
    assert not w.autosave()                       # nothing open: nothing to save
    w.open_ct(ct_path)
    w.wait_for_workers()
    w._on_window_level(1500, 400)
    qtbot.waitUntil(lambda: auto.exists() and json.loads(auto.read_text()).get("window") == 1500,
                    timeout=5000)                 # the timer saved it (after the W/L change)
    assert json.loads(auto.read_text())["window"] == 1500
    assert not w.autosave()                       # unchanged: not written again
    w.close()
    w2 = MainWindow(enable_3d=False, autosave_path=auto)
    qtbot.addWidget(w2)
    w2.restore_autosave()
    assert w2.ct is not None and w2.views["axial"].window == 1500
    w2.close()


def test_open_ct_folder_from_the_menu_and_cursor_readout(window, qtbot, monkeypatch, shared_data):
    folder = shared_data("ct", "abdomen-20slice", "dicom")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    window.act_open_ct_folder.trigger()
    window.wait_for_workers()
    assert window.reporter.history == [] and window.ct.shape_ijk == (512, 512, 20)
    assert "HU" in window.cursor_label.text()


@pytest.mark.slow
def test_folder_with_two_series_asks_which(window, qtbot, monkeypatch, tmp_path):
    case = pytest.importorskip("sample_data.case.demo_case")
    demo = case.cache_root() / f"demo-v{case.CASE_VERSION}-seed0"
    if not (demo / case.MARKER).is_file():
        pytest.skip("demo case not generated yet")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for phase in ("arterial", "portal"):
        for f in sorted((demo / "ct" / phase).iterdir()):
            (mixed / f"{phase}_{f.name}").symlink_to(f)
    offered = []

    def choose(parent, title, label, items, current, editable):
        offered.extend(items)
        return next(i for i in items if "portal" in i), True

    from PyQt5.QtWidgets import QInputDialog
    monkeypatch.setattr(QInputDialog, "getItem", staticmethod(choose))
    window.open_ct(mixed)
    window.wait_for_workers()
    assert len(offered) == 2 and window.reporter.history == []
    from registration.io.ct_io import load_ct
    portal = load_ct(demo / "ct_portal.nrrd")
    assert window.ct.shape_ijk == portal.shape_ijk
    assert np.abs(window.ct.array.astype(int) - portal.array).max() <= 1


def test_panels_are_installed_once_and_listed_in_the_view_menu(qtbot):
    w = MainWindow(enable_3d=False, panels=True)
    qtbot.addWidget(w)
    assert set(w.panel_docks) == {"registration", "planning", "segmentation", "mr", "guidance"}
    assert w.reporter.history == []
    assert w.install_panels() is w.panel_docks and len(w.panel_docks) == 5     # idempotent
    titles = [a.text() for a in w.view_menu.actions()]
    assert "Registration" in titles and "Planning" in titles and "Segmentation" in titles and "Guidance" in titles \
        and "MR" in titles
    w.close()


def test_a_ctus_register_result_shows_its_verdict_and_the_tre_near_the_sweep():
    """RESULT.json rows (tre_registration_mm, distance_to_sweep_mm) give the status-bar TRE: the
    largest near the sweep; a poor result gives none."""
    from gui.core.session import RegistrationState
    d = {"reference_to_ct": np.eye(4).tolist(), "method": "lc2", "verdict": "check",
         "targets": [{"name": "lesion_1", "tre_registration_mm": 1.8, "distance_to_sweep_mm": 2.0},
                     {"name": "lesion_2", "tre_registration_mm": 2.4, "distance_to_sweep_mm": 8.0},
                     {"name": "lesion_5", "tre_registration_mm": 7.5, "distance_to_sweep_mm": 90.0}]}
    s = RegistrationState.from_dict(d)
    # One figure, at the target it is about, in plain words: the 95 % radius 1.61 x 2.4 = 3.9 mm.
    assert s.tre_mm == 2.4 and s.quality_text() == "automatic (check), within ~4 mm at lesion_2"
    poor = RegistrationState.from_dict(dict(d, verdict="poor"))
    assert poor.tre_mm is None and poor.quality_text() == "automatic (do not use), error not estimated"
