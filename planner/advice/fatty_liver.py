"""Fatty liver from the planning CT, as far as a contrast-enhanced CT can tell.

Steatosis raises the liver's ultrasound attenuation (shorter depth limit) and is
an input of :func:`planner.advice.bmode_visibility.predict_bmode_visibility`.
The reference CT measure, unenhanced liver attenuation (< 40 HU for moderate
steatosis), needs an unenhanced phase, which a pancreatic-protocol CT does not
have. On the portal-venous phase the planner uses the liver-minus-spleen
attenuation difference, only when the label map has a spleen, with cut-offs
chosen for specificity (docs/clinical_evidence.md section 7):

* L-S <= ``FATTY_BELOW_HU`` (-40 HU): fatty (moderate steatosis: specificity 90 %,
  sensitivity 43.5 %, Pickhardt et al. 2024, 1676 adults, portal venous phase);
* L-S >= ``NOT_FATTY_ABOVE_HU`` (-10 HU): not fatty (sensitivity 92 % at -10 HU,
  same study: few moderately fatty livers lie above it);
* between, or without a spleen label, or on another phase: unknown (None), and
  the model then uses normal-liver attenuation; the plan says so.

HU are medians over the eroded organ masks (voxels >= ``ERODE_MM`` inside, so
partial volume and vessels at the edge do not bias them).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from planner.anatomy.derived import bounding_box
from registration.spatial.distance_map import distance_transform_edt

FATTY_BELOW_HU = -40.0
NOT_FATTY_ABOVE_HU = -10.0
ERODE_MM = 4.0
MIN_VOXELS = 200
SOURCE = ("Pickhardt et al., Abdom Radiol 2024 (ARRS 2024 abstract 4710): portal-venous liver-spleen "
          "difference -40 HU: sens 43.5 % / spec 90.0 %; -10 HU: sens 92.1 % / spec 52.5 % for moderate "
          "steatosis (unenhanced liver < 40 HU)")
UNENHANCED_NOTE = ("unenhanced liver attenuation (the reference CT measure, < 40 HU) is not available: the "
                   "planning CT is contrast-enhanced")


@dataclass(frozen=True)
class FattyLiver:
    """The estimate: ``fatty`` True / False / None (unknown), with the numbers and why."""
    fatty: Optional[bool]
    method: str                       # 'liver-spleen difference, portal phase' | 'none'
    liver_hu: Optional[float]
    spleen_hu: Optional[float]
    difference_hu: Optional[float]
    note: str
    source: str = SOURCE

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("liver_hu", "spleen_hu", "difference_hu"):
            if d[k] is not None:
                d[k] = round(d[k], 1)
        d["thresholds_hu"] = {"fatty_at_or_below": FATTY_BELOW_HU, "not_fatty_at_or_above": NOT_FATTY_ABOVE_HU}
        return d


def _core_median(ct_array: np.ndarray, mask: np.ndarray, spacing_kji,
                 depth_mm: Optional[np.ndarray] = None) -> Optional[float]:
    """Median HU of the mask's voxels >= ERODE_MM inside it (None when too few); ``depth_mm``:
    the distance inside the organ when already known (same grid)."""
    if mask is None or mask.sum() < MIN_VOXELS:
        return None
    if depth_mm is not None:
        core = mask & (depth_mm >= ERODE_MM)
        values = ct_array[core]
    else:
        box = bounding_box(mask, (1, 1, 1))
        depth = distance_transform_edt(mask[box], sampling=spacing_kji)
        values = ct_array[box][depth >= ERODE_MM]
    if values.size < MIN_VOXELS:
        return None
    return float(np.median(values))


def estimate_fatty_liver(ct_array: np.ndarray, liver: np.ndarray, spleen: Optional[np.ndarray],
                         spacing_ijk, *, phase: str = "portal",
                         liver_depth_mm: Optional[np.ndarray] = None) -> FattyLiver:
    """Fatty liver from the liver-spleen difference of a portal-venous CT (arrays ``[k, j, i]``,
    ``spacing_ijk`` mm); unknown without a spleen label, on another phase, or between the cut-offs.
    ``liver_depth_mm``: depth inside the liver (mm) when the caller has it (saves a transform)."""
    samp = np.asarray(spacing_ijk, float)[::-1]
    liver_hu = _core_median(ct_array, liver, samp, liver_depth_mm)
    if phase != "portal":
        return FattyLiver(None, "none", liver_hu, None, None,
                          f"{UNENHANCED_NOTE}; the liver-spleen cut-offs are for the portal-venous phase, this CT "
                          f"is '{phase}': fatty liver unknown, normal-liver attenuation assumed")
    if spleen is None or not spleen.any():
        return FattyLiver(None, "none", liver_hu, None, None,
                          f"{UNENHANCED_NOTE}; no spleen label for the liver-spleen difference: fatty liver "
                          "unknown, normal-liver attenuation assumed")
    spleen_hu = _core_median(ct_array, spleen, samp)
    if liver_hu is None or spleen_hu is None:
        return FattyLiver(None, "none", liver_hu, spleen_hu, None,
                          f"{UNENHANCED_NOTE}; liver or spleen too small to measure: fatty liver unknown")
    diff = liver_hu - spleen_hu
    method = "liver-spleen difference, portal phase"
    if diff <= FATTY_BELOW_HU:
        return FattyLiver(True, method, liver_hu, spleen_hu, diff,
                          f"{UNENHANCED_NOTE}; liver - spleen {diff:+.0f} HU <= {FATTY_BELOW_HU:.0f} HU: fatty "
                          "liver (specific cut-off)")
    if diff >= NOT_FATTY_ABOVE_HU:
        return FattyLiver(False, method, liver_hu, spleen_hu, diff,
                          f"{UNENHANCED_NOTE}; liver - spleen {diff:+.0f} HU >= {NOT_FATTY_ABOVE_HU:.0f} HU: no "
                          "moderate steatosis (sensitive cut-off)")
    return FattyLiver(None, method, liver_hu, spleen_hu, diff,
                      f"{UNENHANCED_NOTE}; liver - spleen {diff:+.0f} HU between {FATTY_BELOW_HU:.0f} and "
                      f"{NOT_FATTY_ABOVE_HU:.0f} HU: fatty liver unknown, normal-liver attenuation assumed")
