"""The click that starts a lesion: is it usable, and how does the lesion differ from the liver there.

Points are CT LPS mm; arrays ``[k, j, i]``; spacing ``(i, j, k)`` mm. Work is
done in a box around the click (:class:`SeedBox`), never on the whole CT.

The checks, in this order (each failure is an InputError naming the lesion and
the point, and saying what to do):

- the point lies outside the CT;
- the median HU within 2.5 mm is below -300 HU (air, lung or bowel gas),
  below -50 HU (fat: no liver lesion to grow; a fat-containing one must be
  drawn by hand) or above 500 HU, or the voxel is in the given bone mask
  (bone; a densely calcified lesion is also refused: draw it by hand);
- the point is more than 5 mm outside the liver hull (the liver mask closed by
  10 mm and with its holes filled, see :func:`liver_hull`); closer than that it is
  accepted with a warning, since a click on a bulging subcapsular lesion can
  fall just outside an automatic liver outline;
- no phase shows a contrast of at least 10 HU and 3 standard errors between
  the click's neighbourhood and the liver (an iso-attenuating spot is no lesion
  to grow).

-300, -50 and 500 HU lie between the attenuation of air/lung (-1000 to
-700 HU), fat (-120 to -80 HU), soft tissue with contrast (0 to about 350 HU
in an arterial aorta) and cortical bone (over 700 HU). The 10 HU contrast, the 2.5 mm neighbourhood and
the 5 mm tolerance are heuristics of this project.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .morphology import close_mm, distance_to_mm, fill_holes_2d, fill_holes_3d

AIR_HU = -300.0
FAT_HU = -50.0
BONE_HU = 500.0
SEED_RADIUS_MM = 2.5
HULL_CLOSING_MM = 10.0
OUTSIDE_TOLERANCE_MM = 5.0
MIN_CONTRAST_HU = 10.0
MIN_CONTRAST_SE = 3.0


@dataclass(frozen=True)
class SeedBox:
    """A box of the CT grid around a click: ``slices`` ``[k, j, i]``, the click's voxel
    ``seed`` inside the box, ``spacing`` ``(i, j, k)`` mm and ``seed_mm`` [k, j, i]
    distance (mm) of every box voxel to the click."""
    slices: Tuple[slice, slice, slice]
    seed: Tuple[int, int, int]
    spacing: np.ndarray
    seed_mm: np.ndarray

    @property
    def offset_ijk(self) -> np.ndarray:
        return np.array([self.slices[2].start, self.slices[1].start, self.slices[0].start])


@dataclass(frozen=True)
class PhaseContrast:
    """How the click differs from the liver in one phase (HU; ``noise_hu`` = robust SD)."""
    phase: str
    liver_hu: float
    noise_hu: float
    seed_hu: float
    contrast_hu: float

    @property
    def contrast_to_noise(self) -> float:
        return abs(self.contrast_hu) / max(self.noise_hu, 1e-6)


def _where(name: str, point) -> str:
    return f"lesion '{name}' at ({', '.join(f'{v:.1f}' for v in point)}) mm"


def seed_box(ct: Volume, point_lps: Sequence[float], radius_mm: float, name: str) -> SeedBox:
    """The box of half-size ``radius_mm`` around the click (cut at the CT's edges).

    InputError when the click is outside the CT.
    """
    ijk = np.rint(ct.lps_to_index(np.asarray(point_lps, float))).astype(int)
    size = np.array(ct.shape_ijk)
    if np.any(ijk < 0) or np.any(ijk >= size):
        lo, hi = ct.bounds_lps()
        raise InputError(f"{_where(name, point_lps)} is outside the CT (LPS box "
                         f"{np.round(lo, 1).tolist()} .. {np.round(hi, 1).tolist()} mm)",
                         fix="give the point in the CT's LPS millimetres (x to the patient's left, "
                             "y posterior, z superior)")
    half = np.ceil(radius_mm / ct.spacing).astype(int)
    lo = np.maximum(ijk - half, 0)
    hi = np.minimum(ijk + half + 1, size)
    slices = tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))
    seed = tuple(int(v) for v in (ijk - lo)[::-1])
    grids = np.ogrid[tuple(slice(-s, n - s) for s, n in zip(seed, (b - a for a, b in zip(lo[::-1], hi[::-1]))))]
    sp_kji = ct.spacing[::-1]
    seed_mm = np.sqrt(sum((g * s) ** 2 for g, s in zip(grids, sp_kji))).astype(np.float32)
    return SeedBox(slices, seed, ct.spacing.copy(), seed_mm)


def check_tissue(ct_box: np.ndarray, box: SeedBox, name: str, point, bone_box: Optional[np.ndarray]) -> float:
    """Median HU around the click; InputError in air/gas/lung or bone."""
    hu = float(np.median(ct_box[box.seed_mm <= SEED_RADIUS_MM]))
    if hu < AIR_HU:
        raise InputError(f"{_where(name, point)} is in air, lung or bowel gas (median {hu:.0f} HU within "
                         f"{SEED_RADIUS_MM} mm)", fix="click inside the lesion, in the liver")
    if hu < FAT_HU:
        raise InputError(f"{_where(name, point)} is in fat (median {hu:.0f} HU within {SEED_RADIUS_MM} mm)",
                         fix="click inside the lesion, in the liver (a fat-containing lesion must be drawn by hand)")
    if hu > BONE_HU or (bone_box is not None and bool(bone_box[box.seed])):
        raise InputError(f"{_where(name, point)} is in bone (median {hu:.0f} HU within {SEED_RADIUS_MM} mm)",
                         fix="click inside the lesion, in the liver (a calcified lesion must be drawn by hand)")
    return hu


def liver_hull(liver_box: np.ndarray, spacing) -> np.ndarray:
    """The liver mask closed by 10 mm, with 3D holes and per-slice holes filled.

    A lesion left out of an automatic liver mask is a hole in it (filled) or, under
    the capsule, a notch (closed).
    """
    hull = close_mm(liver_box, spacing, HULL_CLOSING_MM)
    return fill_holes_2d(fill_holes_3d(hull))


def check_in_liver(hull: np.ndarray, box: SeedBox, name: str, point) -> Tuple[float, Optional[str]]:
    """(mm from the click to the liver hull, a warning or None); InputError when far outside."""
    if not hull.any():
        raise InputError(f"{_where(name, point)}: no liver within {box.seed_mm.max():.0f} mm of the click",
                         fix="click inside the lesion, in the liver (or check the liver segmentation)")
    outside_mm = float(distance_to_mm(hull, box.spacing)[box.seed])
    if outside_mm > OUTSIDE_TOLERANCE_MM:
        raise InputError(f"{_where(name, point)} is {outside_mm:.0f} mm outside the liver",
                         fix="click inside the lesion, in the liver (or check the liver segmentation)")
    if outside_mm > 0:
        return outside_mm, (f"{name}: the click is {outside_mm:.1f} mm outside the liver mask; the lesion "
                            "was grown from there (check it is a liver lesion)")
    return 0.0, None


def phase_contrasts(phases: Dict[str, np.ndarray], liver: np.ndarray, box: SeedBox) -> list:
    """:class:`PhaseContrast` of every phase, best contrast-to-noise first.

    ``phases`` are the whole CT arrays and ``liver`` the whole liver mask: the liver's
    level and noise are those of the whole organ (median, 1.4826 MAD), so a large
    lesion filling the box around the click does not become the reference itself.
    """
    near = box.seed_mm <= SEED_RADIUS_MM
    out = []
    for phase, arr in phases.items():
        values = arr[liver].astype(np.float64)
        level = float(np.median(values))
        noise = float(1.4826 * np.median(np.abs(values - level)))
        seed = float(np.median(arr[box.slices][near]))
        out.append(PhaseContrast(phase, level, noise, seed, seed - level))
    return sorted(out, key=lambda c: -c.contrast_to_noise)


def check_contrast(best: PhaseContrast, box: SeedBox, name: str, point) -> None:
    """InputError when the click's neighbourhood does not differ from the liver."""
    n = int(np.count_nonzero(box.seed_mm <= SEED_RADIUS_MM))
    standard_error = 1.2533 * best.noise_hu / np.sqrt(max(n, 1))   # of a median
    if abs(best.contrast_hu) < max(MIN_CONTRAST_HU, MIN_CONTRAST_SE * standard_error):
        raise InputError(f"{_where(name, point)}: the click differs from the liver by only "
                         f"{best.contrast_hu:+.0f} HU ({best.phase}: {best.seed_hu:.0f} vs "
                         f"{best.liver_hu:.0f} HU); no lesion to grow there",
                         fix="click in the middle of the lesion; give --arterial if it shows only in the "
                             "arterial phase, or draw it by hand")
