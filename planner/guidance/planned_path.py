"""The planned needle path that guidance follows, read back from ``PLAN_DIR/plan.json``.

``plan.json`` (``planner.export.plan_files``) lists per lesion its
trajectories with ``entry_ct`` and ``target_ct`` (CT LPS mm), the constraints
the plan was made with (``vessel_margin_mm``, ``needle_gauge``) and, when it
was registered, ``registration.reference_to_ct``. It does not record which
label map was used: the caller supplies the same labels.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from planner.paths.constraints import GAUGE_OD_MM
from registration.spatial.errors import InputError
from registration.spatial.transforms import as_matrix


@dataclass(frozen=True)
class PlannedPath:
    """A straight planned path in CT LPS mm, from skin entry to target."""
    lesion: str
    entry_ct: np.ndarray
    target_ct: np.ndarray
    guidance: str = ""           # 'us' or 'ct'
    index: int = 1               # 1-based within the lesion's trajectories
    safe: bool = True            # False when the plan marked it as least-risk only

    @property
    def direction(self) -> np.ndarray:
        """Unit vector entry -> target (the insertion direction)."""
        d = np.asarray(self.target_ct, float) - np.asarray(self.entry_ct, float)
        return d / np.linalg.norm(d)

    @property
    def length_mm(self) -> float:
        return float(np.linalg.norm(np.asarray(self.target_ct, float) - np.asarray(self.entry_ct, float)))


def read_plan(plan_dir) -> Tuple[dict, str]:
    """(plan dict, path of plan.json) from a plan folder (or the plan.json itself)."""
    p = os.fspath(plan_dir)
    path = os.path.join(p, "plan.json") if os.path.isdir(p) else p
    if not os.path.isfile(path):
        raise InputError("no plan.json here", path=path, fix="give the --out folder of ctus plan")
    try:
        with open(path, "r", encoding="utf-8") as f:
            plan = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not readable JSON ({exc})", path=path, fix="give the plan.json written by ctus plan") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("lesions"), list):
        raise InputError("has no \"lesions\" list", path=path, fix="give the plan.json written by ctus plan")
    return plan, path


def planned_path(plan: dict, lesion: Optional[str] = None, trajectory: int = 1, *, path=None) -> PlannedPath:
    """The ``trajectory``-th (1-based) path of ``lesion`` (default: the plan's biopsy-first lesion)."""
    lesions = {les.get("name"): les for les in plan["lesions"] if isinstance(les, dict)}
    with_paths = [n for n, les in lesions.items() if les.get("trajectories")]
    if lesion is None:
        first = (plan.get("recommendation") or {}).get("biopsy_first")
        lesion = first if first in with_paths else (with_paths[0] if with_paths else None)
        if lesion is None:
            raise InputError("the plan has no lesion with a trajectory", path=path,
                             fix="plan again (ctus plan) or choose CT guidance")
    if lesion not in lesions:
        raise InputError(f"no lesion '{lesion}' in the plan (lesions: {', '.join(sorted(map(str, lesions)))})",
                         path=path, fix="pass --lesion with one of those names")
    trajs = lesions[lesion].get("trajectories") or []
    if not trajs:
        raise InputError(f"{lesion} has no trajectory in the plan ({lesions[lesion].get('no_us_path_reason') or 'no safe path'})",
                         path=path, fix=f"choose a lesion with a path: {', '.join(with_paths) or 'none'}")
    if not 1 <= trajectory <= len(trajs):
        raise InputError(f"{lesion} has {len(trajs)} trajectories, not {trajectory}", path=path,
                         fix=f"pass --trajectory 1..{len(trajs)}")
    t = trajs[trajectory - 1]
    try:
        entry, target = (np.asarray(t[k], float).reshape(3) for k in ("entry_ct", "target_ct"))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{lesion} trajectory {trajectory} has no entry_ct/target_ct of 3 numbers", path=path,
                         fix="give the plan.json written by ctus plan") from None
    if np.linalg.norm(target - entry) < 1.0:
        raise InputError(f"{lesion} trajectory {trajectory}: entry and target coincide", path=path)
    return PlannedPath(lesion, entry, target, str(t.get("guidance", "")), trajectory, t.get("safe", True) is not False)


def plan_needle(plan: dict) -> Tuple[float, float]:
    """(needle radius mm, vessel margin mm) the plan was made with (18G and 5 mm when absent)."""
    c = plan.get("constraints") or {}
    gauge = c.get("needle_gauge", "18G")
    radius = 0.5 * GAUGE_OD_MM.get(gauge, GAUGE_OD_MM["18G"])
    return radius, float(c.get("vessel_margin_mm", 5.0))


def plan_vessel_floor(plan: dict) -> float:
    """Hard vessel clearance (mm) of the plan: ``vessel_floor_mm``; plans without it treated the
    vessel margin as hard, so it is the margin then."""
    c = plan.get("constraints") or {}
    return float(c.get("vessel_floor_mm", c.get("vessel_margin_mm", 5.0)))


def plan_reference_to_ct(plan: dict, *, path=None) -> Optional[np.ndarray]:
    """The plan's registration ``reference_to_ct`` (4x4) or None when the plan was not registered."""
    reg = plan.get("registration") or {}
    if "reference_to_ct" not in reg:
        return None
    return as_matrix(reg["reference_to_ct"], name="registration.reference_to_ct", path=path)
