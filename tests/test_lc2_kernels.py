"""The compiled LC2 kernels against their numpy definitions; the CT feature levels and their cache."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from registration.align import lc2_features, lc2_kernels
from registration.align.lc2 import FixedUS, ct_feature_arrays
from registration.align.lc2_cost import FrameLC2Cost, frame_samples, select_frames
from registration.align.lc2_features import FeatureCache, crop_box, ct_feature_levels
from registration.spatial.transforms import rigid_matrix

from synthetic_case import TRUE_REFERENCE_TO_CT, make_ct, make_sweep

needs_kernels = pytest.mark.skipif(not lc2_kernels.AVAILABLE, reason="no C compiler: LC2 kernels not built")


@pytest.fixture(scope="module")
def ct():
    return make_ct()


@pytest.fixture(scope="module")
def sweep(ct):
    return make_sweep(ct, n_frames=10)


@needs_kernels
def test_sampling_classifies_inside_as_map_coordinates_and_interpolates_the_same():
    rng = np.random.default_rng(0)
    shape = (7, 9, 11)
    pg = rng.random(shape + (2,), dtype=np.float32)
    n = 4000
    # points everywhere, many just inside / outside the edges and exactly on them
    c = rng.uniform(-1.5, 1.0, (n, 3)) * (np.array(shape) + 1)
    c[:500] = np.round(c[:500])
    c[500:1000] = np.array(shape) - 1 + rng.uniform(-1e-9, 1e-9, (500, 3))
    m = np.eye(4)[:3].copy()                 # Reference mm = (k, j, i) indices
    out_p, out_g = np.full(n, -7.0), np.full(n, -7.0)
    n_in, sp, spp, sg, sgg = lc2_kernels.sample_features(pg, m, np.ascontiguousarray(c), 0, n, np.arange(n),
                                                          out_p, out_g)
    ref_p = ndimage.map_coordinates(pg[..., 0], c.T, order=1, mode="constant", cval=np.nan)
    ref_g = ndimage.map_coordinates(pg[..., 1], c.T, order=1, mode="constant", cval=np.nan)
    inside = np.isfinite(ref_p)
    assert n_in == inside.sum() > 100
    assert np.allclose(out_p[inside], ref_p[inside], atol=1e-6) and np.allclose(out_g[inside], ref_g[inside], atol=1e-6)
    assert np.all(out_p[~inside] == 0) and np.all(out_g[~inside] == 0)
    assert sp == pytest.approx(out_p.sum()) and sgg == pytest.approx((out_g ** 2).sum())


@needs_kernels
@pytest.mark.parametrize("patch", [3, 5, 9])
def test_patch_sums_equal_the_fixed_us_form_in_float64(patch):
    rng = np.random.default_rng(patch)
    shape = (3, 23, 31)
    p = rng.normal(size=shape) * 3 + 1
    g = rng.normal(size=shape) ** 2
    u = 0.5 * p + 0.3 * g + 0.5 * rng.normal(size=shape)
    p[:, :, :5] = 0.7                          # constant p: rank-deficient patches
    g[:, -4:] = 2.0 * p[:, -4:] + 1            # p, g collinear
    fan = np.zeros(shape, bool)
    fan[:, 2:, 3:-2] = rng.random((3, 21, 26)) > 0.1
    fixed = FixedUS(u, fan, (1, patch, patch), dtype=np.float64)
    mean_p, inv_p = p[fan].mean(), 1 / (p[fan].std() + 1e-9)
    mean_g, inv_g = g[fan].mean(), 1 / (g[fan].std() + 1e-9)
    ps = np.where(fan, (p - mean_p) * inv_p, 0.0)
    gs = np.where(fan, (g - mean_g) * inv_g, 0.0)
    num_ref, den_ref = fixed.sums(ps, gs, per_frame=True)
    num, den = np.zeros(3), np.zeros(3)
    lc2_kernels.lc2_frame_sums(p, g, fixed.mask, fixed.u, fixed.mu, fixed.inv_vu, fixed.w,
                               lc2_kernels.patch_counts(fan, patch), patch // 2, mean_p, inv_p, mean_g, inv_g,
                               fixed.eps, 1e-6, 0, 3, num, den)
    assert np.allclose(num, num_ref, rtol=1e-9, atol=1e-9) and np.allclose(den, den_ref, rtol=1e-12)


@needs_kernels
def test_feature_pairs_are_bit_identical_to_the_numpy_features():
    rng = np.random.default_rng(4)
    for shape in [(2, 2, 2), (5, 8, 7), (30, 41, 37)]:
        hu = (rng.normal(size=shape) * 500).astype(np.float32)
        out = np.empty(shape + (2,), np.float32)
        lc2_kernels.feature_pairs(hu, 1.6, -100.0, 300.0, -300.0, 700.0, out)
        p, g = ct_feature_arrays(hu, (1.6,) * 3, smooth_mm=0.0)
        assert np.array_equal(out[..., 0], p) and np.array_equal(out[..., 1], g)


@needs_kernels
def test_compiled_cost_equals_the_numpy_cost_whole_halves_per_frame_and_outside(ct, sweep):
    from concurrent.futures import ThreadPoolExecutor
    smp = frame_samples(sweep, select_frames(sweep, 6), 2.0)
    level = ct_feature_levels(ct, [2.0])[0]
    fast = FrameLC2Cost(level, smp, 7, engine="compiled")
    slow = FrameLC2Cost(level, smp, 7, engine="numpy")
    poses = [TRUE_REFERENCE_TO_CT, rigid_matrix([3, -2, 4, 6, -5, 8], (0, 0, 0)) @ TRUE_REFERENCE_TO_CT,
             rigid_matrix([0, 0, 0, 0, 0, 90.0], (0, 0, 0)) @ TRUE_REFERENCE_TO_CT]   # half out of the CT
    with ThreadPoolExecutor(2) as ex:
        def halves(f, xs):
            return list(ex.map(f, xs))
        for m, tol in zip(poses, (3e-4, 3e-4, 2e-3)):
            a, inside_a = fast.metric(m)
            b, inside_b = slow.metric(m)
            c, inside_c = fast.metric(m, halves)
            assert inside_a == inside_b == inside_c
            # float64 against the float32 numpy form, whose rank tests flip in the flat region
            # outside the CT (test_intensity_registration allows 1e-3 between float32 and float64)
            assert a == pytest.approx(b, abs=tol) and c == pytest.approx(a, abs=1e-9)
            assert fast.overlap(m) == slow.overlap(m)
            na, da = fast.metric(m, per_frame=True)
            nb, db = slow.metric(m, per_frame=True)
            assert np.allclose(na / da, nb / db, atol=5 * tol)
    assert inside_a < 0.9
    with pytest.raises(ValueError, match="engine"):
        FrameLC2Cost(level, smp, 7, engine="fortran")


def test_per_axis_smoothing_is_smoothing_recursive_gaussian():
    """The level pyramid smooths axis by axis and skips axes already at the level's resolution:
    the same voxels as SimpleITK's SmoothingRecursiveGaussian with that axis's sigma at 1e-3 mm."""
    rng = np.random.default_rng(2)
    img = sitk.GetImageFromArray(rng.normal(size=(20, 40, 30)).astype(np.float32) * 300)
    img.SetSpacing((1.48, 1.48, 1.6))
    ours = lc2_features._smoothed_resampled(img, 1.6)
    sigma = np.sqrt(np.maximum(0.8 ** 2 - (np.array([1.48, 1.48, 1.6]) / 2) ** 2, 0))
    ref = sitk.SmoothingRecursiveGaussian(img, [float(max(s, 1e-3)) for s in sigma])
    res = sitk.ResampleImageFilter()
    res.SetReferenceImage(ours)
    res.SetInterpolator(sitk.sitkLinear)
    res.SetDefaultPixelValue(-1000.0)
    assert np.array_equal(sitk.GetArrayFromImage(ours), sitk.GetArrayFromImage(res.Execute(ref)))


def test_crop_box_lies_on_the_lattice_and_covers_points_plus_margin(ct):
    pts = np.array([[0.0, 0.0, 0.0], [20.0, -10.0, 5.0]])
    lo, hi = crop_box(ct, pts, 10.0, lattice=16)
    ijk = ct.lps_to_index(pts)
    m = 10.0 / ct.spacing
    assert all(v % 16 == 0 or v == 0 for v in lo)
    assert all(h % 16 == 0 or h == n for h, n in zip(hi, ct.shape_ijk))
    assert np.all(np.array(lo) <= ijk.min(0) - m + 1e-9) and np.all(np.array(hi) >= ijk.max(0) + m)
    # a start a few mm away gives the same box (the features can be reused)
    assert crop_box(ct, pts + 1.0, 10.0, lattice=16) == (lo, hi)


def test_feature_cache_hits_in_memory_and_on_disk_and_misses_a_changed_ct(ct, tmp_path, monkeypatch):
    box = crop_box(ct, np.array([[0.0, 0.0, 0.0]]), 30.0)
    cache = FeatureCache(max_entries=2, folder=str(tmp_path))
    first = cache.levels(ct, box, [4.0, 2.5])
    assert cache.levels(ct, box, [4.0, 2.5]) is first and cache.hits == 1
    fresh = FeatureCache(max_entries=2, folder=str(tmp_path))       # a new process: from disk
    again = fresh.levels(ct, box, [4.0, 2.5])
    assert fresh.hits == 1 and fresh.misses == 0
    for a, b in zip(first, again):
        assert np.array_equal(a.pg, b.pg) and np.array_equal(a.lps_to_ijk, b.lps_to_ijk)
        assert a.spacing_mm == b.spacing_mm and np.array_equal(a.p, b.p)
    changed = ct.with_array(ct.array.copy())
    changed.array[40, 55, 55] += 1.0
    fresh.levels(changed, box, [4.0, 2.5])
    assert fresh.misses == 1
    # keeping nothing: the CT is not even hashed
    monkeypatch.setattr(lc2_features, "ct_digest", lambda ct: pytest.fail("hashed"))
    with cache.settings(folder=None, max_entries=0):
        assert len(cache.levels(ct, box, [4.0])) == 1
    assert cache.folder == str(tmp_path) and cache.max_entries == 2


def test_registration_uses_the_cache_and_gives_the_same_result(ct, sweep):
    from registration.align.intensity_registration import register_sweep
    init = rigid_matrix([2, -1, 1, 4, -3, 2], (0, 0, 0)) @ TRUE_REFERENCE_TO_CT
    kw = dict(n_starts=2, translation_search_mm=0.0, max_coarse_evals=20, max_evals_per_start=20, hessian=False,
              breathing="off")
    cache = lc2_features.FEATURE_CACHE
    with cache.settings(folder=None, max_entries=0):
        cold = register_sweep(ct, sweep, init, **kw)
    with cache.settings(folder=None, max_entries=2):
        register_sweep(ct, sweep, init, **kw)
        hits = cache.hits
        warm = register_sweep(ct, sweep, init.copy(), **kw)
        assert cache.hits == hits + 1
    assert np.array_equal(cold.reference_to_ct, warm.reference_to_ct)



@pytest.mark.parametrize("engine", ["compiled", "numpy"])
def test_sample_weights_scale_the_patches_weights_in_both_engines(ct, sweep, engine):
    """weight_samples (the focus's weighting by distance from its target): a constant factor leaves
    LC2 unchanged; zero weight on every frame but the first leaves that frame's LC2."""
    smp = frame_samples(sweep, select_frames(sweep, 6), 2.0)
    level = ct_feature_levels(ct, [2.0])[0]
    if engine == "compiled" and not lc2_kernels.AVAILABLE:
        pytest.skip("compiled LC2 kernels not built")
    m = rigid_matrix([2, -1, 1, 3, -2, 2], (0, 0, 0)) @ TRUE_REFERENCE_TO_CT
    plain = FrameLC2Cost(level, smp, 7, engine=engine)
    num, den = plain.metric(m, per_frame=True)
    scaled = FrameLC2Cost(level, smp, 7, engine=engine)
    scaled.weight_samples(np.full(len(smp.points_ref), 3.0))
    assert scaled.metric(m)[0] == pytest.approx(plain.metric(m)[0], rel=1e-6)
    first = FrameLC2Cost(level, smp, 7, engine=engine)
    per_frame = smp.fan.reshape(smp.fan.shape[0], -1).sum(axis=1)
    first.weight_samples(np.r_[np.ones(per_frame[0]), np.zeros(per_frame[1:].sum())])
    assert first.metric(m)[0] == pytest.approx(num[0] / den[0], rel=1e-6)
    assert first.metric(m)[0] != pytest.approx(plain.metric(m)[0], rel=1e-3)


def test_sample_depth_is_below_the_fans_top_in_each_column():
    """FrameSamples.depth_mm: a sample's row minus its column's first fan row (a convex array's arc,
    over all frames), times the pixel size; in the order of points_ref."""
    from registration.align.lc2_cost import FrameSamples
    fan = np.zeros((2, 6, 4), bool)
    fan[:, 2:, 0] = fan[:, 1:, 1] = fan[:, 1:, 2] = fan[:, 2:, 3] = True     # an arc: the middle columns start higher
    fan[1, 4, 1] = False                                                         # one pixel in shadow in frame 1
    n = int(fan.sum())
    s = FrameSamples(np.zeros(fan.shape, np.float32), fan, np.zeros((n, 3)), 2.0)
    f, r, c = np.nonzero(fan)
    expected = (r - np.where((c == 0) | (c == 3), 2, 1)) * 2.0
    assert np.array_equal(s.depth_mm(), expected)
    assert s.depth_mm().min() == 0.0 and s.depth_mm().max() == 8.0
