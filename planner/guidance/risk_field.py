"""Distance (mm) from any point to every risk structure, by the clearance rule of DESIGN section 7.

One map per *named* structure of the label map (``portal_vein``, ``bone``,
...) so a warning can name it: the Euclidean distance transform of the
structure's label (distance to the nearest voxel centre, voxel spacing in mm,
``planner.anatomy.structures.distance_map_mm``), read by trilinear
interpolation between voxel centres. Which names are risk structures and of
which class is ``planner.anatomy.structures.risk_class_of``; a vessel counts
by its part of diameter >= 3 mm (``large_vessels``), as in the planner.

Margins (breach when the distance is <= the margin), as the planner accepts a
path (``planner.paths.trajectories``): needle radius + half the voxel
diagonal for every structure (no voxel of it touches the needle), plus the
soft vessel margin (``vessel_margin_mm``, 5 mm by default) for vessels, the
conservative warning of SlicerIGT's Breach Warning. One exception: a vessel the
planned path itself passes closer than that (the planner accepted it, between
its hard floor ``vessel_floor_mm`` and the soft margin, with a caution) breaches
only at the floor, and the band between floor and soft margin reads as
*caution*; otherwise the alarm would sound along the plan the radiologist
accepted. Inside the target lesion the vessel margin does not apply (the tip
must reach a lesion that may abut a vessel) but touching the vessel still
breaches.

Speed and memory: the maps are computed once, each in a crop: the
structure's bounding box grown by ``exact_within_mm`` and cut to the region
of interest (the planned path grown by ``roi_margin_mm``) grown by the same.
Every distance up to ``exact_within_mm`` is then exact for points inside the
region; larger ones are reported as ``exact_within_mm`` (a lower bound, flagged
``capped``); points outside the region get NaN (not evaluated).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage

from planner.anatomy.derived import bounding_box, large_vessels
from planner.anatomy.structures import HARD_CLASSES, VESSEL_CLASS, distance_map_mm, risk_class_of
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap


@dataclass
class RiskStructure:
    """One named structure's distance map (a crop of the label grid) and its margins (mm)."""
    name: str
    risk_class: str
    margin_mm: float
    in_target_margin_mm: float
    distance_mm: np.ndarray          # float32 crop [k, j, i]
    offset_kji: np.ndarray           # index of the crop's first voxel in the full grid
    caution_mm: Optional[float] = None   # soft margin (>= margin_mm); None: same as margin_mm


