"""The clearance rule of DESIGN section 7 at full label resolution: what "safe" means.

The distance from a point to a structure is the Euclidean distance transform
of the structure's label (distance to the nearest voxel centre of the
structure, with the voxel spacing), interpolated trilinearly between voxel
centres, sampled along the straight needle segment every 0.5 mm at full label
resolution. A path is safe only if that minimum meets every margin, and the
clearance the plan reports is never larger than that value.

Planning itself may run on a coarser grid (:mod:`.planning_grid`); this module
measures the few chosen paths on the label map as loaded. It needs no distance
transform of the whole volume: the transform's value at a voxel centre is the
distance to the nearest structure voxel centre, which a KD-tree of the
structure's *boundary* voxels gives exactly (the nearest voxel of a set seen
from outside it always has a neighbour outside it; inside, the value is 0), so
the trilinear value at a point is built from its 8 corner voxels. Classes that
were derived from the CT (bone, gas) exist only on the planning grid and are
measured there.

Points are CT LPS mm; masks are ``[k, j, i]``; distances in mm.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy.spatial import cKDTree

from planner.anatomy.derived import bounding_box
from planner.anatomy.structures import HARD_CLASSES, VESSEL_CLASS, Anatomy, risk_class_of
from registration.spatial.lesions import label_mask
from registration.spatial.volume import LabelMap

#: Sampling step (mm) of the measured segment. Half of DESIGN's 0.5 mm, from both ends: the
#: samples contain every 0.5 mm sampling that starts at the target or at the entry, so the
#: minimum reported is never above the minimum of either.
MEASURE_STEP_MM = 0.25
#: Classes measured for every path: the hard classes, large vessels (>= 3 mm) and all vessels.
MEASURED_CLASSES = tuple(HARD_CLASSES) + ("vessel_large", VESSEL_CLASS)
#: Distances are measured up to this (mm); farther voxels count as this far, so a reported
#: clearance of CAP_MM means "at least CAP_MM" and is still never above the true value.
CAP_MM = 50.0


_OFFS = np.array([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)])


class _Corners:
    """The 8 voxel centres around each of n points on one grid, deduplicated: ``ijk`` (u, 3)
    integer voxels, ``centres`` (u, 3) LPS, ``inv`` (n, 8) index into them, ``w`` (n, 8) weights."""

    def __init__(self, pts: np.ndarray, lps_to_ijk: np.ndarray, ijk_to_lps: np.ndarray):
        ijk = (np.c_[pts, np.ones(len(pts))] @ lps_to_ijk.T)[:, :3]
        base = np.floor(ijk).astype(np.int64)
        frac = ijk - base
        corners = (base[:, None, :] + _OFFS[None, :, :]).reshape(-1, 3)
        lo = corners.min(axis=0)
        span = corners.max(axis=0) - lo + 1
        key = ((corners[:, 2] - lo[2]) * span[1] + (corners[:, 1] - lo[1])) * span[0] + (corners[:, 0] - lo[0])
        uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
        self.ijk = corners[first]
        self.centres = (np.c_[self.ijk.astype(float), np.ones(len(self.ijk))] @ ijk_to_lps.T)[:, :3]
        self.inv = inv.reshape(len(pts), 8)
        self.w = np.prod(np.where(_OFFS[None, :, :] == 1, frac[:, None, :], 1.0 - frac[:, None, :]), axis=2)


def _face_boundary(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (beyond the array counts as outside):
    ``mask & ~binary_erosion(mask, border_value=0)`` by six shifted ANDs, several times faster
    than scipy's erosion on the large structures (issue 16)."""
    p = np.pad(mask, 1)
    inner = mask.copy()
    for ax in range(3):
        for lo, hi in ((0, -2), (2, None)):
            sl = [slice(1, -1)] * 3
            sl[ax] = slice(lo, hi)
            inner &= p[tuple(sl)]
    return mask & ~inner


