"""Plan a case: per lesion visibility, safe trajectories, guidance; per case ranking.

``plan_case`` is the one entry point the CLI and the GUI call. Inputs are a CT
(Volume, LPS) and a LabelMap on the same grid; optionally an arterial phase on
the same grid, a sweep with ``reference_to_ct`` and the registration RESULT
dict, a lesion name or a point target (LPS mm). Output is a
:class:`PlanResult` holding the JSON-ready ``plan`` (DESIGN section 6) and the
anatomy used, for the report.
anatomy used, for the report.

The parts live beside it: :mod:`.lesion_targets` (lesions and target
points), :mod:`.planning_grid` (coarser grid for large CTs),
:mod:`.lesion_plan` (one lesion), :mod:`.fusion_error` (registration TRE at a
target).
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from planner.advice import visibility
from planner.advice.recommendation import recommend_case
from planner.anatomy.lesion_targets import _lesions
from planner.anatomy.structures import HARD_CLASSES, Anatomy, build_anatomy
from planner.paths import ct_guidance
from planner.paths.planning_grid import planning_grid
from planner.paths.trajectories import Constraints, fibonacci_sphere
from registration.spatial.errors import CancelledError, InputError
from registration.spatial.volume import LabelMap, Volume

from .lesion_plan import plan_lesion

PLAN_VERSION = "1.0"
SOFTWARE_VERSION = "0.1.0"


@dataclass
class PlanResult:
    plan: dict
    anatomy: Anatomy
    lesion_masks: dict


def plan_case(ct: Volume, labels: LabelMap, *, ct_arterial: Optional[Volume] = None, sweep=None,
              reference_to_ct: Optional[np.ndarray] = None, registration: Optional[dict] = None,
              lesion: Optional[str] = None, target_lps=None, guidance: str = "auto",
              constraints: Optional[Constraints] = None, n_directions: int = 3000,
              frequency_mhz: float = 3.5, top_k: int = 3, labels_path=None, ct_path=None,
              max_planning_voxels: int = 12_000_000,
              progress: Optional[Callable[[float, str], bool]] = None) -> PlanResult:
    """Plan every lesion (or ``lesion``, or a point ``target_lps``) of a case.

    A CT with more than ``max_planning_voxels`` voxels is planned on a coarser
    isotropic grid (see :func:`planning_grid`) with an extra clearance margin
    of half the new voxel diagonal, so structures shrunk by the resampling
    are still avoided; the plan records the grid.
    """
    if guidance not in ("auto", "us", "ct"):
        raise InputError(f"guidance must be us, ct or auto, got {guidance!r}")
    c = constraints or Constraints()
    if not 0 < c.max_length_mm <= 200:
        raise InputError(f"max length {c.max_length_mm} mm is outside (0, 200] mm",
                         fix="use --max-length-mm between 50 and 200")
    t0 = time.perf_counter()

    def report(frac, msg):
        if progress is not None and progress(frac, msg) is False:
            raise CancelledError(msg)

    report(0.0, "anatomy")
    if ct_arterial is not None and not ct_arterial.same_grid(ct):
        raise InputError("the arterial phase is not on the portal CT grid", path=ct_path,
                         fix="resample the arterial phase onto the portal CT")
    if not ct.same_grid(labels):
        raise InputError("the label map is not on the CT grid", path=labels_path,
                         fix="load the labels with the CT as reference (resampled by physical position)")
    source_spacing = [round(float(x), 4) for x in ct.spacing]
    ct, labels, ct_arterial, extra, coarse = planning_grid(ct, labels, ct_arterial, max_planning_voxels)
    if coarse is not None:
        # nearest-neighbour resampling can shrink a structure by up to half a
        # coarse voxel diagonal: add that to the clearance margin
        from dataclasses import replace
        c = replace(c, extra_margin_mm=c.extra_margin_mm + 0.5 * float(np.linalg.norm(coarse)))
    anatomy = build_anatomy(ct, labels, labels_path=labels_path, extra_masks=extra)
    if target_lps is not None:
        t = np.asarray(target_lps, float)
        ijk = np.rint(ct.lps_to_index(t)).astype(int)
        inside_grid = np.all(ijk >= 0) and np.all(ijk < np.array(ct.shape_ijk))
        if not inside_grid or not anatomy.masks["body"][ijk[2], ijk[1], ijk[0]]:
            raise InputError(f"target {t.round(1).tolist()} (LPS mm) is outside the body",
                             path=ct_path, fix="give --target x,y,z in LPS mm inside the liver")
        if not anatomy.masks["liver"][ijk[2], ijk[1], ijk[0]]:
            raise InputError(f"target {t.round(1).tolist()} (LPS mm) is not inside the liver",
                             path=ct_path, fix="give --target x,y,z in LPS mm inside the liver")
        ball = np.zeros(ct.array.shape, bool)
        ball[ijk[2], ijk[1], ijk[0]] = True
        rows = [{"name": "target", "value": None, "mask": ball, "centroid_lps": t.tolist(),
                 "equivalent_diameter_mm": None, "max_diameter_mm": None, "volume_ml": None,
                 "point_target": True}]
    else:
        rows = _lesions(labels, ct, lesion, labels_path)
        if not rows:
            raise InputError("the label map has no lesion (no 'lesion_*' label with voxels)",
                             path=labels_path, fix="add lesion labels or pass --target x,y,z")
    all_lesions = np.zeros(ct.array.shape, bool)
    for r in rows:
        if not r.get("point_target"):
            all_lesions |= r["mask"]
    block = visibility.acoustic_block_map(anatomy)
    limit = visibility.depth_limit_mm(frequency_mhz)
    fib = fibonacci_sphere(n_directions)
    dirs = np.concatenate([fib, ct_guidance.gantry_directions()])
    window_dirs = fibonacci_sphere(1500)
    lesions_out, facts = [], []
    stats = {"candidates_checked": 0, "evaluate_s": 0.0}
    for n_row, r in enumerate(rows):
        report(0.1 + 0.85 * n_row / len(rows), f"planning {r['name']}")
        f, lesion_out = plan_lesion(r, ct=ct, ct_arterial=ct_arterial, anatomy=anatomy, constraints=c,
                                    all_lesions=all_lesions, block=block, depth_limit_mm=limit,
                                    frequency_mhz=frequency_mhz, dirs=dirs, window_dirs=window_dirs,
                                    guidance=guidance, top_k=top_k, sweep=sweep,
                                    reference_to_ct=reference_to_ct, registration=registration,
                                    stats=stats)
        facts.append(f)
        lesions_out.append(lesion_out)
    case = recommend_case(facts, has_pancreatic_mass="pancreatic_mass" in labels.names)
    for rank, name in enumerate(case["ranking"], 1):
        for lo in lesions_out:
            if lo["name"] == name:
                lo["accessibility_rank"] = rank
    report(1.0, "done")
    plan = {
        "version": PLAN_VERSION,
        "software": {"name": "ctus", "version": SOFTWARE_VERSION},
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "coordinate_system": "LPS", "units": "mm",
        "ct": {"shape_ijk": list(ct.shape_ijk), "spacing_mm": [round(float(s), 4) for s in ct.spacing],
               "source_spacing_mm": source_spacing, "resampled_for_planning": coarse is not None,
               "orientation": ct.orientation_letters(), "phases": ["portal"] + (["arterial"] if ct_arterial is not None else [])},
        "constraints": {"max_length_mm": c.max_length_mm, "vessel_margin_mm": c.vessel_margin_mm,
                        "min_liver_mm": c.min_liver_mm, "max_capsule_angle_deg": c.max_capsule_angle_deg,
                        "needle_gauge": c.needle_gauge, "step_mm": c.step_mm,
                        "extra_margin_mm": round(c.extra_margin_mm, 2),
                        "patient_position": c.patient_position, "guidance": guidance,
                        "hard_classes_checked": sorted(k for k in HARD_CLASSES if k in anatomy.masks)
                        + (["vessel_large"] if "vessel_large" in anatomy.masks else [])},
        "anatomy": anatomy.summary(), "anatomy_notes": list(anatomy.notes),
        "registration": None if reference_to_ct is None else {
            "reference_to_ct": np.asarray(reference_to_ct, float).round(6).tolist(),
            "metrics": {k: v for k, v in (registration or {}).items()
                        if isinstance(v, (int, float, str)) and not isinstance(v, bool)}},
        "lesions": lesions_out,
        "recommendation": case,
        "timing": {"total_s": round(time.perf_counter() - t0, 2),
                   "candidates_checked": stats["candidates_checked"],
                   "candidates_per_s": round(stats["candidates_checked"] / max(stats["evaluate_s"], 1e-9))},
    }
    return PlanResult(plan=plan, anatomy=anatomy,
                      lesion_masks={r["name"]: r["mask"] for r in rows})
