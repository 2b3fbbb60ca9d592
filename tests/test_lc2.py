"""LC2: the fast uniform-filter form against the plain patch loop, and its behaviour."""
from __future__ import annotations

import numpy as np
import pytest

from registration.align.lc2 import ct_feature_arrays, lc2, lc2_maps, lc2_reference


@pytest.mark.parametrize("shape,size", [((22, 26), 5), ((3, 15, 17), (1, 5, 5)), ((9, 10, 11), 3),
                                        ((18, 20), (5, 7))])
def test_fast_lc2_equals_patch_loop_with_lstsq(shape, size):
    rng = np.random.default_rng(0)
    p = rng.normal(size=shape)
    g = rng.normal(size=shape) ** 2
    u = 0.5 * p + 0.3 * g + 0.5 * rng.normal(size=shape)
    p[..., :4] = 0.7                       # constant p: rank-deficient patches
    g[..., -3:] = 2.0 * p[..., -3:] + 1    # p, g collinear there
    mask = rng.random(shape) > 0.2
    assert lc2(u, p, g, mask, size) == pytest.approx(lc2_reference(u, p, g, mask, size), abs=1e-9)


def test_lc2_is_one_for_an_exact_local_linear_mix_and_low_for_noise():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(40, 40))
    g = rng.normal(size=(40, 40))
    assert lc2(3 * p - 2 * g + 5, p, g, size=7) == pytest.approx(1.0, abs=1e-9)
    noise = rng.normal(size=(40, 40))
    assert lc2(noise, p, g, size=7) < 0.15
    # invariant to affine scaling of u, p and g
    u = 0.4 * p + rng.normal(size=p.shape)
    assert lc2(u, p, g, size=7) == pytest.approx(lc2(10 * u + 3, 2 * p - 1, 5 * g, size=7), abs=1e-9)


def test_patches_outside_the_fan_are_skipped():
    rng = np.random.default_rng(2)
    p = rng.normal(size=(30, 30))
    g = rng.normal(size=(30, 30))
    u = p.copy()
    u[:, 15:] = rng.normal(size=(30, 15)) * 5      # garbage outside the fan
    mask = np.zeros((30, 30), bool)
    mask[:, :15] = True
    _, w = lc2_maps(u, p, g, mask, size=5)
    assert np.all(w[:, 15:] == 0)
    assert lc2(u, p, g, mask, size=5) == pytest.approx(1.0, abs=1e-9)


def test_ct_features_window_and_gradient():
    hu = np.zeros((20, 20, 20), np.float32)
    hu[:, :, 10:] = 200.0                           # a step along i
    p, g = ct_feature_arrays(hu, (1.0, 1.0, 1.0), window_hu=(-100, 300), smooth_mm=0)
    assert p[0, 0, 0] == pytest.approx(0.25) and p[0, 0, 15] == pytest.approx(0.75)
    assert g[5, 5, 9] == pytest.approx(100.0) and g[5, 5, 2] == 0.0   # central difference, HU/mm


def test_fixed_us_sums_over_frame_chunks_equal_the_general_form():
    """The fast path (US moments precomputed, frames in chunks) is the same LC2 as lc2()."""
    from registration.align.lc2 import FixedUS
    rng = np.random.default_rng(5)
    shape = (6, 30, 34)
    p = rng.normal(size=shape)
    g = rng.normal(size=shape) ** 2
    u = 0.5 * p + 0.3 * g + 0.5 * rng.normal(size=shape)
    fan = np.zeros(shape, bool)
    fan[:, 3:, 4:-4] = True                         # a fan-like region, zero outside
    fixed = FixedUS(u, fan, (1, 5, 5), dtype=np.float64)

    def std(x):
        return np.where(fan, (x - x[fan].mean()) / x[fan].std(), 0.0)
    ps, gs = std(p), std(g)
    num, den = fixed.sums(ps, gs)
    expect = lc2(u, p, g, fan, (1, 5, 5))
    assert num / den == pytest.approx(expect, abs=1e-9)
    parts = [fixed.sums(ps[sl], gs[sl], sl) for sl in (slice(0, 2), slice(2, 6))]
    assert sum(a for a, _ in parts) / sum(b for _, b in parts) == pytest.approx(expect, abs=1e-9)
