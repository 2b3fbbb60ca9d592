"""Plan a case: per lesion visibility, safe trajectories, guidance; per case ranking.

``plan_case`` is the one entry point the CLI and the GUI call. Inputs are a CT
(Volume, LPS) and a LabelMap on the same grid; optionally an arterial phase on
the same grid, a sweep with ``reference_to_ct`` and the registration RESULT
dict, a lesion name or a point target (LPS mm). Output is a
:class:`PlanResult` holding the JSON-ready ``plan`` (DESIGN section 6,
planner/export/plan_schema.json) and the anatomy used, for the report.

The stages live beside it: :mod:`planner.anatomy.lesion_targets` (lesions and
target points), :mod:`planner.paths.planning_grid` (coarser grid for large
CTs), :mod:`.lesion_plan` (one lesion), :mod:`planner.advice.fusion_error`
(registration TRE at a target).
"""
from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from planner.advice import visibility
from planner.advice.bmode_visibility import FATTY_LIVER_ATTENUATION, NORMAL_LIVER_ATTENUATION
from planner.advice.case_advice import next_best_reason, recommend_case
from planner.advice.fatty_liver import estimate_fatty_liver
from planner.anatomy.lesion_targets import PlanTarget, lesions_to_plan, point_target
from planner.anatomy.provenance import anatomy_origin
from planner.anatomy.structures import HARD_CLASSES, Anatomy, build_anatomy
from planner.paths import ct_guidance
from planner.paths.clearance import ClearanceOracle
from planner.paths.constraints import REJECT_TEXT, SOFT_TEXT, Constraints
from planner.paths.planning_grid import planning_grid
from planner.paths.planning_maps import liver_sdf
from planner.paths.trajectories import fibonacci_sphere
from registration.spatial.errors import InputError
from registration.spatial.progress import Stage, StagedProgress
from registration.spatial.volume import LabelMap, Volume

from .lesion_plan import CaseInputs, PlanStats, plan_lesion

PLAN_VERSION = "1.2"                 # plan_schema.json: 1.2 adds safe/violations, conditional advice
SOFTWARE_VERSION = "0.1.0"
GUIDANCE_CHOICES = ("us", "ct", "auto")
MAX_LENGTH_LIMIT_MM = 200.0          # DESIGN section 7: length <= 150 mm, configurable to 200
DEFAULT_DIRECTIONS = 3000            # candidate needle directions per target (Fibonacci sphere)
WINDOW_DIRECTIONS = 1500             # probe directions tried for each lesion's acoustic window
DEFAULT_FREQUENCY_MHZ = 3.5          # abdominal convex probe
DEFAULT_TOP_K = 3                    # paths kept per guidance and lesion
#: CTs with more voxels are planned on a coarser grid (time per grid size:
#: benchmarks/results/planning.md).
DEFAULT_MAX_PLANNING_VOXELS = 12_000_000
#: Expected seconds per planning stage, for the progress bar's shares (only their ratios matter;
#: measured on the demo case: benchmarks/results/planning.md#progress-weights). Per lesion:
#: LESION_STAGES, in plan_lesion's order.
CASE_STAGE_S = {"grid": 1.6, "anatomy": 4.0, "inputs": 2.8, "ranking": 0.02}
#: Lesions planned at once by threads (numpy, scipy and the KD-trees release the GIL); 1: one by one.
PLAN_THREADS = max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
LESION_STAGES = (("maps", "safety margins", 0.06), ("paths", "needle paths", 0.44),
                 ("visibility", "acoustic window", 0.06), ("us_paths", "probe positions", 0.44),
                 ("ct_paths", "CT-guided paths", 0.42))


@dataclass
class PlanResult:
    """A plan (``plan``: the plan.json dict), the anatomy it was planned on and each target's mask."""
    plan: dict
    anatomy: Anatomy
    lesion_masks: dict


