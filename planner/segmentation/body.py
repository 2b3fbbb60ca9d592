"""The body outline: the patient's trunk, without the table, the mattress or clothing.

Physics: skin and everything under it is denser than -500 HU, air and the
foam of the mattress are lighter. The table top and the rails are dense but
thin (a few mm) and separated from the patient by air or by the mattress;
clothes and blankets are thin sheets. So: threshold at :data:`BODY_HU`,
open each axial slice with a disk of :data:`TABLE_OPEN_MM` (drops
everything thinner than twice that, and cuts thin bridges from the table to the
back), keep the largest 3D component (the trunk; arms lying beside it and the
table are other components), give back the skin detail the opening removed
(conditional dilation by the same radius inside the thresholded voxels, which
regrows at most that far along a bridge), and fill every axial slice (lungs,
bowel gas and the spinal canal are inside the body). Arms separate from the
trunk are not part of ``body`` (their bone still is bone).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError

from .grid import WorkGrid
from .morphology import dilate_mm, fill_holes_2d, label_components

BODY_HU = -500.0
TABLE_OPEN_MM = 4.0
LIMB_FRACTION = 0.03     # heuristic: an arm is at least 3 % of the trunk; table crumbs are less


def _open_slices(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Per-slice opening with a disk of ``radius_mm`` (SimpleITK, multithreaded)."""
    r = [max(1, int(round(radius_mm / s))) for s in spacing[:2]] + [0]
    img = sitk.GetImageFromArray(mask.astype(np.uint8))
    img = sitk.BinaryMorphologicalOpening(img, r, sitk.sitkBall, 0, 1)
    return sitk.GetArrayFromImage(img).astype(bool)


def segment_body(grid: WorkGrid, *, path=None) -> Tuple[np.ndarray, np.ndarray]:
    """(trunk, patient incl. arms) masks on the CT grid; InputError when there is no patient.

    The opening and the component choice run on the working grid (cheap); the
    outline is then taken at full resolution inside one working voxel of it.
    """
    sp = grid.spacing
    dense = grid.hu > BODY_HU
    lab, sizes = label_components(_open_slices(dense, sp, TABLE_OPEN_MM))
    if sizes.size == 0 or sizes[0] * float(np.prod(sp)) < 50_000.0:   # < 50 ml: no patient
        raise InputError("no patient body found in the CT (nothing denser than "
                         f"{BODY_HU:g} HU larger than 50 ml)", path=path,
                         fix="check that the file is a CT in Hounsfield units")
    trunk = fill_holes_2d(dilate_mm(lab == 1, sp, TABLE_OPEN_MM + 0.5 * min(sp[:2])) & dense)
    lab2, _ = label_components(trunk)        # the regrowth may touch a neighbour: keep the trunk
    trunk = lab2 == 1
    limbs = (lab > 1) & (lab <= int(np.sum(sizes >= LIMB_FRACTION * sizes[0])))
    dense_ct = grid.ct.array > BODY_HU
    one = float(max(sp[:2]))
    trunk_ct = fill_holes_2d(dense_ct & grid.zone_to_ct(dilate_mm(trunk, sp, one)))
    if limbs.any():
        patient_ct = trunk_ct | fill_holes_2d(dense_ct & grid.zone_to_ct(dilate_mm(limbs, sp, one)))
    else:
        patient_ct = trunk_ct
    return trunk_ct, patient_ct
