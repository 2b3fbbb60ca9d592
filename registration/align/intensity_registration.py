"""Automatic rigid CT -> tracked-ultrasound registration (LC2 on frames; MI baseline).

Result: ``reference_to_ct`` (Reference mm -> CT LPS mm), refined from an
initial estimate (landmarks or a manual placement).

Design (LC2):

* **Frames, not a reconstructed sub-volume.** The CT features are resliced on
  each selected US frame plane (``image_to_ct = reference_to_ct @
  image_to_reference``) and LC2 is computed on the 2D frames with 2D patches.
  Measured on the demo survey sweep (640x480 px, 120 frames, shared 2-core
  machine under load): resampling 10 frames to 2.5 mm takes 0.5 s, whereas
  reconstructing the sweep at 2 mm (what the MI baseline does) takes 3.1 s
  before the first evaluation, blurs speckle by compounding and interpolates
  holes; with frames the fan mask and beam geometry stay exact and the sample
  count per level is set directly (frames x pixel size). An LC2-on-sub-volume
  variant was not implemented, so the two were not compared head to head.
* CT features ``p`` (soft-tissue window) and ``g`` (gradient magnitude) are
  precomputed once per resolution level on a resampled CT grid cropped to the
  sweep, and sampled at the fan pixels with trilinear ``map_coordinates``
  (:mod:`registration.align.lc2_cost`).
* Multi-resolution (4, 2.5, 1.6 mm pixels by default), multi-start (the
  initial pose plus the best points of a coarse translation grid, or seeded
  random perturbations), bounded Nelder-Mead over 6
  rigid parameters ``(rx, ry, rz [deg], tx, ty, tz [mm])`` of a CT-space update
  about a centre near the ROI: ``reference_to_ct = rigid(params, centre) @ init``.
* Frames with INVALID tracking are never used.

Speed (2026-11-21, session 2; 20-trial benchmark, 2 cores, load ~1): 6.1 s -> 5.0 s median
with the same success, by (a) the US side of LC2 precomputed once per level
(:class:`~registration.align.lc2.FixedUS`: 7 instead of 10 filters per evaluation), (b) the fine
level's evaluations split over 2 threads (sampling, then patch sums: 28 -> 16 ms), (c) the
translation grid at 7.5 mm steps (125 instead of 343 points) and 120 instead of 200 coarse
evaluations per start, (d) the CT block-averaged to the level's spacing before smoothing
(features 0.85 -> 0.5 s). Per stage (median): features 0.5 s, grid 0.3, coarse starts 0.9,
middle level 1.45, fine level 1.1, Hessian 0.6 (``RegistrationResult.timings_s``).

The MI baseline lives in :mod:`registration.align.mi_registration`; the optimisation helpers
(threads, Nelder-Mead, translation grid, starts) in :mod:`registration.align.multistart`; the
result classes in :mod:`registration.align.registration_result`.
"""
from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import CancelledError, InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply, as_matrix, rigid_matrix
from registration.spatial.volume import Volume

from .lc2_cost import FrameLC2Cost, FrameSamples, crop_to_points, ct_feature_levels, frame_samples, select_frames
from .multistart import (
    N_THREADS,
    PARAM_SCALE,
    EvaluationProgress,
    chunked_map,
    optimise_nelder_mead,
    run_parallel,
    start_perturbations,
    translation_search_starts,
)
from .registration_result import ProgressFn, RegistrationResult, StartResult