class _Source:
    """One structure on one grid: its mask inside a box (``mask`` is the grid's voxels
    ``[k0:k0+nk, j0:j0+nj, i0:i0+ni]`` with ``offset`` = (k0, j0, i0); voxels outside the box
    are outside the structure), with a KD-tree of its boundary voxel centres (LPS).

    The tree is built unbalanced and without compacted nodes: the same exact nearest
    neighbours, built 1.4x and queried 4x faster on the boundary sets of a 512x512x119 case
    (issue 16; benchmarks/results/planning.md)."""

    def __init__(self, mask: np.ndarray, grid: str, ijk_to_lps: np.ndarray, offset=(0, 0, 0)):
        self.grid = grid
        if not mask.any():
            self.mask, self.offset, self.tree = np.zeros((0, 0, 0), bool), np.zeros(3, int), None
            return
        box = bounding_box(mask, (1, 1, 1))
        self.mask = mask[box]
        self.offset = np.array([b.start for b in box]) + np.asarray(offset, int)
        kji = np.stack(np.nonzero(_face_boundary(self.mask)), axis=1) + self.offset
        ijk = np.c_[kji[:, ::-1].astype(float), np.ones(len(kji))]
        self.tree = (cKDTree((ijk @ ijk_to_lps.T)[:, :3], balanced_tree=False, compact_nodes=False)
                     if len(kji) else None)

    def trilinear_edt(self, cor: _Corners) -> np.ndarray:
        """The structure's distance transform (mm) at the points of ``cor``, trilinear between centres.

        At a voxel centre: 0 inside the mask, else the distance to the nearest boundary voxel
        centre (voxels off the array too), at most CAP_MM."""
        if self.tree is None:
            return np.full(len(cor.w), CAP_MM)
        q = cor.ijk - self.offset[::-1]                 # (i, j, k) in the box
        inside = np.all((q >= 0) & (q < np.array(self.mask.shape[::-1])), axis=1)
        in_mask = np.zeros(len(q), bool)
        qi = q[inside]
        in_mask[inside] = self.mask[qi[:, 2], qi[:, 1], qi[:, 0]]
        d = np.zeros(len(q))
        out = ~in_mask
        if out.any():
            d[out] = np.minimum(self.tree.query(cor.centres[out], distance_upper_bound=CAP_MM)[0], CAP_MM)
        return np.sum(cor.w * d[cor.inv], axis=1)