def plan_case(ct: Volume, labels: LabelMap, *, ct_arterial: Optional[Volume] = None, sweep=None,
              reference_to_ct: Optional[np.ndarray] = None, registration: Optional[dict] = None,
              lesion: Optional[str] = None, target_lps=None, guidance: str = "auto",
              constraints: Optional[Constraints] = None, n_directions: int = DEFAULT_DIRECTIONS,
              frequency_mhz: float = DEFAULT_FREQUENCY_MHZ, top_k: int = DEFAULT_TOP_K, labels_path=None,
              ct_path=None, max_planning_voxels: int = DEFAULT_MAX_PLANNING_VOXELS,
              progress: Optional[Callable[[float, str], bool]] = None) -> PlanResult:
    """Plan every lesion (or ``lesion``, or a point ``target_lps``) of a case.

    A CT with more than ``max_planning_voxels`` voxels is planned on a coarser
    grid (see :func:`planning_grid`): candidates are found there, and every
    path the plan proposes as safe is then checked against the labels at full
    resolution (:mod:`planner.paths.clearance`, DESIGN section 7); the plan
    records the grid. ``progress(fraction, stage)`` (the stages and their shares:
    :func:`_case_progress`, per lesion ``LESION_STAGES``) returning False cancels
    (CancelledError).
    """
    c = _checked_constraints(guidance, constraints)
    t0 = time.perf_counter()
    staged = _case_progress(progress, ct, labels, single=lesion is not None or target_lps is not None,
                            max_planning_voxels=max_planning_voxels)
    staged.begin("grid")
    _check_grids(ct, labels, ct_arterial, ct_path=ct_path, labels_path=labels_path)
    source_spacing = [round(float(x), 4) for x in ct.spacing]
    full_labels = labels
    ct, labels, ct_arterial, extra, coarse, big_full = planning_grid(ct, labels, ct_arterial, max_planning_voxels)
    staged.begin("anatomy")
    # on the second core while the rest is prepared and the first lesions' paths are checked: the
    # acoustic block map (lesions wait for it at their visibility stage), started as soon as the
    # body, bone, lung and gas masks exist, and the full-resolution trees every path check needs
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="acoustic-block")
    started = []

    def start_block_map(masks) -> None:
        started.append(pool.submit(visibility.block_map_from_masks, ct.array, masks, ct.spacing[::-1]))
    try:
        anatomy = build_anatomy(ct, labels, labels_path=labels_path, extra_masks=extra, masks_ready=start_block_map)
        block = started[0] if started else pool.submit(visibility.acoustic_block_map, anatomy)
    finally:
        pool.shutdown(wait=False)                 # its thread ends with its one task
    oracle = ClearanceOracle(full_labels, anatomy, big_full)
    threading.Thread(target=_prepare_quietly, args=(oracle,), name="clearance-trees", daemon=True).start()
    if target_lps is not None:
        targets = [point_target(target_lps, anatomy, ct_path)]
    else:
        targets = lesions_to_plan(labels, ct, lesion, labels_path)
        if not targets:
            raise InputError("the label map has no lesion (no 'lesion_*' label with voxels)",
                             path=labels_path, fix="add lesion labels or pass --target x,y,z")
    staged.begin("inputs")
    case = _case_inputs(ct, ct_arterial, anatomy, c, targets, guidance=guidance, top_k=top_k,
                        frequency_mhz=frequency_mhz, n_directions=n_directions, sweep=sweep,
                        reference_to_ct=reference_to_ct, registration=registration, oracle=oracle, block=block)
    per_lesion = staged.nested("lesions", [
        Stage(f"{n}:{key}", f"lesion {n + 1} of {len(targets)} ({t.name}): {label}", weight)
        for n, t in enumerate(targets) for key, label, weight in LESION_STAGES], numbered=False)
    facts, lesions_out, stats = _plan_lesions(targets, case, per_lesion)
    staged.begin("ranking")
    recommendation = recommend_case(facts, has_pancreatic_mass="pancreatic_mass" in labels.names)
    _rank_and_point(lesions_out, recommendation["ranking"])
    staged.done(f"planned {len(targets)} target(s) in {time.perf_counter() - t0:.0f} s")
    plan = _plan_json(ct, anatomy, c, guidance=guidance, source_spacing=source_spacing,
                      resampled=coarse is not None, arterial=ct_arterial is not None,
                      reference_to_ct=reference_to_ct, registration=registration, lesions=lesions_out,
                      recommendation=recommendation, total_s=time.perf_counter() - t0, stats=stats)
    plan["anatomy_source"] = anatomy_origin(full_labels)    # the CLI may replace it with a fuller one
    return PlanResult(plan=plan, anatomy=anatomy, lesion_masks={t.name: t.mask for t in targets})


