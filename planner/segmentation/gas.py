"""Gas inside the body: connected air pockets and what they look like (bowel gas is what is not lung).

Air is below :data:`AIR_HU` inside the trunk, looked for from
:data:`SKIN_MARGIN_MM` under the skin (partial-volume voxels at the skin
surface and skin folds read as air). Each 3D component (6-connected) is
described by what tells lung from bowel gas physically:

- ``core_hu``: the median HU of its core (voxels with air on all four in-plane
  sides). Bowel and stomach gas is pure gas, -1000 HU on a calibrated scanner
  (measured -930 to -1000 on the project's three CTs); aerated lung
  parenchyma is a mix of air and tissue, about -850 (-700 to -900; lower in
  emphysema);
- its volume, whether it reaches the superior end of the scan, its
  antero-posterior position inside the body and whether bone lies within
  :data:`RIB_NEAR_MM` (the pleura lines the ribs and the spine).

:mod:`planner.segmentation.lungs` decides which components are lung;
:func:`bowel_gas` keeps the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
from scipy import ndimage


AIR_HU = -400.0
SKIN_MARGIN_MM = 2.0
RIB_NEAR_MM = 10.0
MIN_GAS_ML = 0.02     # smaller specks are noise or partial volume


@dataclass
class AirComponent:
    """One 3D air pocket: label value in the component array and its description."""
    label: int
    volume_ml: float
    core_hu: float
    touches_top: bool
    posterior_fraction: float      # 0 anterior body edge .. 1 posterior body edge (its centroid)
    near_bone: bool
    box: tuple                     # slices [k, j, i]


def inner_body(trunk: np.ndarray, spacing, margin_mm: float = SKIN_MARGIN_MM) -> np.ndarray:
    """The trunk eroded in-plane by about ``margin_mm`` (4-connected steps)."""
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    steps = max(1, int(round(margin_mm / float(min(spacing[:2])))))
    return ndimage.binary_erosion(trunk, st, iterations=steps)


def air_components(hu: np.ndarray, trunk: np.ndarray, near_bone: np.ndarray, spacing) -> tuple:
    """(labels int32 ``[k, j, i]``, [AirComponent]) of the air inside the trunk.

    ``near_bone``: voxels within :data:`RIB_NEAR_MM` of bone. Arrays in the
    canonical order of :mod:`planner.segmentation.orient` (+j posterior, +k superior).
    """
    air = (hu < AIR_HU) & inner_body(trunk, spacing)
    lab, n = ndimage.label(air)
    if n == 0:
        return lab, []
    vox_ml = float(np.prod(spacing)) / 1000.0
    core = ndimage.binary_erosion(air, np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    # AP extent of the body per slice (rows j of the trunk)
    rows = trunk.any(axis=2)
    first = np.argmax(rows, axis=1)
    last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)
    out: List[AirComponent] = []
    for c, box in enumerate(ndimage.find_objects(lab), start=1):
        m = lab[box] == c
        size = int(m.sum())
        if size * vox_ml < MIN_GAS_ML:
            continue
        vals = hu[box][m & core[box]]
        core_hu = float(np.median(vals)) if vals.size else float(np.median(hu[box][m]))
        kji = np.argwhere(m).mean(axis=0) + [s.start for s in box]
        k = int(round(kji[0]))
        span = max(1, int(last[k]) - int(first[k]))
        post = (kji[1] - first[k]) / span
        out.append(AirComponent(
            label=c, volume_ml=size * vox_ml, core_hu=core_hu,
            touches_top=box[0].stop == lab.shape[0],
            posterior_fraction=float(post),
            near_bone=bool(near_bone[box][m].any()), box=box))
    return lab, out


def bowel_gas(lab: np.ndarray, components: List[AirComponent], lung_labels) -> np.ndarray:
    """Air pockets that are not lung (and not specks below :data:`MIN_GAS_ML`)."""
    keep = np.zeros(int(lab.max()) + 1, bool)
    for c in components:
        if c.label not in lung_labels:
            keep[c.label] = True
    return keep[lab]
