"""Plan records of candidate paths, each checked at full resolution (DESIGN section 7).

A candidate found on the planning grid is *safe* only when the full-resolution
clearance rule (:mod:`.clearance`) confirms every hard rule: axis-to-voxel-centre
distance above the needle radius + half the labels' voxel diagonal for every
hard structure, that + ``vessel_floor_mm`` for vessels >= 3 mm outside the
target lesion (inside it: no crossing). Its record (plan.json ``trajectory``)
then says ``"safe": true`` and lists soft shortfalls as ``cautions``; an unsafe
record (the least-risk path) says ``"safe": false`` and lists ``violations``.
Both lists hold ``{rule, structure, value_mm, limit_mm, value, limit, unit,
text}`` (``value_mm``/``limit_mm`` are null for angles and counts). Reported
clearances are rounded down (never above the measured value).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from planner.anatomy.structures import HARD_CLASSES

from .clearance import CAP_MM, ClearanceOracle, PathClearance, floor_mm, segment_points
from .constraints import GAUGE_OD_MM, NEEDLE_LENGTHS_MM
from .planning_maps import PlanningMaps


def violation(rule: str, structure: str, value: float, limit: float, unit: str, text: str) -> dict:
    """One broken rule (hard: a violation, soft: a caution) in the plan.json form."""
    v = floor_mm(value) if unit == "mm" else (int(value) if unit == "count" else round(float(value), 1))
    lim = round(float(limit), 2) if unit == "mm" else (int(limit) if unit == "count" else round(float(limit), 1))
    return {"rule": rule, "structure": structure, "value_mm": v if unit == "mm" else None,
            "limit_mm": lim if unit == "mm" else None, "value": v, "limit": lim, "unit": unit, "text": text}


def _reported(v: float) -> float:
    """A clearance as reported: rounded down to 0.01 mm; at the measuring cap exactly CAP_MM ("at
    least that far": the weights of a trilinear sum of capped values add up to 1 - 1e-16)."""
    return CAP_MM if v >= CAP_MM - 1e-6 else floor_mm(v)


class PathVerifier:
    """Full-resolution checks and plan records of one lesion's candidates (``res`` of
    :func:`planner.paths.trajectories.evaluate` on ``maps``), cached by candidate index."""

    def __init__(self, oracle: ClearanceOracle, maps: PlanningMaps, res: Dict[str, np.ndarray], target_lps,
                 lesion: Optional[str]):
        self.oracle, self.maps, self.res = oracle, maps, res
        # measured as recorded: the plan keeps 0.01 mm, so the claim holds for the written segment
        self.target = np.round(np.asarray(target_lps, float), 2)
        self.lesion = lesion
        c = maps.constraints
        self.thr = c.needle_radius_mm + max(oracle.half_voxel_diagonal_mm,
                                            0.0 if oracle.same_grid else maps.anatomy.half_voxel_diagonal_mm)
        self._cache: Dict[int, PathClearance] = {}

    def entry(self, i: int) -> np.ndarray:
        """Candidate ``i``'s skin entry as the plan records it (LPS mm, 0.01 mm)."""
        return np.round(self.res["entry_ct"][i], 2)

    def clearance(self, i: int) -> PathClearance:
        if i not in self._cache:
            self._cache[i] = self.oracle.measure(self.target, self.entry(i), self.lesion)
        return self._cache[i]

    def _nearest_vessel(self, i: int) -> str:
        """The vessel label the path passes closest to (measured only when a rule needs the name)."""
        pc = self.clearance(i)
        if not pc.by_label:
            pc.by_label = self.oracle.vessel_label_distances(segment_points(self.target, self.entry(i)))
        return min(pc.by_label, key=pc.by_label.get) if pc.by_label else "vessel"

    def hard_violations(self, i: int) -> List[dict]:
        """The hard rules candidate ``i`` breaks (full-resolution clearances, planning-grid geometry)."""
        c, r, pc, thr = self.maps.constraints, self.res, self.clearance(i), self.thr
        out = [violation("hard_structure", cls, pc.by_class[cls], thr, "mm",
                         f"touches the {cls}: needle axis {pc.by_class[cls]:.1f} mm from it (needs > {thr:.1f} mm)")
               for cls in HARD_CLASSES if cls in pc.by_class and pc.by_class[cls] <= thr]
        name = self._nearest_vessel(i) if min(pc.vessel_outside_mm - c.vessel_floor_mm,
                                              pc.vessel_inside_mm) <= thr else "vessel"
        if pc.vessel_outside_mm <= thr + c.vessel_floor_mm:
            out.append(violation("vessel", name, pc.vessel_outside_mm, thr + c.vessel_floor_mm, "mm",
                                 f"passes {pc.vessel_outside_mm:.1f} mm from the {name} (axis to voxel centres; needs "
                                 f"> {thr + c.vessel_floor_mm:.1f} mm: needle radius, half voxel and the "
                                 f"{c.vessel_floor_mm:g} mm floor)"))
        if pc.vessel_inside_mm <= thr:
            out.append(violation("vessel", name, pc.vessel_inside_mm, thr, "mm",
                                 f"crosses the {name} inside the lesion ({pc.vessel_inside_mm:.1f} mm)"))
        length = float(r["length_mm"][i])
        if length > c.max_length_mm + 1e-9:
            longer = [n for n in NEEDLE_LENGTHS_MM if n >= length]
            out.append(violation("too_long", "needle", length, c.max_length_mm, "mm",
                                 f"{length:.0f} mm path, longer than the {c.max_length_mm:.0f} mm needle"
                                 + (f" (a {longer[0]:.0f} mm coaxial system reaches it)" if longer else "")))
        n = int(r["capsule_crossings_n"][i])
        if n != 1:
            out.append(violation("capsule_crossings", "liver capsule", n, 1, "count",
                                 f"crosses the liver capsule {n} times (needs exactly 1)"))
        ang = float(r["capsule_angle_deg"][i])
        if ang > c.grazing_angle_deg:
            out.append(violation("grazing_capsule", "liver capsule", ang, c.grazing_angle_deg, "deg",
                                 f"grazes the capsule at {ang:.0f} deg from its normal (> {c.grazing_angle_deg:g} deg)"))
        return out

    def soft_shortfalls(self, i: int) -> List[dict]:
        """The soft rules candidate ``i`` falls short of (cautions of a safe path)."""
        c, r, pc, thr = self.maps.constraints, self.res, self.clearance(i), self.thr
        out = []
        if thr + c.vessel_floor_mm < pc.vessel_outside_mm < thr + c.vessel_margin_mm:
            name = self._nearest_vessel(i)
            out.append(violation("vessel_margin", name, pc.vessel_outside_mm, thr + c.vessel_margin_mm, "mm",
                                 f"passes {pc.vessel_outside_mm:.1f} mm from the {name} (soft margin "
                                 f"{c.vessel_margin_mm:g} mm: {thr + c.vessel_margin_mm:.1f} mm from the axis)"))
        liver = float(r["liver_mm"][i])
        if liver < c.min_liver_mm:
            out.append(violation("liver_traverse", "liver", liver, c.min_liver_mm, "mm",
                                 f"{liver:.0f} mm of normal liver before the lesion (preferred >= {c.min_liver_mm:g} mm)"))
        ang = float(r["capsule_angle_deg"][i])
        if c.max_capsule_angle_deg < ang <= c.grazing_angle_deg:
            out.append(violation("capsule_angle", "liver capsule", ang, c.max_capsule_angle_deg, "deg",
                                 f"capsule crossed at {ang:.0f} deg from its normal (preferred <= "
                                 f"{c.max_capsule_angle_deg:g} deg)"))
        return out

    def safe(self, i: int) -> bool:
        """Candidate ``i`` meets every hard rule at full resolution."""
        return not self.hard_violations(i)

    def record(self, i: int, guidance: str) -> dict:
        """JSON-ready description of candidate ``i`` (CT LPS mm), ``safe`` and its cautions or violations."""
        c, r = self.maps.constraints, self.res
        pc = self.clearance(i)
        hard = self.hard_violations(i)
        hard_vals = [v for k, v in pc.by_class.items() if k in HARD_CLASSES or k == "vessel_large"]
        rec = {
            "guidance": guidance,
            "entry_ct": [float(v) for v in self.entry(i)],
            "target_ct": [float(v) for v in self.target],
            "direction_ct": [round(float(v), 5) for v in r["directions"][i]],
            "length_mm": round(float(r["length_mm"][i]), 1),
            "liver_traverse_mm": round(float(r["liver_mm"][i]), 1),
            "capsule_angle_deg": round(float(r["capsule_angle_deg"][i]), 1),
            "min_hard_clearance_mm": _reported(min(hard_vals)) if hard_vals else None,
            "clearance_mm": {k: _reported(v) for k, v in pc.by_class.items() if np.isfinite(v)},
            "cost": round(float(r["cost"][i]), 4),
            "needle": {"gauge": c.needle_gauge, "outer_diameter_mm": GAUGE_OD_MM[c.needle_gauge],
                       "length_mm": c.max_length_mm},
            "safe": not hard,
        }
        if hard:
            rec["violations"] = hard + self.soft_shortfalls(i)
            rec["least_risk"] = True
        else:
            rec["cautions"] = self.soft_shortfalls(i)
        return rec