def _grown(box: tuple, shape) -> tuple:
    """``box`` (slices [k, j, i]) grown by one voxel on each side, within ``shape``."""
    return tuple(slice(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in zip(box, shape))


def _union(boxes) -> Optional[tuple]:
    """The smallest box (slices) holding every box of ``boxes`` (None entries skipped), or None."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


@dataclass
class PathClearance:
    """Clearances (mm) of one straight path by the rule of DESIGN section 7.

    ``by_class``: min over the whole segment per measured class; ``vessel_outside_mm`` /
    ``vessel_inside_mm``: large vessels outside / inside the target lesion; ``by_label``: the
    same per vessel label (``portal_vein``...) for naming what a path passes close to.
    """
    by_class: Dict[str, float]
    vessel_outside_mm: float
    vessel_inside_mm: float
    by_label: Dict[str, float] = field(default_factory=dict)


def floor_mm(v: float) -> float:
    """Round down to 0.01 mm: a reported clearance never exceeds the measured one."""
    return float(np.floor(v * 100.0) / 100.0)


def segment_points(target, entry, step_mm: float = MEASURE_STEP_MM) -> np.ndarray:
    """Samples (n, 3) of the segment every ``step_mm`` from the target and from the entry (LPS)."""
    t, e = np.asarray(target, float), np.asarray(entry, float)
    L = float(np.linalg.norm(e - t))
    if L < 1e-9:
        return t[None]
    s = np.arange(0.0, L + 1e-9, step_mm)
    s = np.unique(np.r_[s, L - s, L].clip(0.0, L))
    return t + s[:, None] * ((e - t) / L)


class ClearanceOracle:
    """Measures chosen paths against the full-resolution labels (and the CT-derived classes).

    ``labels``: the label map as loaded (full resolution); ``anatomy``: the planning
    anatomy (its derived classes are used on its own grid); ``vessel_large``: the
    full-resolution large-vessel mask (decided by :func:`planner.anatomy.derived.large_vessels`;
    None: taken from ``anatomy`` when it is on the labels' grid). Trees are built per class
    on first use, or all at once by :meth:`prepare` (a background thread may run it while the
    planning goes on: the trees' work releases the GIL; a lock makes each tree be built once).
    """

    def __init__(self, labels: LabelMap, anatomy: Anatomy, vessel_large: Optional[np.ndarray] = None):
        self.labels = labels
        self.anatomy = anatomy
        self.same_grid = anatomy.ct.same_grid(labels)
        if vessel_large is None and self.same_grid:
            vessel_large = anatomy.masks.get("vessel_large")
        self._vessel_large = vessel_large
        self._sources: Dict[str, List[_Source]] = {}
        self._label_sources: Dict[str, _Source] = {}
        self._boxes: Optional[list] = None
        self._lock = threading.RLock()
        self.half_voxel_diagonal_mm = float(0.5 * np.linalg.norm(labels.spacing))

    def _labelled(self, cls: str) -> Dict[str, int]:
        return {n: v for n, v in self.labels.names.items() if risk_class_of(n) == cls}

    def prepare(self) -> None:
        """Build the sources of every measured class and vessel label now (what measuring paths needs)."""
        for cls in MEASURED_CLASSES:
            self.sources(cls)
        for name in self._labelled(VESSEL_CLASS):
            self._label_source(name)

    def sources(self, cls: str) -> List[_Source]:
        """The masks whose distance is the class's distance (full-resolution labels, derived part)."""
        with self._lock:
            return self._sources[cls] if cls in self._sources else self._build_sources(cls)

    def _build_sources(self, cls: str) -> List[_Source]:
        lab = self.labels
        out: List[_Source] = []
        if cls == "vessel_large":
            if self._vessel_large is not None and self._vessel_large.any():
                out.append(_Source(self._vessel_large, "labels", lab.ijk_to_lps))
        else:
            values = list(self._labelled(cls).values())
            if values:
                got = self._values_mask(values)
                if got is not None:
                    out.append(_Source(got[0], "labels", lab.ijk_to_lps, got[1]))
            derived = self._derived_part(cls, values)
            if derived is not None:
                out.append(_Source(derived[0], "planning", self.anatomy.ct.ijk_to_lps, derived[1]))
        self._sources[cls] = out
        return out

    def _values_mask(self, values) -> Optional[tuple]:
        """(mask of the label voxels holding any of ``values`` inside their box, the box's first
        voxel (k, j, i)), or None when no voxel holds them. The boxes of every label value come
        from one ``find_objects`` pass over the labels (shared), so no whole-volume mask is made."""
        if self._boxes is None:
            from scipy import ndimage
            arr = self.labels.array
            self._boxes = ndimage.find_objects(arr) if arr.dtype.kind in "ui" else None
        lab = self.labels
        if self._boxes is None:                            # labels of another type: the whole volume
            box = tuple(slice(0, n) for n in lab.array.shape)
        else:
            box = _union(self._boxes[v - 1] for v in values if 0 < v <= len(self._boxes))
            if box is None:
                return None
            box = _grown(box, lab.array.shape)
        mask = label_mask(lab.array[box], values)
        return (mask, tuple(b.start for b in box)) if mask.any() else None

    def _derived_part(self, cls: str, values) -> Optional[tuple]:
        """The planning-grid voxels of ``cls`` no label gives (derived from the CT) inside their
        box and the box's first voxel (k, j, i), or None."""
        m = self.anatomy.masks.get(cls)
        if m is None or not m.any():
            return None
        box = bounding_box(m)
        m = m[box]
        if values:
            m = m & ~label_mask(self.anatomy.labels.array[box], values)
        return (m, tuple(b.start for b in box)) if m.any() else None

    def corners(self, pts: np.ndarray) -> Dict[str, _Corners]:
        """The corner voxels of LPS points on both grids (shared by every class of one measure)."""
        lab, ct = self.labels, self.anatomy.ct
        return {"labels": _Corners(pts, lab.lps_to_ijk, lab.ijk_to_lps),
                "planning": _Corners(pts, ct.lps_to_ijk, ct.ijk_to_lps)}

    def distance(self, cls: str, pts: np.ndarray, corners: Optional[Dict[str, _Corners]] = None
                 ) -> Optional[np.ndarray]:
        """DESIGN 7 distance (mm) of LPS points to class ``cls``; None when the case has none."""
        srcs = self.sources(cls)
        if not srcs:
            return None
        corners = corners or self.corners(pts)
        return np.min([s.trilinear_edt(corners[s.grid]) for s in srcs], axis=0)

    def label_distance(self, name: str, pts: np.ndarray, corners: Optional[Dict[str, _Corners]] = None
                       ) -> np.ndarray:
        """DESIGN 7 distance (mm) of LPS points to one named label of the full-resolution map."""
        corners = corners or self.corners(pts)
        return self._label_source(name).trilinear_edt(corners["labels"])

    def _label_source(self, name: str) -> _Source:
        with self._lock:
            if name not in self._label_sources:
                lab = self.labels
                got = self._values_mask([lab.names[name]])
                mask, offset = got if got is not None else (np.zeros((1, 1, 1), bool), (0, 0, 0))
                self._label_sources[name] = _Source(mask, "labels", lab.ijk_to_lps, offset)
            return self._label_sources[name]

    def vessel_label_distances(self, pts: np.ndarray, corners: Optional[Dict[str, _Corners]] = None
                               ) -> Dict[str, float]:
        """Min DESIGN 7 distance (mm) of the points to each vessel label (names what a path passes)."""
        corners = corners or self.corners(pts)
        return {name: float(self.label_distance(name, pts, corners).min()) for name in self._labelled(VESSEL_CLASS)}

    def in_lesion(self, lesion: Optional[str], pts: np.ndarray) -> np.ndarray:
        """Which points lie in the target lesion's label (nearest voxel); all False without one."""
        lab = self.labels
        if lesion is None or lesion not in lab.names:
            return np.zeros(len(pts), bool)
        ijk = np.rint((np.c_[pts, np.ones(len(pts))] @ lab.lps_to_ijk.T)[:, :3]).astype(int)
        shape = np.array(lab.shape_ijk)
        ok = np.all((ijk >= 0) & (ijk < shape), axis=1)
        out = np.zeros(len(pts), bool)
        q = ijk[ok]
        out[ok] = lab.array[q[:, 2], q[:, 1], q[:, 0]] == lab.names[lesion]
        return out

    def measure(self, target, entry, lesion: Optional[str] = None, *, vessel_labels: bool = False) -> PathClearance:
        """Clearances of the straight segment target -> entry (LPS mm) per class (and per vessel
        label with ``vessel_labels``)."""
        pts = segment_points(target, entry)
        corners = self.corners(pts)
        by_class: Dict[str, float] = {}
        vessel_out = vessel_in = np.inf
        inside = self.in_lesion(lesion, pts)
        for cls in MEASURED_CLASSES:
            d = self.distance(cls, pts, corners)
            if d is None:
                continue
            by_class[cls] = float(d.min())
            if cls == "vessel_large":
                vessel_out = float(d[~inside].min()) if (~inside).any() else np.inf
                vessel_in = float(d[inside].min()) if inside.any() else np.inf
        by_label = self.vessel_label_distances(pts, corners) if vessel_labels else {}
        return PathClearance(by_class, vessel_out, vessel_in, by_label)
