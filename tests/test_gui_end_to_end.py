"""The whole workflow in the real window on the demo case, as a radiologist would do it:
open the demo case -> click six landmark pairs through the CT and US views (at the true
positions) -> automatic LC2 refinement, accepted -> plan all lesions -> export -> the files
exist and validate -> save the session and reload it in a new window."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from PyQt5.QtCore import Qt

from gui.window.main_window import MainWindow
from planner.export.plan_files import validate_plan
from registration.spatial.transforms import apply, invert

from _gui_helpers import pick as _pick  # the same true-position clicks as the panel test

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _lesion_error_mm(window, truth, reference_to_ct):
    true_r2c = np.asarray(truth["reference_to_ct"], float)
    c = np.array([l["centroid_lps"] for l in truth["lesions"]])
    return np.linalg.norm(apply(reference_to_ct, apply(invert(true_r2c), c)) - c, axis=1)


def test_demo_case_end_to_end(qtbot, demo_case, tmp_path, artifacts_dir):
    truth = json.loads((demo_case / "truth.json").read_text())
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    w.reporter.show_dialogs = False
    docks = w.install_panels()
    reg_panel, plan_panel = docks["registration"].widget(), docks["planning"].widget()

    # 1. open the demo case (CT, labels, first sweep) in the workers
    ready = []
    w.open_demo(then=lambda: ready.append(True))
    qtbot.waitUntil(lambda: bool(ready) or bool(w.reporter.history), timeout=180000)
    assert ready and not w.reporter.history, w.reporter.history
    entry = next(s for s in truth["ultrasound"]["sweeps"] if s["file"] in w.sweep.source)
    true_r2c = np.asarray(entry["reference_to_ct"], float)

    # 2. landmarks: six pairs clicked through the views at the true positions
    w.resizeDocks([docks["registration"]], [560], Qt.Horizontal)
    docks["registration"].raise_()
    qtbot.mouseClick(reg_panel.pick_button, Qt.LeftButton)
    valid = w.sweep.valid
    rows, cols = w.sweep.image_shape
    frames = np.flatnonzero(valid)[np.linspace(0, valid.sum() - 1, 6).round().astype(int)]
    spots = [(0.35, 0.35), (0.65, 0.45), (0.5, 0.7), (0.4, 0.55), (0.6, 0.3), (0.45, 0.8)]
    for f, (a, b) in zip(frames, spots):
        _pick(qtbot, w, int(f), cols * a, rows * b, true_r2c)
    assert not reg_panel.pick_button.isChecked()          # the sixth pair completed the set
    assert w.registration is not None and w.registration.method == "landmarks"
    landmark_err = _lesion_error_mm(w, truth, w.registration.reference_to_ct)
    assert landmark_err.max() < 1.5, landmark_err

    # 3. automatic refinement (LC2) in a worker, then accepted with its numbers shown
    reg_panel.select_target("lesion_1")
    reg_panel.refine_options = dict(n_starts=2, seed=1)
    qtbot.mouseClick(reg_panel.refine_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: reg_panel.worker is None, timeout=300000)
    assert not w.reporter.history, w.reporter.history
    res = reg_panel.candidate
    assert res is not None and reg_panel.plot.history
    line = next(r for r in reg_panel.verdict.rows if r.name == "lesion_1")
    assert "at lesion_1" in line.text and "hit probability" in line.details
    qtbot.mouseClick(reg_panel.accept_button, Qt.LeftButton)
    assert w.registration.method == "lc2"
    refined_err = _lesion_error_mm(w, truth, w.registration.reference_to_ct)
    print(f"\nlesion errors: landmarks {np.round(landmark_err, 1)} mm, after LC2 {np.round(refined_err, 1)} mm, "
          f"verdict {res.uncertainty.verdict}")
    assert refined_err.max() < 5.0, refined_err
    w.grab().save(str(artifacts_dir / "gui_e2e_registered.png"))

    # 4. plan all lesions with the accepted registration and the sweep
    docks["planning"].raise_()
    plan_panel.plan_options = dict(n_directions=1500)
    qtbot.mouseClick(plan_panel.plan_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: plan_panel.worker is None, timeout=300000)
    assert not w.reporter.history, w.reporter.history
    plan = plan_panel.result.plan
    assert sorted(l["name"] for l in plan["lesions"]) == sorted(l["name"] for l in truth["lesions"])
    assert plan_panel.table.rowCount() == len(truth["lesions"])
    assert sum(len(l["trajectories"]) for l in plan["lesions"]) > 0
    w.grab().save(str(artifacts_dir / "gui_e2e_planned.png"))

    # 5. export through File > Export (the planning panel's plan), files exist and validate
    dlg = plan_panel.open_export()
    dlg.open_folder_when_done = False
    out = tmp_path / "plan"
    dlg.folder.setText(str(out))
    qtbot.mouseClick(dlg.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=300000)
    assert not w.reporter.history, w.reporter.history
    saved = json.loads((out / "plan.json").read_text())
    validate_plan(saved)
    mrk = json.loads((out / "plan.mrk.json").read_text())
    assert "markups-schema-v1.0.3.json" in mrk["@schema"]  # Slicer writes it with a trailing '#' 
    assert all(m["coordinateSystem"] == "LPS" for m in mrk["markups"])
    assert (out / "plan.pdf").read_bytes()[:5] == b"%PDF-"
    tx = sitk.ReadTransform(str(out / "reference_to_ct.tfm"))
    p = (10.0, -20.0, 30.0)
    assert np.allclose(tx.TransformPoint(p), apply(w.registration.reference_to_ct, p), atol=1e-6)
    dlg.close()

    # 6. session round trip: a new window gets the same data, registration and landmarks
    session = tmp_path / "case.ctus.json"
    w.save_session(str(session))
    assert not w.reporter.history, w.reporter.history
    w2 = MainWindow(enable_3d=False)
    qtbot.addWidget(w2)
    w2.reporter.show_dialogs = False
    w2.install_panels()
    w2.open_session(str(session))
    w2.wait_for_workers()
    qtbot.waitUntil(lambda: w2.sweep is not None and w2.registration is not None, timeout=120000)
    assert not w2.reporter.history, w2.reporter.history
    assert np.allclose(w2.registration.reference_to_ct, w.registration.reference_to_ct)
    assert w2.ct.array.shape == w.ct.array.shape and w2.labels.names == w.labels.names
    pairs2 = w2.panel_docks["registration"].widget().landmarks.pairs
    assert len(pairs2) == 6
    w2.close()
    w.close()
