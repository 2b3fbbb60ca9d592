"""Straight-needle trajectories from a target to the skin, vectorised over thousands.

Frames: every point is CT LPS mm; arrays are ``[k, j, i]``. A candidate is a
unit direction ``d`` (LPS) from the target; the needle is the segment from the
skin entry (first sample outside the body) to the target, sampled every
``step_mm`` (<= 0.5 mm). All candidates are marched at once on precomputed
maps (:class:`PlanningMaps`), so cost is one vectorised lookup per map.

Hard rules (:mod:`.constraints`, docs/clinical_evidence.md section 4): no hard
structure (bone, lung, gallbladder, bowel, kidney, heart, spleen, pancreas)
touched; no vessel >= 3 mm crossed, and outside the target lesion the needle
stays ``vessel_floor_mm`` from one (inside the lesion it must only not cross
one: metastases often abut vessels); skin exit within the needle's usable
length; exactly one capsule crossing, not grazing; no entry on the table side.
Clearances are distances from the needle axis to the nearest *voxel centre* of
a structure, so a rule holds only if the clearance exceeds the needle radius +
half the voxel diagonal (+ the rule's margin): then no voxel touches the needle.

Soft rules (the 5 mm vessel margin, 10 mm of normal liver, 60 deg capsule
angle) and the soft cost (DESIGN section 7: length, closeness to risk
structures, angle to the capsule, liver traverse) rank the accepted paths; a
path short of a soft rule pays ``SOFT_PENALTY`` plus its relative shortfall,
so it is chosen only when no path meets every soft rule. Weights are a
heuristic (``COST_*`` below), each term about 0..1.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from planner.anatomy.structures import FAR_MM

from .constraints import REJECT_REASONS, SOFT_REASONS
from .planning_maps import LESION, LIVER, OFF_GRID, OUTSIDE, PlanningMaps, nearest_voxel

# Soft cost of an accepted path (a heuristic ranking, not a clinical threshold): length as a
# fraction of the limit, plus the terms below.
COST_CLEARANCE_FULL_MM = 20.0        # hard clearance beyond this earns no more credit
COST_CAPSULE_WEIGHT = 0.5            # per 90 deg between needle and capsule normal
COST_LIVER_WEIGHT = 0.3              # per LIVER_TRAVERSE_SCALE_MM away from the preferred traverse
PREFERRED_LIVER_TRAVERSE_MM = 25.0   # enough normal liver to seal the track, not more
LIVER_TRAVERSE_SCALE_MM = 50.0
#: Cost of breaking one soft rule (plus its shortfall as a fraction of the rule's value): larger
#: than the spread of the other terms, so a path meeting every soft rule ranks first.
SOFT_PENALTY = 2.0
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


def hard_threshold_mm(maps: PlanningMaps) -> float:
    """Axis-to-voxel-centre clearance (mm) that keeps every voxel off the needle on this grid."""
    c = maps.constraints
    return c.needle_radius_mm + maps.anatomy.half_voxel_diagonal_mm + c.extra_margin_mm


def _sample_min(arr: Optional[np.ndarray], kji: np.ndarray, sel: np.ndarray, parts) -> List[np.ndarray]:
    """Per candidate, the min of ``arr`` (trilinear) over the samples of each mask in ``parts``
    (sub-masks of ``sel``); +inf where a candidate has no such sample or ``arr`` is None."""
    n = sel.shape[0]
    if arr is None or not sel.any():
        return [np.full(n, np.inf) for _ in parts]
    vals = np.full(sel.shape, np.inf)
    vals[sel] = ndimage.map_coordinates(arr, kji[:, sel], order=1, mode="constant", cval=FAR_MM)
    return [np.where(p, vals, np.inf).min(axis=1) for p in parts]


# long: one vectorised pass computing every rule; splitting it would copy the (3, n, m) index array
def _evaluate_chunk(maps: PlanningMaps, target_lps, directions: np.ndarray, march_mm: float) -> Dict[str, np.ndarray]:
    """One chunk of :func:`evaluate` (all directions of the chunk at once)."""
    c = maps.constraints
    t = np.asarray(target_lps, float)
    d = np.asarray(directions, float)
    n = d.shape[0]
    s = np.arange(0.0, march_mm + c.step_mm, c.step_mm)                   # (m,)
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
    table = (d @ c.table_side) > c.max_table_side_component
    # Trilinear clearances are the expensive lookups: only for the needle part
    # (inside the body) of candidates that passed the cheap checks.
    live = has_exit & ~off_grid & ~table
    sel = inside & live[:, None]
    in_lesion = sel & (region == LESION)
    organ_min, = _sample_min(maps.organ_mm, kji, sel, [sel])
    vessel_out, vessel_in = _sample_min(maps.vessel_mm, kji, sel, [sel & ~in_lesion, in_lesion])

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

    thr = hard_threshold_mm(maps)
    rej = {
        "leaves_ct_volume": off_grid,
        "entry_on_table_side": table,
        "too_long": ~has_exit | (length > c.max_length_mm + 1e-9),
        "hard_structure": organ_min <= thr,
        "vessel": (vessel_out <= thr + c.vessel_floor_mm) | (vessel_in <= thr),
        "capsule_crossings": crossings != 1,
        "grazing_capsule": cap_angle > c.grazing_angle_deg,
    }
    soft_short = {
        "vessel_margin": np.clip((thr + c.vessel_margin_mm - vessel_out) / max(c.vessel_margin_mm, 1e-9), 0, 1),
        "liver_traverse": np.clip((c.min_liver_mm - liver_mm) / max(c.min_liver_mm, 1e-9), 0, 1),
        "capsule_angle": np.clip((cap_angle - c.max_capsule_angle_deg)
                                 / max(c.grazing_angle_deg - c.max_capsule_angle_deg, 1e-9), 0, 1),
    }
    ok = np.ones(n, bool)
    for r in rej.values():
        ok &= ~r
    min_clear = np.minimum(organ_min, vessel_out - c.vessel_margin_mm)
    cost = (np.where(has_exit, length, c.max_length_mm) / c.max_length_mm
            + (1.0 - np.clip(min_clear, 0.0, COST_CLEARANCE_FULL_MM) / COST_CLEARANCE_FULL_MM)
            + COST_CAPSULE_WEIGHT * cap_angle / 90.0
            + COST_LIVER_WEIGHT * np.abs(liver_mm - PREFERRED_LIVER_TRAVERSE_MM) / LIVER_TRAVERSE_SCALE_MM)
    out = {"ok": ok, "length_mm": length, "entry_ct": entry,
           "min_clearance_mm": np.minimum(organ_min, np.minimum(vessel_out, vessel_in)),
           "organ_clearance_mm": organ_min, "vessel_clearance_mm": vessel_out,
           "vessel_in_lesion_mm": vessel_in, "liver_mm": liver_mm, "capsule_angle_deg": cap_angle,
           "capsule_crossings_n": crossings, "directions": d}
    for code, short in soft_short.items():
        out[code] = short > 0
        out[f"{code}_shortfall"] = short
        cost = cost + np.where(short > 0, SOFT_PENALTY + short, 0.0)
    out["cost"] = cost
    out.update(rej)
    return out


def evaluate(maps: PlanningMaps, target_lps, directions: np.ndarray, chunk: int = 2048,
             march_mm: Optional[float] = None) -> Dict[str, np.ndarray]:
    """Check every direction (in chunks of ``chunk`` that stay in cache; candidates per second:
    benchmarks/results/planning.md); returns per-candidate arrays.

    Rays are marched ``march_mm`` (default: the needle's usable length; longer for the
    least-risk search, where a too-long path is reported, not hidden). Keys: ``ok`` bool
    (every hard rule met), ``length_mm``, ``entry_ct`` (n,3), ``min_clearance_mm`` (axis to the
    nearest hard or large-vessel voxel centre), ``organ_clearance_mm``,
    ``vessel_clearance_mm`` (outside the target lesion), ``vessel_in_lesion_mm``,
    ``liver_mm`` (normal liver traversed), ``capsule_angle_deg``, ``capsule_crossings_n`` (count),
    ``cost``, ``directions``; one bool array per code of REJECT_REASONS (True = rejected)
    and of SOFT_REASONS (True = short of the soft rule; ``<code>_shortfall`` in [0, 1]).
    """
    d = np.asarray(directions, float)
    march = maps.constraints.max_length_mm if march_mm is None else float(march_mm)
    parts = [_evaluate_chunk(maps, target_lps, d[a:a + chunk], march) for a in range(0, len(d), chunk)]
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


#: select_diverse gives up after this many candidates refused by its ``accept`` check.
MAX_REFUSED = 40


def select_diverse(cost: np.ndarray, ok: np.ndarray, directions: np.ndarray, k: int,
                   min_angle_deg: float = MIN_PATH_SEPARATION_DEG, accept=None) -> List[int]:
    """Indices of the k cheapest acceptable candidates, pairwise >= min_angle_deg apart.

    ``accept(i) -> bool`` (optional) is a last check of a candidate in cost order (the
    full-resolution clearance check): a refused candidate is skipped, not counted; after
    ``MAX_REFUSED`` refusals the search stops with what it has.
    """
    order = [int(i) for i in np.argsort(cost, kind="stable") if ok[i]]
    chosen: List[int] = []
    cos_min = np.cos(np.radians(min_angle_deg))
    refused = 0
    for i in order:
        if all(float(directions[i] @ directions[j]) < cos_min for j in chosen):
            if accept is not None and not accept(i):
                refused += 1
                if refused >= MAX_REFUSED:
                    break
                continue
            chosen.append(i)
            if len(chosen) == k:
                break
    return chosen


def describe_rejections(res: Dict[str, np.ndarray]) -> Dict[str, int]:
    """How many candidates each hard rule rejected, by code (a candidate may fail several)."""
    return {r: int(np.count_nonzero(res[r])) for r in REJECT_REASONS}


def describe_soft(res: Dict[str, np.ndarray]) -> Dict[str, int]:
    """How many hard-safe candidates fall short of each soft rule, by code."""
    return {r: int(np.count_nonzero(res[r] & res["ok"])) for r in SOFT_REASONS}
