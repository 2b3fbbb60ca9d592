"""Tracked demo sweeps: PLUS files, ground truth through the recorded transforms, skin contact,
INVALID bursts, determinism, breathing."""
from __future__ import annotations

import numpy as np
import pytest

from registration.io.plus_config import read_plus_config
from registration.io.seq_mha_read import read_sequence
from registration.spatial.transforms import rotation_angle_deg
from sample_data.sweeps.tracked_sweeps import CONFIG_NAME, frame_image_to_ct, make_sweeps
from sample_data.sweeps.probe_placement import BodyGeometry
from sample_data.simulator.us_simulator import UltrasoundSimulator
from _helpers import LESION_TYPES, LESIONS, NAMES, small_phantom

TRUTH = {"lesions": [{"name": n, "type": t, "centroid_lps": list(c), "diameter_mm": d}
                     for n, (t, c, d) in LESIONS.items()]}
N_FRAMES = 40


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    ct, lab = small_phantom()
    out = tmp_path_factory.mktemp("sweeps")
    truth = make_sweeps(ct, lab, TRUTH, out, seed=5, frames_per_sweep=N_FRAMES)
    sweeps = {s["file"]: read_sequence(out / s["file"]) for s in truth["sweeps"]}
    return ct, lab, out, truth, sweeps


def test_files_are_plus_sequences_with_config(case):
    ct, lab, out, truth, sweeps = case
    assert [s["kind"] for s in truth["sweeps"]] == ["survey", "lesion", "lesion"]
    cfg = read_plus_config(out / CONFIG_NAME)
    i2p = cfg["transforms"]["ImageToProbe"]
    assert np.allclose(i2p, truth["image_to_probe"])
    assert 0.3 < np.linalg.norm(i2p[:3, 0]) < 0.42
    for s in truth["sweeps"]:
        sw = sweeps[s["file"]]
        assert sw.frames.shape == (N_FRAMES, 480, 640)
        assert set(sw.transforms) == {"ProbeToTracker", "ReferenceToTracker"}
        assert np.all(np.diff(sw.timestamps) > 0.02) and np.all(np.diff(sw.timestamps) < 0.06)
        sw.require_image_to_reference()


def test_reference_frame_is_not_the_ct_frame(case):
    m = np.array(case[3]["reference_to_ct"])
    assert rotation_angle_deg(m) > 10.0
    assert np.linalg.norm(m[:3, 3]) > 20.0


def test_lesion_centroids_land_on_the_lesion_in_the_simulated_labels(case):
    """Truth: centroid -> Image through reference_to_ct and the RECORDED transforms of each
    frame; wherever it is in the fan (plane within r/2 of the centroid), the simulator's own
    label frame shows that lesion there."""
    ct, lab, out, truth, sweeps = case
    sim = UltrasoundSimulator(ct, lab, seed=5, lesion_types=LESION_TYPES)
    p = sim.probe
    checked = 0
    for s in truth["sweeps"]:
        sw = sweeps[s["file"]]
        i2c = frame_image_to_ct(sw, truth["reference_to_ct"])
        for les in TRUTH["lesions"]:
            c = np.array([*les["centroid_lps"], 1.0])
            r = les["diameter_mm"] / 2
            for i in np.nonzero(sw.valid)[0]:
                col, row, z, _ = np.linalg.inv(i2c[i]) @ c
                if abs(z * p.pixel_mm) > r / 2:
                    continue
                _, labels = sim.simulate(i2c[i])
                assert labels[int(round(row)), int(round(col))] == NAMES[les["name"]], (s["file"], i)
                assert i in s["lesions_cut"][les["name"]]
                checked += 1
        if s["kind"] == "lesion":
            mid = s["target_in_plane_frame"]
            assert mid in s["lesions_cut"][s["target"]]
            col, row, z, _ = np.linalg.inv(i2c[mid]) @ np.array([*s["target_lps"], 1.0])
            assert abs(z * p.pixel_mm) < 2.0 and p.fan_mask[int(round(row)), int(round(col))]
    assert checked >= 6


