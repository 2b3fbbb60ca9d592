"""Ultrasound simulator: probe geometry, fan, ground-truth labels, shadows, contrasts, determinism."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume
from sample_data.simulator.probe import ConvexProbe
from sample_data.simulator.us_simulator import UltrasoundSimulator

from _helpers import LESION_TYPES, LESIONS, NAMES, small_phantom

def probe_pose(origin, beam, lateral):
    y = np.asarray(beam, float) / np.linalg.norm(beam)
    x = np.asarray(lateral, float)
    x = x - x.dot(y) * y
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, np.cross(x, y), origin
    return m


@pytest.fixture(scope="module")
def phantom():
    return small_phantom()


@pytest.fixture(scope="module")
def sim(phantom):
    ct, lab = phantom
    return UltrasoundSimulator(ct, lab, seed=7, lesion_types=LESION_TYPES)


# Anterior probe at x = -20 pointing posterior, marked side towards the patient's left.
ANTERIOR = probe_pose((-20.0, -54.0, 40.0), (0, 1, 0), (1, 0, 0))


def test_probe_geometry_image_to_probe():
    p = ConvexProbe()
    assert 0.3 <= p.pixel_mm <= 0.42
    m = p.image_to_probe
    assert np.allclose(m[:3, :3], np.diag([p.pixel_mm] * 3))
    # A point on the central beam at depth d is in the middle column, rows grow with depth.
    for d in (0.0, 50.0, 170.0):
        pix = p.probe_to_image @ np.array([0.0, d, 0.0, 1.0])
        assert pix[0] == pytest.approx((p.cols - 1) / 2)
        assert pix[1] == pytest.approx((d - m[1, 3]) / p.pixel_mm)
    # The whole fan is inside the frame, with black corners at the top.
    mask = p.fan_mask
    assert mask.shape == (p.rows, p.cols)
    assert not mask[0, 0] and not mask[0, -1] and not mask[-1, 0] and not mask[-1, -1]
    assert mask[p.rows // 2, p.cols // 2]
    corners = p.polar_to_probe(np.array([-1, 1, -1, 1]) * p.half_angle_rad,
                               np.array([0, 0, p.depth_mm, p.depth_mm]))
    pix = np.c_[corners, np.ones(4)] @ p.probe_to_image.T
    assert np.all(pix[:, :2] >= 0) and np.all(pix[:, 0] <= p.cols - 1) and np.all(pix[:, 1] <= p.rows - 1)


def test_frame_is_black_outside_the_fan(sim):
    frame, labels = sim.simulate(ANTERIOR @ sim.image_to_probe)
    assert frame.dtype == np.uint8 and frame.shape == (480, 640)
    assert np.all(frame[~sim.fan_mask] == 0) and np.all(labels[~sim.fan_mask] == 0)
    # Inside the fan, the body in the near field is not black.
    near = np.zeros_like(sim.fan_mask)
    near[:200] = True                                       # first ~70 mm
    assert np.mean(frame[sim.fan_mask & near & (labels > 0)] > 0) > 0.95


def test_label_frame_shows_the_structure_under_each_pixel_and_is_not_mirrored(sim):
    ct, lab = sim.ct, sim.labels
    i2c = ANTERIOR @ sim.image_to_probe
    _, labels = sim.simulate(i2c)
    c2i = np.linalg.inv(i2c)
    for name, (_, c, _) in LESIONS.items():
        col, row, z, _ = c2i @ np.array([*c, 1.0])
        assert abs(z) < 1e-6
        assert labels[int(round(row)), int(round(col))] == NAMES[name]
    # Lesion 2 is to the patient's left (+x) of lesion 1: with the marked side to the left
    # it must be at larger columns.
    cols = {n: np.nonzero(labels == NAMES[n])[1].mean() for n in LESIONS}
    assert cols["lesion_2"] > cols["lesion_1"] + 50
    # Every labelled pixel agrees with a direct lookup of its centre (allowing for the
    # nearest-beam resampling: compare away from label edges).
    rng = np.random.default_rng(0)
    rows, colz = np.nonzero(sim.fan_mask)
    pick = rng.choice(rows.size, 400, replace=False)
    pix = np.c_[colz[pick], rows[pick], np.zeros(400), np.ones(400)]
    ijk = np.rint(ct.lps_to_index((pix @ i2c.T)[:, :3])).astype(int)
    inb = np.all((ijk >= 0) & (ijk < np.array(ct.shape_ijk)), axis=1)
    direct = np.where(inb, lab.array[np.clip(ijk[:, 2], 0, 99), np.clip(ijk[:, 1], 0, 119),
                                     np.clip(ijk[:, 0], 0, 159)], 0)
    assert np.mean(direct == labels[rows[pick], colz[pick]]) > 0.97


def test_full_shadow_behind_a_rib():
    # Homogeneous liver block with one rib 20 mm under a probe on its top face.
    hu = np.full((40, 140, 120), 60, np.int16)          # k (z), j (y = depth), i (x)
    lab = np.full(hu.shape, 2, np.int32)
    zz, yy, xx = np.meshgrid(np.arange(40), np.arange(140), np.arange(120), indexing="ij")
    rib = (yy - 25) ** 2 + (xx - 60) ** 2 <= 36           # 12 mm rib along z at x = 60, y = 25
    hu[rib], lab[rib] = 800, 4
    ct = Volume(hu, origin=(0, 0, 0))
    labels = LabelMap(lab, names={"liver": 2, "bone": 4})
    sim = UltrasoundSimulator(ct, labels, seed=1)
    pose = probe_pose((60.0, 0.0, 20.0), (0, 1, 0), (1, 0, 0))
    frame, _ = sim.simulate(pose @ sim.image_to_probe)
    p = sim.probe
    c2i = np.linalg.inv(pose @ p.image_to_probe)

    def mean_grey(x_mm, y0, y1, stat=np.mean):
        a = (c2i @ [x_mm - 3, y0, 20, 1])[:2].round().astype(int)
        b = (c2i @ [x_mm + 3, y1, 20, 1])[:2].round().astype(int)
        return stat(frame[a[1]:b[1], a[0]:b[0]])

    behind = mean_grey(60, 50, 100)      # under the rib, on the central beam
    mirror = mean_grey(28, 50, 100)      # same depth, beams that miss the rib
    in_front = mean_grey(60, 5, 15)
    assert behind < 0.2 * mirror and behind < 0.2 * in_front
    # The rib surface itself echoes brightly.
    surface = mean_grey(60, 17, 22, stat=lambda a: np.percentile(a, 90))
    assert surface > np.percentile(frame[frame > 0], 99)


def test_vessels_darker_and_net_brighter_than_adenocarcinoma(sim):
    frame, labels = sim.simulate(ANTERIOR @ sim.image_to_probe)
    mean = {n: frame[labels == v].mean() for n, v in NAMES.items() if (labels == v).sum() > 30}
    # The lumen (the label eroded by ~1.5 mm: the portal wall itself is echogenic) is anechoic.
    lumen = ndimage.binary_erosion(labels == NAMES["portal_vein"], iterations=4)
    assert lumen.sum() > 30
    assert frame[lumen].mean() < mean["liver"] - 30
    assert mean["portal_vein"] < mean["liver"] - 10
    assert mean["lesion_2"] > mean["lesion_1"] + 20          # NET vs adenocarcinoma
    assert mean["lesion_1"] < mean["liver"] - 5               # adenocarcinoma: hypoechoic
    assert mean["lesion_2"] > mean["liver"] + 5               # NET: hyperechoic here


def test_determinism_and_seed(phantom):
    ct, lab = phantom
    a = UltrasoundSimulator(ct, lab, seed=3).simulate(ANTERIOR @ ConvexProbe().image_to_probe)
    b = UltrasoundSimulator(ct, lab, seed=3).simulate(ANTERIOR @ ConvexProbe().image_to_probe)
    c = UltrasoundSimulator(ct, lab, seed=4).simulate(ANTERIOR @ ConvexProbe().image_to_probe)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])


def test_speckle_is_fixed_in_the_patient(sim):
    """Nearby frames of a sweep share speckle; frames far apart do not."""
    def liver_pixels(dz):
        pose = ANTERIOR.copy()
        pose[2, 3] += dz
        frame, labels = sim.simulate(pose @ sim.image_to_probe)
        return frame.astype(float), labels == NAMES["liver"]

    f0, m0 = liver_pixels(0.0)
    f1, m1 = liver_pixels(0.05)
    f2, m2 = liver_pixels(6.0)
    m = m0 & m1 & m2
    # Speckle only: remove the slowly varying brightness (attenuation, TGC, haze).
    f0, f1, f2 = (f - ndimage.gaussian_filter(f, 8.0) for f in (f0, f1, f2))
    near = np.corrcoef(f0[m], f1[m])[0, 1]
    far = np.corrcoef(f0[m], f2[m])[0, 1]
    assert near > 0.8 and far < 0.3


def test_breathing_shift_moves_the_liver_contents(sim):
    # Sagittal plane through lesion 1: beam posterior, lateral towards S.
    c = np.array(LESIONS["lesion_1"][1])
    pose = probe_pose((c[0], -50.0, c[2]), (0, 1, 0), (0, 0, 1))
    i2c = pose @ sim.image_to_probe
    _, lab0 = sim.simulate(i2c)
    _, lab1 = sim.simulate(i2c, liver_shift_lps=(0.0, 0.0, -8.0))
    v = NAMES["lesion_1"]
    col0 = np.nonzero(lab0 == v)[1].mean()
    col1 = np.nonzero(lab1 == v)[1].mean()
    # Columns run towards S here: the lesion moves 8 mm towards I.
    assert (col0 - col1) * sim.probe.pixel_mm == pytest.approx(8.0, abs=0.8)


def test_label_map_on_another_grid_is_refused(phantom):
    ct, lab = phantom
    other = LabelMap(lab.array[:, :, :-1], lab.spacing, lab.origin, names=lab.names)
    with pytest.raises(InputError, match="not on the CT grid"):
        UltrasoundSimulator(ct, other)


def test_picture_of_simulated_frames(sim, artifacts_dir):
    """A picture a person should look at: frame and label truth side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    frame, labels = sim.simulate(ANTERIOR @ sim.image_to_probe)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].imshow(frame, cmap="gray", vmin=0, vmax=255)
    ax[0].contour(labels, levels=np.arange(0.5, 8), colors="r", linewidths=0.4)
    ax[0].set_title("simulated frame + label outlines (small phantom)")
    ax[1].imshow(labels, cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
    ax[1].set_title("label frame (ground truth)")
    fig.tight_layout()
    path = artifacts_dir / "us_simulator_small_phantom.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    assert path.stat().st_size > 10_000


def test_speckle_statistics_close_to_the_real_liver_sweep(sim, shared_data):
    """The realism gaps stay closed: speckle grain size and grey SNR of homogeneous liver
    within 40 % of the real in-vivo sweep (same measuring code as sample_data.case.realism).
    (Mean grey depends on the anatomy above the liver, so it is compared on the demo
    phantom by ``python -m sample_data.case.realism``, not on this small phantom.)"""
    from sample_data.case import realism
    shared_data("liver-us", "liver_sweep.igs.mha")
    rf, rfan, rpx = realism.real_frames(step=20)
    real = realism.speckle_stats(rf, rfan, rpx)
    frames, masks = [], []
    for dz in (-10.0, 0.0, 10.0):
        pose = ANTERIOR.copy()
        pose[2, 3] += dz
        f, lab = sim.simulate(pose @ sim.image_to_probe)
        frames.append(f)
        masks.append(lab == NAMES["liver"])
    simulated = realism.speckle_stats(frames, masks, sim.probe.pixel_mm)
    assert simulated["tiles"] >= 10 and real["tiles"] >= 50
    for key in ("fwhm_axial_mm", "fwhm_lateral_mm", "grey_snr"):
        assert simulated[key] == pytest.approx(real[key], rel=0.4), key


def test_enhanced_vessel_above_300_hu_casts_no_shadow(phantom):
    """Arterial-phase contrast can push a labelled vessel above 300 HU: it stays blood."""
    ct, lab = phantom
    hot = ct.array.copy()
    hot[lab.array == NAMES["portal_vein"]] = 450
    sim_hot = UltrasoundSimulator(ct.with_array(hot), lab, seed=7, lesion_types=LESION_TYPES)
    sim_ref = UltrasoundSimulator(ct, lab, seed=7, lesion_types=LESION_TYPES)
    a, _ = sim_hot.simulate(ANTERIOR @ sim_hot.image_to_probe)
    b, _ = sim_ref.simulate(ANTERIOR @ sim_ref.image_to_probe)
    assert np.array_equal(a, b)


def test_simulates_a_real_ct_with_its_organ_labels(shared_data, artifacts_dir):
    """Real abdominal CT (20 slices) and its automatic organ labels (another direction
    matrix: resampled by physical space): an axial frame from the anterior skin above the
    liver shows the liver where the labels say, not black, with the fan rule kept."""
    import SimpleITK as sitk
    folder = shared_data("ct", "abdomen-20slice")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder / "dicom")))
    ct_img = reader.Execute()
    lab_img = sitk.Resample(sitk.ReadImage(str(folder / "labels.nii.gz")), ct_img, sitk.Transform(),
                            sitk.sitkNearestNeighbor, 0, sitk.sitkInt16)
    names = {}
    for line in (folder / "label_names.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            names[parts[1]] = int(parts[0])
    ct = Volume.from_sitk(ct_img)
    lab = LabelMap.from_sitk(lab_img, names=names)
    sim = UltrasoundSimulator(ct, lab, seed=0)
    # Probe on the anterior skin above the liver centroid, axial plane, marked side to L.
    k, j, i = np.nonzero(lab.array == names["liver"])
    centroid = lab.index_to_lps(np.stack([i, j, k], 1).mean(0))
    z_ok = np.abs(lab.index_to_lps(np.stack([i, j, k], 1))[:, 2] - centroid[2]) < 1.0
    top = lab.index_to_lps(np.stack([i, j, k], 1)[z_ok]).min(axis=0)[1]      # most anterior liver
    skin_y = top - 1.0
    while ct.array[tuple(np.rint(ct.lps_to_index([centroid[0], skin_y, centroid[2]]))[::-1].astype(int))] > -400:
        skin_y -= 0.5
    pose = probe_pose((centroid[0], skin_y + 1.0, centroid[2]), (0, 1, 0), (1, 0, 0))
    frame, labels = sim.simulate(pose @ sim.image_to_probe)
    liver = labels == names["liver"]
    assert liver.sum() > 5000
    assert np.all(frame[~sim.fan_mask] == 0)
    assert np.median(frame[liver]) > 15
    # The centroid's column: the liver is under the probe's centre line.
    col = (np.linalg.inv(pose @ sim.image_to_probe) @ np.array([*centroid, 1.0]))[0]
    assert abs(col - (sim.probe.cols - 1) / 2) < 1.0
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    ax.imshow(frame, cmap="gray", vmin=0, vmax=255)
    ax.contour(labels, levels=np.arange(0.5, labels.max() + 1), colors="r", linewidths=0.3)
    ax.set_title("simulated from the real abdomen-20slice CT (organ labels in red)")
    fig.tight_layout()
    fig.savefig(artifacts_dir / "us_simulator_real_ct.png", dpi=80)
    plt.close(fig)


def test_plain_physics_model_on_a_noisy_ct_is_speckle_not_striped_noise():
    """The stress-test simulator (Wein 2008's HU-only model) on a CT with a real scanner's noise
    (15 HU per voxel): liver is speckle of the liver's level, every beam reaches the depth (no beam
    blocked by one noisy voxel), a liver / fat interface echoes brighter than the liver, and a rib
    still shadows. Unsmoothed, the noise's sample-to-sample differences outshone the speckle ~1000
    times and single voxels below -400 HU blocked whole beams (striped frames on crlm-1004)."""
    from sample_data.simulator.plain_physics import PlainPhysicsSimulator
    rng = np.random.default_rng(4)
    hu = (60 + 15 * rng.standard_normal((40, 140, 120))).astype(np.int16)     # k (z), j (y = depth), i (x)
    lab = np.full(hu.shape, 2, np.int32)
    zz, yy, xx = np.meshgrid(np.arange(40), np.arange(140), np.arange(120), indexing="ij")
    hu[yy >= 110] = (-100 + 15 * rng.standard_normal(hu.shape)).astype(np.int16)[yy >= 110]   # fat below 110 mm
    rib = (yy - 25) ** 2 + (xx - 100) ** 2 <= 36            # a rib at x = 100 mm, 25 mm deep
    hu[rib], lab[rib] = 800, 4
    ct = Volume(hu, origin=(0, 0, 0))
    sim = PlainPhysicsSimulator(ct, LabelMap(lab, names={"liver": 2, "bone": 4}), seed=1)
    pose = probe_pose((60.0, 0.0, 20.0), (0, 1, 0), (1, 0, 0))
    hu_p, lab_p, pts = sim.sample_polar(pose @ sim.image_to_probe)
    env = sim._envelope(hu_p, sim.tissue_class(hu_p, lab_p), pts, np.random.default_rng(0))
    depth = pts - np.array([60.0, 0.0, 20.0])
    y, x = depth[..., 1], pts[..., 0]
    liver = (y > 40) & (y < 100) & (np.abs(x - 60) < 25)              # beams that miss the rib
    level = np.median(env[liver])
    assert 0.5 < level < 3.0                                           # speckle (mean ~1.1), not noise echoes
    beams = [np.median(b[m]) for b, m in zip(env, liver) if m.sum() > 20]
    assert len(beams) > 20 and min(beams) > 0.6 * level               # no beam blocked or striped
    interface = (np.abs(y - 110) < 1.5) & (np.abs(x - 60) < 25)
    assert np.median(env[interface]) > 2.0 * level
    hit = (lab_p == 4).any(axis=1)                                     # beams through the rib
    behind_rib = env[hit][(y[hit] > 60) & (y[hit] < 100)]
    assert hit.sum() >= 3 and np.median(behind_rib) < 0.2 * level
