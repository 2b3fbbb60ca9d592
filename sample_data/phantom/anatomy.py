"""Geometry primitives for the synthetic patient: grid, boxes, shapes, tubes.

Everything is in patient LPS mm (x to the patient's Left, y to Posterior,
z to Superior). The grid is axial with identity direction, so voxel
``[k, j, i]`` sits at ``origin + (i*sx, j*sy, k*sz)``: columns run from the
patient's right to left, rows from anterior to posterior, slices upwards.

Shapes are evaluated only inside their bounding box (``Grid.box``) so that a
structure a few cm wide costs a few thousand voxels, not the 22 M of the grid.
Tissues are painted as small integer codes into one ``uint8`` array; the
phantom turns codes into HU per contrast phase and into label values.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

# Tissue codes (uint8). Order has no meaning; 0 = air outside the body.
AIR, SKIN, FAT, MUSCLE, VISCERAL_FAT = 0, 1, 2, 3, 4
CORTICAL, CANCELLOUS, CARTILAGE, DISC, CSF, CORD = 5, 6, 7, 8, 9, 10
LUNG, DIAPHRAGM, HEART_WALL, HEART_BLOOD = 11, 12, 13, 14
LIVER, PORTAL, HEPATIC_VEIN, ARTERY, AORTA, IVC = 15, 16, 17, 18, 19, 20
GB_BILE, GB_WALL = 21, 22
KIDNEY_CORTEX, KIDNEY_MEDULLA, SINUS_FAT = 23, 24, 25
SPLEEN, PANCREAS, PANC_MASS = 26, 27, 28
GUT_WALL, GUT_FLUID, GUT_GAS, FECES = 29, 30, 31, 32
N_TISSUES = 33


@dataclass(frozen=True)
class Grid:
    """Axial LPS grid: ``shape`` is ``(nk, nj, ni)``, ``spacing``/``origin`` are ``(x, y, z)`` mm."""

    shape: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]

    @classmethod
    def centred(cls, size_ijk: Sequence[int], spacing: Sequence[float],
                z_centre: float = 0.0) -> "Grid":
        """Grid whose centre voxel is at (0, 0, z_centre) LPS mm."""
        ni, nj, nk = (int(v) for v in size_ijk)
        sp = tuple(float(s) for s in spacing)
        origin = (-(ni - 1) / 2 * sp[0], -(nj - 1) / 2 * sp[1], z_centre - (nk - 1) / 2 * sp[2])
        return cls((nk, nj, ni), sp, origin)

    def axis(self, a: int) -> np.ndarray:
        """1D LPS coordinates (mm) along x (a=0), y (a=1) or z (a=2)."""
        n = self.shape[2 - a]
        return (self.origin[a] + self.spacing[a] * np.arange(n)).astype(np.float32)

    def box(self, lo: Sequence[float], hi: Sequence[float]):
        """Slices ``(sk, sj, si)`` and broadcast coordinates ``(X, Y, Z)`` (float32, mm)
        covering the LPS box [lo, hi], clipped to the grid; None if empty."""
        sl = []
        for a in (2, 1, 0):
            n = self.shape[2 - a]
            i0 = int(np.floor((lo[a] - self.origin[a]) / self.spacing[a]))
            i1 = int(np.ceil((hi[a] - self.origin[a]) / self.spacing[a])) + 1
            i0, i1 = max(i0, 0), min(i1, n)
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
        sk, sj, si = sl
        x = self.axis(0)[si][None, None, :]
        y = self.axis(1)[sj][None, :, None]
        z = self.axis(2)[sk][:, None, None]
        return (sk, sj, si), (x, y, z)

    def full(self):
        return self.box((-1e9,) * 3, (1e9,) * 3)

    def lps_to_index(self, p) -> np.ndarray:
        """(..., 3) LPS mm -> continuous (i, j, k)."""
        return (np.asarray(p, float) - np.asarray(self.origin)) / np.asarray(self.spacing)


def smooth_noise(grid: Grid, rng: np.random.Generator, scale_mm: float) -> np.ndarray:
    """Smooth random field on the whole grid, about unit std, features ~scale_mm.

    Made on a coarse lattice (one sample per scale/2 mm), smoothed there and
    linearly zoomed up: cheap, and smooth enough for organ outlines.
    """
    step = scale_mm / 2.0
    coarse_shape = [max(4, int(np.ceil(n * s / step)) + 2)
                    for n, s in zip(grid.shape, grid.spacing[::-1])]
    c = ndimage.gaussian_filter(rng.standard_normal(coarse_shape), 1.0, mode="wrap")
    c /= c.std()
    zoom = [n / m for n, m in zip(grid.shape, coarse_shape)]
    return ndimage.zoom(c.astype(np.float32), zoom, order=1, mode="nearest", grid_mode=True)[
        :grid.shape[0], :grid.shape[1], :grid.shape[2]]


def rotation(axis: Sequence[float], angle_deg: float) -> np.ndarray:
    """3x3 rotation about ``axis`` by ``angle_deg`` (right-handed)."""
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    t = np.radians(angle_deg)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def ellipsoid_rho(coords, centre, semi, rot: Optional[np.ndarray] = None):
    """Normalised ellipsoid radius (1 on the surface) at broadcast coords (X, Y, Z).

    ``rot`` (3x3) maps the ellipsoid's own axes to LPS; ``semi`` are its
    semi-axes in mm along those axes.
    """
    x, y, z = (c - float(o) for c, o in zip(coords, centre))
    if rot is not None:
        r = np.asarray(rot, float)
        # local = R^T (p - c)
        x, y, z = (r[0, m] * x + r[1, m] * y + r[2, m] * z for m in range(3))
    return np.sqrt((x / semi[0]) ** 2 + (y / semi[1]) ** 2 + (z / semi[2]) ** 2)


def ellipsoid_box(centre, semi, margin=2.0):
    r = float(max(semi)) + margin
    c = np.asarray(centre, float)
    return c - r, c + r


def segment_distance(coords, p0, p1):
    """Distance (mm) from broadcast coords to segment p0-p1, and the segment
    parameter t in [0, 1] of the closest point."""
    p0 = np.asarray(p0, float)
    d = np.asarray(p1, float) - p0
    dd = float(d @ d) or 1e-12
    x, y, z = (c - float(o) for c, o in zip(coords, p0))
    t = np.clip((x * d[0] + y * d[1] + z * d[2]) / dd, 0.0, 1.0)
    dist = np.sqrt((x - t * d[0]) ** 2 + (y - t * d[1]) ** 2 + (z - t * d[2]) ** 2)
    return dist, t


def paint_tube(grid: Grid, target: np.ndarray, code: int, p0, p1, r0: float, r1: float,
               only: Optional[Sequence[int]] = None, not_codes: Optional[Sequence[int]] = None,
               field: Optional[np.ndarray] = None) -> None:
    """Paint ``code`` inside the tapered tube p0 (radius r0) - p1 (radius r1).

    ``only``: paint only over these existing codes; ``not_codes``: never over
    these. ``field``, if given (float32, grid shape), receives ``min(field,
    dist - radius)`` (negative inside), for later distance-based use.
    """
    p0 = np.asarray(p0, float)
    p1 = np.asarray(p1, float)
    rmax = max(r0, r1) + 1.0
    b = grid.box(np.minimum(p0, p1) - rmax, np.maximum(p0, p1) + rmax)
    if b is None:
        return
    sl, coords = b
    dist, t = segment_distance(coords, p0, p1)
    sd = dist - (r0 + (r1 - r0) * t)
    inside = sd <= 0
    sub = target[sl]
    if only is not None:
        inside &= np.isin(sub, only)
    if not_codes is not None:
        inside &= ~np.isin(sub, not_codes)
    sub[inside] = code
    if field is not None:
        np.minimum(field[sl], sd.astype(np.float32), out=field[sl])


def paint_polyline(grid: Grid, target: np.ndarray, code: int, points, radii, **kw) -> None:
    """A tube along a polyline with a radius per vertex (mm)."""
    pts = np.asarray(points, float)
    rad = np.broadcast_to(np.asarray(radii, float), (len(pts),))
    for a in range(len(pts) - 1):
        paint_tube(grid, target, code, pts[a], pts[a + 1], rad[a], rad[a + 1], **kw)


def smooth_polyline(points, n_per_segment: int = 8) -> np.ndarray:
    """Catmull-Rom through the control points: curved tubes without kinks."""
    p = np.asarray(points, float)
    if len(p) < 3:
        return p
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for a in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[a - 1:a + 3]
        for t in np.linspace(0, 1, n_per_segment, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                              + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(p[-1])
    return np.array(out)


def paint_where(target: np.ndarray, sl, mask: np.ndarray, code: int,
                only: Optional[Sequence[int]] = None,
                not_codes: Optional[Sequence[int]] = None) -> None:
    """``target[sl][mask] = code`` with the same ``only``/``not_codes`` filters as tubes."""
    sub = target[sl]
    m = mask
    if only is not None:
        m = m & np.isin(sub, only)
    if not_codes is not None:
        m = m & ~np.isin(sub, not_codes)
    sub[m] = code
