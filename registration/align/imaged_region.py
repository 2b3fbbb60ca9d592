"""Distance of a point from what a sweep imaged: the union of its valid frames' fans.

Each frame's fan is a planar region (the fan mask, in Image pixels) placed in
Reference mm by the frame's ``image_to_reference``; under a registration it is
carried to CT mm by ``reference_to_ct``. The distance from a point to one fan is
``sqrt(z^2 + d_in^2)``: ``z`` its distance to the frame's plane, ``d_in`` the
in-plane distance from its projection to the fan (Euclidean distance transform of
the mask, padded by half the image size on every side; 0 inside). A projection
beyond the padding adds its distance to the padded border (an upper bound there).
The sweep's distance is the minimum over its frames. Used by the error model: the
residual deformation a rigid registration leaves grows with this distance
(:mod:`registration.align.deformation_error`), and a target beyond the validated
distance is extrapolated. Units: mm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage

from registration.spatial.sweep import Sweep

#: Frames kept (evenly) for the distance: neighbouring frames of a sweep are < 1 mm apart.
MAX_FRAMES = 60


@dataclass
class ImagedRegion:
    """The fans of a sweep's valid frames: ``image_to_reference`` [n, 4, 4] and the fan mask."""
    image_to_reference: np.ndarray
    fan_mask: np.ndarray

    def _edt(self):
        """(padded mask's in-plane distance transform (mm), pad) in Image pixels, computed once."""
        if getattr(self, "_edt_cache", None) is None:
            pad = max(self.fan_mask.shape) // 2
            sx = float(np.linalg.norm(self.image_to_reference[0, :3, 0]))
            sy = float(np.linalg.norm(self.image_to_reference[0, :3, 1]))
            self._edt_cache = (ndimage.distance_transform_edt(~np.pad(self.fan_mask, pad), sampling=(sy, sx)), pad)
        return self._edt_cache

    @classmethod
    def of_sweep(cls, sweep: Sweep, frames=None) -> Optional["ImagedRegion"]:
        """The region of ``sweep``'s valid frames (of ``frames`` when given); None without any."""
        from .lc2_cost import sweep_fan_mask
        mats, valid = sweep.image_to_reference_all()
        idx = np.flatnonzero(valid)
        if frames is not None:
            idx = np.intersect1d(idx, np.asarray(frames, int))
        if idx.size == 0:
            return None
        if idx.size > MAX_FRAMES:
            idx = idx[np.round(np.linspace(0, idx.size - 1, MAX_FRAMES)).astype(int)]
        return cls(np.asarray(mats[idx], float), np.asarray(sweep_fan_mask(sweep), bool))

    def distance_mm(self, points_ct, reference_to_ct: np.ndarray) -> np.ndarray:
        """[m] distance (mm) of CT points [m, 3] from the fans placed by ``reference_to_ct``."""
        out = np.full(len(np.asarray(points_ct, float).reshape(-1, 3)), np.inf)
        for d in self._frame_distances(points_ct, reference_to_ct):
            np.minimum(out, d, out=out)
        return out

    def frame_distances_mm(self, points_ct, reference_to_ct: np.ndarray) -> np.ndarray:
        """[n_frames, m] distance (mm) of CT points [m, 3] from each frame's fan placed by
        ``reference_to_ct`` (inf without a fan). One distance transform of the mask serves every
        frame (a region per frame recomputed it: 4.6 of a focused refinement's 7.4 s)."""
        n = len(np.asarray(points_ct, float).reshape(-1, 3))
        out = np.full((len(self.image_to_reference), n), np.inf)
        for k, d in enumerate(self._frame_distances(points_ct, reference_to_ct)):
            out[k] = d
        return out

    def depth_mm(self, points_ct, reference_to_ct: np.ndarray) -> np.ndarray:
        """[m] depth (mm) of CT points [m, 3] below the probe face, in the frame whose fan lies
        nearest each point (placed by ``reference_to_ct``): the point's row in that frame's image
        minus the first fan row of its column (the nearest column holding fan pixels), times the
        row spacing; 0 above the fan's top. NaN without fans."""
        pts = np.asarray(points_ct, float).reshape(-1, 3)
        out = np.full(len(pts), np.nan)
        if not len(pts) or not len(self.image_to_reference) or not self.fan_mask.any():
            return out
        nearest = np.argmin(self.frame_distances_mm(pts, reference_to_ct), axis=0)
        mats = np.asarray(reference_to_ct, float) @ self.image_to_reference
        sy = float(np.linalg.norm(mats[0, :3, 1]))
        cols, top = self.fan_top()
        for k in np.unique(nearest):
            sel = nearest == k
            inv = np.linalg.inv(mats[k])
            c, r, _ = (pts[sel] @ inv[:3, :3].T + inv[:3, 3]).T
            j = np.argmin(np.abs(cols[None, :] - c[:, None]), axis=1)   # nearest fan column (ties: the lower)
            out[sel] = np.maximum(r - top[j], 0.0) * sy
        return out

    def fan_top(self) -> tuple:
        """(the fan mask's columns holding fan pixels [n], the first fan row of each [n]): the probe
        face's row per column (the convex array's arc, a linear array's top row)."""
        cols = np.flatnonzero(self.fan_mask.any(axis=0))
        return cols, np.argmax(self.fan_mask[:, cols], axis=0)

    def _frame_distances(self, points_ct, reference_to_ct: np.ndarray):
        """Per frame, the [m] distances (mm) of the points from its fan (nothing without a fan)."""
        pts = np.asarray(points_ct, float).reshape(-1, 3)
        mats = np.asarray(reference_to_ct, float) @ self.image_to_reference
        if not len(mats) or not len(pts) or not self.fan_mask.any():
            return
        edt, pad = self._edt()
        rows, cols = edt.shape
        sx, sy = float(np.linalg.norm(mats[0, :3, 0])), float(np.linalg.norm(mats[0, :3, 1]))
        sz = float(np.linalg.norm(mats[0, :3, 2])) or 1.0
        for inv in np.linalg.inv(mats):
            c, r, z = (pts @ inv[:3, :3].T + inv[:3, 3]).T
            c, r = c + pad, r + pad
            cc, rc = np.clip(c, 0, cols - 1), np.clip(r, 0, rows - 1)
            border = np.hypot((c - cc) * sx, (r - rc) * sy)
            d_in = edt[np.rint(rc).astype(np.intp), np.rint(cc).astype(np.intp)] + border
            yield np.hypot(z * sz, d_in)
