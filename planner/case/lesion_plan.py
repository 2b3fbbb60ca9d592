"""Plan one lesion (or point target): visibility, safe needle paths, fusion error, advice.

Frames and units: points and directions are CT LPS mm (directions are unit
vectors from the target towards the skin entry); masks are boolean arrays
``[k, j, i]`` on the (planning) CT grid; depths and lengths in mm, ultrasound
frequency in MHz, attenuation in dB. :func:`plan_lesion` is the body of the
per-lesion loop of :func:`planner.case.case_plan.plan_case`, which computes the inputs
shared by all lesions once.
"""
from __future__ import annotations

import time
from typing import Optional, Tuple

import numpy as np

from planner.advice import visibility
from planner.advice.fusion_error import _total_error_mm, registration_tre_mm
from planner.advice.recommendation import LesionFacts, hit_probability, recommend_lesion
from planner.anatomy.lesion_targets import _target_in_mask
from planner.anatomy.structures import Anatomy
from planner.paths import ct_guidance
from planner.paths.trajectories import (
    Constraints,
    build_maps,
    describe_rejections,
    evaluate,
    path_record,
    select_diverse,
)
from registration.spatial.volume import Volume


def plan_lesion(r: dict, *, ct: Volume, ct_arterial: Optional[Volume], anatomy: Anatomy,
                constraints: Constraints, all_lesions: np.ndarray, block: np.ndarray,
                depth_limit_mm: float, frequency_mhz: float, dirs: np.ndarray,
                window_dirs: np.ndarray, guidance: str, top_k: int, sweep,
                reference_to_ct: Optional[np.ndarray], registration: Optional[dict],
                stats: dict) -> Tuple[LesionFacts, dict]:
    """Plan the lesion row ``r`` (a lesion_table row with ``mask``, or a point target).

    ``all_lesions``: mask of every lesion (the others are avoided); ``block``:
    acoustic block map; ``depth_limit_mm``: ultrasound depth limit at
    ``frequency_mhz``; ``dirs``: candidate needle directions, ``window_dirs``:
    probe directions tried for the acoustic window; ``guidance``: 'auto', 'us'
    or 'ct'; ``top_k`` paths kept per guidance. ``stats`` ('candidates_checked',
    'evaluate_s') is updated in place. Returns (facts for the case
    recommendation, the lesion's entry of ``plan['lesions']``).
    """
    c, limit = constraints, depth_limit_mm
    lesion_t0 = time.perf_counter()
    mask = r["mask"]
    point = bool(r.get("point_target"))
    target = np.asarray(r["centroid_lps"], float) if point else _target_in_mask(mask, ct)
    maps = build_maps(anatomy, None if point else mask, c, all_lesions & ~mask)
    window = visibility.best_window(maps, block, target, window_dirs, limit)
    diameter = r.get("equivalent_diameter_mm")
    vis = {"window": window, "depth_limit_mm": round(limit, 1), "frequency_mhz": frequency_mhz}
    if point:
        ltype, why, contrast = "indeterminate", "point target: no lesion outline", None
    else:
        ring = visibility.ring_masks(mask, anatomy.masks["liver"], ct.spacing)
        portal = visibility.ct_contrast(ct, mask, ring)
        arterial = visibility.ct_contrast(ct_arterial, mask, ring) if ct_arterial is not None else None
        ltype, why = visibility.classify_type(portal, arterial)
        contrast = portal["contrast_hu"]
        vis["ct_portal"] = portal
        vis["ct_arterial"] = arterial
    vis["lesion_type"] = ltype
    vis["type_evidence"] = why
    if window["depth_mm"] is not None:
        vis["attenuation_db"] = round(visibility.round_trip_attenuation_db(window["depth_mm"],
                                                                         frequency_mhz), 1)
    vis["predicted"] = visibility.predict_conspicuity(diameter, ltype, contrast, window, limit)
    measured = None
    if sweep is not None and reference_to_ct is not None and not point:
        measured = visibility.measured_conspicuity(sweep, reference_to_ct, ct, mask, ring)
        vis["measured"] = measured

    ts = time.perf_counter()
    res = evaluate(maps, target, dirs)
    stats["evaluate_s"] += time.perf_counter() - ts
    stats["candidates_checked"] += len(dirs)
    paths, why_no_us = [], None
    if guidance in ("auto", "us"):
        pre = select_diverse(res["cost"], res["ok"], dirs, 40, min_angle_deg=4.0)
        poses = visibility.inplane_probe_poses(maps, block, target, res["entry_ct"][pre],
                                               dirs[pre], limit)
        good = [i for i, p in zip(pre, poses) if p is not None]
        pose_of = {i: p for i, p in zip(pre, poses)}
        ok_us = np.zeros(len(dirs), bool)
        ok_us[good] = True
        for i in select_diverse(res["cost"], ok_us, dirs, top_k):
            rec = path_record(maps, res, i, target, "us")
            rec["probe"] = pose_of[i]
            paths.append(rec)
        if not good:
            if window["depth_mm"] is None:
                causes = ", ".join(f"{k} {v}" for k, v in window["obstruction_by"].items() if v)
                why_no_us = (f"no acoustic window within {limit:.0f} mm: "
                             f"{window['windows_checked']} probe directions checked, all blocked"
                             + (f" ({causes})" if causes else ""))
            elif not res["ok"].any():
                top = sorted(describe_rejections(res).items(), key=lambda kv: -kv[1])[:3]
                why_no_us = (f"no safe needle path at all (of {len(dirs)} candidates: "
                             + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in top) + ")")
            else:
                why_no_us = (f"{int(res['ok'].sum())} safe needle paths, but none lies in the image "
                             "plane of a probe on the skin with a clear view of needle and lesion")
    if guidance in ("auto", "ct"):
        ok_ct = res["ok"] & ct_guidance.ct_feasible(dirs)
        ct_cost = res["cost"] + 0.02 * np.abs(ct_guidance.tilt_deg(dirs))
        for i in select_diverse(ct_cost, ok_ct, dirs, top_k):
            rec = path_record(maps, res, i, target, "ct")
            rec["ct"] = ct_guidance.describe(anatomy, rec)
            paths.append(rec)
    us_paths = [p for p in paths if p["guidance"] == "us"]
    ct_paths = [p for p in paths if p["guidance"] == "ct"]
    tre = registration_tre_mm(registration, r["name"])
    total = _total_error_mm(tre) if tre is not None else None
    hp = hit_probability(0.5 * diameter, total) if (total is not None and diameter) else None
    best = min(paths, key=lambda p: p["cost"]) if paths else None
    f = LesionFacts(name=r["name"], diameter_mm=diameter, lesion_type=ltype,
                    predicted=vis["predicted"]["category"], depth_mm=window["depth_mm"],
                    depth_limit_mm=limit, us_path=bool(us_paths), ct_path=bool(ct_paths),
                    hit_probability=hp, fusion_tre_mm=total,
                    seen_on_sweep=None if not measured else measured.get("seen"),
                    measured_cnr=None if not measured else measured.get("cnr"),
                    best_path_cost=best["cost"] if best else None,
                    best_path_length_mm=best["length_mm"] if best else None,
                    safe_paths=int(res["ok"].sum()))
    rec = recommend_lesion(f)
    if why_no_us:
        # the specific cause replaces the generic window sentence
        rec["reasons"] = [f"no US-guided path: {why_no_us}"] + [
            x for x in rec["reasons"] if not x.startswith("acoustic window at")]
    if tre is not None:
        vis["fusion"] = {"tre_rms_mm": round(float(tre), 2), "total_error_mm": round(total, 2),
                         "hit_probability": None if hp is None else round(hp, 3),
                         "note": "total = registration, tracking, needle and breathing errors in quadrature"}
    return f, {
        "name": r["name"], "point_target": point,
        "centroid_ct": [round(float(x), 2) for x in r["centroid_lps"]],
        "target_ct": [round(float(x), 2) for x in target],
        "diameter_mm": None if diameter is None else round(float(diameter), 1),
        "max_diameter_mm": None if r.get("max_diameter_mm") is None else round(float(r["max_diameter_mm"]), 1),
        "volume_ml": None if r.get("volume_ml") is None else round(float(r["volume_ml"]), 3),
        "depth_mm": window["depth_mm"],
        "visibility": vis, "recommendation": rec, "trajectories": paths,
        "candidates": {"checked": int(len(dirs)), "safe": int(res["ok"].sum()),
                       "rejected_by": describe_rejections(res)},
        "no_us_path_reason": why_no_us,
        "planning_time_s": round(time.perf_counter() - lesion_t0, 2),
    }
