"""The clearance oracle's building blocks (planner/paths/clearance.py)."""
from __future__ import annotations

import numpy as np


def test_face_boundary_equals_the_erosion_it_replaces():
    """Issue 16: the boundary voxels the KD-trees are built from, by shifted ANDs, are exactly
    scipy's ``mask & ~binary_erosion(mask, border_value=0)`` (edges of the array included)."""
    from scipy import ndimage

    from planner.paths.clearance import _face_boundary
    rng = np.random.default_rng(3)
    for shape in [(1, 4, 4), (5, 6, 7), (30, 40, 35)]:
        m = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
        assert np.array_equal(_face_boundary(m), m & ~ndimage.binary_erosion(m, border_value=0))
    full = np.ones((3, 4, 5), bool)
    assert np.array_equal(_face_boundary(full), full & ~ndimage.binary_erosion(full, border_value=0))


def test_label_mask_equals_isin_for_every_label_dtype():
    """registration.spatial.lesions.label_mask (a lookup table for small integer labels) is
    ``np.isin`` exactly, for unsigned, signed and bool arrays and values beyond the dtype."""
    from registration.spatial.lesions import label_mask
    rng = np.random.default_rng(5)
    for dtype in (np.uint8, np.uint16, np.int16, np.int32, bool):
        arr = rng.integers(-3 if np.issubdtype(dtype, np.signedinteger) else 0, 2 if dtype is bool else 300,
                           (7, 8, 9)).astype(dtype)
        for values in ([], [1], [2, 5, 7, 299], [1, 70000]):
            assert np.array_equal(label_mask(arr, values), np.isin(arr, values)), (dtype, values)


def _reference_distance(mask: np.ndarray, spacing_ijk, ijk: np.ndarray, cap: float) -> np.ndarray:
    """DESIGN 7 by its definition: scipy's EDT of the complement, trilinear at (i, j, k) points."""
    from scipy import ndimage
    if not mask.any():
        return np.full(len(ijk), cap)
    edt = np.minimum(ndimage.distance_transform_edt(~mask, sampling=np.asarray(spacing_ijk)[::-1]), cap)
    return ndimage.map_coordinates(edt, ijk[:, ::-1].T, order=1, mode="nearest")


def test_oracle_distances_equal_the_distance_transform_by_its_definition():
    """Issue 16: the oracle builds each structure's KD-tree from the structure's box only (boxes of
    every label from one find_objects pass; unbalanced trees). Its distances must stay the
    DESIGN 7 rule exactly: per class, per vessel label, labels touching the array's edge, a
    label value with no voxel, on an anisotropic grid."""
    from scipy import ndimage

    from planner.anatomy.structures import build_anatomy
    from planner.paths.clearance import CAP_MM, ClearanceOracle, segment_points
    from registration.spatial.volume import LabelMap, Volume
    rng = np.random.default_rng(11)
    shape = (24, 40, 44)                                   # [k, j, i]
    spacing = (0.8, 0.7, 1.6)                              # (i, j, k) mm
    arr = np.zeros(shape, np.uint8)
    arr[2:22, 3:37, 3:41] = 1                              # liver
    blobs = ndimage.gaussian_filter(rng.random(shape), 2.0)
    arr[blobs > 0.56] = 2                                  # bone, touching the array's edges
    arr[8:12, 10:30, 20:23] = 3                            # portal vein
    arr[14:16, 5:9, 5:40] = 4                              # hepatic vein
    arr[0:3, 0:5, 0:5] = 5                                 # lung in a corner of the array
    names = {"liver": 1, "bone": 2, "portal_vein": 3, "hepatic_vein": 4, "lung": 5, "kidney": 9}
    origin = (-10.0, 20.0, 5.0)
    labels = LabelMap(arr, spacing, origin, np.eye(3), names)
    ct = Volume(np.where(arr > 0, 40, -100).astype(np.int16), spacing, origin, np.eye(3))
    anatomy = build_anatomy(ct, labels, derive=False)
    oracle = ClearanceOracle(labels, anatomy)
    for _ in range(25):
        a, b = (rng.uniform([0, 0, 0], np.array(shape[::-1]) - 1) for _ in range(2))
        pts = segment_points(labels.index_to_lps(a), labels.index_to_lps(b))
        ijk = (np.c_[pts, np.ones(len(pts))] @ labels.lps_to_ijk.T)[:, :3]
        got = oracle.measure(pts[0], pts[-1], vessel_labels=True)
        for cls, values in (("bone", [2]), ("lung", [5]), ("vessel", [3, 4])):
            want = _reference_distance(np.isin(arr, values), spacing, ijk, CAP_MM).min()
            assert abs(got.by_class[cls] - want) < 1e-9, (cls, got.by_class[cls], want)
        for name in ("portal_vein", "hepatic_vein"):
            want = _reference_distance(arr == names[name], spacing, ijk, CAP_MM).min()
            assert abs(got.by_label[name] - want) < 1e-9, (name, got.by_label[name], want)
        assert "kidney" not in got.by_class or got.by_class["kidney"] >= CAP_MM