#: (pixel size mm, patch size px, max frames) per level, coarse to fine. Chosen by
#: measurement on the demo survey sweep: 1.5 mm / 16 frames cost 10x more per evaluation
#: than 2.5 mm / 10 frames (425 vs 41 ms, loaded machine) for a 0.4 mm smaller metric
#: bias at the true pose (1.2 vs 1.6 mm median); the last, polishing level is short.
#: Bias (single level, NM started at the true pose; survey / lesion_1 / lesion_4 sweeps, TRE rms):
#: 4 mm/10 fr 3.5/6.7/1.2 mm, 2.5 mm/10 fr 1.5/5.3/0.7, 1.6 mm/6 fr 5.9/1.5/0.5, 1.6 mm/16 fr
#: 0.6/0.9/0.35, 1.2 mm/6 fr 1.5/0.9/0.3: few fine frames, not the pixel size, dominate it.
#: ``levels=((4.0, 5, 10), (2.5, 7, 10), (1.6, 9, 12))`` measured 95 % success, median TRE
#: 0.68 mm (p90 2.31) in 8.0 s on the 20-trial benchmark vs 1.21 mm (p90 2.81) in 6.3 s
#: with 6 fine frames: 12 are the default, so refinement does not pull a good landmark
#: registration ~1.5 mm off (the bias), at 1.7 s more.
DEFAULT_LEVELS: Tuple[Tuple[float, int, int], ...] = ((4.0, 5, 10), (2.5, 7, 10), (1.6, 9, 12))
#: CT margin (mm) kept around the sweep's fan under the start (covers BOUNDS translation).
CROP_MARGIN_MM = 45.0
#: Minimum fraction of fan samples that must fall inside the CT under the start.
MIN_OVERLAP = 0.2
#: Coarse results (of n_starts) continued at the middle level (None: all). 2 of 4 gave the
#: same TRE on 8 benchmark trials (median 1.34 mm) in 9.0 instead of 10.5 s (1 thread), but
#: the verdict needs >= 3 refined starts to call an unconfirmed optimum poor (a start far
#: outside the capture range was then called "check"), so all starts are refined.
N_REFINE: Optional[int] = None
#: Translation search (mm) of the gated registration: it starts at the CT's phase already.
GATED_SEARCH_MM = 7.5


def roi_center(sweep: Sweep, indices: np.ndarray, init: np.ndarray, samples: FrameSamples) -> np.ndarray:
    """Centroid of the fan samples mapped to CT under ``init`` (rotation centre, mm)."""
    return apply(init, samples.points_ref.mean(axis=0))