@dataclass
class RiskField:
    """Distance lookups to every risk structure of a label map, with the margins of the rule."""
    structures: List[RiskStructure]
    lps_to_kji: np.ndarray           # 4x4: LPS mm -> continuous [k, j, i] index of the label grid
    shape_kji: tuple
    exact_within_mm: float
    region_lo_kji: np.ndarray        # region of interest (inclusive index bounds)
    region_hi_kji: np.ndarray
    target_mask: Optional[np.ndarray] = None     # bool crop of the target lesion
    target_offset_kji: Optional[np.ndarray] = None
    notes: List[str] = field(default_factory=list)

    @property
    def names(self) -> List[str]:
        return [s.name for s in self.structures]

    def to_kji(self, points) -> np.ndarray:
        """(m, 3) LPS -> (3, m) continuous [k, j, i] indices."""
        p = np.asarray(points, float).reshape(-1, 3)
        return self.lps_to_kji[:3, :3] @ p.T + self.lps_to_kji[:3, 3:4]

    def in_region(self, points) -> np.ndarray:
        kji = self.to_kji(points)
        return np.all((kji >= self.region_lo_kji[:, None]) & (kji <= self.region_hi_kji[:, None]), axis=0)

    def distances(self, points) -> np.ndarray:
        """(n_structures, m) mm: trilinear EDT at each point, capped at ``exact_within_mm``, NaN outside the region."""
        kji = self.to_kji(points)
        m = kji.shape[1]
        out = np.full((len(self.structures), m), self.exact_within_mm, dtype=float)
        for n, s in enumerate(self.structures):
            local = kji - s.offset_kji[:, None]
            inside = np.all((local >= 0) & (local <= np.array(s.distance_mm.shape)[:, None] - 1), axis=0)
            if inside.any():
                v = ndimage.map_coordinates(s.distance_mm, local[:, inside], order=1, mode="nearest")
                out[n, inside] = np.minimum(v, self.exact_within_mm)
        out[:, ~self.in_region(points)] = np.nan
        return out

    def in_target(self, points) -> np.ndarray:
        """True where a point lies in the target lesion (nearest voxel)."""
        m = np.asarray(points, float).reshape(-1, 3).shape[0]
        if self.target_mask is None:
            return np.zeros(m, bool)
        idx = np.rint(self.to_kji(points) - self.target_offset_kji[:, None]).astype(int)
        shape = np.array(self.target_mask.shape)[:, None]
        ok = np.all((idx >= 0) & (idx < shape), axis=0)
        out = np.zeros(m, bool)
        out[ok] = self.target_mask[idx[0, ok], idx[1, ok], idx[2, ok]]
        return out

    def margins(self, in_target: np.ndarray) -> np.ndarray:
        """(n_structures, m) breach margins (mm) at points inside / outside the target lesion."""
        outside = np.array([s.margin_mm for s in self.structures])[:, None]
        inside = np.array([s.in_target_margin_mm for s in self.structures])[:, None]
        return np.where(np.asarray(in_target, bool)[None, :], inside, outside)

    def caution_margins(self, in_target: np.ndarray) -> np.ndarray:
        """(n_structures, m) soft (caution) margins (mm); inside the target lesion the breach margins."""
        outside = np.array([s.margin_mm if s.caution_mm is None else s.caution_mm
                            for s in self.structures])[:, None]
        inside = np.array([s.in_target_margin_mm for s in self.structures])[:, None]
        return np.where(np.asarray(in_target, bool)[None, :], inside, outside)

    def gradient(self, index: int, point, h: float = 0.5) -> np.ndarray:
        """Unit direction (LPS) of increasing distance to structure ``index`` at ``point`` (central differences)."""
        p = np.asarray(point, float)
        g = np.zeros(3)
        for a in range(3):
            e = np.zeros(3)
            e[a] = h
            d = self.distances(np.stack([p + e, p - e]))[index]
            g[a] = (d[0] - d[1]) / (2 * h)
        n = float(np.linalg.norm(g))
        return g / n if n > 1e-9 else g


def _crop(lo, hi, shape) -> tuple:
    return tuple(slice(int(max(0, a)), int(min(n, b + 1))) for a, b, n in zip(lo, hi, shape))


