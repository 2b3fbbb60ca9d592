"""The compiled distance transform against scipy's: the same distances on anisotropic grids."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from registration.spatial import distance_map
from registration.spatial.distance_map import distance_transform_edt

needs_kernel = pytest.mark.skipif(not distance_map.AVAILABLE, reason="no C compiler: scipy's transform is used")


@needs_kernel
@pytest.mark.parametrize("shape, sampling, fraction", [
    ((7, 9, 11), (1.6, 0.74, 0.74), 0.9),
    ((30, 40, 50), (1.5, 1.21, 1.21), 0.99),
    ((20, 33, 17), None, 0.5),
    ((40, 60, 60), (2.0, 0.5, 0.7), 0.999),
    ((1, 50, 40), (1.0, 0.8, 0.8), 0.95),
    ((25, 1, 30), 1.3, 0.97),
])
def test_distances_equal_scipys_to_rounding(shape, sampling, fraction):
    rng = np.random.default_rng(sum(shape))
    mask = rng.random(shape) < fraction           # True: distance to the nearest False voxel
    ref = ndimage.distance_transform_edt(mask, sampling=sampling)
    for threads in (1, 2, 3):
        got = distance_transform_edt(mask, sampling=sampling, n_threads=threads)
        assert got.dtype == np.float64 and got.shape == mask.shape
        # exact but for two feature voxels at the same exact distance whose squared terms
        # round differently (the sum's order): one ulp
        np.testing.assert_allclose(got, ref, rtol=4e-16, atol=0)


@needs_kernel
def test_blobs_with_far_lines_and_the_threads_agree():
    rng = np.random.default_rng(3)
    mask = ndimage.gaussian_filter(rng.random((30, 70, 90)), 4) > 0.48   # large regions: long lines
    mask[:, :, :5] = True                                                # lines with no feature at all
    ref = ndimage.distance_transform_edt(mask, sampling=(1.6, 0.74, 0.74))
    one = distance_transform_edt(mask, sampling=(1.6, 0.74, 0.74), n_threads=1)
    two = distance_transform_edt(mask, sampling=(1.6, 0.74, 0.74), n_threads=2)
    assert np.array_equal(one, two)
    np.testing.assert_allclose(one, ref, rtol=4e-16, atol=0)


def test_inputs_the_kernel_does_not_take_go_to_scipy():
    flat = np.ones((6, 7), bool)
    flat[2, 3] = False
    np.testing.assert_array_equal(distance_transform_edt(flat, sampling=(2.0, 1.0)),
                                  ndimage.distance_transform_edt(flat, sampling=(2.0, 1.0)))
    full = np.ones((3, 4, 5), bool)                   # no zero anywhere: scipy's answer, whatever it is
    np.testing.assert_array_equal(distance_transform_edt(full), ndimage.distance_transform_edt(full))
