"""The least-risk path to a target that no path reaches safely.

When every candidate breaks a hard rule, the plan still shows the operator the
path that breaks the least, marked unsafe with each violation in mm (DESIGN
section 6: ``"safe": false`` and ``"violations"``), never as a plan. Candidates
are re-marched up to ``LEAST_RISK_MARCH_MM`` (the longest needle system), so a
path that only needs a longer needle is found and said so.

Never offered, even as least-risk (heuristic, docs/clinical_evidence.md
section 4): a path through bone (a needle cannot pass a rib) or the heart, one
off the CT, or one entering from the table side. The others are ranked by a
heuristic risk score: each broken rule adds a base weight plus its relative
shortfall (organ crossed 4, vessel floor 3 (+3 when the vessel is crossed),
extra capsule crossing 2 each, grazing angle 1, too long 1 + 1 per 50 mm),
plus a quarter of the path's soft cost.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .constraints import NEEDLE_LENGTHS_MM
from .planning_maps import PlanningMaps, nearest_voxel
from .trajectories import evaluate, hard_threshold_mm

LEAST_RISK_MARCH_MM = max(NEEDLE_LENGTHS_MM)
NEVER_CROSSED = ("bone", "heart")
W_ORGAN, W_VESSEL, W_VESSEL_CROSSED, W_CAPSULE, W_GRAZING, W_LENGTH = 4.0, 3.0, 3.0, 2.0, 1.0, 1.0
LENGTH_SCALE_MM = 50.0
COST_SHARE = 0.25


def _crosses(maps: PlanningMaps, mask: np.ndarray, target, dirs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Whether each segment target -> target + length * d (LPS) meets a voxel of ``mask`` (nearest)."""
    step = maps.constraints.step_mm
    s = np.arange(0.0, float(np.max(lengths, initial=0.0)) + step, step)
    m3 = maps.lps_to_kji[:3, :3]
    tk = m3 @ np.asarray(target, float) + maps.lps_to_kji[:3, 3]
    kji = tk[:, None, None] + (m3 @ dirs.T)[:, :, None] * s[None, None, :]
    hit = nearest_voxel(mask, kji, False) & (s[None, :] <= lengths[:, None])
    return hit.any(axis=1)


def risk_scores(maps: PlanningMaps, res: Dict[str, np.ndarray], target) -> np.ndarray:
    """Heuristic risk per candidate of ``res`` (inf: never offered); see the module docstring."""
    c = maps.constraints
    thr = hard_threshold_mm(maps)
    length = res["length_mm"]
    eligible = np.isfinite(length) & ~res["leaves_ct_volume"] & ~res["entry_on_table_side"]
    never = np.zeros(len(length), bool)
    masks = [maps.anatomy.masks[k] for k in NEVER_CROSSED if k in maps.anatomy.masks]
    if masks and eligible.any():
        forbidden = np.logical_or.reduce(masks)
        idx = np.flatnonzero(eligible)
        never[idx] = _crosses(maps, forbidden, target, res["directions"][idx], length[idx])
    organ, v_out, v_in = res["organ_clearance_mm"], res["vessel_clearance_mm"], res["vessel_in_lesion_mm"]
    with np.errstate(invalid="ignore"):
        risk = np.where(organ <= thr, W_ORGAN + np.clip((thr - organ) / thr, 0, 1), 0.0)
        floor = thr + c.vessel_floor_mm
        risk += np.where(v_out <= floor, W_VESSEL + np.clip((floor - v_out) / floor, 0, 1), 0.0)
        risk += np.where((v_out <= thr) | (v_in <= thr), W_VESSEL_CROSSED, 0.0)
        risk += W_CAPSULE * np.abs(res["capsule_crossings_n"] - 1)
        risk += np.where(res["capsule_angle_deg"] > c.grazing_angle_deg,
                         W_GRAZING + (res["capsule_angle_deg"] - c.grazing_angle_deg) / 10.0, 0.0)
        risk += np.where(length > c.max_length_mm, W_LENGTH + (length - c.max_length_mm) / LENGTH_SCALE_MM, 0.0)
    risk += COST_SHARE * np.where(np.isfinite(res["cost"]), res["cost"], 0.0)
    return np.where(eligible & ~never, risk, np.inf)


def least_risk_candidates(maps: PlanningMaps, target, directions: np.ndarray) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
    """(res marched to LEAST_RISK_MARCH_MM, the candidate indices that may be offered, by
    increasing risk; empty when none may). ``res`` also serves the explanation of a target
    without a safe path (:mod:`.rejected`), which lists candidates this module never offers."""
    res = evaluate(maps, target, directions, march_mm=max(LEAST_RISK_MARCH_MM, maps.constraints.max_length_mm))
    risk = risk_scores(maps, res, target)
    order = np.argsort(risk, kind="stable")
    return res, order[np.isfinite(risk[order])]
