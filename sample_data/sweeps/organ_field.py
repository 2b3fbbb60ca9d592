"""A random organ deformation for a case: Gaussian bumps in the liver, weighted to the liver.

Builds the :class:`~sample_data.sweeps.deformation.OrganDeformation` the deformed
sweeps are simulated with (issue 19): ``n_bumps`` (3) bumps of ``peak_mm``
(5-10 mm) and width ``sigma_mm`` (22-32 mm), centred in the liver's interior and
at least 3.3 widths from the spine (so the spine moves < 0.5 mm even where the
liver touches it); the liver weight is the liver (with its lesions) on a
``WEIGHT_GRID_MM`` grid, blurred by ``WEIGHT_SIGMA_MM`` and passed through the
smooth step ``1 - (1 - min(2 b, 1))^2`` (1 in and at the liver, half-way ~10 mm
outside, < 0.1 beyond ~20 mm). The largest displacement over the liver is kept
in ``peak_mm`` (scaled if the bumps add up beyond it) and the bumps are scaled
down until ``det(I + grad u) >= MIN_JACOBIAN`` everywhere (diffeomorphic).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

from .deformation import Bump, OrganDeformation, points_of

WEIGHT_GRID_MM = 4.0
WEIGHT_SIGMA_MM = 10.0
WEIGHT_MARGIN_MM = 40.0
MIN_JACOBIAN = 0.35
SPINE_WORDS = ("spinal", "vertebra", "spine", "sacrum")
BONE_WORDS = ("bone", "rib", "vertebra", "sacrum", "sternum", "spine")


def liver_values(labels: LabelMap) -> list:
    if "liver" not in labels.names:
        raise InputError("'liver' is not in the label map: the organ deformation needs it",
                         fix="add a label named 'liver' to the label names")
    return [labels.value_of("liver")] + [labels.value_of(n) for n in labels.lesion_names()]


def _label_at(labels: LabelMap, pts: np.ndarray) -> np.ndarray:
    ijk = np.rint(labels.lps_to_index(pts)).astype(np.intp)
    shape = np.array(labels.shape_ijk)
    ok = np.all((ijk >= 0) & (ijk < shape), axis=1)
    ijk = np.clip(ijk, 0, shape - 1)
    return np.where(ok, np.asarray(labels.array)[ijk[:, 2], ijk[:, 1], ijk[:, 0]], 0)


def liver_weight(labels: LabelMap, liver_pts: np.ndarray):
    """(weight [k, j, i], origin (3,), spacing (3,)): the smooth liver weight on an axis-aligned
    LPS grid covering the liver plus ``WEIGHT_MARGIN_MM``."""
    h = WEIGHT_GRID_MM
    lo = np.floor((liver_pts.min(axis=0) - WEIGHT_MARGIN_MM) / h) * h
    hi = liver_pts.max(axis=0) + WEIGHT_MARGIN_MM
    axes = [np.arange(lo[a], hi[a] + 1e-6, h) for a in range(3)]
    kk, jj, ii = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    centres = np.stack([ii, jj, kk], -1).reshape(-1, 3)
    values = liver_values(labels)
    frac = np.zeros(len(centres))
    offsets = [np.array([a, b, c]) * h / 4 for a in (-1, 1) for b in (-1, 1) for c in (-1, 1)]
    for off in offsets:   # liver fraction of each cell from 8 sub-samples
        frac += np.isin(_label_at(labels, centres + off), values)
    frac = (frac / len(offsets)).reshape(kk.shape)
    frac = np.maximum(frac, ndimage.binary_fill_holes(frac > 0.5))
    b = ndimage.gaussian_filter(frac, WEIGHT_SIGMA_MM / h, mode="constant")
    t = np.clip(2.0 * b, 0.0, 1.0)
    w = 1.0 - (1.0 - t) ** 2
    # The stored grid is uint8 (truth.json): quantise here so the simulation uses the stored field.
    return np.round(w * 255) / 255.0, lo, np.full(3, h)


def spine_points(labels: LabelMap) -> np.ndarray:
    """LPS points of the spine (labels named spinal/vertebra/spine/sacrum; else bone near the
    body's midline in its posterior half); empty if the label map has neither."""
    vals = [v for n, v in labels.names.items() if any(w in n.lower() for w in SPINE_WORDS)]
    if vals:
        return points_of(labels, vals, stride=4)
    bone = [v for n, v in labels.names.items() if any(w in n.lower() for w in BONE_WORDS)]
    if not bone:
        return np.zeros((0, 3))
    pts = points_of(labels, bone, stride=4)
    body = points_of(labels, [v for v in labels.names.values()], stride=8)
    mid = np.median(body, axis=0)
    return pts[(np.abs(pts[:, 0] - mid[0]) < 30.0) & (pts[:, 1] > mid[1])]


def _pick_centres(rng, interior: np.ndarray, spine: np.ndarray, sigmas: Sequence[float]) -> list:
    tree = cKDTree(spine) if len(spine) else None
    d_spine = tree.query(interior)[0] if tree is not None else np.full(len(interior), np.inf)
    centres = []
    for s in sigmas:
        for factor in (3.3, 3.0, 2.7, 2.4, 0.0):   # relax only if the liver has no room
            ok = d_spine >= factor * s
            for c in centres:
                ok &= np.linalg.norm(interior - c, axis=1) >= 1.5 * s
            if ok.any():
                centres.append(interior[rng.choice(np.nonzero(ok)[0])])
                break
        else:
            centres.append(interior[rng.integers(len(interior))])
    return centres


def random_organ_deformation(labels: LabelMap, rng, *, n_bumps: int = 3, peak_mm=(5.0, 10.0),
                             sigma_mm=(22.0, 32.0)) -> OrganDeformation:
    """A seeded random organ field over the liver of ``labels`` (see the module docstring)."""
    liver_pts = points_of(labels, liver_values(labels), stride=3)
    if len(liver_pts) < 100:
        raise InputError("the liver label has too few voxels for an organ deformation",
                         fix="check the label map's liver")
    weight, origin, spacing = liver_weight(labels, liver_pts)
    field = OrganDeformation([], weight, origin, spacing)
    interior = liver_pts[field.weight_at(liver_pts) >= 0.99]
    interior = interior if len(interior) else liver_pts
    spine = spine_points(labels)
    sigmas = [float(rng.uniform(*sigma_mm)) for _ in range(n_bumps)]
    centres = _pick_centres(rng, interior, spine, sigmas)
    for c, s in zip(centres, sigmas):
        v = rng.normal(size=3)
        field.bumps.append(Bump(np.asarray(c, float), s, v / np.linalg.norm(v) * rng.uniform(*peak_mm)))
    probe = points_of(labels, liver_values(labels), stride=2)   # the peak over the liver, densely
    peak = float(np.max(np.linalg.norm(field.displacement(probe), axis=1)))
    scale = min(1.0, peak_mm[1] / peak) if peak > 0 else 1.0
    scale = max(scale, peak_mm[0] / peak) if 0 < peak < peak_mm[0] else scale
    lo, hi = liver_pts.min(axis=0) - 30.0, liver_pts.max(axis=0) + 30.0
    for _ in range(20):
        for b in field.bumps:
            b.vector_mm = b.vector_mm * scale
        det_min = float(field.jacobian_determinant(lo, hi, step_mm=3.0).min())
        if det_min >= MIN_JACOBIAN:
            break
        scale = 0.9
    u = np.linalg.norm(field.displacement(probe), axis=1)
    spine_mm = float(np.max(np.linalg.norm(field.displacement(spine), axis=1))) if len(spine) else None
    field.info = {"peak_displacement_liver_mm": round(float(u.max()), 3),
                  "mean_displacement_liver_mm": round(float(u.mean()), 3),
                  "min_jacobian": round(det_min, 4),
                  "max_displacement_spine_mm": None if spine_mm is None else round(spine_mm, 4)}
    return field
