"""Re-check a needle path a person edited, with the planner's own constraints.

All points are CT LPS mm. The constraint maps of one lesion
(:func:`lesion_maps`, the slow part: run it off the GUI thread) are the ones
the planner used; :func:`check_path` evaluates the straight path target ->
entry (continued to the skin) on them with
:func:`planner.paths.trajectories.evaluate`. Nothing here invents a number:
a path passes exactly when the planner would have accepted it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from planner.anatomy.structures import Anatomy

from . import ct_guidance
from .clearance import MEASURED_CLASSES, ClearanceOracle
from .constraints import REJECT_REASONS, REJECT_TEXT, Constraints
from .path_records import PathVerifier
from .planning_maps import PlanningMaps, build_maps
from .trajectories import evaluate

#: An edited entry closer than this (mm) to the target gives no direction.
MIN_EDITED_LENGTH_MM = 1.0
#: Violations only an edited path can have: code -> words (the others are REJECT_TEXT's).
EDIT_TEXT = {
    "entry_equals_target": "entry and target coincide",
    "target_outside_lesion": "target outside the lesion",
}
#: The Constraints fields a plan's ``constraints`` block gives back.
_PLAN_CONSTRAINT_KEYS = ("max_length_mm", "vessel_margin_mm", "vessel_floor_mm", "min_liver_mm",
                         "max_capsule_angle_deg", "grazing_angle_deg", "max_gantry_tilt_deg", "needle_gauge",
                         "step_mm", "patient_position")


@dataclass
class PathCheck:
    """The verdict on one edited path.

    ``violations``: codes (keys of ``REJECT_TEXT`` or ``EDIT_TEXT``), most
    important first; ``record``: the path as a plan trajectory (schema of
    plan.json, ``edited_by_user`` set, the CT-guided description added for a
    passing CT path), None when the path has no skin exit.
    """
    ok: bool
    violations: List[str]
    record: Optional[dict]

    @property
    def texts(self) -> List[str]:
        """The violations in words, in the same order."""
        return [EDIT_TEXT.get(code) or REJECT_TEXT[code] for code in self.violations]


def constraints_from_plan(constraints: dict) -> Constraints:
    """The :class:`Constraints` a plan was made with, from its plan.json ``constraints`` block."""
    return Constraints(**{k: constraints[k] for k in _PLAN_CONSTRAINT_KEYS if k in constraints})


def lesion_maps(anatomy: Anatomy, lesion_masks: Dict[str, np.ndarray], name: str,
                constraints: Constraints) -> PlanningMaps:
    """Planning maps of lesion ``name`` of a plan, the plan's other lesions avoided, with the
    clearance rule measured on the plan's labels ready (slow: seconds; run it off the GUI thread)."""
    others = None
    for n, m in lesion_masks.items():
        if n != name:
            others = m.copy() if others is None else (others | m)
    maps = build_maps(anatomy, lesion_masks.get(name), constraints, others)
    maps.oracle = ClearanceOracle(anatomy.labels, anatomy)
    for cls in MEASURED_CLASSES:
        maps.oracle.sources(cls)        # build the distance trees now, not at the first edit
    return maps


def check_path(maps: PlanningMaps, entry, target, guidance: str,
               lesion_mask: Optional[np.ndarray] = None, *, lesion: Optional[str] = None,
               oracle: Optional[ClearanceOracle] = None) -> PathCheck:
    """The planner's constraints on the straight path target -> entry (LPS mm), continued to the skin.

    ``guidance`` ('us' or 'ct') goes into the record; with ``lesion_mask`` the
    target must lie inside the lesion. The hard rules are checked on the planning
    maps and then by the clearance rule (``oracle``; default: on the maps' own
    labels), exactly as for the planner's own paths; the record carries
    ``safe`` and its cautions or violations.
    """
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    d = entry - target
    if np.linalg.norm(d) < MIN_EDITED_LENGTH_MM:
        return PathCheck(False, ["entry_equals_target"], None)
    d = d / np.linalg.norm(d)
    res = evaluate(maps, target, d[None])
    bad = [code for code in REJECT_REASONS if bool(res[code][0])]
    if lesion_mask is not None:
        kji = np.rint(maps.to_kji(target[None])[:, 0]).astype(int)
        inside = np.all(kji >= 0) and np.all(kji < np.array(lesion_mask.shape))
        if not inside or not lesion_mask[tuple(kji)]:
            bad.insert(0, "target_outside_lesion")
    record = None
    if np.isfinite(res["length_mm"][0]):
        oracle = oracle or maps.oracle or ClearanceOracle(maps.anatomy.labels, maps.anatomy)
        record = PathVerifier(oracle, maps, res, target, lesion).record(0, guidance)
        record["edited_by_user"] = True
        for v in record.get("violations", []):
            if v["rule"] in REJECT_TEXT and v["rule"] not in bad:
                bad.append(v["rule"])
        if bad:
            record["safe"] = False
            record.setdefault("violations", [])
            record.pop("cautions", None)
        elif guidance == "ct":
            record["ct"] = ct_guidance.describe(maps.anatomy, record, maps.constraints.max_gantry_tilt_deg)
    return PathCheck(not bad, bad, record)
