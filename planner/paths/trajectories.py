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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from planner.anatomy.structures import HARD_CLASSES, Anatomy, bounding_box

#: Outer diameters (mm) of common biopsy needle gauges (Stubs gauge).
GAUGE_OD_MM = {"14G": 2.11, "16G": 1.65, "17G": 1.47, "18G": 1.27, "19G": 1.07,
               "20G": 0.91, "21G": 0.82, "22G": 0.72}

OFF_GRID, OUTSIDE, BODY, LIVER, LESION, OTHER_LESION, VESSEL = -1, 0, 1, 2, 3, 4, 5


@dataclass
class Constraints:
    max_length_mm: float = 150.0
    vessel_margin_mm: float = 5.0
    min_liver_mm: float = 10.0
    max_capsule_angle_deg: float = 60.0
    needle_gauge: str = "18G"
    step_mm: float = 0.5
    patient_position: str = "supine"     # 'supine' forbids entries on the back
    max_posterior_component: float = 0.5  # d . P above this = entry on the back
    extra_margin_mm: float = 0.0          # added clearance when planning on a resampled grid

    @property
    def needle_radius_mm(self) -> float:
        return 0.5 * GAUGE_OD_MM[self.needle_gauge]


def fibonacci_sphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the sphere (golden-angle spiral)."""
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


@dataclass
class PlanningMaps:
    """Per-target lookup maps on the CT grid.

    region int8: (-1 off the grid when sampled), 0 outside body, 1 body, 2 liver, 3 the target
    lesion, 4 another lesion, 5 vessel (>= 2 counts as inside the liver envelope).
    hard_clearance_mm float32: min over hard classes of distance, and large-vessel
    distance minus the vessel margin (mm; <= 0 means violation at the axis).
    liver_sdf_mm float32: signed distance to the liver surface (+ outside).
    plain_clearance_mm float32: like hard_clearance_mm without the vessel margin; used
    inside the target lesion, where the margin cannot apply (the needle tip must reach
    a lesion that may abut a vessel) but crossing a vessel is still forbidden.
    """
    anatomy: Anatomy
    region: np.ndarray
    hard_clearance_mm: np.ndarray
    liver_sdf_mm: np.ndarray
    constraints: Constraints
    plain_clearance_mm: Optional[np.ndarray] = None
    lps_to_kji: np.ndarray = field(init=False)

    def __post_init__(self):
        ijk = self.anatomy.ct.lps_to_ijk
        self.lps_to_kji = ijk[[2, 1, 0, 3]]

    def to_kji(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) LPS -> (3, ...) continuous [k, j, i] indices."""
        m = self.lps_to_kji
        return np.tensordot(m[:3, :3], pts, axes=([1], [pts.ndim - 1])) + \
            m[:3, 3].reshape((3,) + (1,) * (pts.ndim - 1))

    def nearest(self, arr: np.ndarray, kji: np.ndarray, fill=0) -> np.ndarray:
        idx = np.rint(kji).astype(np.intp)
        shape = np.array(arr.shape).reshape((3,) + (1,) * (kji.ndim - 1))
        inside = np.all((idx >= 0) & (idx < shape), axis=0)
        for a in range(3):
            np.clip(idx[a], 0, arr.shape[a] - 1, out=idx[a])
        out = arr[idx[0], idx[1], idx[2]]
        return np.where(inside, out, fill)

    @staticmethod
    def linear(arr: np.ndarray, kji: np.ndarray, fill: float) -> np.ndarray:
        flat = kji.reshape(3, -1)
        v = ndimage.map_coordinates(arr, flat, order=1, mode="constant", cval=fill)
        return v.reshape(kji.shape[1:])


def build_maps(anatomy: Anatomy, lesion_mask: Optional[np.ndarray],
               constraints: Constraints, other_lesions: Optional[np.ndarray] = None) -> PlanningMaps:
    """Maps for one target (its lesion mask may be None for a point target)."""
    m = anatomy.masks
    region = np.zeros(m["body"].shape, np.int8)
    region[m["body"]] = BODY
    if "vessel" in m:
        # vessels are carved out of the liver label: crossing one inside the
        # liver is not a capsule crossing (large ones are excluded by clearance)
        region[m["vessel"]] = VESSEL
    region[m["liver"]] = LIVER
    if other_lesions is not None:
        region[other_lesions] = OTHER_LESION
    if lesion_mask is not None:
        region[lesion_mask] = LESION
    clear = anatomy.distance_mm["hard"].copy()
    plain = None
    if "vessel_large" in anatomy.distance_mm:
        plain = np.minimum(clear, anatomy.distance_mm["vessel_large"])
        np.minimum(clear, anatomy.distance_mm["vessel_large"] - constraints.vessel_margin_mm, out=clear)
    return PlanningMaps(anatomy, region, clear, liver_sdf(anatomy, lesion_mask, other_lesions), constraints,
                        plain if plain is not None else clear)


