"""The project's bounded Nelder-Mead is SciPy's, step for step; the rigid update is rigid_matrix."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize

from registration.align.nelder_mead import minimize_bounded, rigid_update, rotation_matrix_deg
from registration.spatial.transforms import rigid_matrix


def _noisy_bowl(rng, n):
    a = rng.normal(size=(n, n))
    h = a @ a.T + n * np.eye(n)
    c = rng.normal(size=n)
    return lambda x: float((x - c) @ h @ (x - c) + 0.05 * np.sin(37 * x).sum())


@pytest.mark.parametrize("seed", range(6))
def test_same_points_and_result_as_scipy(seed):
    rng = np.random.default_rng(seed)
    n = 6
    f = _noisy_bowl(rng, n)
    x0 = rng.normal(size=n)
    step = rng.uniform(0.1, 2.0)
    lo, hi = x0 - rng.uniform(0.2, 3.0, n), x0 + rng.uniform(0.2, 3.0, n)   # some bounds active
    simplex = np.vstack([x0, x0 + np.eye(n) * step])
    seen_ours, seen_scipy = [], []
    maxfev = int(rng.integers(20, 300))
    ours = minimize_bounded(lambda x: seen_ours.append(x.copy()) or f(x), x0, lo, hi, simplex,
                            xatol=0.01, fatol=1e-4, maxfev=maxfev)
    ref = optimize.minimize(lambda x: seen_scipy.append(x.copy()) or f(x), x0, method="Nelder-Mead",
                            bounds=list(zip(lo, hi)), options={"initial_simplex": simplex, "xatol": 0.01,
                                                               "fatol": 1e-4, "maxfev": maxfev})
    assert len(seen_ours) == len(seen_scipy) <= maxfev
    assert np.array_equal(np.array(seen_ours), np.array(seen_scipy))
    assert np.array_equal(ours, ref.x)


def test_rigid_update_is_rigid_matrix():
    rng = np.random.default_rng(3)
    for _ in range(50):
        p = np.concatenate([rng.normal(size=3) * rng.choice([1e-9, 0.1, 5.0, 40.0]), rng.normal(size=3) * 10])
        c = rng.normal(size=3) * 50
        assert np.allclose(rigid_update(p, c), rigid_matrix(p, c), atol=1e-12, rtol=0)
    assert np.array_equal(rotation_matrix_deg([0, 0, 0]), np.eye(3))
