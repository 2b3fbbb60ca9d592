"""Straight-needle trajectories from a target to the skin, vectorised over thousands.

Frames: every point is CT LPS mm; arrays are ``[k, j, i]``. A candidate is a
unit direction ``d`` (LPS) from the target; the needle is the segment from the
skin entry (first sample outside the body) to the target, sampled every
``step_mm`` (<= 0.5 mm). All candidates are marched at once on precomputed
maps (:class:`PlanningMaps`), so cost is one vectorised lookup per map.

Hard constraints (DESIGN section 7): no bone, lung/pleura, gallbladder, bowel,
kidney, heart (+ spleen, pancreas); >= 5 mm from vessels >= 3 mm along the
needle outside the target lesion (inside it the needle must only not cross a
vessel: metastases often abut vessels); length <=
max_length_mm; >= 10 mm of normal liver between lesion and capsule; one
capsule crossing at <= 60 deg from the capsule normal; for a supine patient no
entry on the back. Clearances are distances from the needle axis to the
nearest *voxel centre* of a structure, so a path is accepted only if the
clearance exceeds the needle radius + half the voxel diagonal: then no voxel
of the structure touches the needle.

Among the accepted paths the soft cost (DESIGN section 7: length, closeness to
risk structures, angle to the capsule, liver traverse) ranks them; its weights
are a heuristic (``COST_*`` below), each term about 0..1.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
from scipy import ndimage

from planner.anatomy.structures import FAR_MM, HARD_CLASSES, Anatomy

from .constraints import GAUGE_OD_MM, REJECT_REASONS
from .planning_maps import LESION, LIVER, OFF_GRID, OUTSIDE, PlanningMaps, nearest_voxel

# Soft cost of an accepted path (a heuristic ranking, not a clinical threshold): length as a
# fraction of the limit, plus the terms below.
COST_CLEARANCE_FULL_MM = 20.0        # hard clearance beyond this earns no more credit
COST_CAPSULE_WEIGHT = 0.5            # per 90 deg between needle and capsule normal
COST_LIVER_WEIGHT = 0.3              # per LIVER_TRAVERSE_SCALE_MM away from the preferred traverse
PREFERRED_LIVER_TRAVERSE_MM = 25.0   # enough normal liver to seal the track, not more
LIVER_TRAVERSE_SCALE_MM = 50.0
#: Candidate paths kept for display are pairwise at least this far apart (deg).
MIN_PATH_SEPARATION_DEG = 12.0
#: Step (mm) of the central differences giving the liver surface normal.
SDF_GRADIENT_STEP_MM = 1.0


def fibonacci_sphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _evaluate_chunk(maps: PlanningMaps, target_lps, directions: np.ndarray) -> Dict[str, np.ndarray]:
    """One chunk of :func:`evaluate` (all directions of the chunk at once)."""
    c = maps.constraints
    t = np.asarray(target_lps, float)
    d = np.asarray(directions, float)
    n = d.shape[0]
    s = np.arange(0.0, c.max_length_mm + c.step_mm, c.step_mm)            # (m,)
    # the LPS -> index map is affine, so index(t + s d) = index(t) + s * (M d):
    # no (n, m, 3) point array, float32 indices
    m3 = maps.lps_to_kji[:3, :3]
    tk = (m3 @ t + maps.lps_to_kji[:3, 3]).astype(np.float32)
    dk = (m3 @ d.T).astype(np.float32)                                   # (3, n)
    kji = tk[:, None, None] + dk[:, :, None] * s.astype(np.float32)[None, None, :]   # (3, n, m)
    region = nearest_voxel(maps.region, kji, OFF_GRID)
    outside = region <= OUTSIDE
    has_exit = outside.any(axis=1)
    first_out = np.where(has_exit, np.argmax(outside, axis=1), s.size)
    inside = np.arange(s.size)[None, :] < first_out[:, None]
    length = np.where(has_exit, s[np.minimum(first_out, s.size - 1)], np.inf)
    entry = t[None, :] + np.where(has_exit, length, 0.0)[:, None] * d

    off_grid = has_exit & (region[np.arange(n), np.minimum(first_out, s.size - 1)] == OFF_GRID)
    back = (d[:, 1] > c.max_posterior_component) if c.patient_position == "supine" else np.zeros(n, bool)
    # Trilinear clearance is the expensive lookup: only for the needle part
    # (inside the body) of candidates that passed the cheap checks.
    live = has_exit & ~off_grid & ~back
    sel = inside & live[:, None]
    min_clear = np.full(n, np.inf)
    if sel.any():
        clear = np.full(sel.shape, np.inf)
        clear[sel] = ndimage.map_coordinates(maps.hard_clearance_mm, kji[:, sel], order=1,
                                             mode="constant", cval=FAR_MM)
        in_lesion = sel & (region == LESION)
        if in_lesion.any() and maps.plain_clearance_mm is not None:
            clear[in_lesion] = ndimage.map_coordinates(maps.plain_clearance_mm, kji[:, in_lesion], order=1,
                                                       mode="constant", cval=FAR_MM)
        min_clear = clear.min(axis=1)

    liverish = region >= LIVER
    liver_mm = ((region == LIVER) & inside).sum(axis=1) * c.step_mm
    # capsule crossings: liver -> not-liver transitions inside the body
    trans = liverish[:, :-1] & ~liverish[:, 1:] & inside[:, 1:]
    crossings = trans.sum(axis=1)
    exit_idx = np.argmax(trans, axis=1)  # last liver sample before the capsule
    p_exit = t[None, :] + (s[exit_idx] + 0.5 * c.step_mm)[:, None] * d
    normal = _sdf_gradient(maps, p_exit)
    cosang = np.abs(np.sum(normal * d, axis=1))
    cap_angle = np.degrees(np.arccos(np.clip(cosang, 0.0, 1.0)))

    rej = {
        "leaves_ct_volume": off_grid,
        "entry_on_back": back,
        "too_long": ~has_exit,
        "hard_structure_or_vessel": min_clear <= (c.needle_radius_mm + maps.anatomy.half_voxel_diagonal_mm
                                                  + c.extra_margin_mm),
        "liver_traverse": liver_mm < c.min_liver_mm,
        "capsule_crossings": crossings != 1,
        "capsule_angle": cap_angle > c.max_capsule_angle_deg,
    }
    ok = np.ones(n, bool)
    for r in rej.values():
        ok &= ~r
    cost = (np.where(has_exit, length, c.max_length_mm) / c.max_length_mm
            + (1.0 - np.clip(min_clear, 0.0, COST_CLEARANCE_FULL_MM) / COST_CLEARANCE_FULL_MM)
            + COST_CAPSULE_WEIGHT * cap_angle / 90.0
            + COST_LIVER_WEIGHT * np.abs(liver_mm - PREFERRED_LIVER_TRAVERSE_MM) / LIVER_TRAVERSE_SCALE_MM)
    out = {"ok": ok, "length_mm": length, "entry_ct": entry, "min_clearance_mm": min_clear,
           "liver_mm": liver_mm, "capsule_angle_deg": cap_angle, "capsule_crossings": crossings,
           "cost": cost, "directions": d}
    out.update(rej)
    return out


def evaluate(maps: PlanningMaps, target_lps, directions: np.ndarray, chunk: int = 2048) -> Dict[str, np.ndarray]:
    """Check every direction (in chunks of ``chunk`` that stay in cache; candidates per second:
    benchmarks/results/planning.md); returns per-candidate arrays.

    Keys: ``ok`` bool, ``length_mm``, ``entry_ct`` (n,3), ``min_clearance_mm``
    (hard clearance along the needle), ``liver_mm`` (normal liver traversed),
    ``capsule_angle_deg``, ``capsule_crossings``, ``cost``, ``directions`` and
    one bool array per name in REJECT_REASONS (True = rejected for that reason).
    """
    d = np.asarray(directions, float)
    parts = [_evaluate_chunk(maps, target_lps, d[a:a + chunk]) for a in range(0, len(d), chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _sdf_gradient(maps: PlanningMaps, pts: np.ndarray, h: float = SDF_GRADIENT_STEP_MM) -> np.ndarray:
    """Unit outward normal of the liver surface at LPS points (central differences, mm)."""
    g = np.zeros_like(pts)
    for a in range(3):
        e = np.zeros(3)
        e[a] = h
        plus = maps.linear(maps.liver_sdf_mm, maps.to_kji(pts + e), fill=0.0)
        minus = maps.linear(maps.liver_sdf_mm, maps.to_kji(pts - e), fill=0.0)
        g[:, a] = (plus - minus) / (2 * h)
    norm = np.linalg.norm(g, axis=1, keepdims=True)
    return g / np.maximum(norm, 1e-9)


def select_diverse(cost: np.ndarray, ok: np.ndarray, directions: np.ndarray, k: int,
                   min_angle_deg: float = MIN_PATH_SEPARATION_DEG) -> List[int]:
    """Indices of the k cheapest acceptable candidates, pairwise >= min_angle_deg apart."""
    order = [int(i) for i in np.argsort(cost) if ok[i]]
    chosen: List[int] = []
    cos_min = np.cos(np.radians(min_angle_deg))
    for i in order:
        if all(float(directions[i] @ directions[j]) < cos_min for j in chosen):
            chosen.append(i)
            if len(chosen) == k:
                break
    return chosen


def path_clearances(anatomy: Anatomy, target_lps, entry_lps, step_mm: float = 0.5) -> Dict[str, float]:
    """Minimum distance (mm) from the needle axis to each risk class along one path."""
    t = np.asarray(target_lps, float)
    e = np.asarray(entry_lps, float)
    L = float(np.linalg.norm(e - t))
    s = np.arange(0.0, L + 1e-9, step_mm)
    pts = t + s[:, None] * ((e - t) / max(L, 1e-9))
    out = {}
    for cls in sorted(set(HARD_CLASSES) | {"vessel_large", "vessel"}):
        dist = anatomy.class_distance_mm(cls, pts)
        if dist is not None:
            out[cls] = round(float(dist.min()), 2)
    return out


def describe_rejections(res: Dict[str, np.ndarray]) -> Dict[str, int]:
    """How many candidates each constraint rejected, by code (a candidate may fail several)."""
    return {r: int(np.count_nonzero(res[r])) for r in REJECT_REASONS}


def path_record(maps: PlanningMaps, res: Dict[str, np.ndarray], i: int, target_lps,
                guidance: str) -> dict:
    """JSON-ready description of candidate i (CT LPS mm)."""
    c = maps.constraints
    entry = res["entry_ct"][i]
    return {
        "guidance": guidance,
        "entry_ct": [round(float(v), 2) for v in entry],
        "target_ct": [round(float(v), 2) for v in target_lps],
        "direction_ct": [round(float(v), 5) for v in res["directions"][i]],
        "length_mm": round(float(res["length_mm"][i]), 1),
        "liver_traverse_mm": round(float(res["liver_mm"][i]), 1),
        "capsule_angle_deg": round(float(res["capsule_angle_deg"][i]), 1),
        "min_hard_clearance_mm": round(float(res["min_clearance_mm"][i]), 2),
        "clearance_mm": path_clearances(maps.anatomy, target_lps, entry, c.step_mm),
        "cost": round(float(res["cost"][i]), 4),
        "needle": {"gauge": c.needle_gauge, "outer_diameter_mm": GAUGE_OD_MM[c.needle_gauge]},
    }
