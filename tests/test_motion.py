"""Breathing in a free-breathing sweep: the model fit, and detection on simulated sweeps."""
from __future__ import annotations

import numpy as np
import pytest

from registration.align import motion


def _profiles(times, trace, shifts=motion.SHIFTS_MM, noise=0.0, seed=0):
    """Per-frame LC2 sums peaking at the frame's true shift (a parabola), weights 1."""
    rng = np.random.default_rng(seed)
    num = 0.4 - 0.002 * (shifts[None, :] - np.asarray(trace)[:, None]) ** 2
    return num + noise * rng.normal(size=num.shape), np.ones(len(times))


def test_fit_recovers_amplitude_period_and_the_ct_phase():
    t = np.linspace(0.0, 4.0, 20)
    truth = motion.raised_cosine(t, 3.5, 0.4)
    num, den = _profiles(t, -2.0 + 10.0 * truth, noise=0.002)
    fit = motion.fit_breathing(t, num, den, max_period_s=4.0)
    assert fit["A"] == pytest.approx(10.0, abs=1.0)
    assert fit["T"] == pytest.approx(3.5, abs=0.3)
    assert fit["c"] == pytest.approx(-2.0, abs=1.0)          # the shift at end-expiration
    assert fit["score"] - fit["score_constant"] > motion.DETECT_GAIN
    # A still liver: the best model is no better than one constant shift.
    num, den = _profiles(t, np.full(t.size, 1.5), noise=0.002)
    still = motion.fit_breathing(t, num, den, max_period_s=4.0)
    assert still["score"] - still["score_constant"] < motion.DETECT_GAIN / 4
    assert still["c_constant"] == pytest.approx(1.5, abs=0.5)


def test_held_out_frames_tell_breathing_from_frames_that_each_prefer_their_own_shift():
    """Breathing is one smooth motion: a model fitted on half the frames predicts the other half.
    Frames that each prefer a scattered shift (a static sweep with noisy profiles) let the
    exhaustive fit pass DETECT_GAIN in-sample, but not on the held-out frames."""
    t = np.linspace(0.0, 12.0, 20)
    num, den = _profiles(t, -2.0 + 10.0 * motion.raised_cosine(t, 4.0, 0.7), noise=0.002)
    fit = motion.fit_breathing(t, num, den, max_period_s=12.0)
    held = motion.held_out_gain(t, num, den, max_period_s=12.0)
    assert held > motion.DETECT_HELD_OUT_GAIN
    assert held > 0.5 * (fit["score"] - fit["score_constant"])
    scattered = np.random.default_rng(4).uniform(-8.0, 8.0, t.size)        # no motion model behind it
    num, den = _profiles(t, scattered, noise=0.002)
    fit = motion.fit_breathing(t, num, den, max_period_s=12.0)
    assert fit["score"] - fit["score_constant"] > motion.DETECT_GAIN        # the in-sample fit is fooled
    assert motion.held_out_gain(t, num, den, max_period_s=12.0) < motion.DETECT_HELD_OUT_GAIN


@pytest.mark.slow
def test_breathing_sweep_is_detected_and_counted_in_the_error_a_still_one_is_not(demo_case, tmp_path):
    """Demo CT, lesion_2's sweep simulated still and with 10 mm breathing (4 s cycle): at the true
    pose only the breathing sweep shows it, and registering it adds half the amplitude to the
    error (never a 'good' verdict)."""
    import json

    from registration.io.ct_io import load_ct
    from registration.align.intensity_registration import register_sweep
    from registration.io.labelmap_io import load_labels
    from registration.align.lc2_cost import ct_feature_levels, crop_to_points, frame_samples, select_frames
    from registration.io.sequence_io import load_sweep
    from registration.spatial.transforms import apply
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    truth = json.loads((demo_case / "truth.json").read_text())
    ct = load_ct(demo_case / "ct_portal.nrrd")
    labels = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
    found = {}
    for mm in (0.0, 10.0):
        out = tmp_path / f"b{mm:.0f}"
        us = make_sweeps(ct, labels, truth, out, seed=1, breathing_mm=mm, frames_per_sweep=100,
                         lesions=["lesion_2"], survey=False)
        sw = load_sweep(out / us["sweeps"][0]["file"], calibration=out / us["config"])
        m = np.array(us["reference_to_ct"])
        smp = frame_samples(sw, select_frames(sw, 12), 2.5)
        level = ct_feature_levels(crop_to_points(ct, apply(m, smp.points_ref), 45), [2.5])[0]
        valid = np.flatnonzero(sw.require_image_to_reference()[1])
        found[mm] = (motion.analyse_breathing(sw, level, m, valid), sw, m)
    still, moving = found[0.0][0], found[10.0][0]
    assert not still.detected and still.amplitude_mm < motion.DETECT_AMPLITUDE_MM
    assert moving.detected and 6.0 <= moving.amplitude_mm <= 14.0
    assert 3.0 <= moving.period_s <= 4.25
    _, sw, m = found[10.0]
    targets = {"lesion_2": {"point": next(les["centroid_lps"] for les in truth["lesions"]
                                          if les["name"] == "lesion_2"), "radius_mm": 5.0}}
    res = register_sweep(ct, sw, m, targets=targets, seed=1)
    u = res.uncertainty
    assert res.breathing["detected"] and u.verdict != "good"
    assert u.error_terms.unresolved_breathing_mm == pytest.approx(0.5 * res.breathing["amplitude_mm"])
    terms = u.to_dict()["error_terms_mm"]
    assert terms["unresolved_breathing_in_registration"] == u.error_terms.unresolved_breathing_mm
    assert u.targets[0].tre_registration_mm >= 0.5 * res.breathing["amplitude_mm"]
    assert any("breathing" in r for r in u.reasons)
