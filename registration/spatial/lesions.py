"""Lesion and structure tables from a :class:`~registration.spatial.volume.LabelMap`.

Lesions are the labels named ``lesion_*`` (one label per lesion, DESIGN
section 6), plus each connected component (26-connected) of a generic label
named ``lesion`` or ``lesions``, numbered ``lesion_1, lesion_2, ...`` by
decreasing volume (skipping numbers already taken by named lesions).

All positions are LPS mm (voxel centres); volumes in ml (1 ml = 1000 mm^3).
``max_diameter_mm`` is the largest distance between centres of the lesion's
surface voxels (convex hull, then pairwise over hull vertices), so it can
under-estimate a caliper measurement by up to one voxel;
``equivalent_diameter_mm`` is the diameter of the sphere of equal volume.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from .errors import InputError
from .volume import LabelMap, Volume

_GENERIC = ("lesion", "lesions")
_FULL = np.ones((3, 3, 3), bool)


def _bboxes(labels: LabelMap) -> Dict[int, Tuple[slice, slice, slice]]:
    """value -> bounding slices [k, j, i], in one pass over the array."""
    arr = labels.array
    if arr.size and arr.min() < 0:
        raise InputError("label map has negative values", fix="label values must be >= 0")
    wanted = sorted(set(labels.names.values()))
    if not wanted:
        return {}
    if max(wanted) > 1 << 20:   # find_objects would allocate one entry per possible value
        out = {}
        for v in wanted:
            kji = np.argwhere(arr == v)
            if len(kji):
                lo, hi = kji.min(axis=0), kji.max(axis=0) + 1
                out[v] = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        return out
    objs = ndimage.find_objects(arr, max_label=max(wanted))   # any integer dtype: no copy
    return {v: objs[v - 1] for v in wanted if objs[v - 1] is not None}


def _offset(box) -> np.ndarray:
    """(i, j, k) index of a [k, j, i] bounding box's first voxel."""
    return np.array([box[2].start, box[1].start, box[0].start], dtype=float)


def max_diameter_mm(mask: np.ndarray, ijk_to_lps: np.ndarray) -> float:
    """Largest distance (mm) between surface-voxel centres of a [k, j, i] mask."""
    surface = mask & ~ndimage.binary_erosion(mask, structure=_FULL, border_value=0)
    kji = np.argwhere(surface)
    if len(kji) < 2:
        return 0.0
    pts = kji[:, ::-1].astype(float) @ ijk_to_lps[:3, :3].T
    if len(pts) > 64:
        try:
            pts = pts[ConvexHull(pts).vertices]
        except QhullError:          # flat lesion (one slice or one row): points are coplanar
            pts = _hull_2d_or_all(pts)
    return float(pdist(pts).max()) if len(pts) > 1 else 0.0


def _hull_2d_or_all(pts: np.ndarray) -> np.ndarray:
    centred = pts - pts.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(s > 1e-9 * max(s[0], 1e-12)))
    if rank == 2:
        flat = centred @ vt[:2].T
        try:
            return pts[ConvexHull(flat).vertices]
        except QhullError:
            pass
    if rank <= 1:   # collinear: the two extremes along the line
        proj = centred @ vt[0]
        return pts[[int(np.argmin(proj)), int(np.argmax(proj))]]
    return pts


def _measure(mask: np.ndarray, offset_ijk: np.ndarray, labels: Volume,
             ct: Optional[np.ndarray]) -> dict:
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    kji = np.argwhere(mask)
    n = len(kji)
    centroid_ijk = kji[:, ::-1].mean(axis=0) + offset_ijk
    volume_ml = n * voxel_ml
    row = dict(
        centroid_lps=[float(c) for c in labels.index_to_lps(centroid_ijk)],
        volume_ml=volume_ml,
        equivalent_diameter_mm=float((6.0 * volume_ml * 1000.0 / np.pi) ** (1.0 / 3.0)),
        max_diameter_mm=max_diameter_mm(mask, labels.ijk_to_lps),
        n_voxels=int(n),
        mean_hu=None, std_hu=None,
        # where the lesion is in the array: half-open [k, j, i] box and one of its voxels
        bbox_kji=[[int(o), int(o) + int(s)] for o, s in zip(offset_ijk[::-1], mask.shape)],
        seed_kji=[int(v) for v in kji[0] + offset_ijk[::-1].astype(int)],
    )
    if ct is not None:
        values = ct[mask].astype(np.float64)
        row["mean_hu"], row["std_hu"] = float(values.mean()), float(values.std())
    return row


