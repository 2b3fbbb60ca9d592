"""The two pose-error estimates of an intensity registration, and their propagation to a target.

Units: mm and degrees; points in CT LPS. Rigid parameters ``(rx, ry, rz, tx,
ty, tz)`` are a CT-space update about ``center``: ``rigid_matrix(params,
center) @ reference_to_ct`` (see :mod:`registration.spatial.transforms`).

* **Laplace (Hessian)**: the LC2 residual ratio ``r = 1 - LC2`` is treated as the
  mean squared residual of ``n_eff`` independent patches, so the negative
  log-likelihood is ``n_eff/2 * log r(params)``; its finite-difference Hessian at
  the optimum gives a 6x6 parameter covariance (:func:`hessian_covariance`),
  propagated to a target through the Jacobian of the point's position
  (:func:`target_tre_from_covariance`).
* **Multi-start spread**: RMS distance, at the target, between the best result and
  the other starts that reached a comparable metric (:func:`multistart_spread`).

:mod:`registration.align.uncertainty` combines them into the reported TRE and the verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.transforms import apply, invert, rotation_angle_deg

from .nelder_mead import rigid_update

#: Starts "agree" within this distance (mm) at a target. Tuning: docs/registration_tuning.md#agree_mm.
AGREE_MM = 5.0
#: Starts whose metric lies within this of the best start's are "comparable" (LC2 / MI units).
COMPARABLE_LC2 = 0.02
#: Cap (mm or deg) of a positive direction's standard deviation: the optimiser's search range.
MAX_SD = 30.0


@dataclass
class LaplaceCovariance:
    """6x6 covariance of ``(rx, ry, rz [deg], tx, ty, tz [mm])`` from the metric's curvature.

    ``positive_definite`` is False when the cost is not at a clear maximum along some
    direction; there the standard deviation is one finite-difference step (mm or deg)."""
    covariance_deg_mm: np.ndarray
    positive_definite: bool


def point_jacobian(target_ct, center) -> np.ndarray:
    """3x6 d(target position, mm)/d(params) at params = 0 (params in deg and mm)."""
    r = np.asarray(target_ct, float) - np.asarray(center, float)
    skew = np.array([[0, -r[2], r[1]], [r[2], 0, -r[0]], [-r[1], r[0], 0]])
    # d(R r)/d(omega) = -[r]x per radian; params are degrees
    return np.hstack([-skew * np.pi / 180.0, np.eye(3)])


def target_tre_from_covariance(cov: np.ndarray, center, target_ct) -> float:
    """RMS error (mm) at ``target_ct`` of a pose with parameter covariance ``cov`` (deg, mm)."""
    j = point_jacobian(target_ct, center)
    return float(math.sqrt(max(np.trace(j @ cov @ j.T), 0.0)))


def hessian_covariance(metric: Callable[[np.ndarray], float], reference_to_ct: np.ndarray, center,
                       n_eff: float, *, step=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
                       map_fn: Optional[Callable] = None) -> LaplaceCovariance:
    """Laplace covariance of the pose from the LC2 metric's curvature at ``reference_to_ct``.

    ``metric(reference_to_ct) -> LC2``; ``step``: finite-difference steps (deg, deg, deg,
    mm, mm, mm). 28 evaluations (central diagonal, forward cross terms), independent of each
    other: ``map_fn(f, xs) -> [f(x) for x in xs]`` may run them in parallel. Along
    non-positive eigen-directions all we know is that the cost did not rise within +-step, so
    their standard deviation is set to the largest step; positive directions are capped at
    ``MAX_SD``.
    """
    h = np.asarray(step, float)
    base = np.asarray(reference_to_ct, float)

    def f(x):
        lc = float(metric(rigid_update(x, center) @ base))
        return math.log(max(1.0 - lc, 1e-6))

    eye = np.diag(h)
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    xs = [np.zeros(6)] + [eye[i] for i in range(6)] + [-eye[i] for i in range(6)] \
        + [eye[i] + eye[j] for i, j in pairs]
    vals = (map_fn or (lambda fn, pts: [fn(x) for x in pts]))(f, xs)
    f0, fp, fm = vals[0], np.asarray(vals[1:7]), np.asarray(vals[7:13])
    hess = np.zeros((6, 6))
    for i in range(6):
        hess[i, i] = (fp[i] - 2 * f0 + fm[i]) / h[i] ** 2
    for (i, j), fij in zip(pairs, vals[13:]):
        hess[i, j] = hess[j, i] = (fij - fp[i] - fp[j] + f0) / (h[i] * h[j])
    nll = 0.5 * n_eff * hess
    w, v = np.linalg.eigh(0.5 * (nll + nll.T))
    flat = float(np.max(h)) ** 2
    inv_w = np.where(w > 1e-9, np.minimum(1.0 / np.maximum(w, 1e-12), MAX_SD ** 2), flat)
    return LaplaceCovariance((v * inv_w) @ v.T, bool(np.all(w > 0)))


def multistart_spread(start_matrices: Sequence[np.ndarray], start_metrics: Sequence[float],
                      best: np.ndarray, target_ct, *,
                      metric_tolerance: float = COMPARABLE_LC2) -> Tuple[float, float, int]:
    """Spread of the multi-start results at a target.

    Starts whose metric is within ``metric_tolerance`` of the best start are
    "comparable" (a start far below is a failed start, not evidence of a second
    optimum). Returns ``(RMS distance (mm) at the target of comparable starts to best,
    fraction of comparable starts within AGREE_MM, number of comparable starts)``;
    with >= 3 starts of which only the best is comparable, the optimum is unconfirmed:
    the spread is then the RMS distance of the other starts and the agreement 0.
    """
    t = np.asarray(target_ct, float)
    ref_point = apply(np.linalg.inv(best), t)           # the Reference point that best maps onto t
    d = np.array([np.linalg.norm(apply(m, ref_point) - t) for m in start_matrices])
    top = max(start_metrics) if len(start_metrics) else 0.0
    comparable = np.array([m >= top - metric_tolerance for m in start_metrics])
    if not comparable.any():
        return float("inf"), 0.0, 0
    dc = d[comparable]
    if comparable.sum() == 1 and len(d) >= 3:
        # Only the best start reached its optimum: nothing confirms it. Its spread is where
        # the other starts ended (they show how far the cost's other optima are).
        return float(np.sqrt(np.mean(d[~comparable] ** 2))), 0.0, 1
    return float(np.sqrt(np.mean(dc ** 2))), float(np.mean(dc <= AGREE_MM)), int(comparable.sum())


def moved_from_start(init: np.ndarray, result: np.ndarray, center) -> Tuple[float, float]:
    """(rotation deg, displacement mm at ``center``) of ``result`` relative to ``init``."""
    d = np.asarray(result, float) @ invert(np.asarray(init, float))
    c = np.asarray(center, float)
    return rotation_angle_deg(d), float(np.linalg.norm(apply(d, c) - c))
