"""The stages of one LC2 registration pass, each a function of plain data.

Coarse to fine, as scikit-image's pyramid solvers: :func:`prepare_levels` (frames
and CT features per level) -> :func:`search_starts` (translation grid at the
coarse level) -> :func:`coarse_starts` (Nelder-Mead from every start) ->
:func:`middle_level` (every start refined at the next level) -> :func:`polish`
(the best start through the remaining levels). :mod:`.lc2_pipeline` chains them
and assesses the result.

Poses are 6 rigid parameters ``(rx, ry, rz [deg], tx, ty, tz [mm])`` of a
CT-space update about ``center_ct``: ``reference_to_ct = rigid(params, center) @
base`` (scaled by ``PARAM_SCALE`` for the optimiser). :class:`Evaluator` holds
what the evaluations share: the threads, the cancel flag, the history and the
progress count.
"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import CancelledError, InputError
from registration.spatial.progress import StagedProgress
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply
from registration.spatial.volume import Volume

from .lc2_cost import FrameLC2Cost, frame_samples, select_frames
from .lc2_features import FEATURE_CACHE, crop_box
from .multistart import (
    N_THREADS,
    PARAM_SCALE,
    optimise_nelder_mead,
    run_parallel,
    start_perturbations,
    translation_grid_size,
    translation_search_starts,
)
from .nelder_mead import rigid_update
from .pose_uncertainty import AGREE_MM, COMPARABLE_LC2
from .registration_result import StartResult


class Level(NamedTuple):
    """One resolution level: US pixel size (mm), LC2 patch (pixels a side), frames used (at most)."""
    pixel_mm: float
    patch_px: int
    max_frames: int


#: Levels, coarse to fine. Why these: docs/registration_tuning.md#levels.
DEFAULT_LEVELS: Tuple[Level, ...] = (Level(4.0, 5, 10), Level(2.5, 7, 10), Level(1.6, 9, 12))
#: CT margin (mm) kept around the sweep's fan under the start (covers the optimiser's bounds).
CROP_MARGIN_MM = 45.0
#: Minimum fraction of fan samples that must fall inside the CT under the start.
MIN_OVERLAP = 0.2
#: Coarse results continued at the middle level (None: all). Why all: docs/registration_tuning.md#n_refine.
N_REFINE: Optional[int] = None
#: Penalty (LC2 units per unit of overlap fraction) for moving the fan out of the CT.
OVERLAP_PENALTY = 2.0
#: The second search from the result (:func:`small_patch_search`): LC2 patches (px a side) at the
#: middle and fine levels' pixel sizes (the whole-sweep levels use 7 and 9), its translation grid
#: (+- mm, step mm) and starts. Why: docs/registration_tuning.md#levels (small-patch search).
SMALL_PATCH_PX = (5, 7)
SMALL_SEARCH_MM, SMALL_STEP_MM = 6.0, 3.0
SMALL_STARTS = 2
#: The level ids its evaluations carry in ``RegistrationResult.history`` (middle, fine pixel size):
#: apart from the levels' 0, 1, 2 (other patches, other metric values; the convergence plot names them).
SECOND_SEARCH_LEVEL_IDS = (10, 11)


@dataclass(frozen=True)
class LC2Options:
    """Settings of an LC2 registration (:func:`~registration.align.intensity_registration.register_sweep`
    documents each). Lengths in mm; ``frames``: sweep frame indices to use (None: all valid);
    ``roi_center_ct``: rotation centre (CT LPS mm; None: the fan's centroid under the start)."""
    levels: Tuple[Level, ...] = DEFAULT_LEVELS
    n_starts: int = 4
    seed: int = 0
    max_evals_per_start: int = 150
    max_coarse_evals: int = 120
    translation_search_mm: float = 15.0
    search_step_mm: float = 7.5
    n_refine: Optional[int] = N_REFINE
    n_threads: int = N_THREADS
    hessian: bool = True
    frames: Optional[Tuple[int, ...]] = None
    roi_center_ct: Optional[Tuple[float, float, float]] = None
    breathing: str = "detect"              # "off" | "detect" | "gate"
    breath_hold: str = "expiration"        # the CT's phase: "expiration" | "inspiration"
    small_patches: bool = True             # the second search with smaller patches (small_patch_search)

    def __post_init__(self):
        if self.breathing not in ("off", "detect", "gate"):
            raise InputError(f"unknown breathing mode '{self.breathing}'", fix="use off, detect or gate")
        if self.breath_hold not in ("expiration", "inspiration"):
            raise InputError(f"unknown breath-hold phase '{self.breath_hold}'", fix="use expiration or inspiration")

    def evaluation_budget(self) -> int:
        """Upper bound of the grid, coarse-start and polish evaluations (the progress stages and their
        weights: :mod:`.lc2_progress`)."""
        n_grid = translation_grid_size(self.translation_search_mm, self.search_step_mm) \
            if self.translation_search_mm > 0 else 0
        return n_grid + max(self.n_starts, 1) * self.max_coarse_evals + self.max_evals_per_start


@dataclass
class LevelSet:
    """Per level (coarse to fine): the LC2 cost on its resampled frames and those frames' indices."""
    costs: List[FrameLC2Cost]
    frames: List[np.ndarray]

    @property
    def coarse(self) -> FrameLC2Cost:
        return self.costs[0]

    @property
    def fine(self) -> FrameLC2Cost:
        return self.costs[-1]


def roi_center(init_reference_to_ct: np.ndarray, points_ref: np.ndarray) -> np.ndarray:
    """Centroid (CT LPS mm) of the fan samples ``points_ref`` (Reference mm) under the start:
    the rotation centre, so rotations do not swing the swept region away."""
    return apply(init_reference_to_ct, points_ref.mean(axis=0))


def prepare_levels(ct: Volume, sweep: Sweep, init: np.ndarray, options: LC2Options) -> LevelSet:
    """Resample the selected frames and compute the CT features of every level.

    Only the CT around the fine level's fan under ``init`` (plus ``CROP_MARGIN_MM``, on the
    lattice of :func:`~registration.align.lc2_features.crop_box`) is used; its features come
    from :data:`~registration.align.lc2_features.FEATURE_CACHE` when that holds them."""
    frames = [select_frames(sweep, lev.max_frames, options.frames) for lev in _levels(options)]
    samples = [frame_samples(sweep, idx, lev.pixel_mm) for idx, lev in zip(frames, _levels(options))]
    box = crop_box(ct, apply(init, samples[-1].points_ref), CROP_MARGIN_MM)
    feats = FEATURE_CACHE.levels(ct, box, [lev.pixel_mm for lev in _levels(options)])
    costs = [FrameLC2Cost(feat, smp, lev.patch_px) for lev, smp, feat in zip(_levels(options), samples, feats)]
    return LevelSet(costs, frames)


def check_overlap(levels: LevelSet, init: np.ndarray, sweep: Sweep) -> float:
    """Fraction of the fine fan inside the CT under ``init``; InputError below ``MIN_OVERLAP``."""
    overlap = levels.fine.overlap(init)
    if overlap < MIN_OVERLAP:
        raise InputError(f"under the initial transform only {100 * overlap:.0f} % of the sweep's fan "
                         f"lies inside the CT: the sweep and the CT do not overlap", path=sweep.source,
                         fix="check the initial transform / landmarks (units mm, LPS, Reference -> CT)")
    return overlap


class Evaluator:
    """What the cost evaluations of one pass share: worker threads, cancellation, history, progress.

    Only the calling thread reports progress (GUI callbacks stay on their thread); a failure
    or cancel on it stops the workers at their next evaluation."""

    def __init__(self, pool: Optional[ThreadPoolExecutor], n_threads: int, progress: StagedProgress,
                 n_levels: int, center_ct: np.ndarray, overlap0: float):
        self.pool, self.n_threads, self.n_levels = pool, n_threads, n_levels
        self.center_ct, self.overlap0 = center_ct, overlap0
        self.progress = progress      # staged (lc2_progress); each evaluation is one step
        self.history: List[Tuple[int, int, float]] = []
        self.cancel = threading.Event()
        self._counter = itertools.count(1)      # thread-safe in CPython (one C call)
        self._caller = threading.current_thread()

    def run(self, tasks: Sequence[Callable[[], object]]) -> list:
        """Independent tasks on the threads, results in order."""
        return run_parallel(tasks, self.n_threads, self.cancel, self.pool)

    def eval_map(self, fn, items) -> list:
        """One evaluation's halves on the threads (only where nothing else runs in parallel)."""
        return self.run([lambda x=x: fn(x) for x in items])

    def counted(self, value):
        """``value``, counting one progress step (work outside :meth:`cost`: breathing, Hessian)."""
        self.progress.step(report=threading.current_thread() is self._caller)
        return value

    def pose(self, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """``reference_to_ct`` of scaled parameters ``x`` applied to ``base``."""
        return rigid_update(x * PARAM_SCALE, self.center_ct) @ base

    def cost(self, level: FrameLC2Cost, level_id: int, base: np.ndarray, map_fn=None) -> Callable[[np.ndarray], float]:
        """Cost to minimise over scaled parameters about ``base``: -LC2 plus the overlap penalty."""
        def f(x):
            m = self.pose(x, base)
            if self.cancel.is_set():
                raise CancelledError("registration cancelled")
            value, inside = level.metric(m, map_fn)
            self.history.append((next(self._counter), level_id, value))
            self.progress.step(report=threading.current_thread() is self._caller)
            # Moving the fan out of the CT must not pay: penalise lost overlap.
            return -value + OVERLAP_PENALTY * max(0.0, 0.8 * self.overlap0 - inside)
        return f


def search_starts(ev: Evaluator, levels: LevelSet, init: np.ndarray, options: LC2Options) -> np.ndarray:
    """[n, 6] start perturbations (deg, mm): the unperturbed start first, then the best distinct
    points of a translation grid at the coarse level (seeded random perturbations without a grid)."""
    starts = start_perturbations(options.n_starts, options.seed)
    if options.translation_search_mm > 0 and len(starts) > 1:
        starts = translation_search_starts(ev.cost(levels.coarse, 0, init), len(starts),
                                           options.translation_search_mm, options.search_step_mm, starts, run=ev.run)
    return starts


def coarse_starts(ev: Evaluator, levels: LevelSet, init: np.ndarray, starts: np.ndarray,
                  options: LC2Options) -> List[StartResult]:
    """Bounded Nelder-Mead at the coarse level from every start (in parallel)."""
    def one(s):
        x0 = s / PARAM_SCALE
        f, n = _counted(ev.cost(levels.coarse, 0, init))
        m0 = -f(x0)
        x = optimise_nelder_mead(f, x0, options.max_coarse_evals, step=2.0, xatol=0.1, fatol=1e-4)
        return StartResult(s, ev.pose(x, init), m0, -f(x), n[0] - 1)
    return ev.run([lambda s=s: one(s) for s in starts])


def middle_level(ev: Evaluator, levels: LevelSet, results: List[StartResult], options: LC2Options) -> List[StartResult]:
    """Every start (or the ``n_refine`` best) continued at level 1 with half the evaluations: the
    starts' spread is then measured at that level, and the coarse ranking does not decide alone."""
    if options.n_refine is not None:
        # Stable sort: ties keep the start order (the unperturbed start first).
        results = sorted(results, key=lambda r: -r.metric_final)[:max(int(options.n_refine), 1)]

    def one(r):
        f, n = _counted(ev.cost(levels.costs[1], 1, r.reference_to_ct))
        x = optimise_nelder_mead(f, np.zeros(6), options.max_evals_per_start // 2, step=0.5, xatol=0.05)
        return StartResult(r.start_params, ev.pose(x, r.reference_to_ct), r.metric_initial, -f(x),
                           r.evaluations + n[0])
    return ev.run([lambda r=r: one(r) for r in results])


def polish(ev: Evaluator, levels: LevelSet, start: np.ndarray, first_level: int, options: LC2Options) -> np.ndarray:
    """Refine ``start`` (reference_to_ct) through levels ``first_level``.. about the same centre.
    The finest of three or more levels only polishes (small simplex, half the evaluations):
    it is the costliest."""
    current = start
    n = len(levels.costs)
    for level_id in range(first_level, n):
        f = ev.cost(levels.costs[level_id], level_id, current, ev.eval_map)
        last = level_id == n - 1 and n > 2
        x = optimise_nelder_mead(f, np.zeros(6), polish_evaluations(level_id, n, options),
                                 step=0.25 if last else 0.5, xatol=0.05)
        current = ev.pose(x, current)
    return current


def polish_evaluations(level_id: int, n_levels: int, options: LC2Options) -> int:
    """Evaluations :func:`polish` allows at ``level_id`` of ``n_levels``: half the budget on the
    finest of three or more levels (it only polishes), the whole budget otherwise."""
    last = level_id == n_levels - 1 and n_levels > 2
    return options.max_evals_per_start // 2 if last else options.max_evals_per_start


def confirm_starts(ev: Evaluator, levels: LevelSet, results: List[StartResult], best: StartResult,
                   first_fine: int, options: LC2Options, points_ct: np.ndarray) -> List[np.ndarray]:
    """The comparable starts (middle-level metric within ``COMPARABLE_LC2`` of the best) that end
    more than ``AGREE_MM`` from ``best`` at any of ``points_ct`` (CT LPS mm; the targets and the
    rotation centre), each polished through the fine levels as the best one was; [] when none
    disagree. The verdict then asks whether they agree at the finest level
    (:func:`~registration.align.uncertainty.fine_agreement`).

    Why: the starts are compared where the middle level leaves them; in a cost valley that is flat
    at 2.5 mm pixels comparable starts stop 5-9 mm apart and the verdict called the optimum "not
    unique" (poor) though the fine level is peaked there: on the demo's static survey a result
    0.45 mm off at every target was poor for it (benchmarks/results/deformation.md, tenth session
    of 2026-12-03). Sequential (each polish spreads its evaluations over the threads); its
    evaluations count in the current progress stage (the fine level's), which expects them now."""
    inv_best = np.linalg.inv(best.reference_to_ct)
    pts = np.asarray(points_ct, float).reshape(-1, 3)
    ref_pts = apply(inv_best, pts)                 # the Reference points that best maps onto them
    top = best.metric_final
    todo = [r for r in results if r is not best and r.metric_final >= top - COMPARABLE_LC2
            and np.max(np.linalg.norm(apply(r.reference_to_ct, ref_pts) - pts, axis=1)) > AGREE_MM]
    if not todo:
        return []
    n = len(levels.costs)
    per = sum(polish_evaluations(k, n, options) for k in range(first_fine, n))
    ev.progress.add_steps(per * len(todo))          # counted in the fine level's stage, which runs it
    return [polish(ev, levels, r.reference_to_ct, first_fine, options) for r in todo]


def small_patches_apply(options: LC2Options) -> bool:
    """Whether :func:`small_patch_search` runs: asked for, and three or more levels whose middle and
    fine patches are larger than ``SMALL_PATCH_PX`` (the default levels)."""
    levels = _levels(options)
    return bool(options.small_patches) and len(levels) >= 3 and \
        levels[1].patch_px > SMALL_PATCH_PX[0] and levels[-1].patch_px > SMALL_PATCH_PX[1]


def small_patch_search(ev: Evaluator, levels: LevelSet, start: np.ndarray, options: LC2Options) -> np.ndarray:
    """A second search from ``start`` (the pipeline's result) without the coarse level and with
    smaller patches (``SMALL_PATCH_PX``, on the middle and fine levels' frames and CT features): a
    translation grid (+-``SMALL_SEARCH_MM``) at the middle pixel size, Nelder-Mead from its best
    ``SMALL_STARTS`` points, then the fine pixel size from each; returns the pose with the best
    small-patch fine metric. The caller keeps it only where the pipeline's own fine level prefers it.

    Why: on sweeps simulated from a real CT (crlm-1004) the 4 mm level and the 14-20 mm patches pull
    an intercostal sweep under the liver dome to an optimum 5-13 mm off that the fine level does not
    prefer (its LC2 is higher at the truth), and the pipeline never leaves it; the small-patch levels
    alone reach the truth from there but lose the 4 mm level's capture range on far starts
    (docs/registration_tuning.md#levels)."""
    mid = FrameLC2Cost(levels.costs[1].level, levels.costs[1].samples, SMALL_PATCH_PX[0])
    fine = FrameLC2Cost(levels.fine.level, levels.fine.samples, SMALL_PATCH_PX[1])
    fallback = start_perturbations(SMALL_STARTS, options.seed)
    ids = SECOND_SEARCH_LEVEL_IDS
    starts = translation_search_starts(ev.cost(mid, ids[0], start), SMALL_STARTS, SMALL_SEARCH_MM, SMALL_STEP_MM,
                                       fallback, run=ev.run)

    def one(s):
        f = ev.cost(mid, ids[0], start)
        x = optimise_nelder_mead(f, s / PARAM_SCALE, options.max_coarse_evals, step=2.0, xatol=0.1, fatol=1e-4)
        m = ev.pose(x, start)
        g = ev.cost(fine, ids[1], m)
        y = optimise_nelder_mead(g, np.zeros(6), options.max_evals_per_start // 2, step=0.5, xatol=0.05)
        return ev.pose(y, m), -g(y)
    found = ev.run([lambda s=s: one(s) for s in starts])
    return max(found, key=lambda r: r[1])[0]


def small_patch_evaluations(options: LC2Options) -> int:
    """Cost evaluations of :func:`small_patch_search` at most (its progress stage)."""
    return translation_grid_size(SMALL_SEARCH_MM, SMALL_STEP_MM) + \
        SMALL_STARTS * (options.max_coarse_evals + options.max_evals_per_start // 2 + 2)


def _levels(options: LC2Options) -> List[Level]:
    return [Level(*lev) for lev in options.levels]


def _counted(f):
    """``f`` wrapped with its own evaluation count (the history's counter is shared by threads)."""
    n = [0]

    def g(x):
        n[0] += 1
        return f(x)
    return g, n
