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