def liver_sdf(anatomy: Anatomy, lesion_mask=None, other_lesions=None, margin_mm: float = 15.0) -> np.ndarray:
    """Signed distance (mm, + outside) to the liver surface, exact within 15 mm of the liver box."""
    liver = anatomy.masks["liver"].copy()
    for extra in (lesion_mask, other_lesions, anatomy.masks.get("vessel")):
        if extra is not None:
            liver |= extra
    margin = tuple(int(np.ceil(margin_mm / s)) for s in anatomy.spacing_kji)
    box = bounding_box(liver, margin)
    samp = anatomy.spacing_kji
    sdf = np.full(liver.shape, margin_mm, np.float32)
    sub = liver[box]
    sdf[box] = (ndimage.distance_transform_edt(~sub, sampling=samp)
                - ndimage.distance_transform_edt(sub, sampling=samp))
    return sdf


REJECT_REASONS = ("leaves_ct_volume", "entry_on_back", "too_long", "hard_structure_or_vessel", "liver_traverse",
                  "capsule_crossings", "capsule_angle")


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
    region = _nearest_int8(maps.region, kji, OFF_GRID)
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
                                             mode="constant", cval=1e4)
        in_lesion = sel & (region == LESION)
        if in_lesion.any() and maps.plain_clearance_mm is not None:
            clear[in_lesion] = ndimage.map_coordinates(maps.plain_clearance_mm, kji[:, in_lesion], order=1,
                                                       mode="constant", cval=1e4)
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
            + (1.0 - np.clip(min_clear, 0.0, 20.0) / 20.0)
            + 0.5 * cap_angle / 90.0
            + 0.3 * np.abs(liver_mm - 25.0) / 50.0)
    out = {"ok": ok, "length_mm": length, "entry_ct": entry, "min_clearance_mm": min_clear,
           "liver_mm": liver_mm, "capsule_angle_deg": cap_angle, "capsule_crossings": crossings,
           "cost": cost, "directions": d}
    out.update(rej)
    return out


def _nearest_int8(arr: np.ndarray, kji: np.ndarray, fill: int) -> np.ndarray:
    """Nearest-voxel lookup of a small-int volume at float32 [k, j, i] indices (3, ...)."""
    K, J, I = arr.shape
    k = np.rint(kji[0]).astype(np.int32)
    j = np.rint(kji[1]).astype(np.int32)
    i = np.rint(kji[2]).astype(np.int32)
    inside = (k >= 0) & (k < K) & (j >= 0) & (j < J) & (i >= 0) & (i < I)
    flat = (k.astype(np.int64) * J + j) * I + i
    flat[~inside] = 0
    out = arr.reshape(-1)[flat]
    out[~inside] = fill
    return out


def evaluate(maps: PlanningMaps, target_lps, directions: np.ndarray, chunk: int = 2048) -> Dict[str, np.ndarray]:
    """Check every direction (in chunks that stay in cache); returns per-candidate arrays.

    Keys: ``ok`` bool, ``length_mm``, ``entry_ct`` (n,3), ``min_clearance_mm``
    (hard clearance along the needle), ``liver_mm`` (normal liver traversed),
    ``capsule_angle_deg``, ``capsule_crossings``, ``cost``, ``directions`` and
    one bool array per name in REJECT_REASONS (True = rejected for that reason).
    """
    d = np.asarray(directions, float)
    parts = [_evaluate_chunk(maps, target_lps, d[a:a + chunk]) for a in range(0, len(d), chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _sdf_gradient(maps: PlanningMaps, pts: np.ndarray, h: float = 1.0) -> np.ndarray:
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
                   min_angle_deg: float = 12.0) -> List[int]:
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
    """How many candidates each constraint rejected (a candidate may fail several)."""
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
