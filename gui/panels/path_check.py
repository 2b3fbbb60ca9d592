"""Re-check an edited needle path with the planner's own constraints (no Qt).

All points are CT LPS mm. The constraint maps of a lesion
(:func:`planner.paths.trajectories.build_maps`) are the slow part and are built in
a worker; the check of one straight path target -> entry (continued to the
skin) is :func:`planner.paths.trajectories.evaluate` on those maps, with the plan's
own constraints. Nothing here invents a number: it only calls the planner.
"""
from __future__ import annotations

import numpy as np


def constraints_of(plan: dict):
    """planner Constraints from a plan's ``constraints`` block (the ones it was planned with)."""
    from planner.paths.trajectories import Constraints
    c = plan.get("constraints", {})
    keys = ("max_length_mm", "vessel_margin_mm", "min_liver_mm", "max_capsule_angle_deg", "needle_gauge",
            "step_mm", "patient_position")
    return Constraints(**{k: c[k] for k in keys if k in c})


def build_lesion_maps(result, name: str):
    """Planning maps of one lesion of a PlanResult (slow part of a check; run in a worker)."""
    from planner.paths.trajectories import build_maps
    mask = result.lesion_masks.get(name)
    others = None
    for n, m in result.lesion_masks.items():
        if n != name:
            others = m.copy() if others is None else (others | m)
    return build_maps(result.anatomy, mask, constraints_of(result.plan), others)


def check_path(maps, entry, target, guidance: str, lesion_mask=None) -> dict:
    """The planner's constraints on the straight path target -> entry (continued to the skin).

    Returns ``{"ok", "violations": [str], "record": trajectory dict (plan schema)}``.
    """
    from planner.paths.trajectories import REJECT_REASONS, evaluate, path_record
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    d = entry - target
    if np.linalg.norm(d) < 1.0:
        return {"ok": False, "violations": ["entry and target coincide"], "record": None}
    d = d / np.linalg.norm(d)
    res = evaluate(maps, target, d[None])
    bad = [r.replace("_", " ") for r in REJECT_REASONS if bool(res[r][0])]
    if lesion_mask is not None:
        kji = np.rint(maps.to_kji(target[None])[:, 0]).astype(int)
        inside = np.all(kji >= 0) and np.all(kji < np.array(lesion_mask.shape))
        if not inside or not lesion_mask[tuple(kji)]:
            bad.insert(0, "target outside the lesion")
    record = path_record(maps, res, 0, target, guidance) if np.isfinite(res["length_mm"][0]) else None
    if record is not None:
        record["edited_by_user"] = True
    return {"ok": not bad, "violations": bad, "record": record}
