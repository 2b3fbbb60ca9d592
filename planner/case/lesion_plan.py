"""Plan one lesion (or point target): visibility, safe needle paths, fusion need and error, advice.

Frames and units: points and directions are CT LPS mm (directions are unit
vectors from the target towards the skin entry); masks are boolean arrays
``[k, j, i]`` on the (planning) CT grid; depths and lengths in mm, ultrasound
frequency in MHz, attenuation in dB/cm/MHz. :func:`plan_lesion` is the body of
the per-lesion loop of :func:`planner.case.case_plan.plan_case`, which computes
the inputs shared by all lesions once (:class:`CaseInputs`).
"""
from __future__ import annotations

import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import numpy as np

from planner.advice import visibility
from planner.advice.bmode_visibility import SOURCES, predict_bmode_visibility
from planner.advice.fatty_liver import FattyLiver
from planner.advice.fusion_error import _total_error_mm, registration_extrapolation_mm, registration_tre_mm
from planner.advice.fusion_need import EXPECTED_TRE_SOURCE, fusion_need
from planner.advice.reasons import Reason
from planner.advice.recommendation import LesionFacts, lesion_recommendation
from planner.anatomy.lesion_targets import PlanTarget
from planner.anatomy.structures import Anatomy
from planner.paths.clearance import ClearanceOracle
from planner.paths.constraints import Constraints
from planner.paths.path_records import PathVerifier
from planner.paths.planning_maps import PlanningMaps, build_maps
from planner.paths.trajectories import describe_rejections, describe_soft, evaluate
from registration.align.uncertainty import hit_probability
from registration.spatial.volume import Volume

from .lesion_paths import ct_paths, least_risk_and_rejected, us_paths, why_no_us


@dataclass
class CaseInputs:
    """What every lesion of a case is planned with, computed once per case.

    ``all_lesions``: bool mask of every lesion (the others are avoided);
    ``block_map``: acoustic block map (:func:`planner.advice.visibility.acoustic_block_map`), or a
    Future of it while a thread computes it (read it as ``block``);
    ``depth_limit_mm``: B-mode depth limit at ``frequency_mhz`` and the liver's
    ``attenuation_db_cm_mhz``; ``fatty``: the fatty-liver estimate; ``directions``:
    candidate needle directions, ``window_directions``: probe directions tried
    for the acoustic window (unit, LPS); ``guidance``: 'auto', 'us' or 'ct';
    ``top_k``: paths kept per guidance; ``oracle``: full-resolution clearance
    rule; ``liver_sdf_mm``: signed distance to the liver with every lesion (the
    same for each lesion); ``sweep``, ``reference_to_ct`` and ``registration``
    (the RESULT dict) when registered.
    """
    ct: Volume
    ct_arterial: Optional[Volume]
    anatomy: Anatomy
    constraints: Constraints
    all_lesions: np.ndarray
    block_map: object                 # the acoustic block map, or a Future of it (see ``block``)
    depth_limit_mm: float
    frequency_mhz: float
    directions: np.ndarray
    window_directions: np.ndarray
    guidance: str
    top_k: int
    oracle: ClearanceOracle
    fatty: FattyLiver
    attenuation_db_cm_mhz: float
    liver_sdf_mm: np.ndarray
    sweep: object = None
    reference_to_ct: Optional[np.ndarray] = None
    registration: Optional[dict] = None

    @property
    def block(self) -> np.ndarray:
        """The acoustic block map (computed beside the planning: waits for it if still running)."""
        return self.block_map.result() if isinstance(self.block_map, Future) else self.block_map


@dataclass
class PlanStats:
    """Candidate paths checked over a case and the time (s) spent checking them."""
    candidates_checked: int = 0
    evaluate_s: float = 0.0