def register_sweep(ct: Volume, sweep: Sweep, init_reference_to_ct, *, method: str = "lc2",
                   frames: Optional[Sequence[int]] = None, roi_center_ct=None,
                   progress: Optional[ProgressFn] = None, seed: int = 0, n_starts: int = 4,
                   levels: Sequence[Tuple[float, int, int]] = DEFAULT_LEVELS,
                   max_evals_per_start: int = 150, max_coarse_evals: int = 120,
                   targets: Optional[dict] = None, hessian: bool = True,
                   translation_search_mm: float = 15.0, search_step_mm: float = 7.5,
                   n_refine: Optional[int] = N_REFINE, n_threads: int = N_THREADS,
                   breathing: str = "detect", breath_hold: str = "expiration") -> RegistrationResult:
    """Refine ``init_reference_to_ct`` by maximising LC2 (or MI) between the CT and the sweep.

    ``progress(fraction, message)`` is called during the work; returning False cancels
    (raises CancelledError). Raises InputError when all frames are INVALID or the sweep
    does not overlap the CT under the start. ``targets``: ``{name: {"point": CT LPS mm,
    "radius_mm": R}}`` for the uncertainty report (default: the ROI centre); ``hessian``:
    also estimate the Laplace covariance (28 extra fine-level evaluations).
    ``translation_search_mm``: before the multi-start, the coarse metric is evaluated on a
    translation grid (+- this range, ``search_step_mm`` apart); the best distinct grid points
    replace the random starts (the unperturbed start stays first). It widens the capture
    range for translation errors, which dominate a landmark or manual start.
    ``n_refine``: how many of the best coarse results continue at the middle level (None: all).
    ``n_threads``: threads for the grid and the starts (results do not depend on it).
    ``breathing`` (LC2): "off", "detect" (default; :mod:`registration.align.motion`: breathing found
    in the sweep is reported and half its amplitude added to the registration error, verdict
    at best "check") or "gate" (experimental: registered again on the frames at the CT's
    breath-hold phase ``breath_hold``, "expiration" or "inspiration"; on 6 breathing trials it
    helped once and made two slightly worse, see benchmarks/registration.py).
    """
    method = str(method).lower()
    if breathing not in ("off", "detect", "gate"):
        raise InputError(f"unknown breathing mode '{breathing}'", fix="use off, detect or gate")
    if breath_hold not in ("expiration", "inspiration"):
        raise InputError(f"unknown breath-hold phase '{breath_hold}'", fix="use expiration or inspiration")
    init = as_matrix(init_reference_to_ct, name="initial reference_to_ct")
    if method == "mi":
        from .mi_registration import register_sweep_mi
        return register_sweep_mi(ct, sweep, init, frames=frames, roi_center_ct=roi_center_ct,
                                 progress=progress, seed=seed, n_starts=n_starts, targets=targets)
    if method != "lc2":
        raise InputError(f"unknown registration method '{method}'", fix="use lc2 or mi")
    if not sweep.has_images:
        raise InputError("the sweep has no image frames (tracker-only sequence)", path=sweep.source,
                         fix="register with a sequence that holds ultrasound images")
    args = (ct, sweep, frames, roi_center_ct, seed, n_starts, levels, max_evals_per_start, max_coarse_evals,
            targets, hessian, n_refine, n_threads)
    with ThreadPoolExecutor(max_workers=max(n_threads - 1, 1)) as pool:
        first_progress = progress if breathing != "gate" else _scaled(progress, 0.0, 0.6)
        res = _register_lc2(*args, init, first_progress, translation_search_mm, search_step_mm, pool,
                            breathing=breathing if breathing == "off" else breath_hold,
                            gate=breathing == "gate")
        report = res.breathing or {}
        if breathing != "gate" or not report.get("gated_frames"):
            return res
        # Register again on the frames at the CT's phase, from the whole-sweep result moved to
        # that phase; the capture-range check still measures from the caller's start.
        shift = np.eye(4)
        shift[2, 3] = report["ct_phase_shift_mm"]
        gated = _register_lc2(*args[:2], report["gated_frames"], *args[3:], shift @ res.reference_to_ct,
                              _scaled(progress, 0.6, 1.0), GATED_SEARCH_MM, search_step_mm / 2, pool,
                              breathing=report, assess_init=init)
        gated.timings_s = {"whole_sweep": res.wall_time_s, **gated.timings_s}
        gated.wall_time_s += res.wall_time_s
        gated.iterations += res.iterations
        gated.init_reference_to_ct = init
        return gated


def _scaled(progress: Optional[ProgressFn], lo: float, hi: float) -> Optional[ProgressFn]:
    """``progress`` with its fraction mapped to [lo, hi] (two registrations in a row)."""
    if progress is None:
        return None
    return lambda f, msg: progress(lo + (hi - lo) * f, msg)


