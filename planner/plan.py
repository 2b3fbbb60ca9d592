"""Plan a case: per lesion visibility, safe trajectories, guidance; per case ranking.

``plan_case`` is the one entry point the CLI and the GUI call. Inputs are a CT
(Volume, LPS) and a LabelMap on the same grid; optionally an arterial phase on
the same grid, a sweep with ``reference_to_ct`` and the registration RESULT
dict, a lesion name or a point target (LPS mm). Output is a
:class:`PlanResult` holding the JSON-ready ``plan`` (DESIGN section 6) and the
anatomy used, for the report.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

import numpy as np
from scipy import ndimage

from registration.errors import CancelledError, InputError
from registration.volume import LabelMap, Volume

from . import ct_guidance, visibility
from .anatomy import HARD_CLASSES, Anatomy, build_anatomy
from .recommendation import LesionFacts, hit_probability, recommend_case, recommend_lesion
from .trajectories import (Constraints, build_maps, describe_rejections, evaluate, fibonacci_sphere,
                           path_record, select_diverse)

PLAN_VERSION = "1.0"
SOFTWARE_VERSION = "0.1.0"


@dataclass
class PlanResult:
    plan: dict
    anatomy: Anatomy
    lesion_masks: dict


def _target_in_mask(mask: np.ndarray, volume: Volume) -> np.ndarray:
    """Centroid (LPS) if it lies in the mask, else the deepest voxel of the mask."""
    kji = np.argwhere(mask)
    c_ijk = kji[:, ::-1].mean(axis=0)
    k, j, i = np.rint(c_ijk[::-1]).astype(int)
    if mask[k, j, i]:
        return volume.index_to_lps(c_ijk)
    depth = ndimage.distance_transform_edt(mask, sampling=volume.spacing[::-1])
    k, j, i = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return volume.index_to_lps(np.array([i, j, k], float))


def _lesions(labels: LabelMap, ct: Volume, only: Optional[str], labels_path) -> List[dict]:
    from registration.lesions import lesion_table
    rows = lesion_table(labels, ct)
    if only is not None:
        rows = [r for r in rows if r["name"] == only]
        if not rows:
            names = ", ".join(r["name"] for r in lesion_table(labels)) or "none"
            raise InputError(f"lesion '{only}' is not in the label map (lesions: {names})",
                             path=labels_path, fix="pass one of the listed names to --lesion")
    comps = {}
    for r in rows:
        m = labels.array == r["value"]
        if r.get("derived"):
            if r["value"] not in comps:
                comps[r["value"]] = ndimage.label(m, structure=np.ones((3, 3, 3)))
            lab, _ = comps[r["value"]]
            ijk = np.rint(labels.lps_to_index(r["centroid_lps"])).astype(int)
            cid = lab[ijk[2], ijk[1], ijk[0]]
            if cid == 0:  # centroid outside a crescent: nearest voxel of the component set
                pts = np.argwhere(lab > 0)
                cid = lab[tuple(pts[np.argmin(np.sum((pts - ijk[::-1]) ** 2, axis=1))])]
            m = lab == cid
        r["mask"] = m
    return rows


def _fine_large_vessels(labels: LabelMap, ref_img) -> Optional[np.ndarray]:
    """Large (>= 3 mm) vessels decided on the full-resolution labels, then put on the planning grid.

    On a coarse grid every vessel looks >= 3 mm wide; deciding at full
    resolution keeps small intrahepatic branches (which a needle may pass)
    from closing every path.
    """
    import SimpleITK as sitk
    from .anatomy import VESSEL_CLASS, large_vessels, risk_class_of
    values = [v for n, v in labels.names.items() if risk_class_of(n) == VESSEL_CLASS]
    if not values:
        return None
    big = large_vessels(np.isin(labels.array, values), labels.spacing)
    img = sitk.Resample(labels.with_array(big.view(np.uint8)).to_sitk(), ref_img, sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(img).astype(bool)


def planning_grid(ct: Volume, labels: LabelMap, arterial: Optional[Volume], max_voxels: int):
    """CT, labels (and arterial phase) resampled to an isotropic grid of <= max_voxels, or unchanged.

    Planning cost is dominated by distance transforms over the grid, so a
    0.8 mm CT of the abdomen is planned on ~1.2 mm voxels: CT and arterial linear, labels
    nearest neighbour, large vessels decided at full resolution. Returns (ct,
    labels, arterial, extra masks {class: bool} or None, spacing or None when
    unchanged).
    """
    n = ct.array.size
    if max_voxels <= 0 or n <= max_voxels:
        return ct, labels, arterial, None, None
    extent = np.array(ct.shape_ijk) * ct.spacing
    s = float((np.prod(extent) / max_voxels) ** (1.0 / 3.0))
    spacing = np.maximum(ct.spacing, s)
    size = [max(1, int(np.floor(e / sp))) for e, sp in zip(extent, spacing)]
    import SimpleITK as sitk
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(x) for x in spacing))
    # keep the physical corner of the first voxel where it was
    corner = ct.origin - ct.direction @ (0.5 * ct.spacing)
    ref.SetOrigin(tuple(float(x) for x in corner + ct.direction @ (0.5 * spacing)))
    ref.SetDirection(tuple(float(x) for x in ct.direction.reshape(-1)))

    def resample(vol, interp, default):
        img = sitk.Resample(vol.to_sitk(), ref, sitk.Transform(), interp, default)
        return Volume.from_sitk(img, vol.metadata)
    ct2 = resample(ct, sitk.sitkLinear, -1024.0)
    ct2 = ct2.with_array(np.rint(ct2.array).astype(np.int16))
    lab = resample(labels, sitk.sitkNearestNeighbor, 0)
    lab2 = LabelMap(lab.array, lab.spacing, lab.origin, lab.direction, labels.names, labels.metadata)
    art2 = resample(arterial, sitk.sitkLinear, -1024.0) if arterial is not None else None
    big = _fine_large_vessels(labels, ref)
    return ct2, lab2, art2, (None if big is None else {"vessel_large": big}), spacing


def _total_error_mm(tre_mm: float) -> float:
    """Registration TRE plus tracking, needle and breathing errors in quadrature (DESIGN section 7)."""
    try:
        from registration.uncertainty import total_error_mm
    except ImportError:  # pragma: no cover - the registration package owns the error budget
        return float(tre_mm)
    return float(total_error_mm(tre_mm))


def registration_tre_mm(registration: Optional[dict], name: str) -> Optional[float]:
    """TRE rms (mm) at a target from a RESULT dict: per-target first, else the global value.

    None when unknown, and when the registration's own verdict is "poor": a result the
    registration does not trust gives no hit probability (fusion is then not recommended)."""
    if not registration or registration.get("verdict") == "poor":
        return None
    for key in ("targets", "target_tre", "tre"):
        t = registration.get(key)
        if isinstance(t, dict) and name in t:
            v = t[name]
            return float(v["tre_rms_mm"] if isinstance(v, dict) else v)
        if isinstance(t, list):
            for row in t:
                if isinstance(row, dict) and row.get("name") == name:
                    for k in ("tre_rms_mm", "tre_registration_mm", "tre_mm"):
                        if row.get(k) is not None:
                            return float(row[k])
                    return None
    for k in ("tre_rms_mm", "predicted_tre_mm", "tre_mm"):
        if isinstance(registration.get(k), (int, float)):
            return float(registration[k])
    return None


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
        facts.append(f)
        rec = recommend_lesion(f)
        if why_no_us:
            # the specific cause replaces the generic window sentence
            rec["reasons"] = [f"no US-guided path: {why_no_us}"] + [
                x for x in rec["reasons"] if not x.startswith("acoustic window at")]
        if tre is not None:
            vis["fusion"] = {"tre_rms_mm": tre, "total_error_mm": round(total, 2),
                             "hit_probability": None if hp is None else round(hp, 3),
                             "note": "total = registration, tracking, needle and breathing errors in quadrature"}
        lesions_out.append({
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
        })
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