def plan_lesion(target: PlanTarget, case: CaseInputs, stats: PlanStats,
                stage: Optional[Callable[[str], None]] = None) -> Tuple[LesionFacts, dict]:
    """Plan one target: (facts for the case recommendation, its entry of ``plan['lesions']``).

    ``stats`` is updated in place; ``stage(key)`` is called as each stage starts (progress:
    maps, paths, visibility, us_paths, ct_paths; case_plan.LESION_STAGES).
    """
    stage = stage or (lambda key: None)
    t0 = time.perf_counter()
    point = target.point_target
    stage("maps")
    maps = build_maps(case.anatomy, None if point else target.mask, case.constraints,
                      case.all_lesions & ~target.mask, sdf_mm=None if point else case.liver_sdf_mm)
    stage("paths")
    ts = time.perf_counter()
    res = evaluate(maps, target.target_lps, case.directions)
    stats.evaluate_s += time.perf_counter() - ts
    stats.candidates_checked += len(case.directions)
    verifier = PathVerifier(case.oracle, maps, res, target.target_lps, None if point else target.name)
    stage("visibility")
    vis = _visibility(target, case, maps)
    paths, no_us = [], None
    if case.guidance in ("auto", "us"):
        stage("us_paths")
        paths, found = us_paths(case, maps, res, verifier)
        if not found:
            no_us = why_no_us(vis["window"], res, len(case.directions), case.depth_limit_mm)
    if case.guidance in ("auto", "ct"):
        stage("ct_paths")
        paths += ct_paths(case, maps, res, verifier)
    rejected: List[dict] = []
    if not paths and not res["ok"].any():
        lr, rejected = least_risk_and_rejected(case, maps, None if point else target.name, target.target_lps)
        if lr is not None and (lr["safe"] is False or case.guidance != "us"):
            paths.append(lr)
    diameter = None if point else target.measure.equivalent_diameter_mm
    tre = registration_tre_mm(case.registration, target.name)
    total = _total_error_mm(tre) if tre is not None else None
    hp = hit_probability(0.5 * diameter, total) if (total is not None and diameter) else None
    f = _facts(target.name, diameter, vis, paths, res, case, hp, total)
    rec = lesion_recommendation(f)
    if no_us is not None:
        # the specific cause replaces the generic window sentence
        rec.replace_reason("window_without_inplane_path", Reason("no_us_path", f"no US-guided path: {no_us[1]}"))
    _fusion_block(vis, diameter, tre, total, hp, case.registration is not None,
                  registration_extrapolation_mm(case.registration, target.name))
    return f, _lesion_json(target, vis, rec.to_json(), paths, rejected, res, no_us, time.perf_counter() - t0)


def _fusion_block(vis: dict, diameter, tre, total, hp, registered: bool, extrapolated_mm=None) -> None:
    """The lesion's ``visibility.fusion_need`` (always, with a size) and ``visibility.fusion`` (registered);
    ``extrapolated_mm``: the lesion's distance from the imaged region when the RESULT marks it
    extrapolated (its TRE, and so ``hp``, is the inflated one)."""
    if diameter:
        need = fusion_need(0.5 * diameter).as_dict()
        need["expected_without_registration"] = EXPECTED_TRE_SOURCE
        vis["fusion_need"] = need
    if tre is not None:
        vis["fusion"] = {"tre_rms_mm": round(float(tre), 2), "total_error_mm": round(total, 2),
                         "hit_probability": None if hp is None else round(hp, 3),
                         "note": "total = registration, tracking, needle and breathing errors in quadrature"}
        if extrapolated_mm is not None:
            vis["fusion"]["extrapolated"] = True
            vis["fusion"]["distance_to_imaged_region_mm"] = (None if extrapolated_mm != extrapolated_mm
                                                             else round(float(extrapolated_mm), 1))
    elif registered:
        vis["fusion"] = {"tre_rms_mm": None, "total_error_mm": None, "hit_probability": None,
                         "note": "the registration gives no TRE at this lesion (its verdict is poor or the "
                                 "target is not in its result)"}