def build_risk_field(labels: LabelMap, *, needle_radius_mm: float, vessel_margin_mm: float = 5.0,
                     vessel_floor_mm: Optional[float] = None, planned_segment: Optional[Sequence] = None,
                     roi_points: Optional[Sequence] = None, roi_margin_mm: float = 40.0,
                     exact_within_mm: float = 25.0, target_name: Optional[str] = None) -> RiskField:
    """Distance maps of every risk structure of ``labels`` (hard classes and large vessels).

    ``roi_points`` (LPS mm, e.g. the planned entry and target) and
    ``roi_margin_mm`` bound the region where distances are evaluated (None:
    the whole grid). ``target_name`` is the lesion label the needle aims at.
    ``vessel_margin_mm`` is the vessel breach margin; ``vessel_floor_mm`` (the plan's
    hard floor) replaces it for a vessel the ``planned_segment`` (entry, target; LPS mm)
    passes within the margin. None: no relaxation.
    """
    floor = vessel_margin_mm if vessel_floor_mm is None else float(vessel_floor_mm)
    if not 0.0 <= floor <= vessel_margin_mm:
        raise InputError(f"vessel floor {floor:g} mm must lie in [0, {vessel_margin_mm:g}] mm",
                         fix="check the plan's constraints")
    spacing = np.asarray(labels.spacing, float)
    shape = labels.array.shape
    half_diag = 0.5 * float(np.linalg.norm(spacing))
    lps_to_ijk = labels.lps_to_ijk
    lps_to_kji = lps_to_ijk[[2, 1, 0, 3]]
    if roi_points is not None and len(roi_points):
        kji = (lps_to_kji[:3, :3] @ np.asarray(roi_points, float).reshape(-1, 3).T + lps_to_kji[:3, 3:4])
        grow = roi_margin_mm / spacing[::-1]
        lo, hi = np.floor(kji.min(1) - grow), np.ceil(kji.max(1) + grow)
    else:
        lo, hi = np.zeros(3), np.array(shape, float) - 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, np.array(shape) - 1)
    if np.any(hi < lo):
        raise InputError("the planned path lies outside the label map", fix="use the labels the plan was made with")
    exact_vox = np.ceil(exact_within_mm / spacing[::-1]).astype(int)
    outer = _crop(lo - exact_vox, hi + exact_vox, shape)
    structures: List[RiskStructure] = []
    notes: List[str] = []
    arr = labels.array[outer]
    offset = np.array([s.start for s in outer])
    for name, value in sorted(labels.names.items()):
        cls = risk_class_of(name)
        if cls not in HARD_CLASSES and cls != VESSEL_CLASS:
            continue
        mask = arr == value
        if not mask.any():
            continue
        if cls == VESSEL_CLASS:
            # local thickness on the crop: the crop edge is not background for the EDT, so a
            # vessel cut by it is never thinned (at worst called large: the safe side)
            mask = large_vessels(mask, spacing)
            if not mask.any():
                notes.append(f"{name}: no part of diameter >= 3 mm near the path (not a risk structure)")
                continue
        box = bounding_box(mask, tuple(exact_vox))
        dist = distance_map_mm(mask[box], spacing).astype(np.float32)
        base = needle_radius_mm + half_diag
        margin = base + (vessel_margin_mm if cls == VESSEL_CLASS else 0.0)
        structures.append(RiskStructure(name, cls, margin, base, dist,
                                        offset + np.array([b.start for b in box])))
    target_mask = target_offset = None
    if target_name is not None and target_name in labels.names:
        t = labels.array == labels.names[target_name]
        if t.any():
            tb = bounding_box(t)
            target_mask, target_offset = t[tb], np.array([b.start for b in tb])
    missing = sorted({c for c in HARD_CLASSES} - {s.risk_class for s in structures})
    if missing:
        notes.append("not in the label map near the path (not checked): " + ", ".join(missing))
    field_ = RiskField(structures, lps_to_kji, shape, float(exact_within_mm), lo, hi, target_mask, target_offset,
                       notes)
    if planned_segment is not None and floor < vessel_margin_mm:
        _relax_to_floor(field_, planned_segment, floor - vessel_margin_mm)
    return field_


def _relax_to_floor(risk: RiskField, planned_segment, shift_mm: float, step_mm: float = 0.5) -> None:
    """Vessels the planned path passes within their margin breach at the floor (``margin + shift_mm``)."""
    entry, target = (np.asarray(p, float) for p in planned_segment)
    length = float(np.linalg.norm(target - entry))
    s = np.append(np.arange(0.0, length, step_mm), length)
    pts = entry[None, :] + (s / max(length, 1e-9))[:, None] * (target - entry)[None, :]
    outside = ~risk.in_target(pts)
    if not outside.any():
        return
    dist = risk.distances(pts[outside])
    for n, st in enumerate(risk.structures):
        if st.risk_class != VESSEL_CLASS:
            continue
        closest = float(np.nanmin(dist[n])) if np.isfinite(dist[n]).any() else np.inf
        if closest <= st.margin_mm:
            st.caution_mm = st.margin_mm
            st.margin_mm = st.margin_mm + shift_mm
            risk.notes.append(f"{st.name}: the plan passes {closest:.1f} mm from it (accepted with a caution); "
                              f"breach at {st.margin_mm:.1f} mm, caution within {st.caution_mm:.1f} mm")
