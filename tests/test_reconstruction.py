"""Volume reconstruction: known geometry, compounding, hole filling, cancel, real PLUS/liver data."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from registration.spatial.errors import CancelledError, InputError
from registration.ultrasound.hole_filling_elements import GaussianElement, StickElement, elements_from_plus
from registration.ultrasound.hole_filling import apply_elements
from registration.ultrasound.gaussian_hole_filling import fill_holes
from registration.ultrasound.stick_hole_filling import fill_holes_sticks
from registration.ultrasound.clip_masks import clip_rectangle_mask, plus_fan_mask
from registration.ultrasound.reconstruction_grid import extent_from_frames
from registration.ultrasound.reconstruction import reconstruct
from registration.ultrasound.reference_insertion import reference_insert
from registration.spatial.sweep import Sweep


def make_sweep(frames, image_to_reference, status=None, fan_mask=None, dtype=np.uint8):
    frames = np.asarray(frames, dtype)
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


def test_extent_from_fan_mask_outline_hugs_the_fan():
    m = pose(px=(0.5, 0.5))
    fan = np.zeros((40, 60), bool)
    fan[10:30, 20:45] = True
    origin, extent = extent_from_frames(m[None], np.array([True]), fan.shape, (0.5, 0.5, 0.5),
                                        pixel_mask=fan)
    np.testing.assert_allclose(origin, [10.0, 5.0, 0.0])          # pixel (20, 10)
    assert extent == (0, 24, 0, 19, 0, 0)                          # pixels 20..44, 10..29
    res = reconstruct(make_sweep(np.full((1, 40, 60), 7), m[None], fan_mask=fan), spacing_mm=0.5,
                      fill_holes=False)
    assert res.volume.shape_ijk == (25, 20, 1) and (res.volume.array == 7).all()


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


def test_mean_of_signed_and_16_bit_frames_is_exact():
    """int16 frames with negative values (a uint32 accumulator wrapped them: -5 and -7 gave
    32767) and uint16 sums beyond 32 bits average exactly, rounding half up."""
    m = pose()
    s = make_sweep([np.full((2, 2), -5), np.full((2, 2), -7)], [m, m], dtype=np.int16)
    assert reconstruct(s, spacing_mm=1.0, fill_holes=False).volume.array[0, 0, 0] == -6
    s = make_sweep([np.full((2, 2), -5), np.full((2, 2), -6)], [m, m], dtype=np.int16)
    assert reconstruct(s, spacing_mm=1.0, fill_holes=False).volume.array[0, 0, 0] == -5   # -5.5 -> -5
    # 2 x 256 x 256 pixels of 65535 into one voxel: a sum of 8.6e9, beyond 32 bits
    big = make_sweep([np.full((256, 256), 65535)] * 2, [pose(px=(1 / 600, 1 / 600))] * 2, dtype=np.uint16)
    out = reconstruct(big, spacing_mm=1.0, fill_holes=False)
    assert out.weights.max() == 2 * 256 * 256 and out.volume.array.max() == 65535


def test_skip_interval_inserts_every_nth_frame_but_keeps_the_box():
    mats = [pose(t=(0, 0, z), px=(0.5, 0.5)) for z in range(5)]
    frames = [np.full((4, 4), 10 * (n + 1)) for n in range(5)]
    res = reconstruct(make_sweep(frames, mats), spacing_mm=1.0, fill_holes=False, skip_interval=2)
    assert res.volume.shape_ijk[2] == 5 and res.n_frames_used == 3
    np.testing.assert_array_equal(res.volume.array[:, 0, 0], [10, 0, 30, 0, 50])
    with pytest.raises(InputError):
        reconstruct(make_sweep(frames, mats), skip_interval=0)


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
    from scipy import ndimage
    v, known = _gap_volume(2)
    out, filled = fill_holes(v, known)
    assert filled[10:12, 5:15, 5:15].all()
    assert 99.99 < out[10, 10, 10] < out[11, 10, 10] < 200.01   # each side from its neighbour
    assert not filled[known].any()
    np.testing.assert_array_equal(out[known], v[known])
    # nothing is filled more than 3 voxels (the largest default radius) away from data
    dist = ndimage.distance_transform_cdt(~known, metric="chessboard")
    assert filled.any() and dist[filled].max() <= 3
    # PLUS's strict ratio (> 1/2 of the window known) never grows past a flat face
    _, strict = fill_holes(v, known, [GaussianElement(9, 1.6667, 0.50001)])
    assert strict[10:12, 5:15, 5:15].all() and not strict[22:].any()
    # periodic slices every third voxel (known fraction 1/3) are filled by the defaults
    v = np.zeros((30, 12, 12), np.float32)
    known = np.zeros(v.shape, bool)
    known[::3], v[::3] = True, 90
    out, filled = fill_holes(v, known)
    inner = (slice(1, 28), slice(1, -1), slice(1, -1))    # volume corners see too little data
    assert filled[inner][~known[inner]].all() and np.allclose(out[inner], 90)


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
    with pytest.raises(CancelledError, match="frames"):
        reconstruct(sweep, spacing_mm=0.5, progress=cancel_midway)
    with pytest.raises(CancelledError, match="hole filling"):      # cancel during hole filling
        reconstruct(sweep, spacing_mm=0.5, progress=lambda f: f < 0.85)
    with pytest.raises(CancelledError, match="hole filling"):
        reconstruct(sweep, spacing_mm=0.5, progress=lambda f: f < 0.85,
                    hole_elements=[StickElement(9, 1)])


def test_bad_input():
    m = pose()
    with pytest.raises(InputError):
        reconstruct(make_sweep(np.zeros((1, 4, 4)), m[None]), spacing_mm=0)
    tracker_only = Sweep(np.zeros((2, 0, 0), np.uint8), [0, 1], {"ProbeToTracker": np.tile(m, (2, 1, 1))})
    with pytest.raises(InputError, match="no image"):
        reconstruct(tracker_only)
    with pytest.raises(InputError):   # all frames INVALID
        reconstruct(make_sweep(np.zeros((1, 4, 4)), m[None], status=[False]))
    one = make_sweep(np.zeros((1, 4, 4)), m[None])
    # a bad compounding mode is the same InputError, listing the choices, in both insertions
    with pytest.raises(InputError, match=r"compounding 'median' is not supported \(choices: mean, max"):
        reconstruct(one, compounding="median")
    with pytest.raises(InputError, match=r"compounding 'median' is not supported \(choices: mean, max"):
        reference_insert(one, 1.0, (0, 0, 0), (0, 3, 0, 3, 0, 0), "median")


def test_options_dataclass_gives_the_same_volume_as_the_keywords():
    from registration.ultrasound.reconstruction import ReconstructionOptions, reconstruct_with
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (6, 12, 16))
    mats = np.stack([pose((5 * i, 0, 0), (0, 0, 0.7 * i), (0.5, 0.5)) for i in range(6)])
    sweep = make_sweep(frames, mats)
    kw = dict(spacing_mm=0.6, compounding="max", hole_elements=[StickElement(5, 1)], skip_interval=2)
    a = reconstruct(sweep, **kw)
    b = reconstruct_with(sweep, ReconstructionOptions(**kw))
    np.testing.assert_array_equal(a.volume.array, b.volume.array)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.n_frames_used == b.n_frames_used == 3 and a.output_extent == b.output_extent


# ----------------------------------------------------------------------------- real data
def _save_slices(volume, path, title):
    """Axial (k), coronal (j) and sagittal (i) slices through the centre + a MIP, as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    a = volume.array
    k, j, i = (s // 2 for s in a.shape)
    sp = volume.spacing
    fig, ax = plt.subplots(1, 4, figsize=(20, 5.5))
    views = [(a[k], f"k={k}: i (x) right, j (y) up", sp[0], sp[1]),
             (a[:, j, :], f"j={j}: i right, k (z) up", sp[0], sp[2]),
             (a[:, :, i], f"i={i}: j right, k up", sp[1], sp[2]),
             (a.max(axis=0), "max along k", sp[0], sp[1])]
    for axis, (img, name, sx, sy) in zip(ax, views):
        axis.imshow(img, cmap="gray", origin="lower", vmin=0, vmax=255,
                    extent=(0, img.shape[1] * sx, 0, img.shape[0] * sy))
        axis.set_title(name)
        axis.set_xlabel("mm")
    fig.suptitle(title)
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _independent_image_to_reference(sweep, image_to_probe):
    """Reference <- Tracker <- Probe <- Image from the raw per-frame matrices (not Sweep's chain)."""
    def get(name):
        return sweep.transforms.get(name, sweep.transforms.get(name + "Transform"))
    p2t, r2t = get("ProbeToTracker"), get("ReferenceToTracker")
    return np.array([np.linalg.inv(r2t[n]) @ p2t[n] @ image_to_probe for n in range(len(sweep))])


@pytest.mark.slow
def test_spine_phantom_plus_settings_geometry_and_continuity(shared_data, artifacts_dir):
    from scipy import ndimage
    from registration.io.plus_config import read_plus_config
    from registration.io.seq_mha_read import read_sequence
    seq = shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha")
    calib = shared_data("plus", "configs", "PlusDeviceSet_SpinePhantomFreehandReconstructionOnly.xml")
    settings = read_plus_config(shared_data(
        "plus", "configs", "PlusDeviceSet_VolumeReconstructionOnly_SpinePhantom_NN_MEAN.xml"))
    rc = settings["reconstruction"]
    assert rc["CompoundingMode"] == "MEAN" and rc["Interpolation"] == "NEAREST_NEIGHBOR"
    sweep = read_sequence(seq, calibration=calib)
    elements, notes = elements_from_plus(rc["HoleFilling"])
    assert elements == [StickElement(9, 1)] and not notes
    clip = rc["ClipRectangleOrigin"] + rc["ClipRectangleSize"]
    res = reconstruct(sweep, spacing_mm=rc["OutputSpacing"], compounding="mean", clip_rectangle=clip,
                      use_sweep_fan_mask=False, hole_elements=elements)
    vol = res.volume
    # The Reference region PLUS's settings describe: no OutputOrigin/Extent in the config, so
    # PLUS takes the box of the clip-rectangle corners of all frames (0..819, 0..615 pixels).
    i2r = _independent_image_to_reference(sweep, settings["transforms"]["ImageToProbe"])
    corners = np.array([[x, y, 0, 1] for x in (0, 819) for y in (0, 615)], float)
    pts = np.einsum("nij,cj->nci", i2r, corners)[..., :3].reshape(-1, 3)
    expected_dims = np.ceil((pts.max(0) - pts.min(0)) / 0.5).astype(int) + 1
    np.testing.assert_allclose(vol.origin, pts.min(0), atol=1e-6)
    assert vol.shape_ijk == tuple(expected_dims)
    np.testing.assert_allclose(vol.spacing, [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(vol.direction, np.eye(3))
    assert res.output_extent == (0, expected_dims[0] - 1, 0, expected_dims[1] - 1, 0, expected_dims[2] - 1)
    assert res.n_frames_used == 21 and res.n_frames_invalid == 0
    assert res.n_pixels_inserted == 21 * 820 * 616          # every pixel of every frame is inside
    # Continuity: bright structures (near-field tissue and the bone surface) form one connected
    # surface after PLUS's STICK filling, while the raw slices alone are separate fragments.
    labels, _ = ndimage.label(vol.array >= 150)
    largest = np.bincount(labels.ravel())[1:].max() / np.count_nonzero(labels)
    raw = reconstruct(sweep, spacing_mm=0.5, clip_rectangle=clip, use_sweep_fan_mask=False,
                      fill_holes=False)
    labels_raw, _ = ndimage.label(raw.volume.array >= 150)
    largest_raw = np.bincount(labels_raw.ravel())[1:].max() / np.count_nonzero(labels_raw)
    print(f"spine: {vol!r}, hit {res.hit_fraction:.3f}, with data {res.filled_fraction:.3f}, "
          f"largest bright component {largest:.3f} (unfilled {largest_raw:.3f}), {res.timings}")
    assert largest > 0.9 and largest_raw < 0.5
    _save_slices(vol, artifacts_dir / "reconstruction_spine_phantom.png",
                 "SpinePhantomFreehand, PLUS NN_MEAN settings + STICK hole filling (Reference mm)")
    _save_slices(raw.volume, artifacts_dir / "reconstruction_spine_phantom_nofill.png",
                 "SpinePhantomFreehand without hole filling")


def _fit_line(points):
    c = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    return c, vt[0]


def _line_distance(points, c, d):
    q = points - c
    return np.linalg.norm(q - np.outer(q @ d, d), axis=1)


def find_wires(points, rng, n_lines=6, band_mm=1.5, min_points=150, min_length_mm=15.0):
    """Sequential RANSAC: bright voxel centres (mm) -> wires [(points, centre, direction)]."""
    wires, left = [], points
    for _ in range(3 * n_lines):
        if len(wires) == n_lines or len(left) < min_points:
            break
        best = (0, None, None)
        for _ in range(400):
            a, b = left[rng.choice(len(left), 2, replace=False)]
            if np.linalg.norm(b - a) < 5:
                continue
            d = (b - a) / np.linalg.norm(b - a)
            n = int((_line_distance(left, a, d) < band_mm).sum())
            if n > best[0]:
                best = (n, a, d)
        c, d = _fit_line(left[_line_distance(left, best[1], best[2]) < band_mm])
        member = _line_distance(left, c, d) < 2.0
        pts = left[member]
        left = left[~member]
        c, d = _fit_line(pts)
        if len(pts) >= min_points and np.ptp((pts - c) @ d) >= min_length_mm:
            wires.append((pts, c, d))
    return wires


def centreline_residual(pts, c, d, bin_mm=2.0):
    """RMS distance (mm) of the wire's centreline (centroids of 2 mm bins along it) from its line.

    The echo of a wire is a ~1-2 mm blob elongated along the beam, so single voxels scatter
    around the wire; the bin centroids follow the wire itself.
    """
    t = (pts - c) @ d
    bins = np.floor((t - t.min()) / bin_mm).astype(int)
    cents = np.array([pts[bins == b].mean(axis=0) for b in np.unique(bins) if (bins == b).sum() >= 3])
    cc, dd = _fit_line(cents)
    r = _line_distance(cents, cc, dd)
    return float(np.sqrt(np.mean(r ** 2))), float(r.max()), len(cents)


def _wire_fit(sweep):
    """Reconstruct (MAX, no filling), threshold bright voxels, fit wires; (wires, explained, vol)."""
    res = reconstruct(sweep, spacing_mm=0.5, compounding="max", use_sweep_fan_mask=False,
                      fill_holes=False)
    vol = res.volume
    k, j, i = np.nonzero((vol.array >= 140) & (res.weights > 0))
    points = vol.index_to_lps(np.stack([i, j, k], axis=-1))
    wires = find_wires(points, np.random.default_rng(0))
    nearest = np.min([_line_distance(points, c, d) for _, c, d in wires], axis=0)
    return wires, float(np.mean(nearest < 1.5)), vol


@pytest.mark.slow
def test_nwire_phantom_reconstruction_shows_straight_wires(shared_data, artifacts_dir):
    from registration.io.plus_config import read_plus_config
    from registration.io.seq_mha_read import read_sequence
    seq = shared_data("plus", "sequences", "NwirePhantomFreehand.igs.mha")
    collection = read_plus_config(shared_data("plus", "configs",
                                              "PlusDeviceSet_DataCollectionOnly_SavedDataset.xml"))
    # The data-collection config has no Image->Probe; the recording comes from the same
    # Ultrasonix 820x616 setup as the spine phantom, whose calibration is used here.
    assert "ImageToProbe" not in collection["transforms"]
    calib = shared_data("plus", "configs", "PlusDeviceSet_SpinePhantomFreehandReconstructionOnly.xml")
    sweep = read_sequence(seq, calibration=calib)
    wires, explained, vol = _wire_fit(sweep)
    assert len(wires) == 6                                  # 2 N layers x 3 wires
    rms_all = []
    for pts, c, d in wires:
        rms, worst, nbins = centreline_residual(pts, c, d)
        voxel_rms = float(np.sqrt(np.mean(_line_distance(pts, c, d) ** 2)))
        rms_all.append(rms)
        print(f"wire: {len(pts)} voxels, {np.ptp((pts - c) @ d):.1f} mm long, direction "
              f"{np.round(d, 2)}, centreline RMS {rms:.2f} mm (max {worst:.2f}, {nbins} bins of 2 mm), "
              f"voxel RMS {voxel_rms:.2f} mm")
    print(f"bright voxels within 1.5 mm of the 6 wires: {explained:.2f}")
    assert max(rms_all) < 1.0
    assert explained > 0.5
    # Negative control: 1.5 mm of random tracking error per frame scatters the wires, and the
    # same measurement says so (the straightness numbers above can fail).
    rng = np.random.default_rng(2)
    transforms = {name: m.copy() for name, m in sweep.transforms.items()}
    for name in transforms:
        if name.startswith("ProbeTo"):
            transforms[name][:, :3, 3] += rng.normal(0, 1.5, (len(sweep), 3))
    jittered = dataclasses.replace(sweep, transforms=transforms, statuses=dict(sweep.statuses),
                                   calibration=dict(sweep.calibration))
    _, explained_jitter, _ = _wire_fit(jittered)
    print(f"with 1.5 mm tracking jitter: {explained_jitter:.2f}")
    assert explained_jitter < 0.8 * explained
    _save_slices(vol, artifacts_dir / "reconstruction_nwire_phantom.png",
                 "NwirePhantomFreehand, MAX compounding, no hole filling")


@pytest.mark.slow
def test_liver_sweep_reconstruction(shared_data, artifacts_dir):
    from registration.io.seq_mha_read import read_sequence
    sweep = read_sequence(shared_data("liver-us", "liver_sweep.igs.mha"))
    assert sweep.fan_mask is not None
    res = reconstruct(sweep, spacing_mm=1.0, compounding="mean")
    vol = res.volume
    # Every inserted pixel is in the fan, and MEAN compounding conserves the total intensity
    # (up to the per-voxel rounding of at most half a grey level).
    fan = sweep.fan_mask
    assert res.n_pixels_inserted == 140 * int(fan.sum())
    inserted_total = float(sum(sweep.frames[n][fan].astype(np.int64).sum() for n in range(140)))
    w = res.weights.astype(np.float64)
    recon_total = float((vol.array.astype(np.float64) * w).sum())
    assert abs(recon_total - inserted_total) <= 0.5 * w.sum()
    print(f"liver: {vol!r}, hit {res.hit_fraction:.3f}, with data {res.filled_fraction:.3f}, {res.timings}")
    _save_slices(vol, artifacts_dir / "reconstruction_liver_sweep.png",
                 "Liver sweep (ImFusion, CC BY 4.0), 1 mm, MEAN + Gaussian hole filling")


def test_plus_running_mean_matches_plus_arithmetic_pixel_by_pixel():
    """PLUS's integer running mean (truncating, saturating after 255 hits), replayed in a loop."""
    from registration.ultrasound.compounding import plus_running_mean_update
    rng = np.random.default_rng(9)
    n_vox = 7
    value = np.zeros(n_vox, np.uint8)
    hits = np.zeros(n_vox, np.int32)
    ref_v, ref_acc = [0] * n_vox, [0] * n_vox
    for _ in range(4):                                  # 4 "frames" of 150 pixels: > 255 hits
        flat = rng.integers(0, n_vox, 150)
        flat[:100] = 3                                  # voxel 3 saturates
        pix = rng.integers(0, 256, 150).astype(np.uint8)
        plus_running_mean_update(value, hits, flat, pix)
        for f, p in zip(flat.tolist(), pix.tolist()):   # vtkFreehand2OptimizedNNHelper, MEAN
            if ref_acc[f] <= 65279:
                newa = ref_acc[f] + 256
                ref_v[f] = (p * 256 + ref_v[f] * ref_acc[f]) // newa
                ref_acc[f] = min(newa, 65535)
            else:
                ref_v[f] = int(0.99609375 * p + 0.00390625 * ref_v[f])
    np.testing.assert_array_equal(value, ref_v)
    assert hits[3] == 255
    # through reconstruct: PLUS mean is the truncated running mean, default is exact
    m = pose()
    s = make_sweep([np.full((1, 1), 101), np.full((1, 1), 102)], [m, m])
    assert reconstruct(s, spacing_mm=1.0, fill_holes=False, plus_running_mean=True).volume.array[0, 0, 0] == 101
    assert reconstruct(s, spacing_mm=1.0, fill_holes=False).volume.array[0, 0, 0] == 102


_PLUS_STICKS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, -1, 0),
                (1, 0, -1), (0, 1, -1), (1, 1, 1), (-1, 1, 1), (1, -1, 1), (-1, -1, 1))


def _plus_stick_voxel(vol, known, k, j, i, limit):
    """PLUS applySticks for one uint8 voxel, transcribed loop by loop (NumberOfSticksToUse=1)."""
    nk, nj, ni = vol.shape
    weights, values = [], []
    for di, dj, dk in _PLUS_STICKS:
        fwd = rvs = None
        for step in range(1, limit):
            x, y, z = i + step * di, j + step * dj, k + step * dk
            if not (0 <= x < ni and 0 <= y < nj and 0 <= z < nk):
                break
            if known[z, y, x]:
                fwd, fv = step, int(vol[z, y, x])
                break
        if fwd is None:
            weights.append(0.0), values.append(0)
            continue
        step = 1
        while step + fwd + 1 <= limit:
            x, y, z = i - step * di, j - step * dj, k - step * dk
            if not (0 <= x < ni and 0 <= y < nj and 0 <= z < nk):
                break
            if known[z, y, x]:
                rvs, rv = step, int(vol[z, y, x])
                break
            step += 1
        if rvs is None:
            weights.append(0.0), values.append(0)
            continue
        total = float(fwd + rvs + 1)
        w_fwd = (rvs + 1) / total
        weights.append(1.0 / (total * math.sqrt(di * di + dj * dj + dk * dk)))
        values.append(int((1.0 - w_fwd) * rv + w_fwd * fv))       # stored as unsigned char
    best = max(weights)
    if best == 0:
        return None
    s = sum(v * w for v, w in zip(values, weights) if w == best)
    return int(s / sum(w for w in weights if w == best))


def test_stick_filling_reproduces_plus_integer_voxels():
    rng = np.random.default_rng(4)
    vol = np.zeros((14, 12, 13), np.uint8)
    known = rng.random(vol.shape) < 0.15
    vol[known] = rng.integers(1, 256, int(known.sum()))
    out, filled = fill_holes_sticks(vol.astype(float), known, 9, 1, integer_values=True)
    mismatches = 0
    for k, j, i in np.argwhere(~known):
        ref = _plus_stick_voxel(vol, known, k, j, i, 9)
        assert filled[k, j, i] == (ref is not None)
        if ref is not None and int(np.trunc(out[k, j, i])) != ref:
            mismatches += 1
    assert filled.sum() > 500 and mismatches == 0


def test_cropped_sequence_reconstructs_like_the_clipped_original(shared_data):
    """NwirePhantomFreehandCropped = first 20 frames cropped at (335, 285), 200x150, with
    ImageToCroppedImage: same voxels as the original frames with the matching clip rectangle."""
    from registration.io.seq_mha_read import read_sequence
    calib = shared_data("plus", "configs", "PlusDeviceSet_SpinePhantomFreehandReconstructionOnly.xml")
    cropped = read_sequence(shared_data("plus", "sequences", "NwirePhantomFreehandCropped.igs.mha"),
                            calibration=calib)
    full = read_sequence(shared_data("plus", "sequences", "NwirePhantomFreehand.igs.mha"),
                         calibration=calib).subset(range(20))
    assert cropped.image_frame == "CroppedImage"
    a = reconstruct(full, clip_rectangle=(335, 285, 199, 149), use_sweep_fan_mask=False, fill_holes=False)
    b = reconstruct(cropped, use_sweep_fan_mask=False, fill_holes=False)
    assert a.output_extent == b.output_extent
    np.testing.assert_allclose(a.volume.origin, b.volume.origin, atol=1e-9)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.volume.array, b.volume.array)
    assert a.n_pixels_inserted == b.n_pixels_inserted == 20 * 200 * 150
