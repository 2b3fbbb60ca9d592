"""A label map put on another volume's grid by physical position (nearest neighbour).

Both grids are ``(i, j, k)`` geometries in LPS mm (spacing, origin, direction);
arrays are ``[k, j, i]``. Resampling goes through SimpleITK with an identity
transform, so a voxel takes the label found at the same LPS point, never the
label at the same index. Volume lost outside the new grid is compared in mm^3.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from registration.spatial.volume import LabelMap, Volume

from .label_names import _value_counts

LOST_VOLUME_WARNING_FRACTION = 0.5   # warn when a structure keeps less than this of its volume


def resample_labels_to(lm: LabelMap, reference: Volume) -> LabelMap:
    """``lm`` on ``reference``'s grid by physical position (nearest neighbour), never by index.

    Warns (in ``metadata['warnings']``) for structures that lose over half their volume.
    """
    if lm.same_grid(reference):
        return lm
    top = int(lm.array.max()) if lm.array.size else 0
    src = sitk.GetImageFromArray(lm.array.astype(np.uint16 if top <= np.iinfo(np.uint16).max
                                                 else np.int64, copy=False))
    src.SetSpacing(tuple(map(float, lm.spacing)))
    src.SetOrigin(tuple(map(float, lm.origin)))
    src.SetDirection(tuple(map(float, lm.direction.reshape(-1))))
    ref = sitk.Image([int(s) for s in reference.shape_ijk], sitk.sitkUInt8)  # geometry only
    ref.SetSpacing(tuple(map(float, reference.spacing)))
    ref.SetOrigin(tuple(map(float, reference.origin)))
    ref.SetDirection(tuple(map(float, reference.direction.reshape(-1))))
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, src.GetPixelID())
    arr = sitk.GetArrayFromImage(out)
    warnings = list(lm.metadata.get("warnings", []))
    before, after = _value_counts(lm.array), _value_counts(arr)
    for name, v in lm.names.items():
        # compare physical volumes: voxel sizes differ between the grids
        vol_before = before.get(v, 0) * np.prod(lm.spacing)
        vol_after = after.get(v, 0) * np.prod(reference.spacing)
        if vol_before > 0 and vol_after < LOST_VOLUME_WARNING_FRACTION * vol_before:
            warnings.append(f"'{name}': {100 * (1 - vol_after / vol_before):.0f} % of its volume "
                            "lies outside the reference grid")
    md = dict(lm.metadata, warnings=warnings, resampled_to_reference=True)
    return LabelMap(arr, reference.spacing, reference.origin, reference.direction, lm.names, md)
