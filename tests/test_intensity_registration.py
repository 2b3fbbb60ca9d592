"""LC2 sweep registration on a synthetic CT + sweep with known truth; MI baseline; bad input."""
from __future__ import annotations

import numpy as np
import pytest

from registration.spatial.errors import CancelledError, InputError
from registration.align.lc2_cost import frame_samples, select_frames
from registration.align.multistart import random_rigid_perturbation, start_perturbations
from registration.align.intensity_registration import register_sweep
from registration.spatial.transforms import apply, invert, rigid_matrix

from synthetic_case import TRUE_REFERENCE_TO_CT, lesion_centroids_ct, make_ct, make_sweep


@pytest.fixture(scope="module")
def ct():
    return make_ct()


@pytest.fixture(scope="module")
def sweep(ct):
    return make_sweep(ct, n_frames=16, invalid=(3, 4))


def _target_errors(m):
    pts = lesion_centroids_ct()
    return np.linalg.norm(apply(m, apply(invert(TRUE_REFERENCE_TO_CT), pts)) - pts, axis=1)


def test_frame_samples_map_pixels_to_the_true_ct_positions(ct, sweep):
    """Resampled frame pixels, mapped through the true transform, land where the simulator put them."""
    idx = select_frames(sweep, 16)
    assert 3 not in idx and 4 not in idx                 # INVALID tracking frames are never used
    s = frame_samples(sweep, idx[:2], 2.0)
    pts_ct = apply(TRUE_REFERENCE_TO_CT, s.points_ref)
    mats, _ = sweep.image_to_reference_all()
    # first fan pixel of frame idx[0], recomputed from the Image frame directly
    fy, fx = np.nonzero(s.fan[0])
    rows, cols = sweep.image_shape
    nr, nc = s.fan.shape[1:]
    x = (fx[0] + 0.5) * cols / nc - 0.5
    y = (fy[0] + 0.5) * rows / nr - 0.5
    expect = apply(TRUE_REFERENCE_TO_CT @ mats[idx[0]], [x, y, 0.0])
    assert np.allclose(pts_ct[0], expect, atol=1e-9)


def test_frame_cost_is_the_same_whole_or_in_parallel_halves_and_outside_counts_as_flat(ct, sweep):
    """metric(m) == metric(m, map_fn) (two threads); samples leaving the CT lower LC2, never raise it."""
    from concurrent.futures import ThreadPoolExecutor

    from registration.align.lc2_cost import FrameLC2Cost, ct_feature_level
    from registration.align.lc2 import lc2
    smp = frame_samples(sweep, select_frames(sweep, 6), 2.0)
    cost = FrameLC2Cost(ct_feature_level(ct, 2.0), smp, 7)
    with ThreadPoolExecutor(2) as ex:
        whole, inside = cost.metric(TRUE_REFERENCE_TO_CT)
        halves, inside2 = cost.metric(TRUE_REFERENCE_TO_CT, lambda f, xs: list(ex.map(f, xs)))
    assert inside == inside2 == 1.0
    assert halves == pytest.approx(whole, abs=1e-6)
    p, g = cost.sample_features(TRUE_REFERENCE_TO_CT)
    pv, gv = (np.zeros(smp.u.shape, np.float32) for _ in range(2))
    pv[smp.fan], gv[smp.fan] = p, g
    # float32 arithmetic: equal to the general form in float32, within 1e-3 of float64
    assert whole == pytest.approx(lc2(smp.u, pv, gv, smp.fan, (1, 7, 7), dtype=np.float32), abs=1e-4)
    assert whole == pytest.approx(lc2(smp.u, pv, gv, smp.fan, (1, 7, 7)), abs=1e-3)
    # Push the fan half out of the CT: fewer samples inside and a lower metric.
    out = rigid_matrix([0, 0, 0, 0, 0, 200.0], (0, 0, 0)) @ TRUE_REFERENCE_TO_CT
    lc_out, inside_out = cost.metric(out)
    assert inside_out < 0.9 and lc_out < whole