def _visibility(target: PlanTarget, case: CaseInputs, maps: PlanningMaps) -> dict:
    """The lesion's ``visibility`` block: acoustic window, CT contrast and lesion type, the
    predicted B-mode visibility (evidence model) and, with a registered sweep, the measured one."""
    window = visibility.best_window(maps, case.block, target.target_lps, case.window_directions,
                                    case.depth_limit_mm)
    vis = {"window": window, "depth_limit_mm": round(case.depth_limit_mm, 1), "frequency_mhz": case.frequency_mhz,
           "attenuation_db_cm_mhz": round(case.attenuation_db_cm_mhz, 3), "fatty_liver": case.fatty.as_dict()}
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
        vis["attenuation_db"] = round(visibility.round_trip_attenuation_db(
            window["depth_mm"], case.frequency_mhz, case.attenuation_db_cm_mhz), 1)
    diameter = None if target.point_target else target.measure.equivalent_diameter_mm
    pred = predict_bmode_visibility(
        diameter_mm=diameter, depth_mm=window["depth_mm"], lesion_type=ltype, ct_contrast_hu=contrast,
        frequency_mhz=case.frequency_mhz, liver_attenuation_db_cm_mhz=case.attenuation_db_cm_mhz,
        fatty_liver=case.fatty.fatty).as_dict()
    # each term's source key, spelled out (docs/clinical_evidence.md has the full references)
    pred["sources"] = {k: SOURCES[k] for t in pred["terms"] for k in t["source"].split("+")}
    vis["predicted"] = pred
    if case.sweep is not None and case.reference_to_ct is not None and not target.point_target:
        vis["measured"] = visibility.measured_conspicuity(case.sweep, case.reference_to_ct, case.ct,
                                                          target.mask, ring)
    return vis


def _facts(name: str, diameter: Optional[float], vis: dict, paths: List[dict], res: dict, case: CaseInputs,
           hp: Optional[float], total: Optional[float]) -> LesionFacts:
    """What the recommendation needs to know about the lesion."""
    measured = vis.get("measured")
    safe = [p for p in paths if p.get("safe", True)]
    unsafe = [p for p in paths if p.get("safe", True) is False]
    best = min(safe, key=lambda p: p["cost"]) if safe else None
    ct_safe = sorted((p for p in safe if p["guidance"] == "ct"), key=lambda p: p["cost"])
    us_safe = sorted((p for p in safe if p["guidance"] == "us"), key=lambda p: p["cost"])
    return LesionFacts(name=name, diameter_mm=diameter, lesion_type=vis["lesion_type"],
                       predicted=vis["predicted"]["category"], probability=vis["predicted"]["probability"],
                       depth_mm=vis["window"]["depth_mm"], depth_limit_mm=case.depth_limit_mm,
                       us_path=any(p["guidance"] == "us" for p in safe),
                       ct_path=bool(ct_safe), ct_double_oblique=bool(ct_safe) and ct_safe[0]["ct"]["double_oblique"],
                       hit_probability=hp, fusion_tre_mm=total, registered=case.registration is not None,
                       seen_on_sweep=None if not measured else measured.get("seen"),
                       measured_cnr=None if not measured else measured.get("cnr"),
                       best_path_cost=best["cost"] if best else None,
                       best_path_length_mm=best["length_mm"] if best else None,
                       best_us_length_mm=us_safe[0]["length_mm"] if us_safe else None,
                       best_ct_length_mm=ct_safe[0]["length_mm"] if ct_safe else None,
                       safe_paths=int(res["ok"].sum()),
                       least_risk="; ".join(v["text"] for v in unsafe[0]["violations"]) if unsafe else None)


def _round(v, digits: int):
    return None if v is None else round(float(v), digits)


def _lesion_json(target: PlanTarget, vis: dict, rec: dict, paths: List[dict], rejected: List[dict], res: dict,
                 no_us: Optional[Tuple[str, str]], planning_s: float) -> dict:
    """The lesion's entry of ``plan['lesions']`` (plan_schema.json ``$defs/lesion``);
    ``rejected_candidates`` is empty unless the lesion has no safe path."""
    m = target.measure
    return {
        "name": target.name, "point_target": target.point_target,
        "centroid_ct": [round(float(x), 2) for x in target.centroid_lps],
        "target_ct": [round(float(x), 2) for x in target.target_lps],
        "diameter_mm": None if m is None else _round(m.equivalent_diameter_mm, 1),
        "max_diameter_mm": None if m is None else _round(m.max_diameter_mm, 1),
        "volume_ml": None if m is None else _round(m.volume_ml, 3),
        "depth_mm": vis["window"]["depth_mm"],
        "visibility": vis, "recommendation": rec, "trajectories": paths, "rejected_candidates": rejected,
        "candidates": {"checked": int(len(res["ok"])), "safe": int(res["ok"].sum()),
                       "rejected_by": describe_rejections(res), "soft_shortfalls": describe_soft(res)},
        "no_us_path_reason": None if no_us is None else no_us[1],
        "no_us_path_code": None if no_us is None else no_us[0],
        "planning_time_s": round(planning_s, 2),
    }
