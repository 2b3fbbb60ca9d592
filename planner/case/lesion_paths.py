"""The paths of one lesion: US-guided (in-plane probe pose), CT-guided (gantry plane or double
oblique) and, when nothing is safe, the least-risk path marked unsafe and the other rejected
paths that came closest, each with the rules it breaks (:mod:`planner.paths.rejected`).

Frames: CT LPS mm; directions are unit vectors from the target towards the
skin. Every path proposed as safe has passed the full-resolution clearance
rule (:class:`planner.paths.path_records.PathVerifier`); a planning-grid
candidate that fails it is skipped, not shown.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from planner.advice.probe_poses import inplane_probe_poses
from planner.paths import ct_guidance
from planner.paths.constraints import REJECT_TEXT
from planner.paths.least_risk import least_risk_candidates
from planner.paths.path_records import PathVerifier
from planner.paths.planning_maps import PlanningMaps
from planner.paths.rejected import best_rejected
from planner.paths.trajectories import describe_rejections, select_diverse

# US paths: the cheapest safe candidates, spread this far apart, are searched for a probe pose
# (the search costs ~ candidates x rotations x offsets rays; time: benchmarks/results/planning.md).
US_POSE_CANDIDATES = 40
US_POSE_CANDIDATE_SEPARATION_DEG = 4.0
#: CT paths (heuristic ranking): extra cost per degree of gantry tilt (an untilted gantry is
#: simpler and more common); a double-oblique path pays DOUBLE_OBLIQUE_COST plus
#: DOUBLE_OBLIQUE_COST_PER_DEG per degree out of the axial plane (stepwise confirmation scans).
CT_TILT_COST_PER_DEG = 0.02
DOUBLE_OBLIQUE_COST = 0.5
DOUBLE_OBLIQUE_COST_PER_DEG = 0.02
#: Rejected paths listed for a target without a safe path (besides the least-risk path).
REJECTED_COUNT = 4


def us_paths(case, maps: PlanningMaps, res: dict, verifier: PathVerifier) -> Tuple[List[dict], bool]:
    """The best ``top_k`` safe paths with an in-plane probe pose, and whether any candidate had one."""
    dirs = case.directions
    target = verifier.target
    pre = select_diverse(res["cost"], res["ok"], dirs, US_POSE_CANDIDATES,
                         min_angle_deg=US_POSE_CANDIDATE_SEPARATION_DEG)
    poses = inplane_probe_poses(maps, case.block, target, res["entry_ct"][pre], dirs[pre], case.depth_limit_mm)
    pose_of = dict(zip(pre, poses))
    ok_us = np.zeros(len(dirs), bool)
    ok_us[[i for i, p in pose_of.items() if p is not None]] = True
    paths = []
    for i in select_diverse(res["cost"], ok_us, dirs, case.top_k, accept=verifier.safe):
        rec = verifier.record(i, "us")
        rec["probe"] = pose_of[i]
        paths.append(rec)
    return paths, bool(ok_us.any())


def ct_cost(res: dict, dirs: np.ndarray, max_tilt_deg: float) -> np.ndarray:
    """Cost of each candidate as a CT-guided path: tilt within the gantry's reach, else double oblique."""
    tilt = np.abs(ct_guidance.tilt_deg(dirs))
    in_plane = tilt <= max_tilt_deg + 1e-6
    cc = np.abs(ct_guidance.craniocaudal_deg(dirs))
    return res["cost"] + np.where(in_plane, CT_TILT_COST_PER_DEG * tilt,
                                  DOUBLE_OBLIQUE_COST + DOUBLE_OBLIQUE_COST_PER_DEG * cc)


def ct_paths(case, maps: PlanningMaps, res: dict, verifier: PathVerifier) -> List[dict]:
    """The best ``top_k`` safe CT-guided paths (gantry plane, or double oblique), each described."""
    dirs = case.directions
    max_tilt = maps.constraints.max_gantry_tilt_deg
    paths = []
    for i in select_diverse(ct_cost(res, dirs, max_tilt), res["ok"], dirs, case.top_k, accept=verifier.safe):
        rec = verifier.record(i, "ct")
        rec["ct"] = ct_guidance.describe(case.anatomy, rec, max_tilt)
        paths.append(rec)
    return paths


def least_risk_and_rejected(case, maps: PlanningMaps, lesion: Optional[str], target,
                            count: int = REJECTED_COUNT) -> Tuple[Optional[dict], List[dict]]:
    """When no candidate is safe: (the least-risk path as a CT-guided record, or None when none
    may be offered; the ``count`` other rejected paths that came closest, plan.json
    ``rejected_candidates``), from one evaluation and one set of full-resolution checks.

    A candidate the planning grid rejected may meet every hard rule at full resolution (the grid
    adds a resampling margin): it is then returned as a safe CT path, with ``"safe": true``, and
    nothing is explained.
    """
    res, order = least_risk_candidates(maps, target, case.directions)
    verifier = PathVerifier(case.oracle, maps, res, target, lesion)
    lr = None
    if order.size:
        lr = verifier.record(int(order[0]), "ct")
        lr["ct"] = ct_guidance.describe(case.anatomy, lr, maps.constraints.max_gantry_tilt_deg)
        if lr["safe"]:
            return lr, []
    rejected = best_rejected(maps, res, verifier, count=count,
                             exclude_directions=[] if lr is None else [lr["direction_ct"]])
    return lr, [r.as_dict() for r in rejected]


def why_no_us(window: dict, res: dict, n_candidates: int, limit_mm: float) -> Tuple[str, str]:
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