def _save_picture(path, ct, sweep, init, res):
    """US frame | CT intensity feature resliced at the start | at the result; convergence."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from registration.align.lc2_cost import FrameLC2Cost, ct_feature_level
    f = res.frames_used[len(res.frames_used) // 2]
    smp = frame_samples(sweep, np.array([f]), 1.0)
    cost = FrameLC2Cost(ct_feature_level(ct, 1.0), smp, 9)
    fig, ax = plt.subplots(1, 4, figsize=(16, 4))
    ax[0].imshow(smp.u[0], cmap="gray")
    ax[0].set_title(f"US frame {f}")
    for a, m, title in ((ax[1], init, "start"), (ax[2], res.reference_to_ct, "result")):
        p, _ = cost.sample_features(m)
        img = np.zeros(smp.u.shape[1:])
        img[smp.fan[0]] = np.nan_to_num(p)
        a.imshow(smp.u[0], cmap="gray")
        # CT vessels (bright, p > 0.6) and lesions (p ~ 0.3) resliced on the frame plane
        a.contour(img, levels=[0.31, 0.6], colors=["y", "r"], linewidths=0.8)
        a.set_title(f"US + CT contours at the {title}")
    h = np.array(res.history)
    for lev in np.unique(h[:, 1]):
        sel = h[:, 1] == lev
        ax[3].plot(h[sel, 0], h[sel, 2], ".", ms=2, label=f"level {int(lev)}")
    ax[3].set_xlabel("evaluation")
    ax[3].set_ylabel("LC2")
    ax[3].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


@pytest.mark.slow
def test_lc2_recovers_the_true_pose_from_perturbed_starts(ct, sweep, artifacts_dir):
    rng = np.random.default_rng(3)
    center = lesion_centroids_ct().mean(0)
    for trial in range(2):
        init = random_rigid_perturbation(rng, (5.0, 12.0), (0.0, 6.0), center=center) @ TRUE_REFERENCE_TO_CT
        assert _target_errors(init).max() > 4.0
        res = register_sweep(ct, sweep, init, n_starts=2, seed=1, hessian=False)
        assert _target_errors(res.reference_to_ct).max() < 1.5
        assert res.metric_final > res.metric_initial
        assert res.method == "lc2" and res.iterations == len(res.history) and res.wall_time_s > 0
        assert 3 not in res.frames_used and 4 not in res.frames_used
        assert len(res.starts) == 2
        if trial == 0:
            _save_picture(artifacts_dir / "registration_lc2_synthetic.png", ct, sweep, init, res)


def test_progress_can_cancel(ct, sweep):
    calls = []

    def progress(fraction, message):
        calls.append(fraction)
        return len(calls) < 3
    with pytest.raises(CancelledError):
        register_sweep(ct, sweep, TRUE_REFERENCE_TO_CT, progress=progress, n_starts=1)
    assert len(calls) == 3


def test_all_frames_invalid_raises(ct):
    bad = make_sweep(ct, n_frames=4, invalid=range(4))
    with pytest.raises(InputError, match="INVALID"):
        register_sweep(ct, bad, TRUE_REFERENCE_TO_CT)


def test_no_overlap_raises(ct, sweep):
    far = rigid_matrix([0, 0, 0, 0, 300.0, 0]) @ TRUE_REFERENCE_TO_CT
    with pytest.raises(InputError, match="do not overlap"):
        register_sweep(ct, sweep, far)
    with pytest.raises(InputError, match="do not overlap"):
        register_sweep(ct, sweep, far, method="mi")


def test_unknown_method_and_nan_init_raise(ct, sweep):
    with pytest.raises(InputError, match="unknown registration method"):
        register_sweep(ct, sweep, TRUE_REFERENCE_TO_CT, method="ncc")
    m = TRUE_REFERENCE_TO_CT.copy()
    m[0, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        register_sweep(ct, sweep, m)


def test_starts_are_seeded_and_begin_with_the_initial_pose():
    a, b = start_perturbations(4, 7), start_perturbations(4, 7)
    assert np.array_equal(a, b) and np.all(a[0] == 0) and a.shape == (4, 6)
    assert np.all(np.linalg.norm(a[1:, 3:], axis=1) <= 6.0 + 1e-9)


@pytest.mark.slow
def test_mi_baseline_runs_with_the_same_interface(ct, sweep):
    center = lesion_centroids_ct().mean(0)
    init = rigid_matrix([1.0, 0, 0, 3.0, -2.0, 0], center=center) @ TRUE_REFERENCE_TO_CT
    res = register_sweep(ct, sweep, init, method="mi", n_starts=2)
    assert res.method == "mi" and res.reference_to_ct.shape == (4, 4)
    assert res.metric_final == max(s.metric_final for s in res.starts)     # best start wins
    assert res.metric_final > res.starts[0].metric_initial                 # MI increased
    from registration.spatial.transforms import is_rigid
    assert is_rigid(res.reference_to_ct)
    # A baseline, not the product's method: it must not make a 4 mm start much worse.
    assert _target_errors(res.reference_to_ct).max() < _target_errors(init).max() + 3.0
    assert res.uncertainty.verdict in ("good", "check", "poor")
    assert 3 not in res.frames_used


def test_threads_do_not_change_the_result_and_progress_stays_on_the_callers_thread(ct, sweep):
    import threading
    center = lesion_centroids_ct().mean(0)
    init = random_rigid_perturbation(np.random.default_rng(5), (6.0, 8.0), (2.0, 4.0), center=center) \
        @ TRUE_REFERENCE_TO_CT
    threads = set()

    def progress(fraction, message):
        threads.add(threading.current_thread())
        return True
    kw = dict(n_starts=3, seed=2, hessian=False, max_evals_per_start=40, max_coarse_evals=40)
    one = register_sweep(ct, sweep, init, n_threads=1, **kw)
    two = register_sweep(ct, sweep, init, n_threads=2, progress=progress, **kw)
    np.testing.assert_array_equal(one.reference_to_ct, two.reference_to_ct)
    assert [s.metric_final for s in one.starts] == [s.metric_final for s in two.starts]
    assert one.iterations == two.iterations == len(two.history)
    assert sorted(h[0] for h in two.history) == list(range(1, two.iterations + 1))
    assert threads == {threading.current_thread()}


def test_cancel_during_the_parallel_starts_stops_the_worker_threads(ct, sweep, monkeypatch):
    """Cancelled at an evaluation count of the coarse level (the starts run on the worker
    threads): CancelledError, and no thread is left. Reports are time-throttled, so a count of
    calls does not say where the work is (a fast machine reports less): every step reports here."""
    import threading

    from registration.spatial import progress as staged
    monkeypatch.setattr(staged, "MIN_REPORT_INTERVAL_S", 0.0)
    before = threading.active_count()
    calls = []

    def progress(fraction, message):
        calls.append(message)
        return not ("level 1 of 3" in message and "evaluations" in message)
    with pytest.raises(CancelledError):
        register_sweep(ct, sweep, TRUE_REFERENCE_TO_CT, progress=progress, n_starts=4, n_threads=2)
    assert "evaluations" in calls[-1] and "level 1 of 3" in calls[-1], calls[-3:]
    assert threading.active_count() == before


def test_the_pipeline_is_options_and_stages_of_plain_data(ct, sweep):
    """register_sweep's keywords become an LC2Options; the stages take and return plain data, and
    running the pass with the options gives exactly register_sweep's result."""
    from registration.align.lc2_stages import LC2Options
    from registration.align.intensity_registration import register_lc2
    from registration.align.lc2_stages import DEFAULT_LEVELS, Level, prepare_levels, roi_center
    with pytest.raises(InputError, match="breathing mode"):
        LC2Options(breathing="sometimes")
    with pytest.raises(InputError, match="breath-hold"):
        register_sweep(ct, sweep, TRUE_REFERENCE_TO_CT, breath_hold="mid")
    opts = LC2Options(n_starts=2, translation_search_mm=0.0, max_coarse_evals=30, max_evals_per_start=30,
                      hessian=False, breathing="off", levels=(Level(4.0, 5, 6), Level(2.5, 7, 6)))
    levels = prepare_levels(ct, sweep, TRUE_REFERENCE_TO_CT, opts)
    assert [c.level.spacing_mm for c in levels.costs] == [4.0, 2.5]
    assert all(len(f) == 6 and 3 not in f and 4 not in f for f in levels.frames)
    centre = roi_center(TRUE_REFERENCE_TO_CT, levels.fine.samples.points_ref)
    assert np.allclose(centre, apply(TRUE_REFERENCE_TO_CT, levels.fine.samples.points_ref).mean(axis=0))
    assert DEFAULT_LEVELS[-1].pixel_mm == 1.6 and opts.evaluation_budget() == 2 * 30 + 30
    init = rigid_matrix([1.0, 0, 0, 3.0, -2.0, 1.0], center=lesion_centroids_ct().mean(0)) @ TRUE_REFERENCE_TO_CT
    staged = register_lc2(ct, sweep, init, opts)
    keywords = register_sweep(ct, sweep, init, n_starts=2, translation_search_mm=0.0, max_coarse_evals=30,
                              max_evals_per_start=30, hessian=False, breathing="off",
                              levels=((4.0, 5, 6), (2.5, 7, 6)))
    np.testing.assert_array_equal(staged.reference_to_ct, keywords.reference_to_ct)
    assert set(staged.timings_s) == {"ct_features", "coarse_starts", "middle_level", "fine_level", "deformation",
                                   "assess"}
    assert staged.uncertainty.hessian_positive_definite is None and staged.breathing is None