def _plan_lesions(targets: List[PlanTarget], case: CaseInputs, per_lesion: StagedProgress):
    """(facts, plan entries, stats) of every target, in order. With ``PLAN_THREADS`` > 1 the lesions
    are planned by that many threads (the same results: each lesion's plan depends only on the case
    inputs), and this thread reports every stage a worker begins, as it begins, at the share of the
    lesions' work done by then (:func:`_lesion_work_done`): lesions run side by side, so reporting
    them one after the other held the bar on the slowest first lesion and then jumped."""
    stats = [PlanStats() for _ in targets]
    if PLAN_THREADS < 2 or len(targets) < 2:
        out = [plan_lesion(t, case, s, stage=lambda key, n=n: per_lesion.begin(f"{n}:{key}"))
               for n, (t, s) in enumerate(zip(targets, stats))]
    else:
        events: List[Tuple[int, str]] = []      # (lesion, stage key) in the order the workers began them
        lock = threading.Lock()

        def began(n: int, key: str) -> None:
            with lock:
                events.append((n, key))
        pool = ThreadPoolExecutor(max_workers=PLAN_THREADS, thread_name_prefix="plan-lesion")
        try:
            futures = [pool.submit(plan_lesion, t, case, s, stage=lambda key, n=n: began(n, key))
                       for n, (t, s) in enumerate(zip(targets, stats))]
            shown, pending = 0, set(futures)
            while True:
                with lock:
                    seen = list(events)
                finished = [f.done() for f in futures]
                for k in range(shown, len(seen)):
                    n, key = seen[k]
                    per_lesion.report_fraction(_lesion_work_done(seen[:k + 1], finished, len(targets)),
                                               per_lesion.stages[_stage_index(n, key)].label)
                shown = len(seen)
                if not pending:
                    break
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for f in done:
                    f.result()                          # a lesion's error stops the case now
            out = [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    total = PlanStats(sum(s.candidates_checked for s in stats), sum(s.evaluate_s for s in stats))
    return [f for f, _ in out], [lo for _, lo in out], total


def _stage_index(n: int, key: str) -> int:
    """Index of lesion ``n``'s stage ``key`` in the flattened per-lesion stages."""
    return n * len(LESION_STAGES) + [k for k, _, _ in LESION_STAGES].index(key)


def _lesion_work_done(events: List[Tuple[int, str]], finished: List[bool], n_lesions: int) -> float:
    """Share (0-1) of all lesions' expected work done: per lesion, the weights of the stages it has
    left (every stage before the last one begun; all of them once it is finished)."""
    weights = {k: w for k, _, w in LESION_STAGES}
    order = [k for k, _, _ in LESION_STAGES]
    last = {}
    for n, key in events:
        last[n] = max(last.get(n, 0), order.index(key))
    done = sum(sum(weights.values()) if finished[n] else sum(weights[k] for k in order[:i])
               for n, i in last.items())
    return done / (n_lesions * sum(weights.values()))


def _prepare_quietly(oracle: ClearanceOracle) -> None:
    """``oracle.prepare()`` for a background thread: a failure there is left to the planning, which
    builds what it needs on demand and reports the error in its own thread."""
    try:
        oracle.prepare()
    except Exception:   # noqa: BLE001 - re-raised where the planning builds the same tree
        pass


def _case_progress(progress, ct: Volume, labels: LabelMap, *, single: bool,
                   max_planning_voxels: int) -> StagedProgress:
    """The planning stages: grid, anatomy, shared inputs, the lesions (their own stages, once
    found), ranking. The lesions' share is estimated from the ``lesion*`` label names."""
    n_est = 1 if single else max(sum(str(k).startswith("lesion") for k in labels.names), 1)
    lesion_s = n_est * sum(w for _, _, w in LESION_STAGES)
    grid_s = CASE_STAGE_S["grid"] if ct.array.size > max_planning_voxels else 0.05
    return StagedProgress(progress, [
        Stage("grid", "preparing the planning grid", grid_s),
        Stage("anatomy", "risk structures", CASE_STAGE_S["anatomy"]),
        Stage("inputs", "acoustic windows and directions", CASE_STAGE_S["inputs"]),
        Stage("lesions", "lesions", lesion_s),
        Stage("ranking", "ranking", CASE_STAGE_S["ranking"])], name="planning", numbered=False)


def _checked_constraints(guidance: str, constraints: Optional[Constraints]) -> Constraints:
    """The constraints to plan with; InputError for an unknown guidance or a length out of range."""
    if guidance not in GUIDANCE_CHOICES:
        raise InputError(f"guidance must be us, ct or auto, got {guidance!r}")
    c = constraints or Constraints()
    if not 0 < c.max_length_mm <= MAX_LENGTH_LIMIT_MM:
        raise InputError(f"max length {c.max_length_mm} mm is outside (0, {MAX_LENGTH_LIMIT_MM:g}] mm",
                         fix=f"use --max-length-mm between 50 and {MAX_LENGTH_LIMIT_MM:g}")
    return c


def _check_grids(ct: Volume, labels: LabelMap, ct_arterial: Optional[Volume], *, ct_path, labels_path) -> None:
    """InputError unless the arterial phase and the labels are on the CT's grid."""
    if ct_arterial is not None and not ct_arterial.same_grid(ct):
        raise InputError("the arterial phase is not on the portal CT grid", path=ct_path,
                         fix="resample the arterial phase onto the portal CT")
    if not ct.same_grid(labels):
        raise InputError("the label map is not on the CT grid", path=labels_path,
                         fix="load the labels with the CT as reference (resampled by physical position)")


def _rank_and_point(lesions_out: List[dict], ranking: List[str]) -> None:
    """Each lesion's accessibility rank; a lesion without a safe path points to the next-best one."""
    guidance_of = {lo["name"]: lo["recommendation"]["guidance"] for lo in lesions_out}
    for lo in lesions_out:
        lo["accessibility_rank"] = ranking.index(lo["name"]) + 1
        if guidance_of[lo["name"]] == "none":
            why = next_best_reason(lo["name"], ranking, guidance_of)
            if why is not None:
                lo["recommendation"]["reasons"].append(why.text)
                lo["recommendation"]["reason_codes"].append(why.code)


def _case_inputs(ct: Volume, ct_arterial: Optional[Volume], anatomy: Anatomy, constraints: Constraints,
                 targets: List[PlanTarget], *, guidance: str, top_k: int, frequency_mhz: float,
                 n_directions: int, sweep, reference_to_ct, registration, oracle: ClearanceOracle,
                 block) -> CaseInputs:
    """What every lesion is planned with: the fatty-liver estimate and the depth limit it implies,
    the acoustic block map (``block``: an array or a Future of it), the candidate needle directions
    (sphere + gantry planes) and the window directions, computed once."""
    all_lesions = np.zeros(ct.array.shape, bool)
    for t in targets:
        if not t.point_target:
            all_lesions |= t.mask
    sdf = liver_sdf(anatomy, all_lesions)
    fatty = estimate_fatty_liver(ct.array, anatomy.masks["liver"], anatomy.masks.get("spleen"), ct.spacing,
                                 liver_depth_mm=-sdf)
    alpha = FATTY_LIVER_ATTENUATION if fatty.fatty else NORMAL_LIVER_ATTENUATION
    return CaseInputs(
        ct=ct, ct_arterial=ct_arterial, anatomy=anatomy, constraints=constraints, all_lesions=all_lesions,
        block_map=block,
        depth_limit_mm=visibility.depth_limit_mm(frequency_mhz, attenuation_db_cm_mhz=alpha),
        frequency_mhz=frequency_mhz,
        directions=np.concatenate([fibonacci_sphere(n_directions),
                                   ct_guidance.gantry_directions(constraints.max_gantry_tilt_deg)]),
        window_directions=fibonacci_sphere(WINDOW_DIRECTIONS), guidance=guidance, top_k=top_k, oracle=oracle,
        fatty=fatty, attenuation_db_cm_mhz=alpha, liver_sdf_mm=sdf, sweep=sweep, reference_to_ct=reference_to_ct,
        registration=registration)


def _plan_json(ct: Volume, anatomy: Anatomy, c: Constraints, *, guidance: str, source_spacing, resampled: bool,
               arterial: bool, reference_to_ct, registration: Optional[dict], lesions: List[dict],
               recommendation: dict, total_s: float, stats: PlanStats) -> dict:
    """The plan.json dict (planner/export/plan_schema.json) of a planned case."""
    return {
        "version": PLAN_VERSION,
        "software": {"name": "ctus", "version": SOFTWARE_VERSION},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "coordinate_system": "LPS", "units": "mm",
        "ct": {"shape_ijk": list(ct.shape_ijk), "spacing_mm": [round(float(s), 4) for s in ct.spacing],
               "source_spacing_mm": source_spacing, "resampled_for_planning": resampled,
               "orientation": ct.orientation_letters(), "phases": ["portal"] + (["arterial"] if arterial else [])},
        "constraints": {"max_length_mm": c.max_length_mm, "vessel_margin_mm": c.vessel_margin_mm,
                        "vessel_floor_mm": c.vessel_floor_mm, "min_liver_mm": c.min_liver_mm,
                        "max_capsule_angle_deg": c.max_capsule_angle_deg, "grazing_angle_deg": c.grazing_angle_deg,
                        "max_gantry_tilt_deg": c.max_gantry_tilt_deg, "needle_gauge": c.needle_gauge,
                        "step_mm": c.step_mm, "extra_margin_mm": round(c.extra_margin_mm, 2),
                        "patient_position": c.patient_position, "guidance": guidance,
                        "hard_rules": dict(REJECT_TEXT), "soft_rules": dict(SOFT_TEXT),
                        "hard_classes_checked": sorted(k for k in HARD_CLASSES if k in anatomy.masks)
                        + (["vessel_large"] if "vessel_large" in anatomy.masks else [])},
        "anatomy": anatomy.summary(), "anatomy_notes": list(anatomy.notes),
        "registration": None if reference_to_ct is None else {
            "reference_to_ct": np.asarray(reference_to_ct, float).round(6).tolist(),
            "metrics": {k: v for k, v in (registration or {}).items()
                        if isinstance(v, (int, float, str)) and not isinstance(v, bool)}},
        "lesions": lesions,
        "recommendation": recommendation,
        "timing": {"total_s": round(total_s, 2),
                   "candidates_checked": stats.candidates_checked,
                   "candidates_per_s": round(stats.candidates_checked / max(stats.evaluate_s, 1e-9))},
    }
