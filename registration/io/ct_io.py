"""CT input: DICOM folders (any file names, several series), NRRD, NIfTI, MetaImage.

Every loader returns a :class:`~registration.spatial.volume.Volume` in HU, LPS mm,
array ``[k, j, i]``. DICOM slices are ordered by their position along the
slice normal (``cross(row, column)`` of ImageOrientationPatient), never by
file name. Listing reads headers only (pydicom ``stop_before_pixels``);
pixels are decoded slice by slice by SimpleITK's GDCM reader (it handles
compressed transfer syntaxes and applies RescaleSlope/RescaleIntercept,
checked in tests/test_ct_io.py) into one preallocated array.

Non-uniform slice spacing (including a missing slice) is resampled to the
median spacing by linear interpolation between neighbouring slices; gantry
tilt (slices stepping off the normal) is resampled onto an orthogonal grid.
Both are stated in ``volume.metadata['warnings']``.

Parts: :mod:`registration.io.dicom_series` lists the series of a folder
(headers via :mod:`registration.io.dicom_header`, phase hints via
:mod:`registration.io.contrast_phase`); :mod:`registration.io.dicom_volume` turns
one series into a Volume; this module dispatches a path to them or reads an
image file, and holds the size guard ``MAX_VOXELS``.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .ct_progress import ProgressFn, _report
from .dicom_volume import _integral_hu

# The DICOM listing (pydicom: ~0.2 s to import) is imported when a DICOM path is loaded.
_FIX_FORMAT = "give a DICOM folder or a .nrrd/.nii/.nii.gz/.mha/.mhd file"   # as dicom_series._FIX_FORMAT

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
MAX_VOXELS = 1 << 30   # refuse headers claiming more (random or hostile files)


def read_image_checked(path: str, what: str = "image") -> sitk.Image:
    """sitk.ReadImage with the header checked first (size, dimension); errors -> InputError."""
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        size = reader.GetSize()
        n = int(np.prod(size, dtype=np.float64)) * reader.GetNumberOfComponents()
        if not size or n <= 0 or n > MAX_VOXELS:
            raise InputError(f"header claims {' x '.join(map(str, size)) or 'no'} voxels", path=path,
                             fix=f"check the {what} file is not damaged")
        return reader.Execute()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unreadable"
        raise InputError(f"cannot read the {what} ({last})", path=path,
                         fix="check the file is complete and not corrupted") from None


def _load_image_file(path: str) -> Volume:
    img = read_image_checked(path, "image")
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a 3D scalar image, got {img.GetDimension()}D with "
                         f"{img.GetNumberOfComponentsPerPixel()} component(s) per voxel", path=path,
                         fix="give a single 3D CT volume (not a sequence or a colour image)")
    try:
        vol = Volume.from_sitk(img)
    except InputError as exc:
        raise InputError(str(exc), path=path, fix="fix the image header geometry") from None
    vol.array = _integral_hu(vol.array)
    warnings = []
    if vol.array.min() >= 0 and vol.array.max() > 1000:
        # air is about -1000 HU: a CT with no negative value was probably saved without its
        # RescaleIntercept (raw scanner values, usually HU + 1024)
        warnings.append(f"no negative values (range {vol.array.min()}..{vol.array.max()}): the file "
                        "may hold raw values without the -1024 HU intercept")
    vol.metadata.update(source=path, format=_suffix(path).lstrip("."), series_description="",
                        phase_hint="unknown", modality="CT", patient_id="", warnings=warnings)
    return vol


def _suffix(path: str) -> str:
    low = path.lower()
    for s in IMAGE_SUFFIXES:
        if low.endswith(s):
            return s
    return os.path.splitext(low)[1]


def load_ct(path, series_uid: Optional[str] = None, *,
            progress: Optional[ProgressFn] = None) -> Volume:
    """Load a CT (HU, LPS mm) from a DICOM folder, one of its files, or an image file.

    A DICOM folder with several series needs ``series_uid`` (the error lists
    them); a single ``.dcm`` file loads the series it belongs to. NRRD and
    NIfTI are converted to LPS by SimpleITK; MetaImage is taken as LPS.

    Resampling and other warnings are in ``metadata['warnings']`` and are logged.
    ``progress(fraction, message)`` is called while reading; returning False
    cancels (CancelledError).
    """
    vol = _load_ct(path, series_uid, progress)
    _report(progress, 1.0, "CT loaded")
    for w in vol.metadata.get("warnings", []):
        log.warning("%s: %s", vol.metadata.get("source", path), w)
    return vol


def _load_ct(path, series_uid: Optional[str], progress: Optional[ProgressFn]) -> Volume:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("path not found", path=path, fix=_FIX_FORMAT)
    if os.path.isfile(path) and _suffix(path) in IMAGE_SUFFIXES:
        return _load_image_file(path)
    from .dicom_header import _read_header
    from .dicom_series import list_dicom_series, pick_series
    from .dicom_volume import _load_series
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if os.path.isfile(path):
        if _read_header(path) is None:
            raise InputError("not a DICOM file nor a supported image format", path=path, fix=_FIX_FORMAT)
    series = list_dicom_series(folder, progress=progress)
    if os.path.isfile(path):
        series = [s for s in series if os.path.abspath(path) in map(os.path.abspath, s.files)]
        if not series:
            raise InputError("this DICOM file is not an image slice", path=path,
                             fix="give the CT series folder")
    return _load_series(pick_series(series, folder, series_uid), folder, progress, max_voxels=MAX_VOXELS)
