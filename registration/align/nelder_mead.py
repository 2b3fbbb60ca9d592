"""Bounded Nelder-Mead and the rigid update matrix, without importing scipy.optimize / scipy.spatial.

Why here: ``import scipy.optimize`` (and ``scipy.spatial.transform``, which it pulls in)
costs 0.2-0.3 s of CPU at every ``ctus register`` start, for one optimiser and one
rotation formula.

* :func:`minimize_bounded` is the algorithm of ``scipy.optimize.minimize(method=
  "Nelder-Mead", bounds=..., options={"initial_simplex", "xatol", "fatol", "maxfev"})``
  (SciPy 1.17, ``_minimize_neldermead``; BSD-3-Clause, Copyright (c) 2001-2002
  Enthought, Inc. 2003, SciPy Developers) step for step: the same reflections,
  expansions, contractions and shrinks, the same clipping to the bounds, the same
  stopping tests and evaluation limit, so it evaluates the same points and returns
  the same result (tests/test_nelder_mead.py compares the two).
* :func:`rigid_update` is :func:`registration.spatial.transforms.rigid_matrix` with the
  rotation vector turned into a matrix by Rodrigues' formula (equal to SciPy's to
  ~1e-16).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np


class _MaxEvaluations(Exception):
    pass


# long: one loop of the Nelder-Mead algorithm kept as SciPy writes it, so they can be compared line by line
def minimize_bounded(fun: Callable[[np.ndarray], float], x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     initial_simplex: np.ndarray, xatol: float, fatol: float, maxfev: int) -> np.ndarray:
    """Best point found by bounded Nelder-Mead from ``initial_simplex`` ([N + 1, N]) within
    ``[lower, upper]``, stopping when the simplex is within ``xatol`` and its values within
    ``fatol`` of the best vertex, or after ``maxfev`` evaluations of ``fun``."""
    rho, chi, psi, sigma = 1, 2, 0.5, 0.5
    lower = np.asarray(lower, float)
    upper = np.asarray(upper, float)
    x0 = np.clip(np.asarray(x0, float).ravel(), lower, upper)
    sim = np.asarray(np.atleast_2d(initial_simplex), dtype=float).copy()
    n = sim.shape[1]
    if sim.shape[0] != n + 1 or len(x0) != n:
        raise ValueError("initial_simplex must be [N + 1, N] with N = len(x0)")
    maxiter = np.inf
    # reflect vertices beyond the upper bound into the interior, then clip
    sim = np.where(sim > upper, 2 * upper - sim, sim)
    sim = np.clip(sim, lower, upper)
    fsim = np.full((n + 1,), np.inf, dtype=float)
    calls = [0]

    def f(x):
        if calls[0] >= maxfev:
            raise _MaxEvaluations
        calls[0] += 1
        fx = fun(np.copy(x))
        return fx if np.isscalar(fx) else np.asarray(fx).item()

    try:
        for k in range(n + 1):
            fsim[k] = f(sim[k])
    except _MaxEvaluations:
        pass
    finally:
        ind = np.argsort(fsim)
        sim = np.take(sim, ind, 0)
        fsim = np.take(fsim, ind, 0)
    ind = np.argsort(fsim)
    fsim = np.take(fsim, ind, 0)
    sim = np.take(sim, ind, 0)
    iterations = 1
    while calls[0] < maxfev and iterations < maxiter:
        try:
            if (np.max(np.ravel(np.abs(sim[1:] - sim[0]))) <= xatol
                    and np.max(np.abs(fsim[0] - fsim[1:])) <= fatol):
                break
            xbar = np.add.reduce(sim[:-1], 0) / n
            xr = np.clip((1 + rho) * xbar - rho * sim[-1], lower, upper)
            fxr = f(xr)
            doshrink = 0
            if fxr < fsim[0]:
                xe = np.clip((1 + rho * chi) * xbar - rho * chi * sim[-1], lower, upper)
                fxe = f(xe)
                if fxe < fxr:
                    sim[-1], fsim[-1] = xe, fxe
                else:
                    sim[-1], fsim[-1] = xr, fxr
            elif fxr < fsim[-2]:
                sim[-1], fsim[-1] = xr, fxr
            else:
                if fxr < fsim[-1]:          # outside contraction
                    xc = np.clip((1 + psi * rho) * xbar - psi * rho * sim[-1], lower, upper)
                    fxc = f(xc)
                    if fxc <= fxr:
                        sim[-1], fsim[-1] = xc, fxc
                    else:
                        doshrink = 1
                else:                       # inside contraction
                    xcc = np.clip((1 - psi) * xbar + psi * sim[-1], lower, upper)
                    fxcc = f(xcc)
                    if fxcc < fsim[-1]:
                        sim[-1], fsim[-1] = xcc, fxcc
                    else:
                        doshrink = 1
                if doshrink:
                    for j in range(1, n + 1):
                        sim[j] = np.clip(sim[0] + sigma * (sim[j] - sim[0]), lower, upper)
                        fsim[j] = f(sim[j])
            iterations += 1
        except _MaxEvaluations:
            pass
        ind = np.argsort(fsim)
        sim = np.take(sim, ind, 0)
        fsim = np.take(fsim, ind, 0)
    return sim[0]


def rotation_matrix_deg(rotvec_deg: Sequence[float]) -> np.ndarray:
    """3x3 rotation of a rotation vector (axis * angle, degrees), by Rodrigues' formula."""
    w = np.deg2rad(np.asarray(rotvec_deg, dtype=float).reshape(3))
    theta = math.sqrt(float(w @ w))
    if theta < 1e-12:
        k = np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])
        return np.eye(3) + k                      # first order: exact to ~theta^2 / 2 < 1e-24
    a = w / theta
    k = np.array([[0.0, -a[2], a[1]], [a[2], 0.0, -a[0]], [-a[1], a[0], 0.0]])
    return np.eye(3) + math.sin(theta) * k + (1.0 - math.cos(theta)) * (k @ k)


def rigid_update(params: Sequence[float], center) -> np.ndarray:
    """4x4 of ``(rx, ry, rz [deg, rotation vector], tx, ty, tz [mm])`` about ``center`` (mm):
    p' = R (p - c) + c + t (as :func:`registration.spatial.transforms.rigid_matrix`)."""
    p = np.asarray(params, dtype=float).reshape(6)
    r = rotation_matrix_deg(p[:3])
    c = np.asarray(center, dtype=float)
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = c - r @ c + p[3:]
    return m
