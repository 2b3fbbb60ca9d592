"""Registration panel in the real window: landmarks clicked at the TRUE positions through the
views, residuals, exclude/delete/undo, INVALID-frame refusal, LC2 refinement (cancel, complete,
accept, reject, undo accept) and a screenshot of the panel with residuals.

The landmark test runs on the cached demo case when it exists (else the small synthetic case);
the refinement runs on the synthetic case (tests/synthetic_case.py) so it stays fast.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from _gui_helpers import click_ct as _click_ct
from _gui_helpers import make_window, open_demo, pick
from _gui_helpers import synthetic_labels as _synthetic_labels
from _gui_helpers import us_widget_pos as _us_widget_pos
from gui.panels import registration_panel
from gui.panels.landmark_list import FLE_FLOOR_MM, LandmarkList
from gui.core.session import RegistrationState, Session
from registration.align.result_document import RESULT_VERSION, result_document
from registration.align.targets import targets_from_labels
from registration.spatial.transforms import apply, invert, rigid_matrix
from registration.spatial.volume import LabelMap

from synthetic_case import TRUE_REFERENCE_TO_CT, lesion_centroids_ct, make_ct, make_sweep

pytestmark = pytest.mark.gui


def _window(qtbot):
    return make_window(qtbot)


@pytest.fixture
def loaded(qtbot):
    """(window, true reference_to_ct, case name) on the demo case."""
    w = _window(qtbot)
    true_r2c = open_demo(qtbot, w)
    yield w, true_r2c, "demo"
    w.close()


def _pick(qtbot, w, panel, frame, col, row, true_r2c, ct_offset=(0.0, 0.0, 0.0)):
    if not panel.pick_button.isChecked():
        qtbot.mouseClick(panel.pick_button, Qt.LeftButton)     # picking stops after a full set
    return pick(qtbot, w, frame, col, row, true_r2c, ct_offset)


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
    # The sixth pair completed the set: picking stopped by itself and said why.
    assert not panel.pick_button.isChecked() and "complete" in panel.instructions.text()
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
    assert float(_table_text(panel, 0, 3)) < 0.5 and _table_text(panel, 0, 5) == "no"
    # The window now uses the landmark registration, and it matches the truth within 1 mm.
    assert w.registration is not None and w.registration.method == "landmarks"
    check = np.vstack([truth_ct, [les.centroid_lps for les in w.us_view.engine.lesions]])
    err = np.linalg.norm(apply(w.registration.reference_to_ct, apply(invert(true_r2c), check)) - check, axis=1)
    assert err.max() < 1.0, err
    assert "Landmark estimate (6 pairs)" in panel.quality.text() and "mismatch" in panel.quality.text()
    assert "FRE" in panel.quality.toolTip() and "predicted TRE" in panel.quality.toolTip()
    # An FRE of ~0 does not promise a TRE of 0: clicked points get an FLE floor.
    assert lm.result.fle_mm == pytest.approx(FLE_FLOOR_MM)
    assert w.registration.tre_mm >= FLE_FLOOR_MM / np.sqrt(6) - 1e-9

    # A wrong pairing (CT click 15 mm off) is flagged by its leave-one-out error.
    _pick(qtbot, w, panel, int(frames[2]), cols * 0.55, rows * 0.5, true_r2c, ct_offset=(15.0, 0.0, 0.0))
    assert len(lm.pairs) == 7 and lm.result.outliers[-1]
    assert _table_text(panel, 6, 5) == "yes" and panel.table.item(6, 5).font().bold()
    fre_with = lm.result.fre_mm
    # Exclude it with the table's checkbox: not used, still listed, FRE back to ~0.
    panel.table.item(6, 0).setCheckState(Qt.Unchecked)
    assert not lm.pairs[6].included and lm.result.n == 6 and lm.result.fre_mm < 0.4 < fre_with
    assert _table_text(panel, 6, 5) == "\u2013" and "excluded" in panel.table.item(6, 5).toolTip()
    assert float(_table_text(panel, 6, 3)) > 10.0
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
    """The error targets come from the window's labels through the engine (not from another
    view): the same centroids and radii as `ctus register --labels`, plus the CT centre; the
    first lesion is chosen by default."""
    w, panel = synthetic
    expected = targets_from_labels(w.labels)
    assert set(panel.targets) == {"CT centre"} | set(expected)
    for name, t in expected.items():
        assert panel.targets[name] == t
    assert np.allclose(panel.targets["lesion_1"]["point"], lesion_centroids_ct()[0], atol=0.5)
    assert [panel.target_box.itemText(i) for i in range(panel.target_box.count())] == ["lesion_1", "lesion_2",
                                                                                       "CT centre"]
    assert panel.target()[0] == "lesion_1"
    panel.select_target("lesion_2")
    name, point, radius = panel.target()
    assert name == "lesion_2" and np.allclose(point, expected["lesion_2"]["point"])
    assert radius == expected["lesion_2"]["radius_mm"]
    # New labels (one lesion): the targets follow the window's data.
    lab = w.labels
    w.set_labels(LabelMap((lab.array == 1).astype(np.int16), lab.spacing, lab.origin, names={"lesion_1": 1}))
    assert set(panel.targets) == {"CT centre", "lesion_1"} and panel.target()[0] == "lesion_1"


def test_refinement_without_a_start_says_what_is_missing(qtbot):
    w = _window(qtbot)
    panel = registration_panel.install(w).widget()
    assert not panel.refine_button.isEnabled() and "needs a CT" in panel.refine_button.toolTip()
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    assert panel.worker is None
    panel.refine()                      # called anyway (e.g. from a script): says what is missing
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
    assert "cancelled" in panel.verdict.plain_text()
    assert panel.candidate is None and not panel.accept_button.isEnabled()
    assert w.registration is start
    assert w.reporter.last_dialog is None          # a cancel is not an error dialog


@pytest.mark.slow
def test_refinement_runs_to_completion_is_rejected_accepted_and_undone(synthetic, qtbot, artifacts_dir):
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
    text = panel.verdict.plain_text()
    verdict = res.uncertainty.verdict
    assert text.startswith("Automatic result, waiting for Accept: ")
    # One line per lesion, in plain words, one figure each (the 95 % radius), the lesion named.
    t = res.uncertainty.target("lesion_1")
    words = {"good": "good", "check": "check", "poor": "do not use"}[t.verdict]
    line = next(r for r in panel.verdict.rows if r.name == "lesion_1")
    assert [r.name for r in panel.verdict.rows] == ["lesion_1", "lesion_2"]       # no CT centre line
    if t.tre_registration_95_mm is not None and t.verdict != "poor":
        assert line.text.startswith(f"{words}: overlay within ~") and line.text.find("at lesion_1") > 0
        assert line.within_mm == pytest.approx(t.tre_registration_95_mm)
    assert f"hit probability {100 * t.hit_probability:.0f} %" in line.details        # numbers in the tooltip
    for jargon in ("TRE", "LC2", "Hessian", "metric", "optimum", "FRE"):
        assert jargon not in text, (jargon, text)
    assert w.registration is start          # only a candidate until accepted
    w.resizeDocks([panel.parentWidget()], [620], Qt.Horizontal)
    qtbot.wait(50)
    panel.grab().save(str(artifacts_dir / "gui_registration_panel_refined.png"))
    # Reject, refine again, accept: the three actions are separate and say what they did.
    qtbot.mouseClick(panel.reject_button, Qt.LeftButton)
    assert panel.candidate is None and w.registration is start and "rejected" in panel.progress_text.text()
    assert not panel.accept_button.isEnabled() and not panel.undo_accept_button.isEnabled()
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=180000)
    res = panel.candidate
    t = res.uncertainty.target("lesion_1")
    qtbot.mouseClick(panel.accept_button, Qt.LeftButton)
    assert w.registration.method == "lc2"
    assert _target_error(w.registration.reference_to_ct) < 1.5
    assert w.registration.tre_mm == pytest.approx(t.tre_registration_mm)
    assert "automatic" in w.registration_label.text() and "at lesion_1" in w.registration_label.text()
    assert panel.verdict.plain_text().startswith("Accepted automatic result: ")
    # The accepted registration carries the RESULT document `ctus register` writes (same
    # function, same fields) plus the GUI's chosen target; it reads back as the same state.
    doc = result_document(res, **panel.candidate_context)
    assert json.dumps(dict(doc, tre_target="lesion_1")) == json.dumps(w.registration.raw)
    assert doc["init"]["source"] == "init" and doc["verdict"] == verdict and doc["version"] == RESULT_VERSION
    again = RegistrationState.from_dict(w.registration.to_dict())
    assert again.verdict == verdict and again.tre_mm == pytest.approx(t.tre_registration_mm)
    # Another target: the accepted result's summary follows it (its row of the same assessment).
    panel.select_target("lesion_2")
    assert w.registration.tre_mm == pytest.approx(res.uncertainty.target("lesion_2").tre_registration_mm)
    assert "at lesion_2" in w.registration_label.text()
    qtbot.mouseClick(panel.undo_accept_button, Qt.LeftButton)
    assert w.registration is start and "undone" in panel.progress_text.text()


def test_convergence_plot_best_so_far_and_ticks(qtbot):
    from gui.panels.convergence_plot import ConvergencePlot, nice_ticks
    plot = ConvergencePlot()
    qtbot.addWidget(plot)
    plot.set_history([(1, 0, 0.20), (2, 0, 0.15), (3, 0, 0.30), (4, 1, 0.28), (5, 1, float("nan")), (6, 1, 0.31)])
    assert len(plot.history) == 5                                 # NaN evaluations are dropped
    assert np.allclose(plot.best_so_far(), [0.20, 0.20, 0.30, 0.28, 0.31])   # restarts at level 2
    # the second search's two pixel sizes interleave (its starts run side by side): each keeps its own
    # maximum, apart from the levels', and the legend names them
    from gui.panels.convergence_plot import level_name
    from registration.align.lc2_stages import SECOND_SEARCH_LEVEL_IDS as ids
    plot.set_history([(1, 2, 0.30), (2, ids[0], 0.25), (3, ids[1], 0.28), (4, ids[0], 0.27), (5, ids[1], 0.26)])
    assert np.allclose(plot.best_so_far(), [0.30, 0.25, 0.28, 0.27, 0.28])
    assert [level_name(v) for v in (0, 2, ids[0], ids[1])] == ["level 1", "level 3", "2nd search 1", "2nd search 2"]
    plot.resize(300, 160)
    assert not plot.grab().isNull()
    plot.set_history([(1, 0, 0.20), (2, 0, 0.15), (3, 0, 0.30), (4, 1, 0.28), (5, 1, 0.31)])
    assert nice_ticks(0.12, 0.41) == pytest.approx([0.2, 0.3, 0.4])
    assert nice_ticks(0.12, 0.41, 8) == pytest.approx([0.15, 0.2, 0.25, 0.3, 0.35, 0.4])
    assert nice_ticks(0, 350, 5) == pytest.approx([0, 100, 200, 300])
    plot.resize(300, 160)
    assert not plot.grab().isNull()
