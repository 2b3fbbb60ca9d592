"""Automatic rigid CT -> tracked-ultrasound registration (LC2 on frames; MI baseline).

Result: ``reference_to_ct`` (Reference mm -> CT LPS mm), refined from an
initial estimate (landmarks or a manual placement), with its uncertainty.

Design (LC2):

* **Frames, not a reconstructed sub-volume.** The CT features are resliced on
  each selected US frame plane (``image_to_ct = reference_to_ct @
  image_to_reference``) and LC2 is computed on the 2D frames with 2D patches:
  the fan mask and beam geometry stay exact, speckle is not blurred by
  compounding, no hole is interpolated, and the sample count per level is set
  directly (frames x pixel size). Measurements: docs/registration_tuning.md#frames.
* CT features ``p`` (soft-tissue window) and ``g`` (gradient magnitude) are
  precomputed once per resolution level on a resampled CT grid cropped to the
  sweep, and sampled at the fan pixels with trilinear ``map_coordinates``
  (:mod:`registration.align.lc2_cost`).
* Multi-resolution (4, 2.5, 1.6 mm pixels by default), multi-start (the initial
  pose plus the best points of a coarse translation grid, or seeded random
  perturbations), bounded Nelder-Mead over 6 rigid parameters ``(rx, ry, rz
  [deg], tx, ty, tz [mm])`` of a CT-space update about a centre near the ROI:
  ``reference_to_ct = rigid(params, centre) @ init``. The stages are in
  :mod:`.lc2_stages`, one pass in :mod:`.lc2_pipeline`; this module adds the
  optional second, breathing-gated pass.
* Frames with INVALID tracking are never used.

The MI baseline lives in :mod:`.mi_registration`; the optimisation helpers
(threads, Nelder-Mead, translation grid, starts) in :mod:`.multistart`; the
result classes in :mod:`.registration_result` and :mod:`.assessment`.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import as_matrix
from registration.spatial.volume import Volume
from registration.ultrasound.shadows import EDGE_MM as SHADOW_EDGE_MM

from .lc2_pipeline import run_lc2
from .lc2_stages import DEFAULT_LEVELS, N_REFINE, LC2Options, Level
from .multistart import N_THREADS
from .registration_result import ProgressFn, RegistrationResult
from .volume_sweep import check_shadows_option, with_shadows_marked

#: Translation search (mm) of the gated pass: it starts at the CT's phase already.
GATED_SEARCH_MM = 7.5
#: Share of the progress bar taken by the whole-sweep pass when a gated pass follows.
GATED_PROGRESS_SPLIT = 0.6

__all__ = ["DEFAULT_LEVELS", "GATED_SEARCH_MM", "LC2Options", "Level", "register_lc2", "register_sweep"]


def register_sweep(ct: Volume, sweep: Sweep, init_reference_to_ct, *, method: str = "lc2",
                   frames: Optional[Sequence[int]] = None, roi_center_ct=None,
                   progress: Optional[ProgressFn] = None, seed: int = 0, n_starts: int = 4,
                   levels: Sequence[Tuple[float, int, int]] = DEFAULT_LEVELS,
                   max_evals_per_start: int = 150, max_coarse_evals: int = 120,
                   targets: Optional[dict] = None, hessian: bool = True,
                   translation_search_mm: float = 15.0, search_step_mm: float = 7.5,
                   n_refine: Optional[int] = N_REFINE, n_threads: int = N_THREADS,
                   breathing: str = "detect", breath_hold: str = "expiration",
                   shadows: str = "drop", small_patches: bool = True,
                   shadow_edge_mm: float = SHADOW_EDGE_MM) -> RegistrationResult:
    """Refine ``init_reference_to_ct`` by maximising LC2 (or MI) between the CT and the sweep.

    ``progress(fraction, message)`` is called during the work; returning False cancels
    (raises CancelledError). Raises InputError when all frames are INVALID or the sweep
    does not overlap the CT under the start. ``targets``: ``{name: {"point": CT LPS mm,
    "radius_mm": R}}`` for the uncertainty report (default: the ROI centre); ``hessian``:
    also estimate the Laplace covariance (28 extra fine-level evaluations).
    ``levels``: ``(pixel_mm, patch_px, max_frames)`` per level, coarse to fine.
    ``translation_search_mm``: before the multi-start, the coarse metric is evaluated on a
    translation grid (+- this range, ``search_step_mm`` apart); the best distinct grid points
    replace the random starts (the unperturbed start stays first). It widens the capture
    range for translation errors, which dominate a landmark or manual start.
    ``n_refine``: how many of the best coarse results continue at the middle level (None: all).
    ``n_threads``: threads for the grid and the starts (results do not depend on it).
    ``breathing`` (LC2): "off", "detect" (default; :mod:`registration.align.motion`: breathing found
    in the sweep is reported and half its amplitude added to the registration error, verdict
    at best "check") or "gate" (experimental: registered again on the frames at the CT's
    breath-hold phase ``breath_hold``, "expiration" or "inspiration"; it is not better on
    average, see docs/registration_tuning.md#breathing).
    ``shadows`` (LC2, freehand sweeps): "drop" (default) leaves the frames' acoustic shadows
    behind ribs and gas out of the metric (:mod:`registration.ultrasound.shadows`), "keep" uses
    every fan pixel. After the depth normalisation a shadow's noise weighs like tissue, and its
    edges move with the ribs, not with the CT's anatomy under the pose being tried: on sweeps
    simulated with other seeds than the demo's, starting at the true pose, kept shadows pulled
    the optimum 4.7-6.3 mm away, dropped 0.7 mm (benchmarks/results/simulator_variants.md). Each
    shadow goes with a sideways margin (``shadows.EDGE_MM``): beside a rib the shadow's edge is
    what LC2 patches fitted (benchmarks/results/deformation.md, ninth session of 2026-12-03);
    ``shadow_edge_mm`` sets it (MR -> US passes 0: with it a dome sweep of the demo's MR ended
    9.8 mm off at a lesion, tests/test_mri_sweep_levels.py).
    ``small_patches`` (LC2, default levels): after the levels, a second search from the result with
    smaller patches and without the coarse level, kept where the fine level prefers it
    (:func:`~registration.align.lc2_stages.small_patch_search`).
    """
    method = str(method).lower()
    check_shadows_option(shadows)
    options = LC2Options(
        levels=tuple(Level(*lev) for lev in levels), n_starts=n_starts, seed=seed,
        max_evals_per_start=max_evals_per_start, max_coarse_evals=max_coarse_evals,
        translation_search_mm=translation_search_mm, search_step_mm=search_step_mm, n_refine=n_refine,
        n_threads=n_threads, hessian=hessian, frames=None if frames is None else tuple(int(f) for f in frames),
        roi_center_ct=None if roi_center_ct is None else tuple(float(v) for v in np.ravel(roi_center_ct)),
        breathing=breathing, breath_hold=breath_hold, small_patches=small_patches)
    init = as_matrix(init_reference_to_ct, name="initial reference_to_ct")
    if method == "mi":
        from .mi_registration import register_sweep_mi
        return register_sweep_mi(ct, sweep, init, frames=frames, roi_center_ct=roi_center_ct,
                                 progress=progress, seed=seed, n_starts=n_starts, targets=targets)
    if method != "lc2":
        raise InputError(f"unknown registration method '{method}'", fix="use lc2 or mi")
    marked = with_shadows_marked(sweep, shadows, edge_mm=shadow_edge_mm)
    return register_lc2(ct, marked, init, options, targets=targets, progress=progress)


def register_lc2(ct: Volume, sweep: Sweep, init: np.ndarray, options: LC2Options, *,
                 targets: Optional[dict] = None, progress: Optional[ProgressFn] = None) -> RegistrationResult:
    """LC2 on the whole sweep; with ``options.breathing == "gate"`` and breathing found, again on
    the frames at the CT's phase, from the whole-sweep result moved to that phase (the
    capture-range check still measures from ``init``)."""
    if not sweep.has_images:
        raise InputError("the sweep has no image frames (tracker-only sequence)", path=sweep.source,
                         fix="register with a sequence that holds ultrasound images")
    gate = options.breathing == "gate"
    with ThreadPoolExecutor(max_workers=max(options.n_threads - 1, 1)) as pool:
        first = run_lc2(ct, sweep, init, options, pool,
                        _scaled(progress, 0.0, GATED_PROGRESS_SPLIT, "whole sweep, ") if gate else progress,
                        targets=targets)
        report = first.breathing or {}
        if not gate or not report.get("gated_frames"):
            return first
        shift = np.eye(4)
        shift[2, 3] = report["ct_phase_shift_mm"]          # along S (LPS +z), mm
        gated_options = replace(options, frames=tuple(report["gated_frames"]), translation_search_mm=GATED_SEARCH_MM,
                                search_step_mm=options.search_step_mm / 2)
        gated = run_lc2(ct, sweep, shift @ first.reference_to_ct, gated_options, pool,
                        _scaled(progress, GATED_PROGRESS_SPLIT, 1.0, "breath-hold frames, "), targets=targets,
                        earlier_breathing=report,
                        assess_from=init)
    gated.timings_s = {"whole_sweep": first.wall_time_s, **gated.timings_s}
    gated.wall_time_s += first.wall_time_s
    gated.iterations += first.iterations
    gated.init_reference_to_ct = init
    return gated


def _scaled(progress: Optional[ProgressFn], lo: float, hi: float, prefix: str = "") -> Optional[ProgressFn]:
    """``progress`` with its fraction mapped to [lo, hi] and ``prefix`` before its message
    (two registrations in a row)."""
    if progress is None:
        return None
    return lambda f, msg: progress(lo + (hi - lo) * f, prefix + msg)
