"""Lesion and structure tables on analytic label maps (known answers) and on real labels."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation

from registration.spatial.errors import InputError
from registration.spatial.lesions import lesion_table, max_diameter_mm, measure_lesion, structure_table
from registration.spatial.volume import LabelMap, Volume

SPACING = np.array([0.8, 0.7, 1.5])
ORIGIN = np.array([10.0, -20.0, 30.0])
DIRECTION = Rotation.from_euler("z", 30, degrees=True).as_matrix()


def _grid(shape=(50, 70, 80)):
    lm = LabelMap(np.zeros(shape, np.uint8), SPACING, ORIGIN, DIRECTION)
    k, j, i = np.indices(shape)
    return lm, lm.index_to_lps(np.stack([i, j, k], -1))


def _ball(points, centre, radius):
    return np.sum((points - np.asarray(centre)) ** 2, axis=-1) <= radius ** 2


def test_named_lesions_known_spheres():
    lm, p = _grid()
    c1 = lm.index_to_lps([30, 30, 20])
    c2 = lm.index_to_lps([60, 45, 30])
    lm.array[_ball(p, c1, 10.0)] = 7
    lm.array[_ball(p, c2, 5.0)] = 8
    lm.names.update({"liver": 1, "lesion_2": 8, "lesion_1": 7})
    rows = lesion_table(lm)
    assert [r["name"] for r in rows] == ["lesion_1", "lesion_2"]
    big, small = rows
    assert big["centroid_lps"] == pytest.approx(c1, abs=0.05)
    assert small["centroid_lps"] == pytest.approx(c2, abs=0.05)
    # digitised ball volume within 3 % of 4/3 pi r^3
    assert big["volume_ml"] == pytest.approx(4 / 3 * np.pi * 10 ** 3 / 1000, rel=0.03)
    assert big["equivalent_diameter_mm"] == pytest.approx(20.0, rel=0.01)
    assert big["max_diameter_mm"] == pytest.approx(20.0, abs=1.5)
    assert small["max_diameter_mm"] == pytest.approx(10.0, abs=1.5)
    assert big["n_voxels"] == int((lm.array == 7).sum())
    assert big["mean_hu"] is None and not big["derived"]


def test_generic_lesion_label_split_into_components():
    lm, p = _grid()
    lm.array[_ball(p, lm.index_to_lps([20, 20, 20]), 4.0)] = 3     # small
    lm.array[_ball(p, lm.index_to_lps([55, 50, 25]), 8.0)] = 3     # large
    lm.array[_ball(p, lm.index_to_lps([60, 15, 10]), 3.0)] = 4     # its own named lesion
    lm.names.update({"lesion": 3, "lesion_1": 4})
    rows = lesion_table(lm)
    assert [(r["name"], r["derived"], r["source_label"]) for r in rows] == [
        ("lesion_1", False, "lesion_1"), ("lesion_2", True, "lesion"), ("lesion_3", True, "lesion")]
    assert rows[1]["volume_ml"] > rows[2]["volume_ml"]            # largest component first
    assert rows[1]["centroid_lps"] == pytest.approx(lm.index_to_lps([55, 50, 25]), abs=0.05)
    assert rows[1]["n_voxels"] + rows[2]["n_voxels"] == int((lm.array == 3).sum())


def test_hu_statistics_from_the_ct_on_the_same_grid():
    lm, p = _grid()
    inside = _ball(p, lm.index_to_lps([40, 35, 25]), 6.0)
    lm.array[inside] = 2
    lm.names["lesion_1"] = 2
    rng = np.random.default_rng(1)
    ct = Volume(rng.normal(60.0, 15.0, lm.array.shape).astype(np.float32), SPACING, ORIGIN, DIRECTION)
    ct.array[inside] = 20.0 + np.arange(inside.sum()) % 2 * 10.0   # 20 and 30 alternating
    (row,) = lesion_table(lm, ct)
    assert row["mean_hu"] == pytest.approx(ct.array[inside].mean())
    assert row["std_hu"] == pytest.approx(ct.array[inside].std(), rel=1e-6)
    assert 24 < row["mean_hu"] < 26 and row["std_hu"] == pytest.approx(5.0, abs=0.01)


def test_ct_on_another_grid_is_refused():
    lm, _ = _grid((10, 10, 10))
    lm.names["lesion_1"] = 1
    lm.array[5, 5, 5] = 1
    ct = Volume(np.zeros((10, 10, 10), np.int16), SPACING * 2, ORIGIN, DIRECTION)
    with pytest.raises(InputError, match="different grids") as exc:
        lesion_table(lm, ct)
    assert "reference=CT" in str(exc.value)


def test_max_diameter_matches_brute_force_on_random_blobs():
    rng = np.random.default_rng(42)
    m = np.eye(4)
    m[:3, :3] = DIRECTION * SPACING
    for _ in range(5):
        mask = rng.random((12, 14, 16)) < 0.3
        kji = np.argwhere(mask)
        brute = pdist(kji[:, ::-1] @ m[:3, :3].T).max()
        assert max_diameter_mm(mask, m) == pytest.approx(brute, rel=1e-9)


def test_flat_and_tiny_lesions():
    m = np.diag([0.5, 0.5, 3.0, 1.0])
    flat = np.zeros((3, 40, 40), bool)
    flat[1, 5:35, 10:20] = True                 # one slice thick: coplanar surface points
    assert max_diameter_mm(flat, m) == pytest.approx(np.hypot(29 * 0.5, 9 * 0.5))
    line = np.zeros((3, 3, 200), bool)
    line[1, 1, 10:150] = True                   # collinear
    assert max_diameter_mm(line, m) == pytest.approx(139 * 0.5)
    single = np.zeros((3, 3, 3), bool)
    single[1, 1, 1] = True
    assert max_diameter_mm(single, m) == 0.0


def test_structure_table_counts():
    lm, _ = _grid((6, 7, 8))
    lm.array[0, :2, :3] = 1
    lm.array[5, 6, 7] = 9
    lm.names.update({"liver": 1, "lesion_1": 9, "pancreatic_mass": 4})
    rows = structure_table(lm)
    voxel_ml = float(np.prod(SPACING)) / 1000
    assert rows == [
        dict(name="liver", value=1, n_voxels=6, volume_ml=pytest.approx(6 * voxel_ml), derived=False),
        dict(name="pancreatic_mass", value=4, n_voxels=0, volume_ml=0.0, derived=False),
        dict(name="lesion_1", value=9, n_voxels=1, volume_ml=pytest.approx(voxel_ml), derived=False)]


def test_real_liver_as_a_lesion_label(shared_data):
    """The real liver label of the abdomen CT measured as if it were one lesion: plausible numbers."""
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    d = shared_data("ct", "abdomen-20slice")
    ct = load_ct(d / "dicom")
    lm = load_labels(d / "labels.nii.gz", d / "label_names.txt", reference=ct)
    lm.names["lesion_liver"] = lm.names["liver"]
    (row,) = lesion_table(lm, ct)
    assert row["volume_ml"] == pytest.approx(row["n_voxels"] * np.prod(ct.spacing) / 1000)
    assert 100 < row["max_diameter_mm"] < 300          # a liver, cut to 40 mm of height
    assert row["max_diameter_mm"] > row["equivalent_diameter_mm"]
    assert 40 <= row["mean_hu"] <= 200
    lo, hi = ct.bounds_lps()
    assert np.all(np.array(row["centroid_lps"]) > lo) and np.all(np.array(row["centroid_lps"]) < hi)


def test_lesion_mask_reproduces_each_row():
    lm, p = _grid()
    # two components of a generic label whose boxes overlap, plus a named lesion
    lm.array[_ball(p, lm.index_to_lps([30, 30, 20]), 6.0)] = 3
    shell = _ball(p, lm.index_to_lps([30, 30, 20]), 14.0) & ~_ball(p, lm.index_to_lps([30, 30, 20]), 11.0)
    lm.array[shell] = 3
    lm.array[_ball(p, lm.index_to_lps([65, 55, 35]), 3.0)] = 5
    lm.names.update({"lesion": 3, "lesion_7": 5})
    rows = lesion_table(lm)
    assert [r["name"] for r in rows] == ["lesion_7", "lesion_1", "lesion_2"]
    from registration.spatial.lesions import lesion_mask
    masks = [lesion_mask(lm, r) for r in rows]
    for r, m in zip(rows, masks):
        assert m.sum() == r["n_voxels"]
        kji = np.argwhere(m)
        assert lm.index_to_lps(kji[:, ::-1].mean(axis=0)) == pytest.approx(r["centroid_lps"])
    assert not np.any(masks[1] & masks[2])
    assert np.array_equal(masks[1] | masks[2], lm.array == 3)


def test_measure_lesion_is_the_same_for_a_crop_and_the_full_grid():
    """One rule for every caller: a full-size mask, a loose crop with its offset and the
    lesion table give the same centroid and sizes; both diameters are reported."""
    lm, p = _grid()
    centre = lm.index_to_lps([40, 30, 20])
    ball = _ball(p, centre, 6.0)
    full = measure_lesion(ball, lm)
    crop = measure_lesion(ball[10:30, 15:50, 20:70], lm, offset_ijk=(20, 15, 10))
    assert crop == full
    assert full.centroid_lps == pytest.approx(centre, abs=0.05)
    assert lm.index_to_lps(full.centroid_ijk) == pytest.approx(full.centroid_lps)
    assert full.n_voxels == int(ball.sum())
    assert full.volume_ml == pytest.approx(ball.sum() * np.prod(SPACING) / 1000)
    assert full.equivalent_radius_mm == pytest.approx(6.0, rel=0.02)
    assert full.max_diameter_mm == pytest.approx(12.0, abs=1.5)
    lm.array[ball] = 4
    lm.names["lesion_1"] = 4
    (row,) = lesion_table(lm)
    assert row["centroid_lps"] == list(full.centroid_lps)
    assert (row["equivalent_diameter_mm"], row["max_diameter_mm"], row["volume_ml"]) == \
        (full.equivalent_diameter_mm, full.max_diameter_mm, full.volume_ml)


def test_measure_lesion_refuses_an_empty_mask():
    lm, _ = _grid((4, 4, 4))
    with pytest.raises(InputError, match="empty"):
        measure_lesion(np.zeros((4, 4, 4), bool), lm)
