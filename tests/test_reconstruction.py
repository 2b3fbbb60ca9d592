"""Volume reconstruction: known geometry, compounding, hole filling, cancel, real PLUS/liver data."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from registration.errors import CancelledError, InputError
from registration.hole_filling import (GaussianElement, StickElement, apply_elements,
                                       elements_from_plus, fill_holes, fill_holes_sticks)
from registration.reconstruction import (clip_rectangle_mask, extent_from_frames, plus_fan_mask,
                                         reconstruct, reference_insert)
from registration.sweep import Sweep


def make_sweep(frames, image_to_reference, status=None, fan_mask=None):
    frames = np.asarray(frames, np.uint8)
    n = frames.shape[0]
    mats = np.asarray(image_to_reference, float).reshape(n, 4, 4)
    st = {} if status is None else {"ImageToReference": np.asarray(status, bool)}
    return Sweep(frames, np.arange(n) * 0.05, {"ImageToReference": mats}, st, fan_mask=fan_mask)


def pose(rot_deg=(0, 0, 0), t=(0, 0, 0), px=(1.0, 1.0)):
    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", rot_deg, degrees=True).as_matrix() @ np.diag([px[0], px[1], 1])
    m[:3, 3] = t
    return m


# ----------------------------------------------------------------------------- known geometry
def test_axis_order_and_orientation_pixel_to_voxel():
    """Image x -> +i, y -> +j: an asymmetric frame comes back unflipped and untransposed."""
    rng = np.random.default_rng(1)
    frame = rng.integers(1, 255, size=(7, 11), dtype=np.uint8)     # rows=7 (y), cols=11 (x)
    m = pose(t=(10.0, 20.0, 30.0), px=(0.5, 0.5))
    res = reconstruct(make_sweep(frame[None], m[None]), spacing_mm=0.5, fill_holes=False)
    vol = res.volume
    assert vol.array.shape == (1, 7, 11)                            # [k, j, i]
    np.testing.assert_allclose(vol.origin, [10, 20, 30])           # centre of voxel 0 = pixel (0,0)
    np.testing.assert_array_equal(vol.array[0], frame)
    # and the physical position of a voxel is the position of its pixel
    np.testing.assert_allclose(vol.index_to_lps([4, 6, 0]), [10 + 4 * 0.5, 20 + 6 * 0.5, 30])


def _cell_pattern(points_mm, origin, spacing):
    """Analytic, asymmetric value of the grid cell that contains each point (mm)."""
    idx = np.floor((points_mm - origin) / spacing + 0.5).astype(int)
    return (1 + (3 * idx[..., 0] + 7 * idx[..., 1] + 13 * idx[..., 2]) % 250).astype(np.uint8)


def test_oblique_planes_reconstruct_analytic_volume():
    """Frames cutting an analytic volume at known oblique poses give back its values exactly."""
    rng = np.random.default_rng(7)
    rows, cols, px = 40, 50, (0.3, 0.25)
    mats = [pose(rot_deg=rng.uniform(-40, 40, 3), t=rng.uniform(-5, 5, 3) + [0, 0, 2.0 * n], px=px)
            for n in range(6)]
    # Expected grid from PLUS's rule, computed here independently: min of the frame corners.
    corners = np.array([[x, y, 0, 1] for x in (0, cols - 1) for y in (0, rows - 1)], float)
    pts = np.concatenate([(m @ corners.T).T[:, :3] for m in mats])
    spacing = 0.7
    origin = pts.min(axis=0)
    dims = np.ceil((pts.max(axis=0) - origin) / spacing).astype(int) + 1
    ys, xs = np.mgrid[0:rows, 0:cols]
    frames = []
    for m in mats:
        p = np.stack([xs, ys, np.zeros_like(xs), np.ones_like(xs)], -1).reshape(-1, 4) @ m.T
        frames.append(_cell_pattern(p[:, :3], origin, spacing).reshape(rows, cols))
    res = reconstruct(make_sweep(frames, mats), spacing_mm=spacing, fill_holes=False)
    vol = res.volume
    np.testing.assert_allclose(vol.origin, origin, atol=1e-9)
    assert vol.shape_ijk == tuple(dims)
    hit = res.weights > 0
    assert hit.sum() > 1000
    k, j, i = np.nonzero(hit)
    centres = vol.index_to_lps(np.stack([i, j, k], -1))
    np.testing.assert_array_equal(vol.array[hit], _cell_pattern(centres, origin, spacing))
    assert res.n_pixels_inserted == 6 * rows * cols


def test_output_origin_and_extent_follow_plus_convention():
    m = pose(t=(0, 0, 0), px=(0.5, 0.5))
    frame = np.full((10, 10), 50, np.uint8)
    res = reconstruct(make_sweep(frame[None], m[None]), spacing_mm=0.5, fill_holes=False,
                      output_origin=(-1.0, -1.0, -1.0), output_extent=(2, 9, 2, 13, 1, 3))
    vol = res.volume
    assert vol.shape_ijk == (8, 12, 3)
    # origin of the stored array = centre of voxel (i0, j0, k0)
    np.testing.assert_allclose(vol.origin, [-1 + 2 * 0.5, -1 + 2 * 0.5, -1 + 0.5])
    # pixel (x, y) sits at mm (x/2, y/2, 0) = PLUS index (x + 2, y + 2, 2) -> array [1, y, x]
    assert vol.array[1, 0, 0] == 50 and vol.array[1, 7, 5] == 50
    assert vol.array[0].max() == 0 and vol.array[2].max() == 0
    # pixels beyond i1 = 9 (x > 7) are dropped, not wrapped
    assert res.n_pixels_inserted == 8 * 10
    with pytest.raises(InputError):
        reconstruct(make_sweep(frame[None], m[None]), output_origin=(0, 0, 0))
    with pytest.raises(InputError):
        reconstruct(make_sweep(frame[None], m[None]), compounding="median")


def test_extent_from_frames_uses_clip_rectangle_corners():
    m = pose(px=(0.1, 0.2))
    origin, extent = extent_from_frames(m[None], np.array([True]), (100, 200), (0.5, 0.5, 0.5),
                                        clip_rectangle=(10, 20, 50, 30))
    np.testing.assert_allclose(origin, [1.0, 4.0, 0.0])
    # max corner: x = 60 px = 6 mm, y = 50 px = 10 mm -> ceil(5/0.5) = 10, ceil(6/0.5) = 12
    assert extent == (0, 10, 0, 12, 0, 0)


# ----------------------------------------------------------------------------- compounding
def _two_frames(a, b):
    m = pose(px=(0.25, 0.25))
    fa = np.full((4, 4), a, np.uint8)
    fb = np.full((4, 4), b, np.uint8)
    fb[2, 2] = b + 10            # last pixel, in raster order, of the pixels of voxel (1, 1)
    fb[3, 3] = b + 10
    return make_sweep([fa, fb], [m, m])


def test_compounding_mean_max_latest():
    sweep = _two_frames(100, 50)
    # 0.25 mm pixels, 0.5 mm voxels, nearest voxel = floor(index + 0.5): pixel 0 -> voxel 0,
    # pixels 1, 2 -> voxel 1 (indices 0.5 and 1.0), pixel 3 -> voxel 2 (index 1.5).
    mean = reconstruct(sweep, spacing_mm=0.5, compounding="mean", fill_holes=False)
    mx = reconstruct(sweep, spacing_mm=0.5, compounding="max", fill_holes=False)
    latest = reconstruct(sweep, spacing_mm=0.5, compounding="latest",
                         fill_holes=False)
    assert mean.volume.array.shape == (1, 3, 3)
    np.testing.assert_array_equal(mean.weights[0], [[2, 4, 2], [4, 8, 4], [2, 4, 2]])
    # voxel (1, 1): 4 x 100 + 3 x 50 + 60 = 610 over 8 pixels = 76.25 -> 76
    assert mean.volume.array[0, 1, 1] == 76 and mean.volume.array[0, 0, 0] == 75
    assert mean.volume.array[0, 2, 2] == 80                     # (100 + 60) / 2
    assert mx.volume.array[0, 1, 1] == 100 and mx.volume.array.min() == 100
    # latest: frame 2 wins; inside it the last pixel in raster order, (2, 2) = 60
    assert latest.volume.array[0, 1, 1] == 60
    assert latest.volume.array[0, 0, 0] == 50 and latest.volume.array[0, 2, 2] == 60
    assert reconstruct(sweep, spacing_mm=0.5, compounding="MAXIMUM",
                       fill_holes=False).volume.array[0, 1, 1] == 100
    # mean rounds half up exactly: (101 + 102) / 2 = 101.5 -> 102
    m = pose()
    s = make_sweep([np.full((2, 2), 101), np.full((2, 2), 102)], [m, m])
    assert reconstruct(s, spacing_mm=1.0, fill_holes=False).volume.array[0, 0, 0] == 102


def test_invalid_frames_are_excluded_and_counted():
    m = pose(px=(0.5, 0.5))
    frames = [np.full((4, 4), 10), np.full((4, 4), 250), np.full((4, 4), 30)]
    res = reconstruct(make_sweep(frames, [m, m, m], status=[True, False, True]),
                      spacing_mm=0.5, fill_holes=False)
    assert res.n_frames_used == 2 and res.n_frames_invalid == 1 and res.n_frames_total == 3
    assert res.volume.array.max() == 20                # mean of 10 and 30; 250 never inserted


def test_fan_mask_and_clip_rectangle_limit_pixels():
    m = pose(px=(1.0, 1.0))
    frame = np.full((10, 12), 200, np.uint8)
    fan = np.zeros((10, 12), bool)
    fan[2:5, 3:9] = True
    res = reconstruct(make_sweep(frame[None], m[None], fan_mask=fan), spacing_mm=1.0,
                      fill_holes=False, output_origin=(0, 0, 0), output_extent=(0, 11, 0, 9, 0, 0))
    np.testing.assert_array_equal(res.weights[0] > 0, fan)
    res = reconstruct(make_sweep(frame[None], m[None], fan_mask=fan), spacing_mm=1.0,
                      fill_holes=False, use_sweep_fan_mask=False, clip_rectangle=(1, 1, 3, 2),
                      output_origin=(0, 0, 0), output_extent=(0, 11, 0, 9, 0, 0))
    # PLUS clip: columns ceil(1)..floor(4), rows 1..3, both ends included
    assert np.array_equal(np.argwhere(res.weights[0] > 0).min(0), [1, 1])
    assert np.array_equal(np.argwhere(res.weights[0] > 0).max(0), [3, 4])
    np.testing.assert_array_equal(clip_rectangle_mask((10, 12), (1, 1, 3, 2)), res.weights[0] > 0)


def test_plus_fan_mask_is_a_symmetric_fan_below_its_origin():
    m = plus_fan_mask((200, 201), origin_px=(100, 0), angles_deg=(-30, 30),
                      radius_start_px=20, radius_stop_px=180)
    assert m[100, 100] and not m[5, 100]             # inside; inside the start radius
    assert not m[199, 100]                           # beyond the stop radius
    assert not m[50, 100 + 40] and m[100, 100 + 50]  # 30 deg line: x = 100 + tan(30) * y
    np.testing.assert_array_equal(m, m[:, ::-1])     # symmetric about the centre column


# ----------------------------------------------------------------------------- fast == plain loop
def test_fast_insertion_equals_plain_loop_reference():
    rng = np.random.default_rng(3)
    rows, cols = 23, 31
    mats = [pose(rot_deg=rng.uniform(-60, 60, 3), t=rng.uniform(-3, 3, 3), px=(0.21, 0.17))
            for _ in range(5)]
    frames = rng.integers(0, 256, size=(5, rows, cols), dtype=np.uint8)
    fan = rng.random((rows, cols)) > 0.2
    sweep = make_sweep(frames, mats, status=[True, True, False, True, True], fan_mask=fan)
    origin, extent = (-2.0, -1.5, -2.5), (0, 9, 0, 12, 0, 8)    # cuts some pixels off
    for mode in ("mean", "max", "latest"):
        fast = reconstruct(sweep, spacing_mm=(0.4, 0.35, 0.5), compounding=mode, fill_holes=False,
                           output_origin=origin, output_extent=extent)
        ref_vol, ref_count = reference_insert(sweep, (0.4, 0.35, 0.5), origin, extent, mode, fan)
        np.testing.assert_array_equal(fast.weights, ref_count)
        np.testing.assert_array_equal(fast.volume.array, ref_vol)
        assert 0 < fast.n_pixels_inserted < 4 * fan.sum()


# ----------------------------------------------------------------------------- hole filling
def _gap_volume(gap):
    v = np.zeros((30, 20, 20), np.float32)
    known = np.zeros(v.shape, bool)
    known[:10], v[:10] = True, 100
    known[10 + gap:20 + gap], v[10 + gap:20 + gap] = True, 200
    return v, known


def test_gaussian_hole_filling_fills_gaps_but_does_not_extrapolate():
    v, known = _gap_volume(2)
    out, filled = fill_holes(v, known)
    assert filled[10:12, 5:15, 5:15].all()
    assert 100 < out[10, 10, 10] < 200 and out[10, 10, 10] < out[11, 10, 10]
    # beyond the flat outer face of the data nothing is invented
    assert not filled[22 + 1:].any()
    assert not filled[known].any()
    np.testing.assert_array_equal(out[known], v[known])
    # a wider gap than the largest kernel can bridge stays empty
    v, known = _gap_volume(6)
    _, filled = fill_holes(v, known)
    assert not filled[12:14, 10, 10].any()


def test_stick_hole_filling_matches_plus_rule():
    v = np.zeros((5, 5, 12), np.float32)
    known = np.zeros(v.shape, bool)
    v[:, :, 2], v[:, :, 8] = 10, 40
    known[:, :, 2] = known[:, :, 8] = True
    out, filled = fill_holes_sticks(v, known, stick_length_limit=9)
    # PLUS: fwd = 5, rvs = 1 -> total 7, weight_fwd = 2/7: 10 * 5/7 + 40 * 2/7
    assert out[2, 2, 3] == pytest.approx(10 * 5 / 7 + 40 * 2 / 7, rel=1e-6)
    assert filled[2, 2, 3:8].all() and not filled[2, 2, 9:].any() and not filled[2, 2, :2].any()
    # too long for the stick limit: not filled
    _, filled = fill_holes_sticks(v, known, stick_length_limit=5)
    assert not filled[2, 2, 3:8].any()


def test_plus_hole_filling_elements_are_parsed_and_applied_in_order():
    elements, notes = elements_from_plus([
        {"Type": "GAUSSIAN", "Size": "3", "Stdev": "0.6667", "MinimumKnownVoxelsRatio": "0.50001"},
        {"Type": "STICK", "StickLengthLimit": "9", "NumberOfSticksToUse": "1"},
        {"Type": "NEAREST_NEIGHBOR", "Size": "3", "MinimumKnownVoxelsRatio": "0.5"}])
    assert elements == [GaussianElement(3, 0.6667, 0.50001), StickElement(9, 1)]
    assert len(notes) == 1 and "NEAREST_NEIGHBOR" in notes[0]
    v, known = _gap_volume(4)
    out, filled = apply_elements(v, known, elements)
    assert filled[10:14, 10, 10].all()                  # the 3x3x3 kernel cannot, the stick can
    with pytest.raises(InputError):
        elements_from_plus([{"Type": "GAUSSIAN", "Size": "3"}])


def test_reconstruct_fills_between_slices():
    m0, m1 = pose(px=(0.5, 0.5)), pose(t=(0, 0, 1.0), px=(0.5, 0.5))
    frames = [np.full((20, 20), 80), np.full((20, 20), 120)]
    res = reconstruct(make_sweep(frames, [m0, m1]), spacing_mm=0.5)
    assert res.volume.array.shape == (3, 20, 20)
    assert res.filled[1, 2:-2, 2:-2].all() and res.volume.array[1, 10, 10] == 100
    assert 0.9 < res.filled_fraction <= 1.0 and res.hit_fraction == pytest.approx(2 / 3)
    no = reconstruct(make_sweep(frames, [m0, m1]), spacing_mm=0.5, fill_holes=False)
    assert no.volume.array[1].max() == 0 and not no.filled.any()


# ----------------------------------------------------------------------------- progress / cancel
def test_progress_reports_and_cancel_raises():
    m = [pose(t=(0, 0, z), px=(0.5, 0.5)) for z in range(10)]
    sweep = make_sweep(np.full((10, 8, 8), 9), m)
    seen = []
    reconstruct(sweep, spacing_mm=0.5, progress=lambda f: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 10

    def cancel_midway(f):
        return f < 0.4
    with pytest.raises(CancelledError):
        reconstruct(sweep, spacing_mm=0.5, progress=cancel_midway)


def test_bad_input():
    m = pose()
    with pytest.raises(InputError):
        reconstruct(make_sweep(np.zeros((1, 4, 4)), m[None]), spacing_mm=0)
    tracker_only = Sweep(np.zeros((2, 0, 0), np.uint8), [0, 1], {"ProbeToTracker": np.tile(m, (2, 1, 1))})
    with pytest.raises(InputError, match="no image"):
        reconstruct(tracker_only)
    with pytest.raises(InputError):   # all frames INVALID
        reconstruct(make_sweep(np.zeros((1, 4, 4)), m[None], status=[False]))
