"""Label maps with names: NRRD/NIfTI + names file, Slicer ``.seg.nrrd``, DICOM SEG.

All readers return a :class:`~registration.spatial.volume.LabelMap` (integer array
``[k, j, i]``, geometry ``(i, j, k)`` in LPS mm, ``names`` = {name: value}).

Names come from the file (``.seg.nrrd`` Segment<N>_Name/_LabelValue/_Layer,
DICOM SEG SegmentSequence) or from a names file:

- ``*.json`` or ``*.txt`` names files, with the rules of
  :mod:`registration.io.label_names` (JSON strict; a ``.txt`` dictionary
  keeps only the values present);
- a dict, same rules as JSON; ``names={}`` explicitly means "no names":
  every present value is named ``label_<v>``.
- ``None``: the sidecar ``<stem>.names.json`` written by :func:`write_labels`
  is used if it exists; otherwise InputError (pass --label-names).

Values present in the image but not named are kept as ``label_<v>`` with a
warning in ``metadata['warnings']``. With ``reference`` the label map is
resampled onto the reference grid by physical position (nearest neighbour),
never by index.

The parts live beside it: :mod:`.label_names` (names files, naming),
:mod:`.label_image_readers` (NRRD/NIfTI, ``.seg.nrrd``), :mod:`.dicom_seg`,
:mod:`.label_resample` (onto a reference grid); this module picks the reader
and writes label maps.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Union

import numpy as np
import SimpleITK as sitk

from registration.spatial.atomic_io import atomic_write_files, bytes_writer, image_part
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

from .dicom_seg import _read_dicom_seg
from .label_image_readers import _read_plain, _read_slicer_seg
from .label_names import _FIX_NAMES, _apply_names, _check_names, names_json_text, read_names_file, sidecar_names_path
from .label_resample import resample_labels_to

Names = Union[None, str, "os.PathLike[str]", Mapping[str, int]]


def load_labels(path, names: Names = None, reference: Optional[Volume] = None) -> LabelMap:
    """Load a label map with names (see the module docstring for the rules).

    ``reference`` (usually the CT): when its grid differs, the labels are
    resampled onto it by physical position, nearest neighbour.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path=path, fix="give an existing label map file")
    if os.path.isdir(path):
        raise InputError("is a folder, not a label map file", path=path,
                         fix="give a .nrrd, .nii(.gz), .seg.nrrd or DICOM SEG (.dcm) file")
    low = path.lower()
    from_file = True
    if low.endswith(".seg.nrrd"):
        lm = _read_slicer_seg(path)
    elif low.endswith((".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")):
        lm = _read_plain(path)
        from_file = False
    else:
        import pydicom
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # any pydicom failure on foreign bytes means "not DICOM"
            raise InputError("not a supported label map (.nrrd, .nii, .nii.gz, .seg.nrrd, DICOM SEG)",
                             path=path, fix="convert it to NRRD or NIfTI with a names JSON") from None
        if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
            raise InputError(f"DICOM file of class {ds.get('SOPClassUID', 'unknown')} is not a "
                             "segmentation (SEG)", path=path, fix="give the DICOM SEG object")
        lm = _read_dicom_seg(path, ds)
    if names is not None or not from_file:
        if names is None:
            sidecar = sidecar_names_path(path)
            if not os.path.isfile(sidecar):
                raise InputError("the label map has no structure names", path=path, fix=_FIX_NAMES)
            names = sidecar
        if isinstance(names, Mapping):
            table, strict = _check_names(dict(names), "names"), True
        else:
            table, strict = read_names_file(names)
        lm = _apply_names(LabelMap(lm.array, lm.spacing, lm.origin, lm.direction, None, lm.metadata),
                          table, strict, os.fspath(names) if not isinstance(names, Mapping) else path,
                          os.path.basename(path))
    if reference is not None:
        refs = lm.metadata.get("referenced_series_uids") or []
        ct_uid = reference.metadata.get("series_uid")
        if refs and ct_uid and not str(ct_uid).startswith("no-uid") and ct_uid not in refs:
            lm.metadata.setdefault("warnings", []).append(
                f"the segmentation references series {', '.join(refs)}, not the loaded CT series "
                f"{ct_uid}: check it belongs to this CT")
        lm = resample_labels_to(lm, reference)
    return lm


def write_labels(labelmap: LabelMap, path) -> str:
    """Write a label map (.nrrd, .nii, .nii.gz) and ``<stem>.names.json`` beside it, atomically.

    Both files are complete on disk before either is renamed into place, the image
    first, so a failure never leaves a names file describing a missing (or an older)
    image. Returns the names JSON path.
    """
    path = os.fspath(path)
    low = path.lower()
    suffix = next((s for s in (".nii.gz", ".nrrd", ".nii") if low.endswith(s) and not
                   low.endswith(".seg.nrrd")), None)
    if suffix is None:
        raise InputError("unsupported label map extension", path=path,
                         fix="write .nrrd, .nii or .nii.gz")
    names_path = sidecar_names_path(path)
    names_text = names_json_text(labelmap.names, names_path)     # bad names: nothing written
    arr = labelmap.array
    top = int(arr.max()) if arr.size else 0
    dtype = np.uint8 if top <= np.iinfo(np.uint8).max else (
        np.uint16 if top <= np.iinfo(np.uint16).max else np.int32)
    img = sitk.GetImageFromArray(arr.astype(dtype, copy=False))
    img.SetSpacing(tuple(map(float, labelmap.spacing)))
    img.SetOrigin(tuple(map(float, labelmap.origin)))
    img.SetDirection(tuple(map(float, labelmap.direction.reshape(-1))))
    atomic_write_files([image_part(img, path),
                        (names_path, ".tmp", bytes_writer(names_text.encode("utf-8")))])
    return names_path
