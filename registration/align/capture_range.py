"""Capture range from evidence: is a result that moved far from its start right?

A fixed cut ("further than 35 mm / 12 deg from the start is poor") calls correct
far-start results poor and gives them no error estimate. Here a result beyond the
fixed range is judged by what the data says about it:

* **independent starts agree**: ``RESTARTS`` new starts, each perturbed from the
  result by ``RESTART_TRANS_MM`` / ``RESTART_ROT_DEG`` (seeded, independent of the
  first search), are optimised at the middle level; with the first search's starts,
  at least ``MIN_AGREEING`` that reached the best metric must end within
  ``AGREE_MM`` of the best one at the rotation centre (one basin, reached from
  places up to ~40 mm apart). The restarts then count as starts of the result
  (its multi-start spread includes them);
* **the cost landscape**: the final metric is at the "good" level of its method
  (a wrong optimum on these images sits lower);
* **the sweep's parts agree**: the residual-deformation estimate
  (:mod:`.deformation_error`) leaves at most ``CONSISTENT_MM`` inside the imaged
  region: every patch of the sweep, fitted alone, stays near the result.

All met: the result stands, at best "check" (it moved further than any start the
error model was validated from). Any missing: "poor", as before, with what failed.
Validation: docs/registration_tuning.md#capture-range. Units: mm, degrees.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from registration.spatial.transforms import rigid_matrix

from .multistart import PARAM_SCALE, optimise_nelder_mead, start_perturbations
from .pose_uncertainty import multistart_spread
from .registration_result import StartResult

#: Starts (incl. the best) that must reach the best metric and agree at the centre.
MIN_AGREEING = 3
#: Verification restarts from the result: how many, how far (mm, deg), evaluations, seed.
RESTARTS = 2
RESTART_TRANS_MM, RESTART_ROT_DEG = 8.0, 4.0
RESTART_EVALS = 75
RESTART_SEED = 1919
#: Largest residual (mm) inside the imaged region for the sweep's parts to count as agreeing.
CONSISTENT_MM = 3.0


def judge_far_result(result, rotation_deg: float, translation_mm: float, deformation, good_metric: float,
                     range_mm: float, range_deg: float) -> Tuple[List[str], List[str], dict, List[StartResult]]:
    """(poor reasons, check reasons, evidence dict, restarts) for a result ``translation_mm`` /
    ``rotation_deg`` from its start, beyond the fixed range ``range_mm`` / ``range_deg``.
    ``deformation``: the :class:`~registration.align.deformation_error.ResidualDeformation` of the
    result (its level runs the restarts), or None (no restarts, no consistency: poor)."""
    moved = f"moved {translation_mm:.0f} mm / {rotation_deg:.0f} deg from the start, outside the validated capture " \
            f"range ({range_mm:.0f} mm / {range_deg:.0f} deg)"
    extra = restarts(result, deformation)
    mats = [s.reference_to_ct for s in list(result.starts) + extra]
    vals = [s.metric_final for s in list(result.starts) + extra]
    n_agree = 0
    if mats:
        _, frac, n_comp = multistart_spread(mats, vals, mats[int(np.argmax(vals))], result.center_ct)
        n_agree = int(round(frac * n_comp))
    local = None if deformation is None else float(deformation.local_mm)
    evidence = {"starts_agreeing": n_agree, "starts": len(mats), "restarts": len(extra), "metric_final": float(result.metric_final),
                "good_metric": good_metric, "local_residual_mm": local,
                "translation_mm": round(float(translation_mm), 2), "rotation_deg": round(float(rotation_deg), 2)}
    failed = []
    if n_agree < MIN_AGREEING:
        failed.append(f"only {n_agree} start(s) agree on it")
    if result.metric_final < good_metric:
        failed.append(f"its metric {result.metric_final:.3f} is below {good_metric}")
    if local is None:
        failed.append("the sweep's parts were not checked")
    elif local > CONSISTENT_MM:
        failed.append(f"the sweep's parts disagree ({local:.1f} mm residual)")
    evidence["confirmed"] = not failed
    if failed:
        return ([f"{moved} and not confirmed: {'; '.join(failed)}: start closer (landmarks) and run again"],
                [], evidence, [])
    return [], [f"{moved}: confirmed by {n_agree} agreeing starts, metric {result.metric_final:.3f} and the "
                f"sweep's parts agreeing ({local:.1f} mm): check the overlay"], evidence, extra


def restarts(result, deformation) -> List[StartResult]:
    """The verification restarts (see the module docstring) on ``deformation.level``; [] without it."""
    level = None if deformation is None else deformation.level
    if level is None or RESTARTS < 1:
        return []
    base, center = np.asarray(result.reference_to_ct, float), np.asarray(result.center_ct, float)
    run = deformation.run or (lambda tasks: [t() for t in tasks])

    def one(s):
        def f(x):
            return -level.metric(rigid_matrix(x * PARAM_SCALE, center) @ base)[0]
        x0 = s / PARAM_SCALE
        m0 = -f(x0)
        x = optimise_nelder_mead(f, x0, RESTART_EVALS, step=0.5, xatol=0.05)
        return StartResult(s, rigid_matrix(x * PARAM_SCALE, center) @ base, m0, -f(x), RESTART_EVALS)
    perts = start_perturbations(RESTARTS + 1, RESTART_SEED, rot_deg=RESTART_ROT_DEG, trans_mm=RESTART_TRANS_MM)[1:]
    return run([lambda s=s: one(s) for s in perts])
