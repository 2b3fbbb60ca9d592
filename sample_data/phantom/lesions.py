"""Liver metastases of the synthetic patient and the geometry checks behind
their truth notes ('subcapsular', 'deep', 'behind_rib').

A lesion is a sphere whose radius is perturbed by low-order (l = 2, 3)
harmonics (about +-8 %), with a sigmoid edge (scale 0.4 mm): ``fraction`` is
the soft membership in [0, 1] and the label is ``fraction >= 0.5``.
Positions are searched, with a seeded generator, near an anatomical target so
that each note is true on the final label map. All coordinates LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from . import anatomy as A

EDGE_MM = 0.4

# name, type, nominal diameter (mm), target centre (LPS mm), required note.
# The targets give the mix of a real patient (planned outcomes: README.md): lesion_3 sits in
# segment VIII behind the ribs, where a CT-guided corridor between the hepatic-vein branches
# exists (its first target, (-88, 5, 38), had none); lesion_5's target is where the seeded
# search used to place it, so that it stays there.
SPECS = [
    ("lesion_1", "adenocarcinoma", 25.0, (-92.0, 25.0, -30.0), None),
    ("lesion_2", "adenocarcinoma", 14.0, (20.0, -74.0, 22.0), "subcapsular"),
    ("lesion_3", "adenocarcinoma", 9.0, (-77.3, -0.5, 26.6), "behind_rib"),
    ("lesion_4", "adenocarcinoma", 6.0, (-40.0, 24.0, 49.0), "deep"),
    ("lesion_5", "net", 12.0, (-14.534, -21.504, 21.063), None),
    ("lesion_6", "net", 18.0, (-85.0, -20.0, 20.0), None),
]
DEEP_MM = 120.0


@dataclass
class Lesion:
    name: str
    kind: str
    diameter_mm: float
    centre: np.ndarray
    coeffs: np.ndarray            # shape-perturbation coefficients
    notes: List[str] = field(default_factory=list)
    sl: Optional[tuple] = None    # box slices in the grid
    fraction: Optional[np.ndarray] = None  # soft membership in the box, float32

    def radius_field(self, coords):
        """Distance to the centre (mm) and the perturbed radius (mm) along each direction."""
        x, y, z = (c - float(o) for c, o in zip(coords, self.centre))
        d = np.sqrt(x * x + y * y + z * z) + 1e-6
        u = (x / d, y / d, z / d)
        a = self.coeffs
        # l=2 (traceless quadratic) and l=3 (two cubic terms): low-order lumps
        pert = (a[0] * (u[0] ** 2 - u[1] ** 2) + a[1] * (2 * u[2] ** 2 - u[0] ** 2 - u[1] ** 2) / 1.7
                + a[2] * u[0] * u[1] * 2 + a[3] * u[1] * u[2] * 2 + a[4] * u[0] * u[2] * 2
                + a[5] * u[0] * (5 * u[2] ** 2 - 1) + a[6] * u[1] * (5 * u[1] ** 2 - 3) / 2)
        return d, 0.5 * self.diameter_mm * (1.0 + pert)


def rasterise(grid: A.Grid, lesion: Lesion) -> None:
    r = 0.5 * lesion.diameter_mm * 1.3 + 2.0
    sl, co = grid.box(lesion.centre - r, lesion.centre + r)
    d, rad = lesion.radius_field(co)
    lesion.sl = sl
    lesion.fraction = (1.0 / (1.0 + np.exp(-(rad - d) / EDGE_MM))).astype(np.float32)


def fibonacci_dirs(n: int) -> np.ndarray:
    """n unit vectors spread evenly over the sphere."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    th = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)], 1)


def _ray_values(grid, codes, point, dirs, step, max_mm):
    """Codes along each ray (nearest voxel), 255 once outside the grid."""
    t = np.arange(0.0, max_mm, step, dtype=np.float32)
    sp = np.asarray(grid.spacing, np.float32)
    p0 = ((np.asarray(point, float) - np.asarray(grid.origin)) / grid.spacing).astype(np.float32)
    ijk = np.rint(p0 + (dirs.astype(np.float32) / sp)[:, None, :] * t[None, :, None]).astype(np.int32)
    n = np.array(grid.shape[::-1])
    valid = np.all((ijk >= 0) & (ijk < n), axis=-1)
    ijk = np.where(valid[..., None], ijk, 0)
    val = codes[ijk[..., 2], ijk[..., 1], ijk[..., 0]].astype(np.int32)
    return t, np.where(valid, val, 255)


def _exits(t, val, outside):
    """Distance to the first ``outside`` voxel (inf when the ray leaves the grid
    first: the patient continues beyond the scanned field, so no known window),
    and the mask of samples before the ray stops."""
    out = val == outside
    stop = out | (val == 255)
    first = np.where(stop.any(1), stop.argmax(1), len(t) - 1)
    reached = out[np.arange(len(val)), first]
    length = np.where(reached, t[first], np.inf)
    before = np.arange(len(t))[None, :] < first[:, None]
    return length, before


def cast_rays(grid: A.Grid, codes: np.ndarray, point, dirs, blockers: Sequence[int],
              outside: int = 0, step: float = 1.0, max_mm: float = 300.0):
    """March from ``point`` along each direction until ``codes == outside``.

    Returns (length_mm, blocked): the distance to the skin (inf if the ray
    left the grid first) and whether a voxel whose code is in ``blockers`` was
    crossed. Works on any code array on ``grid`` (tissue codes or label values).
    """
    t, val = _ray_values(grid, codes, point, dirs, step, max_mm)
    length, before = _exits(t, val, outside)
    blocked = (np.isin(val, list(blockers)) & before).any(1)
    return length, blocked


def skin_access(grid, codes, point, bone, lung, gas, n_dirs=2000, step=1.0, max_mm=300.0):
    """Where the skin is from ``point`` along straight lines (mm):

    - ``nearest_skin_mm`` and whether that line crosses bone;
    - ``nearest_all_behind_bone``: every line within 3 mm of the nearest
      length crosses bone (robust to how finely directions are sampled);
    - ``best_window_mm``: the shortest line crossing no bone, lung or gas
      (inf if none within ``max_mm``).
    """
    dirs = fibonacci_dirs(n_dirs)
    t, val = _ray_values(grid, codes, point, dirs, step, max_mm)
    length, before = _exits(t, val, 0)
    through_bone = (np.isin(val, list(bone)) & before).any(1)
    blocked = (np.isin(val, list(bone) + list(lung) + list(gas)) & before).any(1)
    near = int(np.argmin(length))
    close = length <= length[near] + 3.0
    best = float(np.min(np.where(blocked, np.inf, length)))
    return {"nearest_skin_mm": float(length[near]), "nearest_skin_dir": dirs[near].tolist(),
            "nearest_crosses_bone": bool(through_bone[near]),
            "nearest_all_behind_bone": bool(np.all(through_bone[close])),
            "best_window_mm": best}


def couinaud_segment(p) -> str:
    """Approximate Couinaud segment of an LPS point of this phantom's liver
    (planes: falciform x=+8, middle hepatic vein x=-28, right hepatic vein
    y=+8, portal plane z=+4; caudate behind the portal bifurcation, between
    the IVC and the aorta)."""
    x, y, z = (float(v) for v in p)
    if -36 < x < 6 and 2 < y < 36 and -15 < z < 35:
        return "I"
    if x > 8:
        return "II" if z > 18 else "III"
    if x > -28:
        return "IVa" if z > 4 else "IVb"
    if y > 8:
        return "VII" if z > 4 else "VI"
    return "VIII" if z > 4 else "V"