def test_probe_face_is_on_the_skin_and_points_into_the_body(case):
    ct, lab, out, truth, sweeps = case
    body = BodyGeometry(ct, lab)
    for s in truth["sweeps"]:
        sw = sweeps[s["file"]]
        i2c = frame_image_to_ct(sw, truth["reference_to_ct"])
        probe_to_ct = i2c @ np.linalg.inv(np.array(truth["image_to_probe"]))
        ok = sw.valid
        origin = probe_to_ct[ok, :3, 3]
        beam = probe_to_ct[ok, :3, 1]
        assert np.all(body.is_inside(origin + 1.5 * beam))
        assert np.all(~body.is_inside(origin - 2.5 * beam))
        assert np.all(body.is_inside(origin + 20.0 * beam))


def test_invalid_tracking_bursts_are_present_and_flagged(case):
    truth, sweeps = case[3], case[4]
    total = 0
    for s in truth["sweeps"]:
        sw = sweeps[s["file"]]
        bad = np.nonzero(~sw.valid)[0].tolist()
        assert bad == s["invalid_frames"]
        if bad:
            assert s["target_in_plane_frame"] not in bad
        total += len(bad)
    survey = sweeps[truth["sweeps"][0]["file"]]
    st = survey.statuses["ProbeToTracker"]
    run = np.nonzero(~st)[0]
    assert 3 <= run.size <= 5 and np.all(np.diff(run) == 1)
    assert survey.image_to_reference(int(run[0])) is None
    assert total >= 6


def test_same_seed_same_files(tmp_path):
    ct, lab = small_phantom()
    kw = dict(seed=11, frames_per_sweep=6, lesions=["lesion_2"], survey=False)
    t1 = make_sweeps(ct, lab, TRUTH, tmp_path / "a", **kw)
    t2 = make_sweeps(ct, lab, TRUTH, tmp_path / "b", **kw)
    t3 = make_sweeps(ct, lab, TRUTH, tmp_path / "c", **dict(kw, seed=12))
    f = t1["sweeps"][0]["file"]
    assert t1 == t2
    assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    assert (tmp_path / "a" / CONFIG_NAME).read_bytes() == (tmp_path / "b" / CONFIG_NAME).read_bytes()
    assert t3["reference_to_ct"] != t1["reference_to_ct"]


@pytest.mark.slow
def test_breathing_moves_the_lesion_with_the_liver(tmp_path):
    ct, lab = small_phantom()
    truth = make_sweeps(ct, lab, TRUTH, tmp_path, seed=2, frames_per_sweep=51, lesions=["lesion_1"],
                        survey=False, breathing_mm=10.0)
    s = truth["sweeps"][0]
    shift = np.array(s["liver_shift_mm"])
    assert shift[0] == 0.0 and shift.max() == pytest.approx(10.0, abs=0.05)   # 2 s = half a cycle
    sw = read_sequence(tmp_path / s["file"])
    i2c = frame_image_to_ct(sw, truth["reference_to_ct"])
    sim = UltrasoundSimulator(ct, lab, seed=2, lesion_types=LESION_TYPES)
    c = np.array(LESIONS["lesion_1"][1])
    hits = 0
    for i in np.nonzero(sw.valid)[0]:
        moved = c + np.array([0.0, 0.0, -shift[i]])
        col, row, z, _ = np.linalg.inv(i2c[i]) @ np.array([*moved, 1.0])
        if abs(z * sim.probe.pixel_mm) > 4.0 or not sim.probe.fan_mask[int(round(row)), int(round(col))]:
            continue
        _, labels = sim.simulate(i2c[i], liver_shift_lps=(0.0, 0.0, -shift[i]))
        assert labels[int(round(row)), int(round(col))] == NAMES["lesion_1"]
        hits += 1
    assert hits >= 3