def _register_lc2(ct, sweep, frames, roi_center_ct, seed, n_starts, levels, max_evals_per_start,
                  max_coarse_evals, targets, hessian, n_refine, n_threads, init, progress,
                  translation_search_mm, search_step_mm, pool, *, breathing="expiration", gate=False,
                  assess_init=None) -> RegistrationResult:
    """The LC2 pipeline of :func:`register_sweep` (``pool``: its worker threads). ``breathing``:
    "off", a breath-hold phase (analyse the sweep's breathing at the result), or an earlier
    report (dict) to carry into the assessment; ``gate``: keep the report's CT-phase frames for
    a gated registration (else they are dropped: nothing was gated). ``assess_init``: the start
    the capture-range check measures from (default ``init``)."""
    t0 = time.perf_counter()
    timings: dict = {}
    mark = [t0]

    def lap(stage):
        now = time.perf_counter()
        timings[stage] = timings.get(stage, 0.0) + now - mark[0]
        mark[0] = now
    lv = []
    samples = [frame_samples(sweep, select_frames(sweep, nmax, frames), pixel_mm)
               for pixel_mm, _, nmax in levels]
    # Only the CT around the sweep (under the start, plus the search range) is needed.
    roi_ct = crop_to_points(ct, apply(init, samples[-1].points_ref), CROP_MARGIN_MM)
    feats = ct_feature_levels(roi_ct, [lev[0] for lev in levels])
    lap("ct_features")
    for (pixel_mm, patch, nmax), smp, feat in zip(levels, samples, feats):
        lv.append((FrameLC2Cost(feat, smp, patch), select_frames(sweep, nmax, frames)))
    coarse, fine = lv[0][0], lv[-1][0]
    overlap0 = fine.overlap(init)
    if overlap0 < MIN_OVERLAP:
        raise InputError(f"under the initial transform only {100 * overlap0:.0f} % of the sweep's fan "
                         f"lies inside the CT: the sweep and the CT do not overlap", path=sweep.source,
                         fix="check the initial transform / landmarks (units mm, LPS, Reference -> CT)")
    center = (np.asarray(roi_center_ct, float) if roi_center_ct is not None
              else roi_center(sweep, lv[-1][1], init, fine.samples))
    starts = start_perturbations(n_starts, seed)
    n_grid = int(round(2 * translation_search_mm / search_step_mm) + 1) ** 3 if translation_search_mm > 0 else 0
    prog = EvaluationProgress(progress, total=n_grid + len(starts) * max_coarse_evals + max_evals_per_start)
    history: List[Tuple[int, int, float]] = []
    counter = itertools.count(1)      # thread-safe in CPython (one C call)
    caller = threading.current_thread()
    cancel = threading.Event()

    def run(tasks):
        return run_parallel(tasks, n_threads, cancel, pool)

    def eval_map(fn, items):
        """One evaluation's halves on the threads (only where nothing else runs in parallel)."""
        return run([lambda x=x: fn(x) for x in items])

    def make_cost(c: FrameLC2Cost, level_id: int, base: np.ndarray, map_fn=None):
        def f(x):
            m = rigid_matrix(x * PARAM_SCALE, center) @ base
            if cancel.is_set():
                raise CancelledError("registration cancelled")
            value, inside = c.metric(m, map_fn)
            history.append((next(counter), level_id, value))
            # Progress callbacks (GUI) stay on the caller's thread.
            prog.step(f"LC2 level {level_id + 1}/{len(lv)}: {value:.4f}", threading.current_thread() is caller)
            # Moving the fan out of the CT must not pay: penalise lost overlap.
            return -value + 2.0 * max(0.0, 0.8 * overlap0 - inside)
        return f

    results: List[StartResult] = []
    initial_metric = fine.metric(init, eval_map)[0]
    if translation_search_mm > 0 and len(starts) > 1:
        starts = translation_search_starts(make_cost(coarse, 0, init), len(starts), translation_search_mm,
                                            search_step_mm, starts, run=run)
        lap("translation_grid")

    def counted(f):
        """f wrapped with its own evaluation count (the global counter is shared by threads)."""
        n = [0]

        def g(x):
            n[0] += 1
            return f(x)
        return g, n

    def coarse_start(s):
        x0 = s / PARAM_SCALE
        f, n = counted(make_cost(coarse, 0, init))
        m0 = -f(x0)
        x = optimise_nelder_mead(f, x0, max_coarse_evals, step=2.0, xatol=0.1, fatol=1e-4)
        m_end = rigid_matrix(x * PARAM_SCALE, center) @ init
        return StartResult(s, m_end, m0, -f(x), n[0] - 1)

    results = run([lambda s=s: coarse_start(s) for s in starts])
    lap("coarse_starts")
    if len(lv) > 1 and len(results) > 1:
        # Every start continues at level 1 (half the evaluations): the starts' spread is then
        # measured at 2.5 mm rather than at the coarse level's 4 mm, and the coarse level's
        # ranking (sometimes wrong) does not decide alone.
        if n_refine is not None:
            # Stable sort: ties keep the start order (the unperturbed start first).
            results = sorted(results, key=lambda r: -r.metric_final)[:max(int(n_refine), 1)]

        def refine(r):
            f, n = counted(make_cost(lv[1][0], 1, r.reference_to_ct))
            x = optimise_nelder_mead(f, np.zeros(6), max_evals_per_start // 2, step=0.5, xatol=0.05)
            return StartResult(r.start_params, rigid_matrix(x * PARAM_SCALE, center) @ r.reference_to_ct,
                               r.metric_initial, -f(x), r.evaluations + n[0])
        results = run([lambda r=r: refine(r) for r in results])
        lap("middle_level")
        first_fine = 2
    else:
        first_fine = 1
    best = max(results, key=lambda r: r.metric_final)
    # Remaining level(s): refine the best solution about the same centre.
    current = best.reference_to_ct
    for level_id, (c, _) in enumerate(lv[first_fine:], start=first_fine):
        f = make_cost(c, level_id, current, eval_map)
        last = level_id == len(lv) - 1 and len(lv) > 2
        # The finest level only polishes (small simplex, few evaluations): it is the costliest.
        x = optimise_nelder_mead(f, np.zeros(6), max_evals_per_start // 2 if last else max_evals_per_start,
                      step=0.25 if last else 0.5, xatol=0.05)
        current = rigid_matrix(x * PARAM_SCALE, center) @ current
    final_metric = fine.metric(current, eval_map)[0]
    lap("fine_level")
    n_eff = fine.samples.fan.sum() / float(fine.patch[1] * fine.patch[2])
    result = RegistrationResult(current, "lc2", float(initial_metric), float(final_metric), len(history),
                                time.perf_counter() - t0, center, results, history,
                                [int(i) for i in lv[-1][1]], init,
                                cost=lambda m: fine.metric(m)[0], n_eff=float(n_eff))
    from .uncertainty import assess, hessian_covariance
    if isinstance(breathing, dict):
        result.breathing = breathing
    elif breathing != "off":
        from .motion import analyse_breathing
        valid = np.unique(select_frames(sweep, len(sweep), frames))   # every valid frame asked for
        # The middle level: at the coarse one a static sweep's profiles faked 14 mm of breathing.
        mid = lv[min(1, len(lv) - 1)][0]
        rep = analyse_breathing(sweep, mid.level, current, valid, breath_hold=breathing,
                                patch_px=mid.patch[1], map_fn=eval_map)
        if not gate and rep.gated_frames is not None:
            rep.notes.append(f"not gated (breathing mode 'detect'): {len(rep.gated_frames)} frames were at "
                             "the CT's phase")
            rep.gated_frames = None
        result.breathing = rep.to_dict()
        lap("breathing")
    hess = None
    if hessian:
        # Two fine pixels (mm) / as many degrees: smaller steps measured LC2's speckle noise
        # rather than its curvature (spurious negative eigenvalues on the demo case).
        step = (2.0 * fine.level.spacing_mm,) * 6
        hess = hessian_covariance(result.cost, current, center, n_eff, step=step,
                                  map_fn=lambda fn, xs: chunked_map(fn, xs, run, n_threads))
        lap("hessian")
    if assess_init is not None:
        result.init_reference_to_ct = assess_init
    result.uncertainty = assess(result, targets or {}, n_eff=float(n_eff), hessian=hess,
                                resolution_mm=fine.level.spacing_mm,
                                sweep_points_ct=apply(current, fine.samples.points_ref),
                                breathing=result.breathing)
    result.init_reference_to_ct = init
    lap("assess")
    result.timings_s = timings
    result.wall_time_s = time.perf_counter() - t0
    if progress is not None and progress(1.0, f"LC2 done: {final_metric:.4f}") is False:
        raise CancelledError("registration cancelled")
    return result
