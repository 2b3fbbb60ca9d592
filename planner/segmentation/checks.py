"""Is this a CT the automatic anatomy can work on, and is what it found a liver?

Before segmenting (:func:`check_ct`): enough slices and cranio-caudal extent
for 3D context (:data:`MIN_SLICES`, :data:`MIN_EXTENT_MM`), HU-like values,
and the loader's own warnings (slices of mixed spacing resampled, gantry
tilt) passed on. Thick slices or coarse pixels are warned about, not refused.

After finding the liver (:func:`check_liver`): a contrast-enhanced liver is
clearly brighter than skeletal muscle (portal-venous phase typically 40-70 HU
more; without contrast 5-15 HU); a non-enhanced CT is refused because its
vessels cannot be segmented, and planning without them would call paths safe
that are not checked against vessels. The liver must have a plausible volume
and lie in the body's right half, below the chest: a chest-only or head CT
is refused with what was seen instead. A liver cut by the scan's top or bottom
is accepted with a warning, one more when less than :data:`PARTIAL_LIVER_ML` of
it is in view (an adult liver holds 1-2 l; a chest CT shows its dome). Thresholds are heuristics (docs/segmentation.md).
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

MIN_SLICES = 10
MIN_EXTENT_MM = 30.0
THICK_SLICE_MM = 5.5
COARSE_PIXEL_MM = 1.2
MIN_ENHANCEMENT_HU = 20.0      # liver minus muscle below this: not enhanced
NON_CONTRAST_AORTA_HU = 100.0
MIN_LIVER_ML = 100.0
MIN_RIGHT_FRACTION = 0.55      # share of the liver on the body's right half
MAX_THORACIC_FRACTION = 0.5    # share of the liver on slices that are mostly lung
FOV_CUT_FRACTION = 0.1
PARTIAL_LIVER_ML = 500.0       # a liver cut by the scan and smaller than this: only a part in view

_FIX_SERIES = "load the portal-venous series of an abdominal CT (in a folder with several series: --series UID)"


def check_ct(ct: Volume, path=None) -> List[str]:
    """Refuse CTs the method cannot use (InputError); return warnings for the ones it can."""
    nk = ct.array.shape[0]
    extent = ct.spacing[2] * max(nk - 1, 0)
    if nk < MIN_SLICES or extent < MIN_EXTENT_MM:
        raise InputError(f"only {nk} slice(s) covering {extent:.0f} mm: automatic anatomy needs at "
                         f"least {MIN_SLICES} slices over {MIN_EXTENT_MM:g} mm of the abdomen",
                         path=path, fix="load the whole CT series (all its slices), not a few")
    lo, hi = float(ct.array.min()), float(ct.array.max())
    if hi - lo < 500 or lo > -500:
        raise InputError(f"values {lo:.0f}..{hi:.0f} do not look like Hounsfield units "
                         "(no air at about -1000 HU)", path=path,
                         fix="give a CT in HU (DICOM with its rescale, or NRRD/NIfTI saved in HU)")
    warnings = [f"CT: {w}" for w in ct.metadata.get("warnings", [])]
    if ct.spacing[2] > THICK_SLICE_MM:
        warnings.append(f"slices are {ct.spacing[2]:.1f} mm apart: vessels narrower than about "
                        f"{ct.spacing[2]:.0f} mm running across the slices may be missed")
    if max(ct.spacing[:2]) > COARSE_PIXEL_MM:
        warnings.append(f"pixels are {max(ct.spacing[:2]):.2f} mm: small vessels may be missed")
    return warnings


def check_field_of_view(trunk: np.ndarray) -> List[str]:
    """Warn when the body is cut by the image's edge on many slices (canonical arrays)."""
    edge = trunk[:, 0, :].any(axis=1) | trunk[:, -1, :].any(axis=1) | \
        trunk[:, :, 0].any(axis=1) | trunk[:, :, -1].any(axis=1)
    if edge.mean() > FOV_CUT_FRACTION:
        return [f"the body touches the image edge on {100 * edge.mean():.0f} % of the slices: "
                "skin and structures outside the field of view are missing"]
    return []


def check_enhancement(liver_hu: float, muscle_hu: float, aorta_hu: Optional[float], path=None) -> None:
    """InputError for a CT without intravenous contrast (liver not brighter than muscle)."""
    gap = liver_hu - muscle_hu
    aorta_low = aorta_hu is None or aorta_hu < NON_CONTRAST_AORTA_HU
    if gap < MIN_ENHANCEMENT_HU and aorta_low:
        seen = f"aorta {aorta_hu:.0f} HU" if aorta_hu is not None else "no enhanced aorta"
        raise InputError(f"no contrast enhancement: liver {liver_hu:.0f} HU vs muscle {muscle_hu:.0f} HU, "
                         f"{seen}; liver vessels cannot be segmented on a non-contrast CT",
                         path=path, fix=_FIX_SERIES)


def check_liver(liver: Optional[np.ndarray], trunk: np.ndarray, lung: np.ndarray, spacing,
                path=None) -> List[str]:
    """InputError when no plausible liver was found; warnings when it is cut by the scan."""
    vox_ml = float(np.prod(spacing)) / 1000.0
    lung_frac = lung.sum(axis=(1, 2)) / np.maximum(trunk.sum(axis=(1, 2)), 1)
    what = (f"lungs on {int((lung_frac > 0.2).sum())} of {trunk.shape[0]} slices"
            if lung.any() else "no lungs")
    if liver is None or liver.sum() * vox_ml < MIN_LIVER_ML:
        found = 0.0 if liver is None else liver.sum() * vox_ml
        raise InputError(f"no liver found (largest candidate {found:.0f} ml; {what}): the CT does "
                         "not seem to cover the upper abdomen", path=path,
                         fix="load a CT that covers the liver (abdomen or chest-abdomen)")
    from .liver import right_half
    right = float((liver & right_half(trunk)).sum()) / float(liver.sum())
    per_slice = liver.sum(axis=(1, 2))
    thoracic = float(per_slice[lung_frac > 0.3].sum()) / float(liver.sum())
    if right < MIN_RIGHT_FRACTION or thoracic > MAX_THORACIC_FRACTION:
        raise InputError(f"the liver candidate is not where a liver lies ({100 * right:.0f} % on the "
                         f"body's right, {100 * thoracic:.0f} % on slices that are mostly lung; {what}): "
                         "the CT does not seem to cover the upper abdomen", path=path,
                         fix="load a CT that covers the liver (abdomen or chest-abdomen)")
    warnings = []
    if per_slice[0] > 0:
        warnings.append("the liver reaches the lowest slice: it continues below the scan")
    if per_slice[-1] > 0:
        warnings.append("the liver reaches the highest slice: its dome is above the scan")
    ml = float(liver.sum()) * vox_ml
    if warnings and ml < PARTIAL_LIVER_ML:
        warnings.append(f"only {ml:.0f} ml of liver in view ({what}): the CT shows only a part of it "
                        "(a chest CT shows its dome); the rest of the liver and its lesions are not "
                        "segmented")
    return warnings