@pytest.mark.slow
def test_reconstruction_overlays_the_ct_through_reference_to_ct(case):
    """Independent check of the whole chain through the project's reconstruction: the
    survey sweep reconstructed in the Reference frame and mapped with reference_to_ct
    correlates with the CT's expected echogenicity inside the liver clearly better than
    with a 10 mm shift (about 0.2 vs <= 0.03). (The same voxels are compared at every shift: those that fall in
    the liver or its contents at all of them. Shifts along S are not tested: this small
    phantom's vessel runs along S, so it has almost no structure in that direction.)"""
    from registration.ultrasound.reconstruction import reconstruct
    from sample_data.simulator.tissue_classes import _BS
    ct, lab, out, truth, sweeps = case
    sw = sweeps[truth["sweeps"][0]["file"]]
    rec = reconstruct(sw, spacing_mm=1.0, fill_holes=False)
    vol = rec.volume
    k, j, i = np.nonzero(rec.weights > 0)
    ref_pts = vol.index_to_lps(np.stack([i, j, k], 1))
    us = vol.array[k, j, i].astype(float)
    sim = UltrasoundSimulator(ct, lab, seed=0, lesion_types=LESION_TYPES)
    m = np.array(truth["reference_to_ct"])

    def lookup(shift):
        p = ref_pts @ m[:3, :3].T + m[:3, 3] + shift
        ijk = np.clip(np.rint(ct.lps_to_index(p)).astype(int), 0, np.array(ct.shape_ijk) - 1)
        return ct.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]], lab.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]

    shifts = [np.zeros(3), *(np.eye(3)[a] * s for a in (0, 1) for s in (-10.0, 10.0))]
    liver = [NAMES[n] for n in ("liver", "portal_vein", "lesion_1", "lesion_2")]
    sel = us > 0
    for sh in shifts:
        sel &= np.isin(lookup(sh)[1], liver)
    assert sel.sum() > 5000
    ncc = []
    for sh in shifts:
        hu, labels = lookup(sh)
        expected = np.log(_BS[sim.tissue_class(hu[sel], labels[sel])] + 0.01)
        ncc.append(np.corrcoef(us[sel], expected)[0, 1])
    assert ncc[0] > 0.15 and ncc[0] > max(ncc[1:]) + 0.12, ncc


def test_bad_truth_and_labels_are_refused(tmp_path):
    from registration.spatial.errors import InputError
    from registration.spatial.volume import LabelMap
    ct, lab = small_phantom()
    with pytest.raises(InputError, match="no centroid"):
        make_sweeps(ct, lab, {"lesions": [{"name": "lesion_1", "type": "net"}]}, tmp_path,
                    frames_per_sweep=4, survey=False)
    no_liver = LabelMap(lab.array, lab.spacing, lab.origin,
                        names={n: v for n, v in lab.names.items() if n != "liver"})
    with pytest.raises(InputError, match="'liver' is not in the label map"):
        make_sweeps(ct, no_liver, TRUTH, tmp_path, frames_per_sweep=4, lesions=[])
    assert not list(tmp_path.glob("*.mha"))


def test_the_skin_is_the_first_long_exit_not_the_ct_table_behind_the_back():
    """A body slab, 40 mm of air, then a table (-300 HU: "inside" by HU). Walking out of the body
    the skin is the body's surface, not the table's far side (on crlm-1004 the probe of a
    posterior target had been put on the table, 50 mm from the skin); a 10 mm unlabelled gas
    pocket inside the body is walked through."""
    from registration.spatial.volume import LabelMap, Volume
    from sample_data.sweeps.probe_placement import BodyGeometry
    hu = np.full((20, 20, 200), -1000, np.int16)          # [k, j, i], 1 mm voxels; walk along +i
    hu[:, :, 0:100] = 40                                    # the body: i < 100 mm
    hu[:, :, 50:60] = -900                                  # a gas pocket inside it
    hu[:, :, 140:150] = -300                                # the table, after 40 mm of air
    ct = Volume(hu, (1.0, 1.0, 1.0))
    labels = LabelMap(np.zeros(hu.shape, np.uint8), (1.0, 1.0, 1.0), names={})
    body = BodyGeometry(ct, labels)
    skin, depth = body.skin_exit(np.array([10.0, 10.0, 10.0]), np.array([1.0, 0.0, 0.0]))
    assert skin[0] == pytest.approx(99.5, abs=1.0) and depth == pytest.approx(89.5, abs=1.0)
