"""Label maps read from image files: plain NRRD/NIfTI/MetaImage and Slicer ``.seg.nrrd``.

Each reader returns a :class:`~registration.spatial.volume.LabelMap` (integer array
``[k, j, i]`` with values >= 0, 0 = background; geometry ``(i, j, k)`` in LPS
mm as read by SimpleITK). A plain label image has no names (the caller applies
a names file, see :mod:`registration.io.label_names`); a ``.seg.nrrd`` is named
from its Segment<N>_Name/_LabelValue/_Layer header fields.
"""
from __future__ import annotations

import re
from typing import Dict, List

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

from .ct_io import read_image_checked
from .label_names import _apply_names


# --------------------------------------------------------------------------- readers
def _read_sitk(path: str) -> sitk.Image:
    return read_image_checked(path, "label map")


def _integer_array(arr: np.ndarray, path) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        out = arr
    elif (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
          and np.all(np.mod(arr, 1) == 0) and (arr.size == 0 or np.abs(arr).max() < 2 ** 31)):
        out = arr.astype(np.int32)
    else:
        raise InputError(f"voxels are {arr.dtype} with non-integer values: not a label map",
                         path=path, fix="give an integer label image (0 = background)")
    if out.size and out.min() < 0:
        raise InputError(f"negative label value {int(out.min())}", path=path,
                         fix="label values must be >= 0 (0 = background)")
    return out


def _geometry_from_sitk(img: sitk.Image, path):
    try:
        probe = Volume(np.zeros((1, 1, 1), np.uint8), img.GetSpacing(), img.GetOrigin(),
                       np.array(img.GetDirection()).reshape(3, 3))
    except InputError as exc:
        raise InputError(str(exc), path=path, fix="fix the image header geometry") from None
    return probe.spacing, probe.origin, probe.direction


def _read_plain(path: str) -> LabelMap:
    img = _read_sitk(path)
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a 3D scalar label image, got {img.GetDimension()}D with "
                         f"{img.GetNumberOfComponentsPerPixel()} component(s)", path=path,
                         fix="give one 3D label map (0 = background)")
    spacing, origin, direction = _geometry_from_sitk(img, path)
    arr = _integer_array(sitk.GetArrayFromImage(img), path)
    return LabelMap(arr, spacing, origin, direction, None, {"source": path, "warnings": []})


def _read_slicer_seg(path: str) -> LabelMap:
    """Slicer segmentation: 3D (one layer) or layers as pixel components (4D list axis)."""
    img = _read_sitk(path)
    if img.GetDimension() != 3:
        raise InputError(f"expected 3 spatial dimensions, got {img.GetDimension()}", path=path,
                         fix="save the segmentation again from Slicer")
    spacing, origin, direction = _geometry_from_sitk(img, path)
    keys = set(img.GetMetaDataKeys())
    indices = sorted({int(m.group(1)) for k in keys for m in [re.match(r"^Segment(\d+)_Name$", k)] if m})
    if not indices:
        raise InputError("no Segment<N>_Name fields in the header", path=path,
                         fix="save it from Slicer as .seg.nrrd, or give a plain label map with "
                             "--label-names")
    arr = sitk.GetArrayFromImage(img)
    if arr.ndim == 3:
        arr = arr[..., None]                     # one layer
    arr = _integer_array(arr, path)
    n_layers = arr.shape[-1]
    out = np.zeros(arr.shape[:3], np.int32)   # layers may be renumbered above their max
    names: Dict[str, int] = {}
    used: set = set()
    warnings: List[str] = []
    for n in indices:
        def field(name, default=None):
            return img.GetMetaData(f"Segment{n}_{name}").strip() if f"Segment{n}_{name}" in keys else default
        seg_name = field("Name") or f"segment_{n}"
        try:
            value = int(field("LabelValue", "1"))
            layer = int(field("Layer", str(n if n_layers > 1 else 0)))
        except ValueError:
            raise InputError(f"Segment{n} has a non-integer LabelValue or Layer", path=path,
                             fix="save the segmentation again from Slicer") from None
        if not 0 <= layer < n_layers or value <= 0:
            raise InputError(f"Segment{n} '{seg_name}': layer {layer} / value {value} do not "
                             f"match the {n_layers} layer(s) in the file", path=path,
                             fix="save the segmentation again from Slicer")
        voxels = arr[..., layer] == value
        new = value if value not in used else max(used | {value}) + 1   # layers may reuse values
        if np.any(out[voxels]):
            warnings.append(f"segment '{seg_name}' overlaps earlier segments; it wins there")
        out[voxels] = new
        used.add(new)
        name = seg_name if seg_name not in names else f"{seg_name}_{n}"
        names[name] = new
    lm = LabelMap(out, spacing, origin, direction, None,
                  {"source": path, "format": "seg.nrrd", "warnings": warnings})
    return _apply_names(lm, names, False, path, "the segmentation")
