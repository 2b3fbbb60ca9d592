"""Oblique reslicing against analytic volumes."""
import numpy as np
import pytest

from registration.spatial.errors import InputError
from registration.spatial.reslice import Reslicer, plane_pixel_to_lps, reslice_plane
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import Volume


def analytic_volume(f, shape_kji=(50, 60, 70), spacing=(0.8, 0.9, 1.5), rot=(15, -25, 40)):
    direction = rigid_matrix([*rot, 0, 0, 0])[:3, :3]
    v = Volume(np.zeros(shape_kji, np.float32), spacing, (10, -20, 30), direction)
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_kji], indexing="ij")
    p = v.index_to_lps(np.stack([i, j, k], -1))
    return v.with_array(f(p).astype(np.float32))


def plane_points(m, rows, cols):
    yy, xx = np.mgrid[0:rows, 0:cols]
    return np.stack([xx, yy, np.zeros_like(xx)], -1) @ m[:3, :3].T + m[:3, 3]


def test_linear_field_exact_on_oblique_plane():
    def f(p):
        return p[..., 0] + 2 * p[..., 1] + 3 * p[..., 2] + 500
    v = analytic_volume(f)
    centre = v.index_to_lps(np.array(v.shape_ijk) / 2)
    m = plane_pixel_to_lps(centre, [1, 0.3, 0.2], [0.1, 1, -0.5], (40, 30), (0.5, 0.7))
    out = Reslicer(v).reslice(m, (30, 40))
    expected = f(plane_points(m, 30, 40))
    assert np.max(np.abs(out.image - expected) / np.abs(expected)) < 1e-4


def test_smooth_field_within_one_percent():
    def f(p):
        return 1000 + 200 * np.sin(p[..., 0] / 9.0) * np.cos(p[..., 2] / 13.0) + 0.5 * p[..., 1]
    v = analytic_volume(f)
    centre = v.index_to_lps(np.array(v.shape_ijk) / 2)
    m = plane_pixel_to_lps(centre, [0.7, -0.2, 0.6], [0.3, 0.9, 0.1], (60, 50), (0.4, 0.4))
    out = reslice_plane(v, m, (50, 60))
    expected = f(plane_points(m, 50, 60))
    assert np.max(np.abs(out.image - expected) / expected) < 0.01
    assert out.spacing == pytest.approx((0.4, 0.4))


def test_not_mirrored_or_transposed():
    # A single bright voxel must appear at the pixel whose LPS position is that voxel.
    v = Volume(np.zeros((20, 30, 40), np.float32), (1, 1, 1), (0, 0, 0))
    v.array[10, 7, 31] = 100.0  # k, j, i
    target = v.index_to_lps([31, 7, 10])
    m = plane_pixel_to_lps(target, [0, 1, 0], [1, 0, 0], (21, 31), (1, 1))  # cols along +P, rows along +L
    out = Reslicer(v, interpolator="nearest", default=0).reslice(m, (31, 21)).image
    r, c = np.unravel_index(np.argmax(out), out.shape)
    assert (r, c) == (15, 10)
    # moving one column = +1 mm along P (j), one row = +1 mm along L (i)
    v.array[10, 8, 31] = 50.0
    out = Reslicer(v, interpolator="nearest", default=0).reslice(m, (31, 21)).image
    assert out[15, 11] == 50.0


def test_outside_is_default_and_bad_planes_rejected():
    v = Volume(np.ones((5, 5, 5), np.float32))
    m = plane_pixel_to_lps([1000, 0, 0], [1, 0, 0], [0, 1, 0], (4, 4), (1, 1))
    assert np.all(Reslicer(v, default=-7).reslice(m, (4, 4)).image == -7)
    sheared = np.eye(4)
    sheared[:3, 1] = [0.5, 1, 0]
    with pytest.raises(InputError, match="sheared"):
        Reslicer(v).reslice(sheared, (4, 4))
    with pytest.raises(InputError, match="parallel"):
        plane_pixel_to_lps([0, 0, 0], [1, 0, 0], [2, 0, 0], (4, 4), (1, 1))
