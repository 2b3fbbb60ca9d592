"""Which air pockets are lung: parenchyma density, size, position against the chest wall.

A pocket (see :mod:`planner.segmentation.gas`) is lung when

- its core is aerated tissue, not pure gas (median core HU above
  :data:`PARENCHYMA_MIN_HU`), and it is either large (:data:`LUNG_MIN_ML`)
  or lies against bone (ribs, spine: the pleura lines them) in the posterior
  part of the body (:data:`RECESS_MIN_POSTERIOR`), where the costophrenic
  recesses reach below the diaphragm's dome on an abdominal CT; or
- it is big and reaches the head end of the scan (:data:`APEX_MIN_ML`), with
  any core below pure gas (:data:`EMPHYSEMA_MIN_HU`): the lungs of a chest CT,
  emphysematous ones included; or
- it lies within :data:`JOIN_MM` of a pocket already called lung and is not pure
  gas (a base cut off from its lung by the dome on a slice).

Everything else is bowel gas (:func:`planner.segmentation.gas.bowel_gas`).
The lung region then has its vessels filled in, per axial slice
(:func:`lung_region`).
Thresholds are heuristics from the physics of aerated lung (about -850 HU,
-700 to -900) against pure gas (-1000 HU; -930 to -1000 measured on the
project's CTs); see docs/segmentation.md.
"""
from __future__ import annotations

from typing import List, Set

import numpy as np

from .gas import AirComponent
from .morphology import bbox, dilate_mm, fill_small_holes_2d, keep_components, margin_vox

PARENCHYMA_MIN_HU = -910.0
EMPHYSEMA_MIN_HU = -975.0
LUNG_MIN_ML = 20.0
APEX_MIN_ML = 100.0
RECESS_MIN_POSTERIOR = 0.6
JOIN_MM = 5.0
VESSEL_HOLE_MM2 = 400.0      # a 22 mm disk: hilar vessels at most


def lung_labels(lab: np.ndarray, components: List[AirComponent], spacing) -> Set[int]:
    """Labels (in ``lab``) of the air components that are lung."""
    lung: Set[int] = set()
    for c in components:
        parenchyma = c.core_hu >= PARENCHYMA_MIN_HU
        if parenchyma and (c.volume_ml >= LUNG_MIN_ML or
                           (c.near_bone and c.posterior_fraction >= RECESS_MIN_POSTERIOR)):
            lung.add(c.label)
        elif c.touches_top and c.volume_ml >= APEX_MIN_ML and c.core_hu >= EMPHYSEMA_MIN_HU:
            lung.add(c.label)
    if lung:
        grow = margin_vox(JOIN_MM, spacing)
        for c in components:
            if c.label in lung or c.core_hu < PARENCHYMA_MIN_HU:
                continue
            # a crop around this (small) pocket: is a lung within JOIN_MM of it?
            box = tuple(slice(max(0, b.start - g), min(n, b.stop + g))
                        for b, g, n in zip(c.box, grow, lab.shape))
            near = dilate_mm(lab[box] == c.label, spacing, JOIN_MM)
            if (near & np.isin(lab[box], sorted(lung))).any():
                lung.add(c.label)
    return lung


def lung_region(lab: np.ndarray, labels: Set[int], spacing) -> np.ndarray:
    """The lung components with their vessels filled in: axial holes up to :data:`VESSEL_HOLE_MM2`
    (a lung ringing the heart or the liver dome on a slice does not swallow them)."""
    out = np.zeros(lab.shape, bool)
    if not labels:
        return out
    lung = keep_components(lab, sorted(labels))
    box = bbox(lung, (0, 1, 1))
    out[box] = fill_small_holes_2d(lung[box], VESSEL_HOLE_MM2, spacing)
    return out
