"""Where the demo patient's anatomy is on the MR: the true MR -> CT mapping (LPS mm both).

The MR is a different session: the patient lies a little differently on
another scanner (a rigid ``repositioning``: MR scanner LPS -> CT LPS as if
nothing inside had moved), and holds the breath in another position, so the
abdominal contents move relative to the body wall and spine (a rigid ``organ``
motion about the liver centre, blended to zero outside the organs over
``FALLOFF_MM``: the liver slides under the wall) plus a small smooth
deformation (``wobble``: a few random Gaussian bumps, about 1 mm).

``mr_to_ct(x_mr) = D(R(x_mr))`` with ``R`` the repositioning and
``D(y) = y + w(y) (A y - y) + s(y)``: ``A`` the organ motion, ``w`` in [0, 1]
(1 inside the organs, ``exp(-d^2 / 2 FALLOFF^2)`` at distance ``d`` outside) and
``s`` the wobble. :meth:`MRMotion.ct_to_mr` inverts it by fixed-point iteration
(``|grad u| < 0.5`` everywhere: it converges). :meth:`MRMotion.rigid_fit`
gives the best rigid ``mr_to_ct`` over a set of points (least squares): the
truth a rigid MR-CT or MR-US registration is measured against.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
from scipy import ndimage

from registration.spatial.transforms import apply, invert, rigid_matrix
from registration.spatial.volume import LabelMap

#: Structures that move with the breath (the rest, body wall, bone, spine, stays).
MOVING = ("liver", "portal_vein", "hepatic_vein", "gallbladder", "kidney", "spleen", "pancreas",
          "pancreatic_mass", "bowel", "ivc", "artery")
FALLOFF_MM = 14.0
#: Grid (mm) on which the weight w is precomputed.
WEIGHT_STEP_MM = 3.0
WOBBLE_BUMPS = 6
WOBBLE_MM = 1.0
WOBBLE_SIGMA_MM = 45.0
FIXED_POINT_ITERATIONS = 30


@dataclass
class MRMotion:
    """The true MR -> CT mapping of the demo (see the module docstring); mm, LPS.

    The displacement ``u`` of D is tabulated on an isotropic ``WEIGHT_STEP_MM`` grid
    (``field``, [k, j, i, 3] mm, from the organ motion, the weight and the wobble) and
    interpolated trilinearly: that interpolated field *is* the truth (smooth, cheap)."""
    repositioning: np.ndarray          # 4x4 MR -> CT-as-if-static (rigid)
    organ: np.ndarray                  # 4x4 rigid organ motion in CT space (A)
    field: np.ndarray                  # float32 [k, j, i, 3] mm on the grid
    grid_origin: np.ndarray            # LPS of field[0, 0, 0]
    bump_centres: np.ndarray           # [m, 3] CT LPS mm
    bump_vectors: np.ndarray           # [m, 3] mm

    def displacement(self, y: np.ndarray) -> np.ndarray:
        """u(y) (mm) with D(y) = y + u(y), for CT-space points ``y`` [n, 3]."""
        y = np.asarray(y, float).reshape(-1, 3)
        idx = (y - self.grid_origin) / WEIGHT_STEP_MM
        coords = [idx[:, 2], idx[:, 1], idx[:, 0]]
        return np.stack([ndimage.map_coordinates(self.field[..., a], coords, order=1, mode="nearest")
                         for a in range(3)], axis=1)

    def mr_to_ct(self, x_mr) -> np.ndarray:
        """CT LPS mm of MR points ``x_mr`` [n, 3] (or [3])."""
        x = np.asarray(x_mr, float)
        y = apply(self.repositioning, x.reshape(-1, 3))
        return (y + self.displacement(y)).reshape(x.shape)

    def ct_to_mr(self, x_ct) -> np.ndarray:
        """MR LPS mm of CT points ``x_ct`` [n, 3] (or [3]): D inverted by fixed-point iteration."""
        x = np.asarray(x_ct, float)
        target = x.reshape(-1, 3)
        y = target.copy()
        for _ in range(FIXED_POINT_ITERATIONS):
            y = target - self.displacement(y)
        return apply(invert(self.repositioning), y).reshape(x.shape)

    def rigid_fit(self, points_mr: np.ndarray) -> np.ndarray:
        """Best rigid ``mr_to_ct`` (4x4, least squares, Kabsch) over ``points_mr`` [n, 3]."""
        a = np.asarray(points_mr, float)
        b = self.mr_to_ct(a)
        ca, cb = a.mean(axis=0), b.mean(axis=0)
        u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
        d = np.sign(np.linalg.det(vt.T @ u.T))
        r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = cb - r @ ca
        return m

    def to_truth(self) -> dict:
        """JSON form for truth.json (everything needed to recompute the mapping)."""
        return {"model": "mr_to_ct(x) = D(R x), D(y) = y + w(y) (A y - y) + s(y) (sample_data/phantom/mr_motion.py)",
                "repositioning_mr_to_ct": self.repositioning.tolist(),
                "organ_motion_ct": self.organ.tolist(), "moving_structures": list(MOVING),
                "falloff_mm": FALLOFF_MM,
                "wobble": {"sigma_mm": WOBBLE_SIGMA_MM, "centres_ct": self.bump_centres.round(3).tolist(),
                           "vectors_mm": self.bump_vectors.round(4).tolist()}}


def make_motion(labels: LabelMap, rng: np.random.Generator, liver_centre_ct: np.ndarray) -> MRMotion:
    """A seeded MR -> CT mapping for the demo patient: repositioning of 2-4 deg and 10-25 mm,
    organ motion of 5-8 mm (mostly cranio-caudal) and 1.5-3 deg about the liver centre."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angles = axis * rng.uniform(2.0, 4.0)
    shift = rng.normal(size=3)
    shift *= rng.uniform(10.0, 25.0) / np.linalg.norm(shift)
    repositioning = rigid_matrix(np.concatenate([angles, shift]), liver_centre_ct)
    organ_shift = np.array([rng.uniform(-1.5, 1.5), rng.uniform(1.0, 3.0), -rng.uniform(5.0, 7.5)])
    organ_rot = np.array([rng.uniform(1.5, 3.0) * rng.choice([-1, 1]), rng.uniform(-1.0, 1.0), rng.uniform(-1.0, 1.0)])
    organ = rigid_matrix(np.concatenate([organ_rot, organ_shift]), liver_centre_ct)
    weight, origin = _weight_grid(labels)
    centres = liver_centre_ct + rng.uniform(-90.0, 90.0, size=(WOBBLE_BUMPS, 3))
    vectors = rng.normal(size=(WOBBLE_BUMPS, 3))
    vectors *= WOBBLE_MM / np.linalg.norm(vectors, axis=1, keepdims=True)
    shape = weight.shape
    zz, yy, xx = np.meshgrid(*[origin[a] + WEIGHT_STEP_MM * np.arange(shape[2 - a]) for a in (2, 1, 0)],
                             indexing="ij")
    y = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
    u = weight.reshape(-1, 1) * (apply(organ, y) - y)
    for c, v in zip(centres, vectors):
        u += np.exp(-np.sum((y - c) ** 2, axis=1) / (2 * WOBBLE_SIGMA_MM ** 2))[:, None] * v[None, :]
    field = u.reshape(shape + (3,)).astype(np.float32)
    return MRMotion(repositioning, organ, field, origin, centres, vectors)


