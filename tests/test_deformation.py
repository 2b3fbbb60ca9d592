"""Deformed demo sweeps (issue 19): the organ field and probe compression, the simulation by
warping, the truth of the targets and the true registration error, and the static sweeps
left byte-identical."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from registration.io.seq_mha_read import read_sequence
from registration.spatial.transforms import apply, invert, rigid_matrix
from sample_data.simulator.probe import ConvexProbe
from sample_data.simulator.us_simulator import UltrasoundSimulator
from sample_data.sweeps.compression import ProbeCompression
from sample_data.sweeps.deformation import (Bump, OrganDeformation, best_rigid_fit, organ_deformation,
                                            true_target_error_mm)
from sample_data.sweeps.imaged_region import fan_distance_mm

COARSE = (2.4, 2.4, 4.5)
MEDIUM = (1.6, 1.6, 3.0)
TRUE_R2C = rigid_matrix([12.0, -20.0, 8.0, 40.0, -60.0, 25.0])


def _pose(origin, beam, lateral):
    y = np.asarray(beam, float) / np.linalg.norm(beam)
    x = np.asarray(lateral, float) - np.dot(lateral, y) * y
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, np.cross(x, y), origin
    return m


def _uniform_field(t_mm, lo=-300.0, hi=300.0) -> OrganDeformation:
    """u = t everywhere in a box (one bump so wide it is flat, weight 1)."""
    return OrganDeformation([Bump(np.zeros(3), 1e7, np.asarray(t_mm, float))], np.ones((3, 3, 3)),
                            np.full(3, lo), np.full(3, (hi - lo) / 2))


def _truth(field: OrganDeformation, deformed: bool = True) -> dict:
    return {"ultrasound": {
        "sweeps": [{"file": "sweep_survey.igs.mha", "reference_to_ct": TRUE_R2C.tolist()}],
        "deformed_sweeps": [{"file": "sweep_survey_deformed.igs.mha", "deformed": deformed,
                             "reference_to_ct": TRUE_R2C.tolist()}],
        "deformation": {"organ_field": json.loads(json.dumps(field.to_dict()))}}}


# ------------------------------------------------------------------ true error: definition
def test_true_error_with_zero_field_is_the_rigid_tre():
    rng = np.random.default_rng(3)
    targets = rng.uniform(-80, 80, (20, 3))
    reg = rigid_matrix([1.5, -2.0, 0.5, 3.0, -4.0, 2.0], center=(10, 0, 0)) @ TRUE_R2C
    rigid_tre = np.linalg.norm(apply(invert(TRUE_R2C), targets) - apply(invert(reg), targets), axis=1)
    assert rigid_tre.min() > 1.0
    zero = OrganDeformation([], np.zeros((2, 2, 2)), np.zeros(3), np.ones(3))
    for truth, name in ((_truth(zero), "sweep_survey_deformed.igs.mha"),
                        (_truth(_uniform_field([5, 0, 0])), "sweep_survey.igs.mha")):  # static: field ignored
        e = true_target_error_mm(truth, name, reg, targets)
        assert np.allclose(e, rigid_tre, atol=1e-9)
        assert true_target_error_mm(truth, name, reg, targets[0]) == pytest.approx(rigid_tre[0])
        assert np.allclose(true_target_error_mm(truth, name, TRUE_R2C, targets), 0.0, atol=1e-9)


def test_true_error_with_a_translation_field_is_the_translation():
    t = np.array([3.0, -4.0, 12.0])
    truth = _truth(_uniform_field(t))
    targets = np.random.default_rng(4).uniform(-100, 100, (15, 3))
    name = "sweep_survey_deformed"   # by stem too
    # the true (rigid-part) registration misses every target by the organ's translation
    assert np.allclose(true_target_error_mm(truth, name, TRUE_R2C, targets), np.linalg.norm(t), atol=1e-4)
    # the registration that absorbs the translation (best rigid fit) is exact: inv(fit) @ true
    shift = np.eye(4)
    shift[:3, 3] = t
    assert np.allclose(true_target_error_mm(truth, name, invert(shift) @ TRUE_R2C, targets), 0.0, atol=1e-4)
    # and best_rigid_fit finds that translation from points and their displaced positions
    field = organ_deformation(truth, name)
    fit = best_rigid_fit(targets, field.deformed(targets))
    assert np.allclose(fit, shift, atol=1e-5)


def test_field_round_trips_through_truth_json():
    rng = np.random.default_rng(0)
    w = np.clip(rng.uniform(0, 1.2, (6, 7, 8)), 0, 1)
    f = OrganDeformation([Bump(np.array([1.0, 2, 3]), 20.0, np.array([4.0, -3, 2])),
                          Bump(np.array([-20.0, 5, 0]), 30.0, np.array([0.0, 5, -1]))],
                         np.round(w * 255) / 255, np.array([-30.0, -30, -30]), np.array([8.0, 8, 8]))
    g = OrganDeformation.from_dict(json.loads(json.dumps(f.to_dict())))
    pts = rng.uniform(-40, 40, (500, 3))
    assert np.allclose(g.displacement(pts), f.displacement(pts), atol=1e-9)
    # outside the weight grid the field is exactly zero
    assert np.all(f.displacement(np.array([[200.0, 0, 0], [0, -200.0, 0]])) == 0)
    # the inverse and its fast grid lookup undo the field
    x = rng.uniform(-20, 20, (500, 3))
    assert np.abs(f.deformed(f.inverse(x)) - x).max() < 1e-3
    assert np.abs(f.deformed(f.source_lookup(1.0)(x).astype(float)) - x).max() < 0.1


def test_fan_distance_matches_dense_sampling():
    probe = ConvexProbe(cols=160, rows=120)
    rng = np.random.default_rng(1)
    mats = np.stack([_pose(rng.uniform(-20, 20, 3), [0, 1, 0.1 * k], [1, 0, 0]) @ probe.image_to_probe
                     for k in range(-2, 3)])
    rr, cc = np.nonzero(probe.fan_mask)
    fan_pts = np.concatenate([apply(m, np.stack([cc, rr, np.zeros_like(cc)], 1).astype(float)) for m in mats])
    pts = rng.uniform([-150, -60, -120], [150, 260, 120], (300, 3))
    from scipy.spatial import cKDTree
    brute = cKDTree(fan_pts).query(pts)[0]
    d = fan_distance_mm(pts, mats, probe.fan_mask)
    inside = brute < 40   # near the fans; far away the out-of-image bound is looser
    assert inside.sum() > 50
    assert np.all(d >= brute - 1.0) and np.abs(d - brute)[inside].max() < 1.0
    assert probe.fan_mask[100, 80]
    assert fan_distance_mm(apply(mats[0], [[80.0, 100.0, 0.0]]), mats, probe.fan_mask)[0] < 1.0


# ------------------------------------------------------------------ compression
def test_probe_compression_is_a_push_along_the_beam_near_the_face():
    nominal = _pose([0.0, 0.0, 0.0], [0, 1, 0], [1, 0, 0])
    c = ProbeCompression.under(nominal, 4.0)
    assert np.allclose(c.pressed_pose(nominal)[:3, 3], [0, 4, 0])
    depth = np.linspace(-5, 60, 400)
    pts = np.stack([np.zeros_like(depth), depth, np.zeros_like(depth)], 1)
    u = c.displacement(pts)
    assert np.allclose(u[:, [0, 2]], 0)
    assert u[0, 1] == pytest.approx(4.0) and np.all(u[depth >= c.depth_mm] == 0)
    moved = depth + u[:, 1]
    assert np.all(np.diff(moved) > 0.7 * np.diff(depth))          # order kept: no folding
    assert c.displacement([[60.0, 0.0, 0.0]])[0, 1] < 0.6         # falls off laterally
    x = np.random.default_rng(2).uniform(-50, 50, (1000, 3))
    q = c.inverse(x)
    assert np.abs(q + c.displacement(q) - x).max() < 1e-6


# ------------------------------------------------------------------ the demo phantom
@pytest.fixture(scope="module")
def phantom():
    from sample_data.phantom.build import make_phantom
    return make_phantom(0, MEDIUM)


@pytest.fixture(scope="module")
def field(phantom):
    from sample_data.sweeps.organ_field import random_organ_deformation
    return random_organ_deformation(phantom.labels, np.random.default_rng([0, 19]))


@pytest.mark.slow
def test_organ_field_is_smooth_diffeomorphic_and_confined_to_the_liver(phantom, field):
    from scipy import ndimage
    from sample_data.sweeps.deformation import points_of
    labels = phantom.labels
    liver = points_of(labels, [labels.value_of("liver")], stride=2)
    u = np.linalg.norm(field.displacement(liver), axis=1)
    assert 5.0 <= u.max() <= 10.1 and u.mean() > 1.0   # peak set on the liver voxels
    assert all(5.0 * 0.5 <= np.linalg.norm(b.vector_mm) <= 10.0 for b in field.bumps) and len(field.bumps) == 3
    lo, hi = liver.min(axis=0) - 30, liver.max(axis=0) + 30
    det = field.jacobian_determinant(lo, hi, step_mm=2.0)
    assert det.min() > 0.3
    # smooth: neighbouring grid points 2 mm apart differ by well under the field's size
    axes = [np.arange(lo[a], hi[a], 2.0) for a in range(3)]
    kk, jj, ii = np.meshgrid(axes[2][::4], axes[1][::4], axes[0], indexing="ij")
    row = field.displacement(np.stack([ii, jj, kk], -1).reshape(-1, 3)).reshape(kk.shape + (3,))
    assert np.abs(np.diff(row, axis=2)).max() < 1.5
    # the spine does not move, nor anything far from the liver
    spine = points_of(labels, [labels.value_of("spinal_canal")], stride=2)
    vertebra = points_of(labels, [labels.value_of("bone")], stride=2)
    vertebra = vertebra[(np.abs(vertebra[:, 0]) < 30) & (vertebra[:, 1] > 30)]
    assert np.linalg.norm(field.displacement(np.concatenate([spine, vertebra])), axis=1).max() < 0.5
    liver_mask = labels.mask("liver")
    far = ndimage.distance_transform_edt(~liver_mask, sampling=labels.spacing[::-1]) > 40
    k, j, i = np.nonzero(far[::3, ::3, ::3])
    far_pts = labels.index_to_lps(np.stack([i, j, k], -1) * 3)
    assert np.linalg.norm(field.displacement(far_pts), axis=1).max() < 0.1


def _in_plane(m_image_to_ct, point, probe):
    """(row, col) pixel of the point's projection (None outside the fan) and its distance (mm)
    from the image plane."""
    col, row, z, _ = np.linalg.inv(m_image_to_ct) @ np.array([*point, 1.0])
    r, c = int(round(row)), int(round(col))
    ok = 0 <= r < probe.rows and 0 <= c < probe.cols and probe.fan_mask[r, c]
    return ((r, c) if ok else None), abs(z) * probe.pixel_mm


@pytest.mark.slow
def test_deformed_frame_differs_where_the_field_is_large_and_matches_where_it_is_zero(phantom, field):
    ct, labels = phantom.ct_portal, phantom.labels
    probe = ConvexProbe()
    sim = UltrasoundSimulator(ct, labels, probe=probe, seed=0)
    organ = field.source_lookup()
    big = max(field.bumps, key=lambda b: np.linalg.norm(b.vector_mm)).center_lps
    lo, hi = ct.bounds_lps()

    def fan_field(pose):
        _, lab, pts = sim.sample_polar(pose @ probe.image_to_probe)
        u = np.linalg.norm(field.displacement(pts.reshape(-1, 3)[::50].astype(float)), axis=1)
        return u.max(), np.mean(lab > 0)

    # a plane of body tissue where the field is ~0 everywhere in the fan (away from the liver)
    calm = [_pose([x, lo[1] + 5, z], [0, 1, 0], [1, 0, 0]) for z in np.linspace(lo[2] + 5, hi[2] - 5, 9)
            for x in (-60.0, 0.0, 60.0)]
    calm = [(fan_field(p), p) for p in calm]
    calm = max((c for c in calm if c[0][0] < 0.01), key=lambda c: c[0][1])[1]
    poses = {"large": _pose(big - [0, 90, 0], [0, 1, 0], [1, 0, 0]), "zero": calm}
    for name, pose in poses.items():
        m = pose @ probe.image_to_probe
        umax, body = fan_field(pose)
        assert body > 0.2
        a, la = sim.simulate(m, rng=np.random.default_rng(1))
        b, lb = sim.simulate(m, rng=np.random.default_rng(1), source_of=organ)
        fan = probe.fan_mask
        changed = np.mean(la[fan] != lb[fan])
        if name == "large":
            assert umax > 5.0
            assert changed > 0.01 and np.mean(np.abs(a[fan].astype(int) - b[fan])) > 5
        else:
            assert umax < 0.01
            assert changed < 0.001 and np.mean(np.abs(a[fan].astype(int) - b[fan])) < 0.5


@pytest.fixture(scope="module")
def deformed_case(phantom, tmp_path_factory):
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    out = tmp_path_factory.mktemp("deformed")
    truth = dict(phantom.truth)
    us = make_sweeps(phantom.ct_portal, phantom.labels, truth, out, seed=0, frames_per_sweep=24,
                     lesions=["lesion_1"], deformed=3)
    return out, truth, us


@pytest.mark.slow
def test_displaced_lesion_centroids_land_on_the_lesion_in_the_label_frames(phantom, deformed_case):
    """Truth through the RECORDED transforms: wherever a lesion's displaced centroid is in a
    deformed frame's plane (within r/2), the simulator's own label frame (re-simulated from
    the truth's field and compression) shows that lesion there."""
    from sample_data.sweeps.deformed_sweeps import frame_source_of
    from sample_data.sweeps.tracked_sweeps import frame_image_to_ct
    out, truth, us = deformed_case
    probe = ConvexProbe()
    sim = UltrasoundSimulator(phantom.ct_portal, phantom.labels, probe=probe, seed=0)
    field = organ_deformation(us)
    values = phantom.labels.names
    assert [s["kind"] for s in us["deformed_sweeps"]] == ["survey", "lesion", "lesion"]
    checked = moved_checked = 0
    for s in us["deformed_sweeps"]:
        sw = read_sequence(out / s["file"])
        i2c = frame_image_to_ct(sw, us["reference_to_ct"])
        for t in (t for t in s["targets"] if t["kind"] == "lesion"):
            r = t["radius_mm"]
            for i in np.nonzero(sw.valid)[0]:
                px, z = _in_plane(i2c[i], t["displaced_ct"], probe)
                if z > r / 2 or px is None:
                    continue
                _, lab = sim.simulate(i2c[i], rng=np.random.default_rng(0), source_of=frame_source_of(s, i, field))
                assert lab[px] == values[t["name"]], (s["file"], i, t["name"])
                checked += 1
                moved_checked += t["displacement_mm"] > 2.0
        if s["kind"] == "lesion":
            mid = s["target_in_plane_frame"]
            tgt = next(t for t in s["targets"] if t["name"] == s["target"])
            px, z = _in_plane(i2c[mid], tgt["displaced_ct"], probe)
            assert z < 2.0 and px is not None
            assert tgt["distance_to_sweep_mm"] <= max(z, 0.0) + 0.5
    assert checked >= 6 and moved_checked >= 2


@pytest.mark.slow
def test_deformed_truth_targets_and_rigid_fits(phantom, deformed_case):
    out, truth, us = deformed_case
    d = us["deformation"]
    field = organ_deformation(us)
    assert d["rigid_residual_liver_mm"]["mean"] > 0.8            # a rigid fit cannot remove it
    r2c = np.asarray(us["reference_to_ct"])
    for s in us["deformed_sweeps"]:
        assert s["file"].endswith("_deformed.igs.mha") and s["deformed"]
        amp = [f["amplitude_mm"] for f in s["compression"]["frames"]]
        assert len(amp) == s["frames"] and 2.5 <= max(amp) <= 4.5
        kinds = {t["kind"] for t in s["targets"]}
        assert kinds == {"lesion", "vessel_branch", "liver_point"}
        dist = [t["distance_to_sweep_mm"] for t in s["targets"] if t["kind"] == "liver_point"]
        assert min(dist) < 3 and max(dist) > 35
        best = np.asarray(s["best_rigid_reference_to_ct"])
        for t in s["targets"]:
            p = np.asarray(t["point_ct"])
            assert np.allclose(t["displaced_ct"], field.deformed(p), atol=1e-2)
            # the truth's residual is the true error of the best rigid registration
            assert true_target_error_mm(us, s["file"], best, p, field=field) == pytest.approx(
                t["rigid_residual_mm"], abs=2e-3)
            assert true_target_error_mm(us, s["file"], r2c, p, field=field) == pytest.approx(
                t["displacement_mm"], abs=2e-3)
    # the distances in the truth (true poses, the probe's fan) are found again from the files
    # alone (recorded tracking, fan detected from the frames), as a benchmark measures them
    from registration.spatial.fan_mask import detect_fan_mask
    for s in us["deformed_sweeps"]:
        sw = read_sequence(out / s["file"], out / us["config"])
        mats, valid = sw.image_to_reference_all()
        pts = np.array([t["displaced_ct"] for t in s["targets"]])
        d = fan_distance_mm(apply(invert(r2c), pts), mats[valid], detect_fan_mask(sw.frames))
        assert np.allclose(d, [t["distance_to_sweep_mm"] for t in s["targets"]], atol=1.5)
    # the static sweep of the same case is judged without the field
    static = us["sweeps"][0]["file"]
    assert true_target_error_mm(us, static, r2c, [0.0, 0.0, 0.0]) == 0.0


def _digest(folder, names):
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


@pytest.mark.slow
def test_static_sweeps_are_byte_identical_with_and_without_deformed_ones(phantom, deformed_case, tmp_path):
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    out, truth, us = deformed_case
    plain = make_sweeps(phantom.ct_portal, phantom.labels, dict(phantom.truth), tmp_path, seed=0,
                        frames_per_sweep=24, lesions=["lesion_1"])
    names = [s["file"] for s in plain["sweeps"]]
    assert names == ["sweep_survey.igs.mha", "sweep_lesion_1.igs.mha"]
    assert _digest(tmp_path, names) == _digest(out, names)
    assert plain["sweeps"] == us["sweeps"] and "deformed_sweeps" not in plain
    assert sorted(p.name for p in tmp_path.glob("*.mha")) == sorted(names)


def test_cli_sample_no_deformed(monkeypatch, tmp_path):
    import sample_data.case.demo_case as case
    from planner.cli.main import main as ctus
    seen = []

    def fake_write_case(out, **kwargs):
        seen.append(kwargs)
        (tmp_path / "o" / "truth.json").write_text(json.dumps({"lesions": []}))
        return {}
    monkeypatch.setattr(case, "write_case", fake_write_case)
    (tmp_path / "o").mkdir()
    assert ctus(["sample", "--out", str(tmp_path / "o"), "--no-deformed", "--force"]) == 0
    assert ctus(["sample", "--out", str(tmp_path / "o"), "--force"]) == 0
    assert seen[0]["deformed"] == 0 and "deformed" not in seen[1]
    assert case.DEFORMED_SWEEPS >= 2
