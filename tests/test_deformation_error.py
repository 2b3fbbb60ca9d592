"""Residual deformation in the error model (issue 19): the imaged region, the local fits, the
deformation term, extrapolated targets and the capture-range evidence."""
from __future__ import annotations

import math

import numpy as np
import pytest

from registration.align.assessment import Assessment
from registration.align.capture_range import CONSISTENT_MM
from registration.align.deformation_error import (GROWTH_PRIOR, LOCAL_FACTOR, NEAR_PROBE_MM, NEAR_PROBE_RADIUS_MM,
                                                  NOT_PRESSED_MM, PRESSED_MM, VALIDATED_MM, ResidualDeformation,
                                                  estimate_residual_deformation, from_fits, near_probe_mm,
                                                  pressed_fraction, unresolved_ms)
from registration.align.imaged_region import ImagedRegion
from registration.align.lc2_cost import FrameLC2Cost, ct_feature_levels, frame_samples, select_frames
from registration.align.local_fits import LocalFit, frame_groups, local_offsets
from registration.align.pose_uncertainty import LaplaceCovariance
from registration.align.registration_result import RegistrationResult, StartResult
from registration.align.uncertainty import GOOD_TRE_MM, RADIUS_95_PER_RMS, assess, hit_probability
from registration.spatial.transforms import rigid_matrix

from synthetic_case import TRUE_REFERENCE_TO_CT, make_ct, make_sweep


@pytest.fixture(scope="module")
def ct():
    return make_ct()


@pytest.fixture(scope="module")
def sweep(ct):
    return make_sweep(ct, n_frames=16, invalid=(3, 4))


def _plane_region(n=3, gap_mm=2.0):
    """Fans of 40 x 120 mm (0.5 mm pixels) in planes z = 0, 2, 4 mm (Reference = CT); a point at
    y = 100 mm lies deeper than the near-probe prior reaches."""
    mats = []
    for k in range(n):
        m = np.diag([0.5, 0.5, 1.0, 1.0])
        m[2, 3] = k * gap_mm
        mats.append(m)
    return ImagedRegion(np.array(mats), np.ones((240, 80), bool))


def test_distance_to_the_imaged_region_is_to_the_union_of_the_fans():
    r = _plane_region()
    d = r.distance_mm([[10, 10, 0], [10, 10, 3], [10, 10, 10], [60, 10, 2], [10, 10, -4]], np.eye(4))
    assert d == pytest.approx([0.0, 1.0, 6.0, 20.25, 4.0], abs=0.3)
    # carried by the pose: a CT shift of the pose moves the region with it
    shifted = rigid_matrix([0, 0, 0, 0, 0, 10.0])
    assert r.distance_mm([[10, 10, 10]], shifted)[0] == pytest.approx(0.0, abs=1e-6)


