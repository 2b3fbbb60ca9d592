"""Registration panel in the real window: landmarks clicked at the TRUE positions through the
views, residuals, exclude/delete/undo, INVALID-frame refusal, LC2 refinement (cancel, complete,
accept, revert) and a screenshot of the panel with residuals.

The landmark test runs on the cached demo case when it exists (else the small synthetic case);
the refinement runs on the synthetic case (tests/synthetic_case.py) so it stays fast.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, QPointF, Qt

from gui.window.main_window import MainWindow
from gui.panels import registration_panel
from gui.panels.landmark_list import FLE_FLOOR_MM, LandmarkList
from gui.core.session import RegistrationState, Session
from registration.align.result_document import RESULT_VERSION, result_document
from registration.align.targets import targets_from_labels
from registration.spatial.transforms import apply, invert, rigid_matrix
from registration.spatial.volume import LabelMap

from synthetic_case import TRUE_REFERENCE_TO_CT, lesion_centroids_ct, make_ct, make_sweep

pytestmark = pytest.mark.gui


def _demo_folder():
    """The demo case (generated into the per-user cache on first use)."""
    from sample_data.case.demo_case import ensure_demo_case
    return Path(ensure_demo_case())


def _synthetic_labels(ct):
    """Two spherical lesions of the synthetic CT as a LabelMap on its grid."""
    lab = np.zeros(ct.array.shape, np.int16)
    kji = np.indices(ct.array.shape).reshape(3, -1).T
    lps = ct.index_to_lps(kji[:, ::-1].astype(float))
    for v, (c, r) in enumerate(zip(lesion_centroids_ct(), (9.0, 7.0)), start=1):
        lab.reshape(-1)[np.linalg.norm(lps - c, axis=1) < r] = v
    return LabelMap(lab, ct.spacing, ct.origin, names={"lesion_1": 1, "lesion_2": 2})


def _window(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1500, 950)
    w.show()
    qtbot.waitExposed(w)
    w.reporter.show_dialogs = False
    return w


@pytest.fixture
def loaded(qtbot):
    """(window, true reference_to_ct, case name) on the demo case."""
    w = _window(qtbot)
    folder = _demo_folder()
    ready = []
    w.open_demo(then=lambda: ready.append(True))
    qtbot.waitUntil(lambda: bool(ready) or bool(w.reporter.history), timeout=180000)
    assert ready and not w.reporter.history, w.reporter.history
    truth = json.loads((folder / "truth.json").read_text())
    name = w.sweep.source.split("/")[-1]
    entry = next(s for s in truth["ultrasound"]["sweeps"] if s["file"] == name)
    yield w, np.asarray(entry["reference_to_ct"], float), "demo"
    w.close()


def _click_ct(qtbot, w, lps, view_name="axial"):
    """Show ``lps`` zoomed in at the centre of a slice view and click it there."""
    view = w.views[view_name]
    w.set_cursor(lps)
    view.zoom, view.pan = 3.0, QPointF(0.0, 0.0)
    p = view.lps_to_widget(lps)
    view.pan = QPointF(view.width() / 2.0, view.height() / 2.0) - p
    pos = view.lps_to_widget(lps).toPoint()
    qtbot.mouseClick(view, Qt.LeftButton, pos=pos)


def _us_widget_pos(w, col, row):
    return w.us_view.pixel_to_widget(col, row).toPoint()


def _true_pair(w, panel, frame, col, row, true_r2c):
    """Best integer US click near (col, row) on ``frame``: the one whose true CT point lies closest
    to an axial slice centre (the CT click snaps to the slice plane). -> (US pos, CT point)."""
    grid = w.display.grid
    i2r = w.sweep.image_to_reference(frame)
    best = None
    base = _us_widget_pos(w, col, row)
    for dx in range(-3, 4):
        for dy in range(-3, 4):
            pos = base + QPoint(dx, dy)
            px = w.us_view.widget_to_pixel(pos)
            ct = apply(true_r2c @ i2r, [px[0], px[1], 0.0])
            z = grid.lps_to_index(ct)[2]
            err = abs(z - np.rint(z)) * grid.spacing[2]
            if best is None or err < best[0]:
                best = (err, pos, ct)
    return best[1], best[2]


def _pick(qtbot, w, panel, frame, col, row, true_r2c, ct_offset=(0.0, 0.0, 0.0)):
    w.player.seek(frame, force=True)
    pos, ct = _true_pair(w, panel, frame, col, row, true_r2c)
    _click_ct(qtbot, w, ct + np.asarray(ct_offset))
    qtbot.mouseClick(w.us_view, Qt.LeftButton, pos=pos)
    return ct


def _table_text(panel, row, col):
    return panel.table.item(row, col).text()


def test_landmarks_clicked_at_truth_give_the_true_registration(loaded, qtbot, artifacts_dir, tmp_path):
    w, true_r2c, case = loaded
    dock = registration_panel.install(w)
    panel = dock.widget()
    qtbot.waitUntil(dock.isVisible)
    w.resizeDocks([dock], [560], Qt.Horizontal)
    qtbot.mouseClick(panel.pick_button, Qt.LeftButton)
    assert panel.pick_button.isChecked()
    valid = w.sweep.valid
    rows, cols = w.sweep.image_shape

    # A US click on an INVALID-tracking frame is refused with the reason.
    bad = np.flatnonzero(~valid)
    assert bad.size, "both cases have INVALID frames"
    w.player.seek(int(bad[0]), force=True)
    _click_ct(qtbot, w, w.display.center_lps())
    qtbot.mouseClick(w.us_view, Qt.LeftButton, pos=_us_widget_pos(w, cols / 2, rows / 2))
    assert "INVALID" in panel.instructions.text() and f"frame {bad[0] + 1}" in panel.instructions.text()
    assert panel.landmarks.pairs == []

    # Six pairs on frames across the sweep, at different places in the image.
    frames = np.flatnonzero(valid)[np.linspace(0, valid.sum() - 1, 6).round().astype(int)]
    spots = [(0.35, 0.35), (0.65, 0.45), (0.5, 0.7), (0.4, 0.55), (0.6, 0.3), (0.45, 0.8)]
    truth_ct = [_pick(qtbot, w, panel, int(f), cols * a, rows * b, true_r2c) for f, (a, b) in zip(frames, spots)]
    lm = panel.landmarks
    assert len(lm.pairs) == 6 and lm.result is not None
    # The picked points are marked where they were clicked: CT view (its slice) and US frame.
    for view in w.views.values():
        assert [label for _, label in view.markers] == [p.name for p in lm.pairs]
    assert np.allclose(w.views["axial"].markers[5][0], lm.pairs[5].ct)
    us_marks = {m[0] for m in panel.us_overlay.marks()}
    assert us_marks == {p.name for p in lm.pairs if p.frame == w.us_view.frame_index} and "L6" in us_marks
    w.grab().save(str(artifacts_dir / f"gui_registration_window_{case}.png"))
    # Residuals ~0: only the click quantisation (zoomed view, slice centre) remains.
    assert lm.result.residuals_mm.max() < 0.5, lm.result.residuals_mm
    assert lm.result.fre_mm < 0.4
    assert not lm.result.outliers.any()
    assert float(_table_text(panel, 0, 4)) < 0.5 and _table_text(panel, 0, 6) == "no"
    # The window now uses the landmark registration, and it matches the truth within 1 mm.
    assert w.registration is not None and w.registration.method == "landmarks"
    check = np.vstack([truth_ct, [les.centroid_lps for les in w.us_view.engine.lesions]])
    err = np.linalg.norm(apply(w.registration.reference_to_ct, apply(invert(true_r2c), check)) - check, axis=1)
    assert err.max() < 1.0, err
    assert "FRE" in panel.quality.text() and "predicted TRE" in panel.quality.text()
    # An FRE of ~0 does not promise a TRE of 0: clicked points get an FLE floor.
    assert lm.result.fle_mm == pytest.approx(FLE_FLOOR_MM)
    assert w.registration.tre_mm >= FLE_FLOOR_MM / np.sqrt(6) - 1e-9

    # A wrong pairing (CT click 15 mm off) is flagged by its leave-one-out error.
    _pick(qtbot, w, panel, int(frames[2]), cols * 0.55, rows * 0.5, true_r2c, ct_offset=(15.0, 0.0, 0.0))
    assert len(lm.pairs) == 7 and lm.result.outliers[-1]
    assert _table_text(panel, 6, 6) == "OUTLIER"
    fre_with = lm.result.fre_mm
    # Exclude it with the table's checkbox: not used, still listed, FRE back to ~0.
    panel.table.item(6, 0).setCheckState(Qt.Unchecked)
    assert not lm.pairs[6].included and lm.result.n == 6 and lm.result.fre_mm < 0.4 < fre_with
    assert _table_text(panel, 6, 6) == "excluded" and float(_table_text(panel, 6, 4)) > 10.0
    assert w.views["axial"].markers[6][1] == "L7 (excluded)"
    # Predicted TRE at a chosen lesion is shown.
    lesion = w.us_view.engine.lesions[0]
    panel.select_target(lesion.name)
    assert f"at {lesion.name}" in panel.quality.text()
    assert w.registration.tre_mm == pytest.approx(float(lm.result.predicted_tre(lesion.centroid_lps)))
    assert w.registration.raw["tre_target"] == lesion.name
    w.resizeDocks([dock], [620], Qt.Horizontal)
    qtbot.wait(50)
    dock.grab().save(str(artifacts_dir / f"gui_registration_panel_{case}.png"))
    # Undo brings the outlier back into the fit; delete removes it; undo restores it.
    qtbot.mouseClick(panel.undo_button, Qt.LeftButton)
    assert lm.pairs[6].included and lm.result.n == 7
    panel.table.selectRow(6)
    qtbot.mouseClick(panel.delete_button, Qt.LeftButton)
    assert len(lm.pairs) == 6 and lm.result.fre_mm < 0.4
    qtbot.mouseClick(panel.undo_button, Qt.LeftButton)
    assert len(lm.pairs) == 7
    # The pairs are part of the session (saved and autosaved) and come back from it; restoring
    # shows and fits them but keeps the session's own registration.
    w.save_session(tmp_path / "s.ctus.json")
    notes = Session.load(tmp_path / "s.ctus.json").notes
    saved = notes["landmarks"]["pairs"]
    assert [p["name"] for p in saved] == [p.name for p in lm.pairs]
    other = RegistrationState(np.eye(4), "file (test)")
    w.set_registration(other)
    panel.landmarks = LandmarkList()
    w.session_parts["landmarks"][1](notes["landmarks"])        # what open_session calls
    lm = panel.landmarks
    assert len(lm.pairs) == 7 and lm.result.n == 7 and w.registration is other
    assert np.allclose(lm.pairs[3].ct, saved[3]["ct_lps"]) and lm.pairs[3].frame == saved[3]["frame"]
    # Below 3 usable pairs: a clear message and the window returns to the registration it had
    # before the landmarks took over.
    for r in range(2, 7):
        panel.table.item(r, 0).setCheckState(Qt.Unchecked)
    assert lm.result is None and "at least 3" in panel.quality.text()
    assert w.registration is other


def test_landmark_json_round_trip_and_bad_input():
    from registration.spatial.errors import InputError
    lm = LandmarkList()
    lm.add([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 7, (10.5, 20.0))
    lm.add([2.0, 2.0, 3.0], [5.0, 5.0, 6.0], 8, (11.0, 21.0))
    lm.set_included(1, False)
    back = LandmarkList.from_json(json.loads(json.dumps(lm.to_json())))
    assert [(p.name, p.frame, p.pixel, p.included) for p in back.pairs] == \
        [(p.name, p.frame, p.pixel, p.included) for p in lm.pairs]
    assert back.add([0, 0, 0], [0, 0, 0], 0, (0, 0)).name == "L3"       # numbering continues
    with pytest.raises(InputError, match="pair 1"):
        LandmarkList.from_json([{"name": "L1", "ct_lps": [1, 2], "reference": [1, 2, 3], "frame": 0,
                                 "pixel": [0, 0]}])
    with pytest.raises(InputError, match="pair 1"):
        LandmarkList.from_json([{"name": "L1", "reference": [1, 2, 3]}])
    with pytest.raises(InputError, match="pair 1.*'included' must be true or false"):
        LandmarkList.from_json([{"name": "L1", "ct_lps": [1, 2, 3], "reference": [1, 2, 3], "frame": 0,
                                 "pixel": [0, 0], "included": "false"}])


def test_collinear_landmarks_are_refused_with_the_reason():
    lm = LandmarkList()
    for t in (0.0, 10.0, 20.0, 30.0):
        lm.add([t, 2 * t, 0.0], [t, 0.0, 2 * t], 0, (0, 0))
    assert lm.fit() is None and "collinear" in lm.message
    lm.add([5.0, 40.0, 3.0], [5.0, 3.0, 40.0], 0, (0, 0))
    assert lm.fit() is not None


@pytest.fixture
def synthetic(qtbot):
    w = _window(qtbot)
    ct = make_ct()
    w.set_ct(ct, _synthetic_labels(ct))
    w.set_sweep(make_sweep(ct, n_frames=16, invalid=(3, 4)))
    dock = registration_panel.install(w)
    yield w, dock.widget()
    w.close()


def _target_error(m):
    pts = lesion_centroids_ct()
    return np.linalg.norm(apply(m, apply(invert(TRUE_REFERENCE_TO_CT), pts)) - pts, axis=1).max()


def test_the_panel_targets_are_the_label_maps_lesions_as_ctus_register_finds_them(synthetic):
    """The TRE targets come from the window's labels through the engine (not from another
    view): the same centroids and radii as `ctus register --labels`, plus the CT centre."""
    w, panel = synthetic
    expected = targets_from_labels(w.labels)
    assert set(panel.targets) == {"CT centre"} | set(expected)
    for name, t in expected.items():
        assert panel.targets[name] == t
    assert np.allclose(panel.targets["lesion_1"]["point"], lesion_centroids_ct()[0], atol=0.5)
    assert [panel.target_box.itemText(i) for i in range(panel.target_box.count())] == ["CT centre", "lesion_1",
                                                                                       "lesion_2"]
    panel.select_target("lesion_2")
    name, point, radius = panel.target()
    assert name == "lesion_2" and np.allclose(point, expected["lesion_2"]["point"])
    assert radius == expected["lesion_2"]["radius_mm"]
    # New labels (one lesion): the targets follow the window's data.
    lab = w.labels
    w.set_labels(LabelMap((lab.array == 1).astype(np.int16), lab.spacing, lab.origin, names={"lesion_1": 1}))
    assert set(panel.targets) == {"CT centre", "lesion_1"} and panel.target()[0] == "CT centre"


def test_refinement_without_a_start_says_what_is_missing(qtbot):
    w = _window(qtbot)
    panel = registration_panel.install(w).widget()
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    assert "needs a CT" in panel.progress_text.text() and panel.worker is None
    w.close()


def test_cancel_a_running_refinement(synthetic, qtbot):
    w, panel = synthetic
    start = RegistrationState(rigid_matrix([2, -1, 1, 4, -3, 2], center=lesion_centroids_ct().mean(0))
                              @ TRUE_REFERENCE_TO_CT, "test start")
    w.set_registration(start)
    panel.refine_options = dict(n_starts=2, max_evals_per_start=400)
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    assert panel.worker is not None and panel.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=30000)
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=30000)
    assert "cancelled" in panel.verdict.text()
    assert panel.candidate is None and not panel.accept_button.isEnabled()
    assert w.registration is start
    assert w.reporter.last_dialog is None          # a cancel is not an error dialog


@pytest.mark.slow
def test_refinement_runs_to_completion_and_is_accepted_then_reverted(synthetic, qtbot, artifacts_dir):
    w, panel = synthetic
    start = RegistrationState(rigid_matrix([3, -2, 2, 5, -4, 3], center=lesion_centroids_ct().mean(0))
                              @ TRUE_REFERENCE_TO_CT, "test start")
    w.set_registration(start)
    assert _target_error(start.reference_to_ct) > 4.0
    panel.select_target("lesion_1")
    panel.refine_options = dict(n_starts=2, max_evals_per_start=120, seed=1)
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=180000)
    assert w.reporter.history == [], w.reporter.history
    res = panel.candidate
    assert res is not None and res.metric_final > res.metric_initial
    assert panel.plot.history and len(panel.plot.history) == len(res.history)
    text = panel.verdict.text()
    verdict = res.uncertainty.verdict
    assert f"Verdict: {verdict.upper()}" in text
    # Never a bare verdict: the TRE estimate and the hit probability at the lesion are shown.
    names = {r.name for r in res.uncertainty.targets}
    assert names == {"CT centre", "lesion_1", "lesion_2"} and f"{len(names)} target(s) assessed" in text
    t = res.uncertainty.target("lesion_1")
    assert f"at lesion_1: registration TRE est. {t.tre_registration_mm:.1f} mm" in text
    assert f"hit probability {100 * t.hit_probability:.0f} %" in text
    assert w.registration is start          # only a candidate until accepted
    # Another target: its row of the same assessment is shown (no new registration).
    panel.select_target("CT centre")
    centre = res.uncertainty.target("CT centre")
    assert "at CT centre" in panel.verdict.text() and "hit probability" not in panel.verdict.text()
    assert f"{centre.tre_registration_mm:.1f} mm" in panel.verdict.text()
    panel.select_target("lesion_1")
    w.resizeDocks([panel.parentWidget()], [620], Qt.Horizontal)
    qtbot.wait(50)
    panel.grab().save(str(artifacts_dir / "gui_registration_panel_refined.png"))
    qtbot.mouseClick(panel.accept_button, Qt.LeftButton)
    assert w.registration.method == "lc2"
    assert _target_error(w.registration.reference_to_ct) < 1.5
    assert w.registration.tre_mm == pytest.approx(t.tre_registration_mm)
    assert "lc2" in w.registration_label.text()
    # The accepted registration carries the RESULT document `ctus register` writes (same
    # function, same fields) plus the GUI's chosen target; it reads back as the same state.
    doc = result_document(res, **panel.candidate_context)
    assert json.dumps(dict(doc, tre_target="lesion_1")) == json.dumps(w.registration.raw)
    assert doc["init"]["source"] == "init" and doc["verdict"] == verdict and doc["version"] == RESULT_VERSION
    again = RegistrationState.from_dict(w.registration.to_dict())
    assert again.verdict == verdict and again.tre_mm == pytest.approx(t.tre_registration_mm)
    qtbot.mouseClick(panel.revert_button, Qt.LeftButton)
    assert w.registration is start


def test_convergence_plot_best_so_far_and_ticks(qtbot):
    from gui.panels.convergence_plot import ConvergencePlot, nice_ticks
    plot = ConvergencePlot()
    qtbot.addWidget(plot)
    plot.set_history([(1, 0, 0.20), (2, 0, 0.15), (3, 0, 0.30), (4, 1, 0.28), (5, 1, float("nan")), (6, 1, 0.31)])
    assert len(plot.history) == 5                                 # NaN evaluations are dropped
    assert np.allclose(plot.best_so_far(), [0.20, 0.20, 0.30, 0.28, 0.31])   # restarts at level 2
    assert nice_ticks(0.12, 0.41) == pytest.approx([0.2, 0.3, 0.4])
    assert nice_ticks(0.12, 0.41, 8) == pytest.approx([0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    assert nice_ticks(0, 350, 5) == pytest.approx([0, 100, 200, 300])
    plot.resize(300, 160)
    assert not plot.grab().isNull()