def _components(mask: np.ndarray) -> List[Tuple[np.ndarray, Tuple[slice, slice, slice]]]:
    """26-connected components of a mask, largest first, each cropped to its box."""
    lab, n = ndimage.label(mask, structure=_FULL)
    if n == 0:
        return []
    sizes = np.bincount(lab.ravel())[1:]
    boxes = ndimage.find_objects(lab)
    order = sorted(range(n), key=lambda c: (-sizes[c], boxes[c][0].start, boxes[c][1].start,
                                            boxes[c][2].start))
    return [(lab[boxes[c]] == c + 1, boxes[c]) for c in order]


def _shift(box, outer) -> Tuple[slice, slice, slice]:
    return tuple(slice(b.start + o.start, b.stop + o.start) for b, o in zip(box, outer))


def lesion_table(labels: LabelMap, ct: Optional[Volume] = None) -> List[dict]:
    """One row per lesion: name, value, centroid_lps [x, y, z] (mm), volume_ml,
    equivalent_diameter_mm, max_diameter_mm, n_voxels, mean_hu, std_hu
    (None without ``ct``), derived (True for components of a generic label),
    source_label, bbox_kji (half-open [[k0, k1], [j0, j1], [i0, i1]]) and seed_kji
    (one voxel of the lesion); :func:`lesion_mask` turns a row back into its mask.

    ``ct`` must be on the label map's grid: load the labels with
    ``load_labels(..., reference=ct)`` first.
    """
    if ct is not None and not labels.same_grid(ct):
        raise InputError("the CT and the label map are on different grids",
                         path=labels.metadata.get("source"),
                         fix="load the labels with reference=CT (resampled by physical position)")
    ct_arr = None if ct is None else ct.array
    boxes = _bboxes(labels)
    rows: List[dict] = []
    named = [n for n in labels.names if n.startswith("lesion_")]
    for name in sorted(named, key=_natural):
        v = labels.names[name]
        if v not in boxes:
            continue
        box = boxes[v]
        mask = labels.array[box] == v
        row = dict(name=name, value=v, derived=False, source_label=name)
        row.update(_measure(mask, _offset(box), labels, None if ct_arr is None else ct_arr[box]))
        rows.append(row)
    taken = set(labels.names)
    number = 1
    for generic in (n for n in labels.names if n in _GENERIC):
        v = labels.names[generic]
        if v not in boxes:
            continue
        outer = boxes[v]
        for mask, box in _components(labels.array[outer] == v):
            while f"lesion_{number}" in taken:
                number += 1
            name = f"lesion_{number}"
            taken.add(name)
            full = _shift(box, outer)
            row = dict(name=name, value=v, derived=True, source_label=generic)
            row.update(_measure(mask, _offset(full), labels,
                                None if ct_arr is None else ct_arr[full]))
            rows.append(row)
    return rows


def lesion_mask(labels: LabelMap, row: dict) -> np.ndarray:
    """Full-size bool mask ``[k, j, i]`` of one ``lesion_table`` row (one component for
    derived rows: the 26-connected part of the label that holds ``seed_kji``)."""
    box = tuple(slice(a, b) for a, b in row["bbox_kji"])
    crop = labels.array[box] == row["value"]
    if row.get("derived"):
        lab, _ = ndimage.label(crop, structure=_FULL)
        seed = tuple(int(v) - b.start for v, b in zip(row["seed_kji"], box))
        crop = lab == lab[seed]
    out = np.zeros(labels.array.shape, bool)
    out[box] = crop
    return out


def structure_table(labels: LabelMap) -> List[dict]:
    """One row per named label: name, value, n_voxels, volume_ml, derived=False,
    sorted by value (counts in one bincount pass)."""
    arr = labels.array
    top = max(labels.names.values(), default=0)
    if arr.size and arr.min() < 0:
        raise InputError("label map has negative values", fix="label values must be >= 0")
    if arr.size and np.can_cast(arr.dtype, np.intp) and int(arr.max()) < 1 << 24:
        counts = np.bincount(arr.ravel(), minlength=top + 1)     # ravel: a view, no copy
    else:
        values, n = np.unique(arr, return_counts=True)
        counts = np.zeros(top + 1, np.int64)
        keep = values <= top
        counts[values[keep].astype(np.int64)] = n[keep]
    voxel_ml = float(np.prod(labels.spacing)) / 1000.0
    rows = []
    for name, v in sorted(labels.names.items(), key=lambda kv: kv[1]):
        n = int(counts[v])
        rows.append(dict(name=name, value=v, n_voxels=n, volume_ml=n * voxel_ml, derived=False))
    return rows


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
