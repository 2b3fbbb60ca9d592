"""Multi-start optimisation helpers of the rigid intensity registration.

Parameters are the 6 rigid ``(rx, ry, rz [deg], tx, ty, tz [mm])`` of a CT-space
update about a centre (see :func:`registration.spatial.transforms.rigid_matrix`), scaled by
``PARAM_SCALE`` for the optimiser. Here: the threads that run independent work
(translation-grid points, starts, halves of one evaluation), the bounded
Nelder-Mead, the translation-grid search that seeds the starts, the seeded start
perturbations and the evaluation counter that reports progress.
Used by :mod:`registration.align.intensity_registration` (LC2) and
:mod:`registration.align.mi_registration` (same starts).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

import numpy as np

from registration.spatial.errors import CancelledError

from .nelder_mead import minimize_bounded, rotation_matrix_deg
from .registration_result import ProgressFn

#: Parameter scaling for the optimiser: 1 unit = this many deg / mm.
PARAM_SCALE = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
#: Search bounds around each start (deg, mm).
BOUNDS = np.array([15.0, 15.0, 15.0, 30.0, 30.0, 30.0])
#: Threads for independent work (translation-grid points, starts): the compiled LC2 kernels
#: (ctypes) and scipy.ndimage release the GIL. Speed-up: docs/registration_tuning.md#threads.
N_THREADS = max(1, min(2, os.cpu_count() or 1))


def run_parallel(tasks: Sequence[Callable[[], object]], n_threads: int, cancel: threading.Event,
              pool: Optional[ThreadPoolExecutor] = None) -> list:
    """Run ``tasks`` (results in order): the calling thread runs tasks 0, n, 2n ..., worker
    threads (``pool``, or a pool made for this call) the others. Only the calling thread
    reports progress; if it is cancelled or fails, ``cancel`` is set so the workers stop at
    their next evaluation."""
    if n_threads <= 1 or len(tasks) <= 1:
        return [t() for t in tasks]
    if pool is None:
        with ThreadPoolExecutor(max_workers=n_threads - 1) as own:
            return run_parallel(tasks, n_threads, cancel, own)
    out: list = [None] * len(tasks)
    futures = {i: pool.submit(tasks[i]) for i in range(len(tasks)) if i % n_threads}
    try:
        for i in range(0, len(tasks), n_threads):
            out[i] = tasks[i]()
        for i, fut in futures.items():
            out[i] = fut.result()
    except BaseException:
        cancel.set()
        for fut in futures.values():
            fut.cancel()
        raise
    return out


def start_perturbations(n_starts: int, seed: int, rot_deg: float = 4.0, trans_mm: float = 6.0) -> np.ndarray:
    """[n_starts, 6]: the unperturbed start first, then seeded random rigid perturbations."""
    rng = np.random.default_rng(seed)
    out = [np.zeros(6)]
    for _ in range(max(n_starts, 1) - 1):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out.append(np.concatenate([axis * rot_deg * rng.uniform(0.5, 1.0),
                                   d * trans_mm * rng.uniform(0.5, 1.0)]))
    return np.array(out)


class EvaluationProgress:
    """Counts cost evaluations against an expected ``total`` and reports the fraction done."""

    def __init__(self, fn: Optional[ProgressFn], total: int):
        self.fn, self.total, self.count = fn, max(total, 1), 0

    def step(self, message: str, report: bool = True) -> None:
        """Count one evaluation; call ``fn`` every 10th if ``report`` (only the caller's thread)."""
        self.count += 1
        if report and self.fn is not None and self.count % 10 == 0:
            if self.fn(min(self.count / self.total, 0.99), message) is False:
                raise CancelledError("registration cancelled")


def optimise_nelder_mead(cost_fn: Callable[[np.ndarray], float], x0: np.ndarray, maxfev: int, step: float,
              xatol: float, fatol: float = 1e-4):
    """Bounded Nelder-Mead from ``x0`` with an initial simplex of ``step`` (scaled units);
    returns the best scaled parameters. Bounds: ``BOUNDS`` (deg, mm) about ``x0``.

    Chosen over bounded Powell, whose line searches stall on LC2's small-scale noise
    (docs/registration_tuning.md#optimiser). SciPy's algorithm, step for step
    (:func:`registration.align.nelder_mead.minimize_bounded`)."""
    lo = x0 - BOUNDS / PARAM_SCALE
    hi = x0 + BOUNDS / PARAM_SCALE
    simplex = np.vstack([x0, x0 + np.eye(6) * step])
    return minimize_bounded(cost_fn, x0, lo, hi, simplex, xatol=xatol, fatol=fatol, maxfev=maxfev)


def chunked_map(fn, xs: Sequence, run, n_chunks: int) -> list:
    """``[fn(x) for x in xs]`` with ``xs`` split in ``n_chunks`` tasks for ``run`` (see :func:`run_parallel`)."""
    parts = np.array_split(np.arange(len(xs)), max(int(n_chunks), 1))
    return [v for part in run([lambda idx=idx: [fn(xs[k]) for k in idx] for idx in parts]) for v in part]


def translation_grid_size(range_mm: float, step_mm: float) -> int:
    """Points of :func:`translation_search_starts`' grid (+-``range_mm``, ``step_mm`` apart, per axis
    cubed): the cost evaluations it spends, for evaluation budgets and progress stages."""
    return int(round(2 * range_mm / step_mm) + 1) ** 3


def translation_search_starts(cost_fn, n_starts: int, range_mm: float, step_mm: float,
                               fallback: np.ndarray, run=None) -> np.ndarray:
    """[n_starts, 6]: zero first, then the best translation-grid points at least 1.5 steps apart.
    ``run(tasks) -> results`` may evaluate the grid's chunks in parallel."""
    g = np.arange(-range_mm, range_mm + 1e-9, step_mm)
    grid = np.array([(0, 0, 0, x, y, z) for x in g for y in g for z in g], float)
    chunks = np.array_split(np.arange(len(grid)), N_THREADS)
    tasks = [lambda idx=idx: [cost_fn(grid[k] / PARAM_SCALE) for k in idx] for idx in chunks]
    values = np.concatenate([np.asarray(v, float) for v in (run or (lambda ts: [t() for t in ts]))(tasks)])
    chosen = [np.zeros(6)]
    for k in np.argsort(values):
        p = grid[k]
        if all(np.linalg.norm(p[3:] - c[3:]) >= 1.5 * step_mm for c in chosen):
            chosen.append(p)
        if len(chosen) == n_starts:
            break
    while len(chosen) < n_starts:
        chosen.append(fallback[len(chosen)])
    return np.array(chosen)


def random_rigid_perturbation(rng: np.random.Generator, trans_range=(5.0, 20.0), rot_range=(0.0, 10.0),
                              center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A rigid 4x4 with |t| uniform in ``trans_range`` mm and angle uniform in ``rot_range`` deg
    about a random axis through ``center`` (for benchmarks and tests)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    ang = rng.uniform(*rot_range)
    t = d * rng.uniform(*trans_range)
    m = np.eye(4)
    m[:3, :3] = rotation_matrix_deg(ang * axis)
    c = np.asarray(center, float)
    m[:3, 3] = c - m[:3, :3] @ c + t
    return m
