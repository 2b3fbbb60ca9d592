"""The ultrasound probe and its image plane in CT space, for drawing on the CT slice views.

Fusion workstations show where the probe is on every CT view: the line where
the ultrasound plane cuts the slice, the outline of the imaged sector
projected onto the slice, and the transducer face (the footprint). This
module computes them with numpy, in CT LPS mm; the slice view draws them.

Frames: a US frame's pixel ``(col, row)`` (pixel centres at integers; column
towards the probe's marked side, row away from the transducer) maps to CT LPS
mm through ``image_to_ct = reference_to_ct @ image_to_reference``. The sector
("fan") is the sweep's fan mask (bool ``[rows, cols]``) or, without one, the
whole frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

#: The slice views follow the probe (and a tracked needle tip) at up to ~7 updates per second:
#: three slice repaints per US frame would halve its frame rate.
FOLLOW_INTERVAL_MS = 150

_MAX_OUTLINE_POINTS = 80
_FACE_SLOPE = 1.0        # |d row / d col| below this on the fan's top edge = the transducer face


@dataclass(frozen=True)
class FanShape:
    """The imaged sector of a frame, in frame pixels ``(col, row)``.

    ``outline``: closed polygon [n, 2]; ``face``: the transducer face (top arc
    of a convex probe, top edge of a linear one) [m, 2]; ``centre``: centroid
    of the sector; ``mask``: bool [rows, cols] or None (whole frame).
    """
    shape: Tuple[int, int]
    outline: np.ndarray
    face: np.ndarray
    centre: Tuple[float, float]
    mask: Optional[np.ndarray]

    @classmethod
    def from_mask(cls, shape: Tuple[int, int], mask: Optional[np.ndarray] = None) -> "FanShape":
        rows, cols = int(shape[0]), int(shape[1])
        if mask is None or not np.any(mask):
            outline = np.array([[0, 0], [cols - 1, 0], [cols - 1, rows - 1], [0, rows - 1]], float)
            face = outline[:2].copy()
            return cls((rows, cols), outline, face, ((cols - 1) / 2.0, (rows - 1) / 2.0), None)
        m = np.asarray(mask, bool)
        has = m.any(axis=0)
        cc = np.flatnonzero(has)
        top = np.argmax(m[:, cc], axis=0).astype(float)
        bottom = (rows - 1 - np.argmax(m[::-1, cc], axis=0)).astype(float)
        step = max(1, int(np.ceil(len(cc) / (_MAX_OUTLINE_POINTS / 2))))
        keep = np.unique(np.r_[np.arange(0, len(cc), step), len(cc) - 1])
        outline = np.r_[np.c_[cc[keep], top[keep]], np.c_[cc[keep][::-1], bottom[keep][::-1]]].astype(float)
        face = _face(cc.astype(float), top)[::step]
        rr, c2 = np.nonzero(m)
        return cls((rows, cols), outline, face, (float(c2.mean()), float(rr.mean())), m)


def _face(cols: np.ndarray, top: np.ndarray) -> np.ndarray:
    """The contiguous run of the top edge around its shallowest point whose slope stays below
    ``_FACE_SLOPE``: the arc of a convex probe without the straight sector sides."""
    if len(cols) < 3:
        return np.c_[cols, top]
    k = max(1, len(cols) // 100)
    slope = np.abs(np.gradient(top, cols, edge_order=1))
    if k > 1:
        slope = np.convolve(slope, np.ones(2 * k + 1) / (2 * k + 1), mode="same")
    i = int(np.argmin(top))
    lo, hi = i, i
    while lo > 0 and slope[lo - 1] < _FACE_SLOPE:
        lo -= 1
    while hi < len(cols) - 1 and slope[hi + 1] < _FACE_SLOPE:
        hi += 1
    return np.c_[cols[lo:hi + 1], top[lo:hi + 1]]


@dataclass(frozen=True)
class ProbeGeometry:
    """One frame's plane in CT: ``image_to_ct`` (4x4, frame pixels -> CT LPS mm) and its fan."""
    image_to_ct: np.ndarray
    fan: FanShape

    def to_ct(self, px: np.ndarray) -> np.ndarray:
        """Frame pixels [n, 2] (col, row) -> CT LPS [n, 3]."""
        px = np.atleast_2d(np.asarray(px, float))
        m = self.image_to_ct
        return px[:, :1] * m[:3, 0] + px[:, 1:2] * m[:3, 1] + m[:3, 3]

    def point_ct(self, col: float, row: float) -> np.ndarray:
        return self.to_ct([[col, row]])[0]

    def centre_ct(self) -> np.ndarray:
        """CT LPS of the sector's centroid (where the slice views go when following the probe)."""
        return self.point_ct(*self.fan.centre)

    def outline_ct(self) -> np.ndarray:
        return self.to_ct(self.fan.outline)

    def face_ct(self) -> np.ndarray:
        return self.to_ct(self.fan.face)

    def normal(self) -> np.ndarray:
        n = np.cross(self.image_to_ct[:3, 0], self.image_to_ct[:3, 1])
        return n / np.linalg.norm(n)

    def intersection(self, axis: int, position_mm: float, n_samples: int = 160) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Segments (CT LPS start, end) where the US plane cuts the plane ``LPS[axis] == position_mm``
        inside the imaged sector; empty when the planes are parallel or do not meet in the sector."""
        m = self.image_to_ct
        g = np.array([m[axis, 0], m[axis, 1]], float)
        gg = float(g @ g)
        # Parallel planes (within 1/1000 of a pixel per pixel): no line to draw.
        if gg < 1e-6 * float(np.sum(m[:3, :2] ** 2)) / 2:
            return []
        p0 = g * (position_mm - m[axis, 3]) / gg
        d = np.array([-g[1], g[0]]) / np.sqrt(gg)
        rows, cols = self.fan.shape
        t = _clip_line(p0, d, (-0.5, cols - 0.5), (-0.5, rows - 0.5))
        if t is None:
            return []
        ts = np.linspace(t[0], t[1], n_samples)
        pts = p0 + ts[:, None] * d
        if self.fan.mask is None:
            inside = np.ones(len(pts), bool)
        else:
            c = np.clip(np.rint(pts[:, 0]).astype(int), 0, cols - 1)
            r = np.clip(np.rint(pts[:, 1]).astype(int), 0, rows - 1)
            inside = self.fan.mask[r, c]
        segs = []
        edges = np.flatnonzero(np.diff(np.r_[0, inside.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2] - 1):
            if b > a:
                segs.append(tuple(self.to_ct(pts[[a, b]])))
        return segs


def _clip_line(p0: np.ndarray, d: np.ndarray, xr: Tuple[float, float], yr: Tuple[float, float]):
    """(t_min, t_max) of the line ``p0 + t d`` inside the box ``xr`` x ``yr`` (Liang-Barsky), or None."""
    lo, hi = -np.inf, np.inf
    for k, (a, b) in enumerate((xr, yr)):
        if abs(d[k]) < 1e-12:
            if not a <= p0[k] <= b:
                return None
            continue
        t1, t2 = (a - p0[k]) / d[k], (b - p0[k]) / d[k]
        lo, hi = max(lo, min(t1, t2)), min(hi, max(t1, t2))
    return (lo, hi) if hi > lo else None
