"""The progress stages of one LC2 pass, each weighted by its expected share of the run time.

:func:`lc2_progress` builds a :class:`~registration.spatial.progress.StagedProgress` whose
stages are the keys of ``RegistrationResult.timings_s`` (CT features, translation grid,
coarse starts, level 2, finest level, breathing, error estimate, deformation check,
verdict). A stage's weight is its expected time: fixed seconds for the stages that do not
evaluate the cost, and for the others the expected number of cost evaluations times the time of one
evaluation at that level, modelled as proportional to the level's samples (frames /
pixel size squared). The constants are fitted to the stage timings of the GUI's default
registration on the demo case (benchmarks/results/registration.md#progress-weights): only
their ratios matter, so a faster machine or a faster cost leaves the bar truthful as long
as every stage speeds up alike.
"""
from __future__ import annotations

from typing import List, Optional

from registration.spatial.progress import ProgressFn, Stage, StagedProgress

from .lc2_stages import LC2Options, polish_evaluations, small_patch_evaluations, small_patches_apply
from .multistart import translation_grid_size

#: Seconds of one cost evaluation per unit of ``max_frames / pixel_mm**2`` (wall time with the
#: default threads; fitted on the demo case, see the module docstring).
EVAL_S_PER_UNIT = 0.034
#: Seconds of the stages that do not count cost evaluations as steps (same fit).
FIXED_S = {"ct_features": 3.0, "assess": 0.2}
#: Breathing analysis (:func:`registration.align.motion.analyse_breathing`): per-frame LC2 of this
#: many frames at the middle level, under this many shifts (motion.PROFILE_FRAMES, SHIFTS_MM).
BREATHING_FRAMES = 20
BREATHING_SHIFTS = 21
#: Evaluations of the Laplace covariance (pose_uncertainty.hessian_covariance).
HESSIAN_EVALUATIONS = 28
#: Local fits of the residual-deformation estimate (local_fits): frame groups (x 2 depth
#: halves), frames per group, evaluations per patch (fit budget + its curvature).
DEFORMATION_GROUPS, DEFORMATION_FRAMES, DEFORMATION_EVALS = 3, 8, 66


def _eval_s(options: LC2Options, level_id: int, frames: Optional[int] = None) -> float:
    """Expected seconds of one evaluation at ``level_id`` (with ``frames`` instead of its max)."""
    lev = options.levels[level_id]
    return EVAL_S_PER_UNIT * (lev[2] if frames is None else frames) / float(lev[0]) ** 2


def lc2_stages(options: LC2Options, *, breathing: bool) -> List[Stage]:
    """The stages of one pass in order, each with its expected evaluations and seconds;
    ``breathing``: whether this pass analyses breathing itself (the gated pass does not)."""
    n = len(options.levels)
    starts = max(options.n_starts, 1)
    out = [Stage("ct_features", "preparing the CT", FIXED_S["ct_features"])]
    if options.translation_search_mm > 0 and starts > 1:
        k = translation_grid_size(options.translation_search_mm, options.search_step_mm)
        out.append(Stage("translation_grid", "searching positions", k * _eval_s(options, 0), k))
    coarse = starts * (options.max_coarse_evals + 2)       # + the start's and the result's metric
    out.append(Stage("coarse_starts", f"level 1 of {n} ({starts} start{'s' if starts > 1 else ''})",
                     coarse * _eval_s(options, 0), coarse))
    first_fine = 1
    if n > 1 and starts > 1:
        kept = starts if options.n_refine is None else min(max(int(options.n_refine), 1), starts)
        mid = kept * (options.max_evals_per_start // 2 + 1)
        out.append(Stage("middle_level", f"level 2 of {n}", mid * _eval_s(options, 1), mid))
        first_fine = 2
    fine_evals, fine_s = 1, _eval_s(options, n - 1)      # + the final metric
    for level_id in range(first_fine, n):
        k = polish_evaluations(level_id, n, options)
        fine_evals += k
        fine_s += k * _eval_s(options, level_id)
    label = f"level {n} of {n}" if first_fine >= n - 1 else f"levels {first_fine + 1}-{n} of {n}"
    out.append(Stage("fine_level", label, fine_s, fine_evals))
    if small_patches_apply(options):
        k = small_patch_evaluations(options)
        out.append(Stage("small_patches", "second search, small patches", k * _eval_s(options, 1), k))
    if breathing and options.breathing != "off":
        out.append(Stage("breathing", "breathing check",
                         BREATHING_SHIFTS * _eval_s(options, min(1, n - 1), BREATHING_FRAMES), BREATHING_SHIFTS))
    if options.hessian:
        out.append(Stage("hessian", "error estimate", HESSIAN_EVALUATIONS * _eval_s(options, n - 1),
                         HESSIAN_EVALUATIONS))
    # Residual deformation (deformation_error): every patch of the sweep fitted alone at the
    # middle level, about half a group's frames' samples per evaluation.
    patches = 2 * DEFORMATION_GROUPS
    out.append(Stage("deformation", "deformation check", patches * DEFORMATION_EVALS
                     * _eval_s(options, min(1, n - 1), DEFORMATION_FRAMES) / 2))
    out.append(Stage("assess", "verdict", FIXED_S["assess"]))
    return out


def lc2_progress(progress: Optional[ProgressFn], options: LC2Options, *, breathing: bool = True) -> StagedProgress:
    """The staged progress of one LC2 pass (``progress`` None: nothing is reported)."""
    return StagedProgress(progress, lc2_stages(options, breathing=breathing), name="registration")
