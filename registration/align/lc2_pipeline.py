"""One LC2 registration pass: the stages of :mod:`.lc2_stages` in order, then the assessment.

:func:`run_lc2` chains levels -> overlap check -> translation grid -> coarse
starts -> middle level -> polish -> a second search with small patches (kept where the fine
level prefers it), then (:func:`finish`) the breathing analysis,
the Laplace covariance and the uncertainty report, and returns a
:class:`~registration.align.registration_result.RegistrationResult` with the
wall time of every stage in ``timings_s``.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional

import numpy as np

from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply
from registration.spatial.volume import Volume

from .deformation_error import estimate_residual_deformation
from .lc2_cost import select_frames
from .lc2_progress import lc2_progress
from .lc2_stages import (
    Evaluator,
    LC2Options,
    LevelSet,
    check_overlap,
    coarse_starts,
    confirm_starts,
    middle_level,
    polish,
    prepare_levels,
    roi_center,
    search_starts,
    small_patch_search,
    small_patches_apply,
)
from .multistart import chunked_map
from .pose_uncertainty import hessian_covariance, moved_from_start
from .registration_result import ProgressFn, RegistrationResult
from .uncertainty import MAX_SWEEP_POINTS, assess

#: Finite-difference step of the Laplace covariance, in fine pixels (as mm, and as degrees).
#: Why two: docs/registration_tuning.md#hessian-step.
HESSIAN_STEP_PIXELS = 2.0


class Stopwatch:
    """Wall time per stage (s), accumulated: ``lap(stage)`` charges the time since the last lap."""

    def __init__(self):
        self.t0 = self._mark = time.perf_counter()
        self.timings: Dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + now - self._mark
        self._mark = now

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def run_lc2(ct: Volume, sweep: Sweep, init: np.ndarray, options: LC2Options, pool: Optional[ThreadPoolExecutor],
            progress: Optional[ProgressFn], *, targets: Optional[dict] = None, earlier_breathing: Optional[dict] = None,
            assess_from: Optional[np.ndarray] = None) -> RegistrationResult:
    """Register ``sweep`` to ``ct`` from ``init`` (reference_to_ct) with LC2.

    ``pool``: worker threads (``options.n_threads - 1``). ``earlier_breathing``: a breathing
    report to carry into the assessment instead of analysing this pass (the gated pass);
    ``assess_from``: the start the capture-range check measures from (default ``init``).
    Raises InputError when the sweep does not overlap the CT under ``init``, CancelledError
    when ``progress`` returns False."""
    clock = Stopwatch()
    staged = lc2_progress(progress, options, breathing=earlier_breathing is None)
    staged.begin("ct_features")
    levels = prepare_levels(ct, sweep, init, options)
    clock.lap("ct_features")
    overlap0 = check_overlap(levels, init, sweep)
    center = (np.asarray(options.roi_center_ct, float) if options.roi_center_ct is not None
              else roi_center(init, levels.fine.samples.points_ref))
    ev = Evaluator(pool, options.n_threads, staged, len(levels.costs), center, overlap0)
    initial_metric = levels.fine.metric(init, ev.eval_map)[0]
    if options.n_starts > 1 and options.translation_search_mm > 0:
        staged.begin("translation_grid")
    starts = search_starts(ev, levels, init, options)
    if len(starts) > 1 and options.translation_search_mm > 0:
        clock.lap("translation_grid")
    staged.begin("coarse_starts")
    results = coarse_starts(ev, levels, init, starts, options)
    clock.lap("coarse_starts")
    first_fine = 1
    if len(levels.costs) > 1 and len(results) > 1:
        staged.begin("middle_level")
        results = middle_level(ev, levels, results, options)
        clock.lap("middle_level")
        first_fine = 2
    staged.begin("fine_level")
    best = max(results, key=lambda r: r.metric_final)
    current = polish(ev, levels, best.reference_to_ct, first_fine, options)
    final_metric = levels.fine.metric(current, ev.eval_map)[0]
    clock.lap("fine_level")
    # comparable starts that the middle level left apart: polished too, so the verdict can ask the finest level
    points = [center] + [np.asarray(t["point"], float) for t in (targets or {}).values()]
    fine_starts = confirm_starts(ev, levels, results, best, first_fine, options, np.array(points))
    if fine_starts:
        clock.lap("confirm_starts")
    second = None
    if small_patches_apply(options):
        # a second search with smaller patches from the result: kept where the fine level prefers it
        staged.begin("small_patches")
        other = small_patch_search(ev, levels, current, options)
        other_metric = levels.fine.metric(other, ev.eval_map)[0]
        second = {"chosen": bool(other_metric > final_metric), "fine_lc2": [float(final_metric), float(other_metric)],
                  "apart_mm": round(moved_from_start(current, other, center)[1], 3)}
        if second["chosen"]:
            current, final_metric = other, other_metric
        clock.lap("small_patches")
    result = RegistrationResult(current, "lc2", float(initial_metric), float(final_metric), len(ev.history), 0.0,
                                center, results, ev.history, [int(i) for i in levels.frames[-1]], init,
                                second_search=second, fine_starts=fine_starts)
    finish(result, sweep, levels, ev, options, clock, targets=targets, earlier_breathing=earlier_breathing,
           assess_from=init if assess_from is None else assess_from, ct=ct)
    staged.done(f"registration done in {result.wall_time_s:.0f} s")
    return result


def finish(result: RegistrationResult, sweep: Sweep, levels: LevelSet, ev: Evaluator, options: LC2Options,
           clock: Stopwatch, *, targets: Optional[dict], earlier_breathing: Optional[dict],
           assess_from: np.ndarray, ct: Optional[Volume] = None) -> None:
    """Breathing analysis, Laplace covariance and uncertainty report of ``result`` (in place);
    ``ct`` (HU) for the probe's indentation (the near-probe deformation prior)."""
    fine = levels.fine
    if earlier_breathing is not None:
        result.breathing = earlier_breathing
    elif options.breathing != "off":
        ev.progress.begin("breathing")
        result.breathing = analyse_sweep_breathing(sweep, levels, result.reference_to_ct, ev, options)
        clock.lap("breathing")
    n_eff = fine.samples.fan.sum() / float(fine.patch[1] * fine.patch[2])   # independent fine patches
    hess = None
    if options.hessian:
        ev.progress.begin("hessian")
        step = (HESSIAN_STEP_PIXELS * fine.level.spacing_mm,) * 6
        hess = hessian_covariance(lambda m: ev.counted(fine.metric(m)[0]), result.reference_to_ct, result.center_ct,
                                     n_eff, step=step, map_fn=lambda fn, xs: chunked_map(fn, xs, ev.run, ev.n_threads))
        clock.lap("hessian")
    # Residual deformation (issue 19): the sweep's parts fitted alone at the middle level.
    ev.progress.begin("deformation")
    deformation = estimate_residual_deformation(sweep, levels.costs[min(1, len(levels.costs) - 1)],
                                                result.reference_to_ct, options.frames, run=ev.run, ct=ct)
    clock.lap("deformation")
    ev.progress.begin("assess")
    result.uncertainty = assess(result, targets or {}, n_eff=float(n_eff), hessian=hess, deformation=deformation,
                                resolution_mm=fine.level.spacing_mm,
                                sweep_points_ct=apply(result.reference_to_ct, _evenly(fine.samples.points_ref)),
                                breathing=result.breathing, start_reference_to_ct=assess_from)
    clock.lap("assess")
    result.timings_s = clock.timings
    result.wall_time_s = clock.elapsed()