def test_depth_below_the_probe_face_is_from_the_fans_top_in_the_nearest_frame():
    """A convex-like fan (its top row deeper at the sides): the depth of a point is its row minus
    the first fan row of its column, in the frame nearest to it, times the row spacing (0.5 mm)."""
    mask = np.zeros((200, 80), bool)
    for c in range(80):
        mask[10 + abs(c - 40) // 2:, c] = True           # top row 10 at the centre, 30 at the sides
    mats = []
    for k in range(3):
        m = np.diag([0.5, 0.5, 1.0, 1.0])
        m[2, 3] = 10.0 * k                               # planes z = 0, 10, 20 mm
        mats.append(m)
    r = ImagedRegion(np.array(mats), mask)
    pts = [[20.0, 45.0, 0.0],     # column 40 (top row 10), row 90: 40 mm
           [0.0, 45.0, 10.0],     # column 0 (top row 30), row 90: 30 mm, frame 1
           [20.0, 2.0, 19.0],     # above the fan's top: 0 (the tissue at the face)
           [60.0, 45.0, 20.0]]    # beyond the fan's side: the nearest fan column (79, top row 29)
    assert r.depth_mm(pts, np.eye(4)) == pytest.approx([40.0, 30.0, 0.0, 30.5], abs=0.01)
    # carried by the pose like the distance
    assert r.depth_mm([[20.0, 55.0, 0.0]], rigid_matrix([0, 0, 0, 0, 10.0, 0]))[0] == pytest.approx(40.0, abs=0.01)


def test_the_near_probe_prior_falls_with_depth():
    """Boussinesq's profile under a loaded disc of radius a (incompressible): 1 at the face, 1/sqrt(2)
    at z = a, 1/sqrt(5) at 2a, ~a/z far below; never 0 under a pressed probe."""
    a = NEAR_PROBE_RADIUS_MM
    z = [-3.0, 0.0, a, 2 * a, 10 * a]
    assert [near_probe_mm(v) for v in z] == pytest.approx(
        [NEAR_PROBE_MM, NEAR_PROBE_MM, NEAR_PROBE_MM / math.sqrt(2), NEAR_PROBE_MM / math.sqrt(5),
         NEAR_PROBE_MM / math.sqrt(101)])
    assert all(near_probe_mm(u) > near_probe_mm(v) > 0 for u, v in zip(z[1:], z[2:]))
    assert near_probe_mm(None) == 0.0 and near_probe_mm(float("nan")) == 0.0
    term = ResidualDeformation(1.0, 0.1, [])
    p10 = near_probe_mm(10.0)
    assert p10 > 0 and term.error_mm(5.0, 10.0) == pytest.approx(math.sqrt(1.0 + p10 ** 2 + 0.25))
    assert term.error_mm(5.0) == pytest.approx(math.hypot(1.0, 0.5)) and term.error_mm(5.0) < term.error_mm(5.0, 10 * a)
    assert term.to_dict()["near_probe_mm"] == NEAR_PROBE_MM and term.to_dict()["probe_indentation_mm"] is None
    assert term.to_dict()["near_probe_radius_mm"] == a


def test_the_near_probe_prior_needs_a_pressed_probe():
    """A face on the CT's body outline (indentation <= NOT_PRESSED_MM) has pressed nothing: no prior;
    pressed PRESSED_MM or more: all of it; unknown (None, NaN): all of it (a real probe presses)."""
    full = near_probe_mm(20.0)
    assert near_probe_mm(20.0, None) == full == near_probe_mm(20.0, float("nan")) == near_probe_mm(20.0, 5.0)
    assert near_probe_mm(20.0, NOT_PRESSED_MM) == 0.0 == near_probe_mm(20.0, -3.0)
    mid = 0.5 * (NOT_PRESSED_MM + PRESSED_MM)
    assert near_probe_mm(20.0, mid) == pytest.approx(full / 2) and pressed_fraction(PRESSED_MM) == 1.0
    resting = ResidualDeformation(1.0, 0.1, [], indentation_mm=0.3)
    assert resting.error_mm(5.0, 10.0) == pytest.approx(math.hypot(1.0, 0.5)) == resting.error_mm(5.0)
    assert resting.to_dict()["near_probe_mm"] == 0.0 and resting.to_dict()["probe_indentation_mm"] == 0.3
    pressed = ResidualDeformation(1.0, 0.1, [], indentation_mm=3.0)
    assert pressed.error_mm(5.0, 10.0) == pytest.approx(math.sqrt(1.0 + near_probe_mm(10.0) ** 2 + 0.25))


def _fit(shift_mm, noise_mm=0.5, center=(0.0, 0.0, 0.0)):
    return LocalFit(np.asarray(center, float), np.array([shift_mm, 0.0, 0.0]), 0.3, 0.31, [0, 1], "far", noise_mm)


def test_noise_level_shifts_add_nothing_and_larger_ones_grow_with_distance():
    # shifts no larger than each fit's own small noise (a rigid patient): little
    quiet = from_fits([_fit(s, noise_mm=n) for s, n in ((0.5, 0.6), (0.4, 0.5), (0.6, 0.5), (0.3, 0.4))])
    assert quiet.local_mm < 0.6 and quiet.growth_mm_per_mm < GROWTH_PRIOR + 0.02
    # ... but shifts hidden under a large noise are not "no deformation": what the fits cannot
    # exclude stays (seed-0/1 deformed demo sweeps: noise 2.2-2.8 mm, targets 3.3-4.6 mm off)
    noisy = from_fits([_fit(s, noise_mm=n) for s, n in ((1.5, 2.7), (2.0, 2.5), (1.0, 2.8))])
    assert noisy.local_mm > 2.5
    assert noisy.local_mm == pytest.approx(LOCAL_FACTOR * math.sqrt(unresolved_ms([2.7, 2.5, 2.8])))
    # one fit whose repeats jumped apart neither cancels what the others measured nor inflates them
    one_wild = from_fits([_fit(3.0, 0.3), _fit(3.0, 0.3), _fit(0.5, 6.0)])
    assert one_wild.local_mm > 2.0
    assert from_fits([_fit(0.4, 0.5), _fit(0.5, 0.5), _fit(0.3, 0.5), _fit(0.5, 6.0)]).local_mm < 0.6
    # without a measured noise a fit counts against the fallback noise
    assert from_fits([_fit(1.0, None)]).local_mm == pytest.approx(LOCAL_FACTOR * math.sqrt(unresolved_ms([1.6])))
    loud = from_fits([_fit(s) for s in (3.0, 4.0, 6.0, 0.5)])
    assert loud.local_mm > 3.0 and loud.growth_mm_per_mm > GROWTH_PRIOR
    errs = [loud.error_mm(d) for d in (0.0, 10.0, 40.0, 80.0)]
    assert errs[0] == pytest.approx(loud.local_mm) and np.all(np.diff(errs) > 0)
    assert loud.error_mm(None) == pytest.approx(loud.local_mm)
    d = loud.to_dict()
    assert d["validated_distance_mm"] == VALIDATED_MM and len(d["local_fits"]) == 4


def test_frame_groups_are_contiguous_runs_spread_over_the_sweep():
    groups = frame_groups(list(range(0, 100)) + [200], n_groups=3, per_group=4)
    assert len(groups) == 3 and all(len(g) == 4 for g in groups)
    assert groups[0][0] == 0 and groups[-1][-1] == 200
    assert all(a[-1] < b[0] for a, b in zip(groups, groups[1:]))


@pytest.mark.slow
def test_local_fits_are_quiet_at_the_true_pose_and_find_a_shift_of_the_ct(ct, sweep):
    feat = ct_feature_levels(ct, [2.5])[0]
    idx = select_frames(sweep, 10)
    level = FrameLC2Cost(feat, frame_samples(sweep, idx, 2.5), 7)
    at_truth = estimate_residual_deformation(sweep, level, TRUE_REFERENCE_TO_CT)
    shifts = [np.linalg.norm(f.offset_mm) for f in at_truth.fits]
    assert len(shifts) >= 3 and np.median(shifts) < 1.5
    # rigid: (almost) nothing (the far half alone 0.16 mm; the mid band's patches shift 0.5-0.8 mm
    # at the truth of this synthetic sweep with noise 0.2-0.5 mm: 0.64 mm in all)
    assert at_truth.local_mm < 1.0 and at_truth.region is not None
    assert all(f.depth in ("mid", "far") and f.noise_mm is not None for f in at_truth.fits)
    assert {f.depth for f in at_truth.fits} == {"mid", "far"}
    # the pose 4 mm off along x: every patch asks for about +4 mm back
    off = rigid_matrix([0, 0, 0, -4.0, 0, 0]) @ TRUE_REFERENCE_TO_CT
    fits = local_offsets(sweep, feat, off, np.flatnonzero(sweep.valid))
    xs = np.array([f.offset_mm[0] for f in fits])
    assert np.median(xs) == pytest.approx(4.0, abs=1.5)


def _fake(metric0, metric1, starts, moved=np.eye(4)):
    res = RegistrationResult(np.eye(4), "lc2", metric0, metric1, 10, 0.1, np.zeros(3),
                             [StartResult(np.zeros(6), m, metric0, v, 5) for m, v in starts])
    res.init_reference_to_ct = moved
    return res


def test_deformation_inflates_every_target_and_extrapolated_targets_are_never_good():
    """With a measured residual the estimate grows with the distance from the imaged region; a
    target beyond the validated distance is extrapolated (check at best), its hit probability
    uses the inflated error, and the rows carry the new fields through RESULT.json and back."""
    region = _plane_region()
    res = _fake(0.2, 0.4, [(np.eye(4), 0.40), (rigid_matrix([0, 0, 0, 0.2, 0, 0]), 0.395)])
    hess = LaplaceCovariance(np.eye(6) * 0.01, True)
    targets = {"near": {"point": [10, 100, 2], "radius_mm": 8.0}, "far": {"point": [10, 100, 40], "radius_mm": 8.0}}
    rigid = assess(res, targets, hessian=hess)
    quiet = ResidualDeformation(0.0, GROWTH_PRIOR, [], region, np.eye(4))
    loud = ResidualDeformation(3.0, 0.1, [], region, np.eye(4))
    a_quiet, a_loud = assess(res, targets, hessian=hess, deformation=quiet), assess(res, targets, hessian=hess,
                                                                                   deformation=loud)
    near_q, far_q = a_quiet.target("near"), a_quiet.target("far")
    assert near_q.verdict == "good" and near_q.extrapolated is False
    assert near_q.depth_below_probe_mm == pytest.approx(100.0, abs=0.3)
    # 100 mm below the (unknown: pressed) probe face, the near-probe prior's tail is all that is added
    assert near_q.tre_registration_mm == pytest.approx(
        math.hypot(rigid.target("near").tre_registration_mm, near_probe_mm(near_q.depth_below_probe_mm)), abs=1e-6)
    # the same target 10 mm below the probe face: the near-probe prior is added there
    at = {"near": {"point": [10, 10, 2]}}
    shallow = assess(res, at, hessian=hess, deformation=quiet).target("near")
    assert shallow.depth_below_probe_mm == pytest.approx(10.0, abs=0.3)
    assert shallow.tre_registration_mm == pytest.approx(math.hypot(
        assess(res, at, hessian=hess).target("near").tre_registration_mm, near_probe_mm(shallow.depth_below_probe_mm)))
    assert shallow.tre_near_probe_mm == pytest.approx(near_probe_mm(shallow.depth_below_probe_mm))
    assert 0.0 < near_q.tre_near_probe_mm < shallow.tre_near_probe_mm
    assert far_q.extrapolated is True and far_q.verdict == "check"
    assert far_q.distance_to_imaged_region_mm == pytest.approx(36.0, abs=0.5)
    assert any("extrapolated" in w for w in far_q.why)
    near_l, far_l = a_loud.target("near"), a_loud.target("far")
    assert near_l.tre_registration_mm > GOOD_TRE_MM and near_l.verdict == "check"
    assert far_l.tre_registration_mm > near_l.tre_registration_mm > near_q.tre_registration_mm
    assert far_l.tre_registration_95_mm == pytest.approx(RADIUS_95_PER_RMS * far_l.tre_registration_mm)
    assert far_l.hit_probability == pytest.approx(hit_probability(8.0, far_l.tre_total_mm))
    assert far_l.hit_probability < near_l.hit_probability < near_q.hit_probability
    d = a_loud.to_dict()
    assert d["deformation"]["local_mm"] == 3.0 and d["targets"][1]["extrapolated"] is True
    assert Assessment.from_dict(d).to_dict() == d


def test_a_far_result_is_judged_by_its_evidence_not_by_a_fixed_cut():
    """Beyond the fixed capture range: with agreeing starts, a good metric and agreeing parts the
    result is 'check' (with an error estimate); without agreeing starts it stays poor."""
    from registration.align.uncertainty import CAPTURE_TRANSLATION_MM
    far_start = rigid_matrix([0, 0, 0, CAPTURE_TRANSLATION_MM + 10, 0, 0])
    hess = LaplaceCovariance(np.eye(6) * 0.01, True)
    quiet = ResidualDeformation(0.0, GROWTH_PRIOR, [], _plane_region(), np.eye(4))
    agreeing = _fake(0.1, 0.35, [(np.eye(4), 0.40), (rigid_matrix([0, 0, 0, 0.3, 0, 0]), 0.399),
                                 (rigid_matrix([0, 0, 0, 0, 0.3, 0]), 0.398)], moved=far_start)
    a = assess(agreeing, {"t": {"point": [10, 100, 2]}}, hessian=hess, deformation=quiet)
    assert a.verdict == "check" and a.capture["confirmed"] and a.target("t").tre_registration_mm is not None
    assert any("capture range" in r and "confirmed" in r for r in a.reasons)
    lonely = _fake(0.1, 0.35, [(np.eye(4), 0.40), (rigid_matrix([0, 0, 0, 20, 0, 0]), 0.30),
                               (rigid_matrix([0, 0, 0, 0, 20, 0]), 0.31)], moved=far_start)
    b = assess(lonely, {"t": {"point": [10, 100, 2]}}, hessian=hess, deformation=quiet)
    assert b.verdict == "poor" and not b.capture["confirmed"] and b.target("t").tre_registration_mm is None
    low = _fake(0.1, 0.15, [(np.eye(4), 0.40), (np.eye(4), 0.40), (np.eye(4), 0.40)], moved=far_start)
    assert assess(low, {"t": {"point": [10, 100, 2]}}, hessian=hess, deformation=quiet).verdict == "poor"
    # parts that disagree are no confirmation either
    loud = ResidualDeformation(CONSISTENT_MM + 1.0, 0.1, [], _plane_region(), np.eye(4))
    assert assess(agreeing, {"t": {"point": [10, 100, 2]}}, hessian=hess, deformation=loud).verdict == "poor"


def test_the_mid_band_is_the_near_half_below_the_wall(sweep):
    """The error model's parts: the far half of each group's fan and its near half below
    ``WALL_MM`` ("mid"); the first 35 mm (body wall, probe compression) are in no part of it."""
    from registration.align.local_fits import DEPTHS, WALL_MM, patches
    frames = np.flatnonzero(sweep.image_to_reference_all()[1])
    got = {depth: s for s, _, depth in patches(sweep, frames, 2.5, np.eye(4), n_groups=1, per_group=6,
                                              depths=("near", "mid", "far"))}
    assert set(DEPTHS) == {"mid", "far"} and set(got) == {"near", "mid", "far"}
    rows = {k: np.nonzero(s.fan)[1] for k, s in got.items()}
    top = np.nonzero(frame_samples(sweep, frames[:1], 2.5).fan)[1].min()
    assert ((rows["mid"] - top) * 2.5 >= WALL_MM).all() and ((rows["near"] - top) * 2.5 < WALL_MM).any()
    assert rows["mid"].max() <= rows["far"].min() and len(rows["mid"]) < len(rows["near"])
