"""Where the heart is: a block the liver may not climb into, and the heart's outline as a label.

On slices of 5 mm the diaphragm between the liver dome and the heart is one
partial-volume slice and the myocardium has the liver's HU, so HU and
openings cannot separate them. The heart's chambers can be found instead
(:func:`heart_blood`): blood enhanced well above the liver
(:data:`POOL_ABOVE_LIVER_HU`) in a lump that survives an erosion of
:data:`POOL_ERODE_MM` (chambers are 30-50 mm wide; vessels of the liver are
thinner), in a thoracic slice (lungs at least :data:`THORAX_LUNG_FRACTION` of
the body's cross-section) and in the anterior part of the body
(:data:`MAX_AP_FRACTION`; the descending aorta lies posterior beside the
spine). Those cores are sure; portal-phase blood is often only 20-50 HU above
the liver, so the chambers are then completed by the lumps of blood at least
:data:`BLOOD_ABOVE_LIVER_HU` above the liver that survive the same erosion,
lie in the same slices and touch a sure core, each grown back by the erosion's
radius inside its blood (an opening: what a 12 mm ball fits in).

- :func:`heart_block`: the liver must keep :data:`WALL_MM` (myocardium,
  pericardium, diaphragm) away from that blood.
- :func:`heart_outline`: the heart as a structure a needle must not reach
  (a hard class of the planner): the blood and, around it, up to
  :data:`MYOCARDIUM_MM` of tissue denser than :data:`WALL_MIN_HU` (the
  myocardium, 10-12 mm at the left ventricle, and the pericardium; epicardial
  fat stops it) that is not liver, lung, bone or aorta. Where the heart lies on
  the diaphragm the diaphragm there is taken too: a needle has no business
  there either.

A heuristic: it gives nothing when there is no contrast or no chest in view.
"""
from __future__ import annotations

import numpy as np

from .morphology import dilate_mm, erode_mm, fill_holes_2d, label_components

POOL_ABOVE_LIVER_HU = 35.0
BLOOD_ABOVE_LIVER_HU = 20.0
POOL_MAX_HU = 500.0
POOL_ERODE_MM = 6.0
THORAX_LUNG_FRACTION = 0.2
MAX_AP_FRACTION = 0.6
WALL_MM = 15.0
MYOCARDIUM_MM = 12.0
WALL_MIN_HU = 0.0


def heart_blood(hu: np.ndarray, trunk: np.ndarray, lung: np.ndarray, liver_hu: float,
                spacing) -> np.ndarray:
    """Working-grid blood of the heart's chambers (bool; empty when no chamber is found)."""
    area = trunk.sum(axis=(1, 2)).astype(float)
    thorax = lung.sum(axis=(1, 2)) >= THORAX_LUNG_FRACTION * np.maximum(area, 1.0)
    if not thorax.any():
        return np.zeros(hu.shape, bool)
    rows = trunk.any(axis=2)                                   # [k, j]
    first = np.argmax(rows, axis=1)
    last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)
    j = np.arange(hu.shape[1])[None, :]
    ap = (j - first[:, None]) / np.maximum(last - first, 1)[:, None]   # [k, j]
    where = (ap < MAX_AP_FRACTION)[:, :, None] & thorax[:, None, None]
    bright = (hu <= POOL_MAX_HU) & trunk
    sure = erode_mm(bright & (hu >= liver_hu + POOL_ABOVE_LIVER_HU), spacing, POOL_ERODE_MM) & where
    if not sure.any():
        return sure
    pool = bright & (hu >= liver_hu + BLOOD_ABOVE_LIVER_HU)
    lab, _ = label_components((erode_mm(pool, spacing, POOL_ERODE_MM) & where) | sure)
    cores = np.isin(lab, _labels_at(lab, sure))
    return dilate_mm(cores, spacing, POOL_ERODE_MM) & (pool | cores)


def heart_block(blood: np.ndarray, spacing) -> np.ndarray:
    """Working-grid mask the liver may not enter (empty when no chamber was found)."""
    if not blood.any():
        return blood.copy()
    return dilate_mm(blood, spacing, WALL_MM)


def heart_outline(blood: np.ndarray, hu: np.ndarray, trunk: np.ndarray, allowed: np.ndarray,
                  spacing) -> np.ndarray:
    """Working-grid heart: chambers and wall (bool). ``allowed``: where the heart may lie
    (not liver, lung, air, bone or aorta)."""
    if not blood.any():
        return blood.copy()
    wall = dilate_mm(blood, spacing, MYOCARDIUM_MM) & (hu >= WALL_MIN_HU) & allowed & trunk
    heart = fill_holes_2d((blood & allowed) | wall) & allowed
    lab, _ = label_components(heart)
    return np.isin(lab, _labels_at(lab, blood & heart))


def _labels_at(lab: np.ndarray, where: np.ndarray) -> np.ndarray:
    keep = np.unique(lab[where])
    return keep[keep > 0]
