"""Where the heart is, roughly: so that the liver does not climb into it through the diaphragm.

On slices of 5 mm the diaphragm between the liver dome and the heart is one
partial-volume slice and the myocardium has the liver's HU, so HU and
openings cannot separate them. The heart's chambers can be found instead:
blood enhanced well above the liver (:data:`POOL_ABOVE_LIVER_HU`) in a lump
that survives an erosion of :data:`POOL_ERODE_MM` (chambers are 30-50 mm
wide; vessels of the liver and the IVC are thinner), in a thoracic slice
(lungs at least :data:`THORAX_LUNG_FRACTION` of the body's cross-section) and
in the anterior part of the body (:data:`MAX_AP_FRACTION`; the descending
aorta lies posterior beside the spine). The liver must keep
:data:`WALL_MM` (myocardium, pericardium, diaphragm) away from those
chambers. A heuristic: it gives nothing when there is no contrast or no chest.
"""
from __future__ import annotations

import numpy as np

from .morphology import dilate_mm, erode_mm

POOL_ABOVE_LIVER_HU = 35.0
POOL_MAX_HU = 500.0
POOL_ERODE_MM = 6.0
THORAX_LUNG_FRACTION = 0.2
MAX_AP_FRACTION = 0.6
WALL_MM = 15.0


def heart_block(hu: np.ndarray, trunk: np.ndarray, lung: np.ndarray, liver_hu: float,
                spacing) -> np.ndarray:
    """Working-grid mask the liver may not enter (empty when no chamber is found)."""
    area = trunk.sum(axis=(1, 2)).astype(float)
    thorax = lung.sum(axis=(1, 2)) >= THORAX_LUNG_FRACTION * np.maximum(area, 1.0)
    if not thorax.any():
        return np.zeros(hu.shape, bool)
    pool = (hu >= liver_hu + POOL_ABOVE_LIVER_HU) & (hu <= POOL_MAX_HU) & trunk
    core = erode_mm(pool, spacing, POOL_ERODE_MM)
    core[~thorax] = False
    rows = trunk.any(axis=2)                                   # [k, j]
    first = np.argmax(rows, axis=1)
    last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)
    j = np.arange(hu.shape[1])[None, :]
    ap = (j - first[:, None]) / np.maximum(last - first, 1)[:, None]   # [k, j]
    core &= (ap < MAX_AP_FRACTION)[:, :, None]
    if not core.any():
        return core
    return dilate_mm(core, spacing, POOL_ERODE_MM + WALL_MM)