def test_the_small_patch_search_is_kept_only_where_the_fine_level_prefers_it(ct, sweep, monkeypatch):
    """After the levels, a second search with small patches runs from the result (default levels only);
    its pose replaces the pipeline's only when the pipeline's own fine level scores it higher."""
    from dataclasses import replace as dc_replace

    from registration.align import lc2_pipeline
    from registration.align.lc2_stages import LC2Options, Level, small_patches_apply
    opts = LC2Options(hessian=False, breathing="off")
    assert small_patches_apply(opts) and not small_patches_apply(dc_replace(opts, small_patches=False))
    assert not small_patches_apply(dc_replace(opts, levels=(Level(2.5, 5, 6), Level(1.6, 7, 6))))
    assert not small_patches_apply(dc_replace(opts, levels=(Level(4.0, 5, 6), Level(2.5, 5, 6), Level(1.6, 7, 6))))
    init = rigid_matrix([1.0, 0, 0, 3.0, -2.0, 1.0], center=lesion_centroids_ct().mean(0)) @ TRUE_REFERENCE_TO_CT
    off = rigid_matrix([0, 0, 0, 6.0, 0, 0], center=lesion_centroids_ct().mean(0)) @ TRUE_REFERENCE_TO_CT
    calls = []

    def fake(pose):
        def search(ev, lv, current, options):
            calls.append(current)
            return pose
        return search
    monkeypatch.setattr(lc2_pipeline, "small_patch_search", fake(off))
    kept = register_sweep(ct, sweep, init, hessian=False, breathing="off")
    assert len(calls) == 1 and np.abs(_target_errors(kept.reference_to_ct)).max() < 2.0
    assert "small_patches" in kept.timings_s
    # a pipeline stopped early (a few evaluations) is worse than the truth at the fine level: replaced
    monkeypatch.setattr(lc2_pipeline, "small_patch_search", fake(TRUE_REFERENCE_TO_CT))
    short = register_sweep(ct, sweep, init, hessian=False, breathing="off", max_coarse_evals=3,
                           max_evals_per_start=4, translation_search_mm=0.0)
    np.testing.assert_array_equal(short.reference_to_ct, TRUE_REFERENCE_TO_CT)
    calls.clear()
    register_sweep(ct, sweep, init, hessian=False, breathing="off", small_patches=False, max_coarse_evals=3,
                   max_evals_per_start=4, translation_search_mm=0.0)
    assert not calls
