"""The planning grid: a large CT and its labels resampled to a coarser grid.

Volumes are ``(i, j, k)`` geometries in LPS mm with arrays ``[k, j, i]``; CT
values in HU (outside the CT: ``OUTSIDE_CT_HU``), labels nearest neighbour (outside: 0).
The coarse grid keeps the CT's direction and the physical corner of its first
voxel.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from registration.spatial.lesions import label_mask
from registration.spatial.volume import LabelMap, Volume

OUTSIDE_CT_HU = -1024.0      # CT value given to planning-grid voxels outside the original CT (air)


def _fine_large_vessels(labels: LabelMap, ref_img):
    """Large (>= 3 mm) vessels decided on the full-resolution labels: (full-resolution mask, the
    same put on the planning grid), or (None, None) without vessel labels.

    On a coarse grid every vessel looks >= 3 mm wide; deciding at full
    resolution keeps small intrahepatic branches (which a needle may pass)
    from closing every path.
    """
    import SimpleITK as sitk

    from planner.anatomy.derived import large_vessels
    from planner.anatomy.structures import VESSEL_CLASS, risk_class_of
    values = [v for n, v in labels.names.items() if risk_class_of(n) == VESSEL_CLASS]
    if not values:
        return None, None
    big = large_vessels(label_mask(labels.array, values), labels.spacing)
    img = sitk.Resample(labels.with_array(big.view(np.uint8)).to_sitk(), ref_img, sitk.Transform(),
                        sitk.sitkNearestNeighbor, 0)
    return big, sitk.GetArrayFromImage(img).astype(bool)


def planning_grid(ct: Volume, labels: LabelMap, arterial: Optional[Volume], max_voxels: int):
    """CT, labels (and arterial phase) on a coarser grid of <= max_voxels voxels, or unchanged.

    Planning cost is dominated by distance transforms over the grid, so a
    large CT is resampled: every axis gets at least the spacing ``s`` (mm) of
    a cube grid of ``max_voxels`` over the same extent (axes already coarser
    keep theirs). CT and arterial linear, labels nearest neighbour, large
    vessels decided at full resolution. Returns (ct, labels, arterial, extra
    masks {class: bool} or None, spacing (i, j, k) mm or None when unchanged,
    the full-resolution large-vessel mask or None: the clearance oracle of
    :mod:`.clearance` measures chosen paths against it).
    Planning time per budget: benchmarks/results/planning.md.
    """
    n = ct.array.size
    if max_voxels <= 0 or n <= max_voxels:
        return ct, labels, arterial, None, None, None
    extent = np.array(ct.shape_ijk) * ct.spacing
    s = float((np.prod(extent) / max_voxels) ** (1.0 / 3.0))
    spacing = np.maximum(ct.spacing, s)
    size = [max(1, int(np.floor(e / sp))) for e, sp in zip(extent, spacing)]
    import SimpleITK as sitk
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(x) for x in spacing))
    # keep the physical corner of the first voxel where it was
    corner = ct.origin - ct.direction @ (0.5 * ct.spacing)
    ref.SetOrigin(tuple(float(x) for x in corner + ct.direction @ (0.5 * spacing)))
    ref.SetDirection(tuple(float(x) for x in ct.direction.reshape(-1)))

    def resample(vol, interp, default):
        img = sitk.Resample(vol.to_sitk(), ref, sitk.Transform(), interp, default)
        return Volume.from_sitk(img, vol.metadata)
    ct2 = resample(ct, sitk.sitkLinear, OUTSIDE_CT_HU)
    ct2 = ct2.with_array(np.rint(ct2.array).astype(np.int16))
    lab = resample(labels, sitk.sitkNearestNeighbor, 0)
    lab2 = LabelMap(lab.array, lab.spacing, lab.origin, lab.direction, labels.names, labels.metadata)
    art2 = resample(arterial, sitk.sitkLinear, OUTSIDE_CT_HU) if arterial is not None else None
    big_full, big = _fine_large_vessels(labels, ref)
    return ct2, lab2, art2, (None if big is None else {"vessel_large": big}), spacing, big_full