def _evenly(points: np.ndarray) -> np.ndarray:
    """The fan samples :func:`~registration.align.uncertainty.assess` keeps (``MAX_SWEEP_POINTS``,
    evenly), picked before they are mapped: the same points at a fraction of the cost."""
    if len(points) <= MAX_SWEEP_POINTS:
        return points
    return points[np.linspace(0, len(points) - 1, MAX_SWEEP_POINTS).astype(int)]


def analyse_sweep_breathing(sweep: Sweep, levels: LevelSet, reference_to_ct: np.ndarray, ev: Evaluator,
                            options: LC2Options) -> dict:
    """Breathing found in every valid frame asked for, about the result (BreathingReport dict).

    Measured at the middle level (the coarse one fakes breathing on static sweeps). Outside
    ``breathing="gate"`` the frames at the CT's phase are reported but not kept."""
    from .motion import analyse_breathing
    valid = np.unique(select_frames(sweep, len(sweep), options.frames))
    mid = levels.costs[min(1, len(levels.costs) - 1)]
    rep = analyse_breathing(sweep, mid.level, reference_to_ct, valid, breath_hold=options.breath_hold,
                            patch_px=mid.patch[1], map_fn=lambda fn, xs: ev.counted(ev.eval_map(fn, xs)))
    if options.breathing != "gate" and rep.gated_frames is not None:
        rep.notes.append(f"not gated (breathing mode 'detect'): {len(rep.gated_frames)} frames were at "
                         "the CT's phase")
        rep.gated_frames = None
    return rep.to_dict()