def _weight_grid(labels: LabelMap):
    """w on a WEIGHT_STEP_MM grid: 1 inside the moving organs, Gaussian fall-off outside."""
    names: List[int] = [labels.names[n] for n in MOVING if n in labels.names]
    names += [v for n, v in labels.names.items() if n.startswith("lesion_")]
    moving = np.isin(labels.array, names)
    step = np.maximum(np.round(WEIGHT_STEP_MM / np.asarray(labels.spacing)).astype(int), 1)   # (i, j, k)
    coarse = moving[::step[2], ::step[1], ::step[0]]
    # Coarse voxel centres are exact CT voxels; resample onto an isotropic WEIGHT_STEP_MM lattice.
    sp = np.asarray(labels.spacing) * step
    d = ndimage.distance_transform_edt(~coarse, sampling=(sp[2], sp[1], sp[0]))
    w = np.exp(-d ** 2 / (2 * FALLOFF_MM ** 2)).astype(np.float32)
    lo, hi = labels.bounds_lps()
    n = np.ceil((np.asarray(hi) - np.asarray(lo)) / WEIGHT_STEP_MM).astype(int) + 1
    axes = [lo[a] + WEIGHT_STEP_MM * np.arange(n[a]) for a in range(3)]
    zz, yy, xx = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)
    ijk = labels.lps_to_index(pts) / step[None, :]
    vals = ndimage.map_coordinates(w, [ijk[:, 2], ijk[:, 1], ijk[:, 0]], order=1, mode="nearest")
    return vals.reshape(zz.shape).astype(np.float32), np.asarray(lo, float)
