"""Plan one lesion (or point target): visibility, safe needle paths, fusion error, advice.

Frames and units: points and directions are CT LPS mm (directions are unit
vectors from the target towards the skin entry); masks are boolean arrays
``[k, j, i]`` on the (planning) CT grid; depths and lengths in mm, ultrasound
frequency in MHz, attenuation in dB. :func:`plan_lesion` is the body of the
per-lesion loop of :func:`planner.case.case_plan.plan_case`, which computes the
inputs shared by all lesions once (:class:`CaseInputs`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from planner.advice import visibility
from planner.advice.fusion_error import _total_error_mm, registration_tre_mm
from planner.advice.probe_poses import inplane_probe_poses
from planner.advice.reasons import Reason
from planner.advice.recommendation import LesionFacts, lesion_recommendation
from planner.anatomy.lesion_targets import PlanTarget
from planner.anatomy.structures import Anatomy
from planner.paths import ct_guidance
from planner.paths.constraints import REJECT_TEXT, Constraints
from planner.paths.planning_maps import PlanningMaps, build_maps
from planner.paths.trajectories import describe_rejections, evaluate, path_record, select_diverse
from registration.align.uncertainty import hit_probability
from registration.spatial.volume import Volume

# US paths: the cheapest safe candidates, spread this far apart, are searched for a probe pose
# (the search costs ~ candidates x rotations x offsets rays; time: benchmarks/results/planning.md).
US_POSE_CANDIDATES = 40
US_POSE_CANDIDATE_SEPARATION_DEG = 4.0
#: CT paths: extra cost per degree of gantry tilt (an untilted gantry is simpler and more common).
CT_TILT_COST_PER_DEG = 0.02


@dataclass
class CaseInputs:
    """What every lesion of a case is planned with, computed once per case.

    ``all_lesions``: bool mask of every lesion (the others are avoided);
    ``block``: acoustic block map (:func:`planner.advice.visibility.acoustic_block_map`);
    ``depth_limit_mm``: B-mode depth limit at ``frequency_mhz``; ``directions``:
    candidate needle directions, ``window_directions``: probe directions tried
    for the acoustic window (unit, LPS); ``guidance``: 'auto', 'us' or 'ct';
    ``top_k``: paths kept per guidance; ``sweep``, ``reference_to_ct`` and
    ``registration`` (the RESULT dict) when registered.
    """
    ct: Volume
    ct_arterial: Optional[Volume]
    anatomy: Anatomy
    constraints: Constraints
    all_lesions: np.ndarray
    block: np.ndarray
    depth_limit_mm: float
    frequency_mhz: float
    directions: np.ndarray
    window_directions: np.ndarray
    guidance: str
    top_k: int
    sweep: object = None
    reference_to_ct: Optional[np.ndarray] = None
    registration: Optional[dict] = None


@dataclass
class PlanStats:
    """Candidate paths checked over a case and the time (s) spent checking them."""
    candidates_checked: int = 0
    evaluate_s: float = 0.0


def plan_lesion(target: PlanTarget, case: CaseInputs, stats: PlanStats,
                stage: Optional[Callable[[str], None]] = None) -> Tuple[LesionFacts, dict]:
    """Plan one target: (facts for the case recommendation, its entry of ``plan['lesions']``).

    ``stats`` is updated in place; ``stage(key)`` is called as each stage starts (progress:
    maps, visibility, paths, us_paths, ct_paths; case_plan.LESION_STAGES).
    """
    stage = stage or (lambda key: None)
    t0 = time.perf_counter()
    point = target.point_target
    stage("maps")
    maps = build_maps(case.anatomy, None if point else target.mask, case.constraints,
                      case.all_lesions & ~target.mask)
    stage("visibility")
    vis = _visibility(target, case, maps)
    stage("paths")
    ts = time.perf_counter()
    res = evaluate(maps, target.target_lps, case.directions)
    stats.evaluate_s += time.perf_counter() - ts
    stats.candidates_checked += len(case.directions)
    paths, no_us = [], None
    if case.guidance in ("auto", "us"):
        stage("us_paths")
        paths, found = _us_paths(target.target_lps, case, maps, res)
        if not found:
            no_us = _why_no_us(vis["window"], res, len(case.directions), case.depth_limit_mm)
    if case.guidance in ("auto", "ct"):
        stage("ct_paths")
        paths += _ct_paths(target.target_lps, case, maps, res)
    diameter = None if point else target.measure.equivalent_diameter_mm
    tre = registration_tre_mm(case.registration, target.name)
    total = _total_error_mm(tre) if tre is not None else None
    hp = hit_probability(0.5 * diameter, total) if (total is not None and diameter) else None
    f = _facts(target.name, diameter, vis, paths, res, case.depth_limit_mm, hp, total)
    rec = lesion_recommendation(f)
    if no_us is not None:
        # the specific cause replaces the generic window sentence
        rec.replace_reason("window_without_inplane_path", Reason("no_us_path", f"no US-guided path: {no_us[1]}"))
    if tre is not None:
        vis["fusion"] = {"tre_rms_mm": round(float(tre), 2), "total_error_mm": round(total, 2),
                         "hit_probability": None if hp is None else round(hp, 3),
                         "note": "total = registration, tracking, needle and breathing errors in quadrature"}
    return f, _lesion_json(target, vis, rec.to_json(), paths, res, no_us, time.perf_counter() - t0)


def _visibility(target: PlanTarget, case: CaseInputs, maps: PlanningMaps) -> dict:
    """The lesion's ``visibility`` block: acoustic window, CT contrast and lesion type,
    predicted and (with a registered sweep) measured conspicuity."""
    window = visibility.best_window(maps, case.block, target.target_lps, case.window_directions,
                                    case.depth_limit_mm)
    vis = {"window": window, "depth_limit_mm": round(case.depth_limit_mm, 1), "frequency_mhz": case.frequency_mhz}
    ring = None
    if target.point_target:
        ltype, why, contrast = "indeterminate", "point target: no lesion outline", None
    else:
        ring = visibility.ring_masks(target.mask, case.anatomy.masks["liver"], case.ct.spacing)
        portal = visibility.ct_contrast(case.ct, target.mask, ring)
        arterial = (visibility.ct_contrast(case.ct_arterial, target.mask, ring)
                    if case.ct_arterial is not None else None)
        ltype, why = visibility.classify_type(portal, arterial)
        contrast = portal["contrast_hu"]
        vis["ct_portal"] = portal
        vis["ct_arterial"] = arterial
    vis["lesion_type"] = ltype
    vis["type_evidence"] = why
    if window["depth_mm"] is not None:
        vis["attenuation_db"] = round(visibility.round_trip_attenuation_db(window["depth_mm"],
                                                                         case.frequency_mhz), 1)
    diameter = None if target.point_target else target.measure.equivalent_diameter_mm
    vis["predicted"] = visibility.predict_conspicuity(diameter, ltype, contrast, window, case.depth_limit_mm)
    if case.sweep is not None and case.reference_to_ct is not None and not target.point_target:
        vis["measured"] = visibility.measured_conspicuity(case.sweep, case.reference_to_ct, case.ct,
                                                          target.mask, ring)
    return vis


def _us_paths(target_lps, case: CaseInputs, maps: PlanningMaps, res: dict) -> Tuple[List[dict], bool]:
    """The best ``top_k`` safe paths with an in-plane probe pose, and whether any candidate had one."""
    dirs = case.directions
    pre = select_diverse(res["cost"], res["ok"], dirs, US_POSE_CANDIDATES,
                         min_angle_deg=US_POSE_CANDIDATE_SEPARATION_DEG)
    poses = inplane_probe_poses(maps, case.block, target_lps, res["entry_ct"][pre], dirs[pre],
                                case.depth_limit_mm)
    pose_of = dict(zip(pre, poses))
    ok_us = np.zeros(len(dirs), bool)
    ok_us[[i for i, p in pose_of.items() if p is not None]] = True
    paths = []
    for i in select_diverse(res["cost"], ok_us, dirs, case.top_k):
        rec = path_record(maps, res, i, target_lps, "us")
        rec["probe"] = pose_of[i]
        paths.append(rec)
    return paths, bool(ok_us.any())


def _why_no_us(window: dict, res: dict, n_candidates: int, limit_mm: float) -> Tuple[str, str]:
    """(code, text) of why no candidate path can be guided by ultrasound (codes: NO_US_PATH_CODES)."""
    if window["depth_mm"] is None:
        causes = ", ".join(f"{k} {v}" for k, v in window["obstruction_by"].items() if v)
        return "no_window_within_limit", (f"no acoustic window within {limit_mm:.0f} mm: "
                                          f"{window['windows_checked']} probe directions checked, all blocked"
                                          + (f" ({causes})" if causes else ""))
    if not res["ok"].any():
        top = sorted(describe_rejections(res).items(), key=lambda kv: -kv[1])[:3]
        return "no_safe_needle_path", (f"no safe needle path at all (of {n_candidates} candidates: "
                                       + ", ".join(f"{v} {REJECT_TEXT[k]}" for k, v in top) + ")")
    return "no_inplane_probe_pose", (f"{int(res['ok'].sum())} safe needle paths, but none lies in the image "
                                     "plane of a probe on the skin with a clear view of needle and lesion")


def _ct_paths(target_lps, case: CaseInputs, maps: PlanningMaps, res: dict) -> List[dict]:
    """The best ``top_k`` safe paths in a gantry plane (tilt <= 15 deg), each with its CT description."""
    dirs = case.directions
    ok_ct = res["ok"] & ct_guidance.ct_feasible(dirs)
    ct_cost = res["cost"] + CT_TILT_COST_PER_DEG * np.abs(ct_guidance.tilt_deg(dirs))
    paths = []
    for i in select_diverse(ct_cost, ok_ct, dirs, case.top_k):
        rec = path_record(maps, res, i, target_lps, "ct")
        rec["ct"] = ct_guidance.describe(case.anatomy, rec)
        paths.append(rec)
    return paths


def _facts(name: str, diameter: Optional[float], vis: dict, paths: List[dict], res: dict,
           depth_limit_mm: float, hp: Optional[float], total: Optional[float]) -> LesionFacts:
    """What the recommendation needs to know about the lesion."""
    measured = vis.get("measured")
    best = min(paths, key=lambda p: p["cost"]) if paths else None
    return LesionFacts(name=name, diameter_mm=diameter, lesion_type=vis["lesion_type"],
                       predicted=vis["predicted"]["category"], depth_mm=vis["window"]["depth_mm"],
                       depth_limit_mm=depth_limit_mm, us_path=any(p["guidance"] == "us" for p in paths),
                       ct_path=any(p["guidance"] == "ct" for p in paths),
                       hit_probability=hp, fusion_tre_mm=total,
                       seen_on_sweep=None if not measured else measured.get("seen"),
                       measured_cnr=None if not measured else measured.get("cnr"),
                       best_path_cost=best["cost"] if best else None,
                       best_path_length_mm=best["length_mm"] if best else None,
                       safe_paths=int(res["ok"].sum()))


def _round(v, digits: int):
    return None if v is None else round(float(v), digits)


def _lesion_json(target: PlanTarget, vis: dict, rec: dict, paths: List[dict], res: dict,
                 no_us: Optional[Tuple[str, str]], planning_s: float) -> dict:
    """The lesion's entry of ``plan['lesions']`` (plan_schema.json ``$defs/lesion``)."""
    m = target.measure
    return {
        "name": target.name, "point_target": target.point_target,
        "centroid_ct": [round(float(x), 2) for x in target.centroid_lps],
        "target_ct": [round(float(x), 2) for x in target.target_lps],
        "diameter_mm": None if m is None else _round(m.equivalent_diameter_mm, 1),
        "max_diameter_mm": None if m is None else _round(m.max_diameter_mm, 1),
        "volume_ml": None if m is None else _round(m.volume_ml, 3),
        "depth_mm": vis["window"]["depth_mm"],
        "visibility": vis, "recommendation": rec, "trajectories": paths,
        "candidates": {"checked": int(len(res["ok"])), "safe": int(res["ok"].sum()),
                       "rejected_by": describe_rejections(res)},
        "no_us_path_reason": None if no_us is None else no_us[1],
        "no_us_path_code": None if no_us is None else no_us[0],
        "planning_time_s": round(planning_s, 2),
    }
