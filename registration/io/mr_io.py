"""MR input: DICOM folders (several sequences and phases in one study), NIfTI, NRRD, MetaImage.

:func:`load_mr` returns a :class:`~registration.spatial.volume.Volume` (float32
intensities as stored, no unit; LPS mm; array ``[k, j, i]``) whose metadata
says ``modality="MR"`` and, for DICOM, the sequence, TE/TR, weighting and
contrast phase of the series (:mod:`registration.io.mr_series`). The pixels
are read by the CT loaders (:mod:`registration.io.dicom_volume` for a series:
slice order along the normal, uneven spacing and tilt; :func:`registration.io.ct_io.read_image_checked`
for files): only what differs for MR is here.

Refused, with an :class:`~registration.spatial.errors.InputError` naming the
file and the fix: a 2D image or one with fewer than ``MIN_SLICES`` slices along
an axis (a single slice cannot be registered in 3D), a 4D image or a 4D DICOM
series (diffusion b-values/directions, dynamic, multi-echo), a diffusion or
ADC series (not anatomical), a colour/vector image, and, unless
``allow_ct=True``, an image that is a CT (DICOM Modality CT, or Hounsfield
values: :func:`registration.io.mr_intensity.modality_evidence`).
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .ct_io import IMAGE_SUFFIXES, MAX_VOXELS, _suffix
from .ct_progress import ProgressFn, _report
from .dicom_header import _read_header
from .dicom_volume import _load_series
from .mr_intensity import modality_evidence
from .mr_series import list_mr_series, pick_mr_series

#: An MR needs at least this many voxels along every axis to be a volume.
MIN_SLICES = 3
_FIX_FORMAT = "give an MR DICOM folder or a 3D .nii/.nii.gz/.nrrd/.mha/.mhd file"


def is_image_file(path) -> bool:
    """True for a NIfTI / NRRD / MetaImage file (one volume), False for DICOM (a file or a folder)."""
    path = os.fspath(path)
    return os.path.isfile(path) and _suffix(path) in IMAGE_SUFFIXES


def load_mr(path, series_uid: Optional[str] = None, *, allow_ct: bool = False,
            progress: Optional[ProgressFn] = None) -> Volume:
    """Load a 3D MR (float32, LPS mm) from a DICOM folder, one of its files, or an image file.

    A folder with several loadable series needs ``series_uid`` (the error lists every
    series with its sequence, TR/TE, weighting and phase). ``progress(fraction, message)``
    returning False cancels (CancelledError)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("path not found", path=path, fix=_FIX_FORMAT)
    if is_image_file(path):
        vol = _load_mr_file(path)
    else:
        vol = _load_mr_dicom(path, series_uid, progress)
    _check_volume(vol, path)
    if not allow_ct:
        modality, reason = modality_evidence(vol)
        if modality == "CT":
            raise InputError(f"this looks like a CT, not an MR ({reason})", path=path,
                             fix="give it with --ct (or --fixed for 'ctus align'); --mr takes an MR")
    _report(progress, 1.0, "MR loaded")
    return vol


def _load_mr_file(path: str) -> Volume:
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        dim, size, comps = reader.GetDimension(), reader.GetSize(), reader.GetNumberOfComponents()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unreadable"
        raise InputError(f"cannot read the MR ({last})", path=path, fix="check the file is complete") from None
    if dim == 4 or (dim > 3 and any(s > 1 for s in size[3:])):
        raise InputError(f"a 4D image ({' x '.join(map(str, size))}): a diffusion (DWI), dynamic or multi-echo "
                         "series, not one MR volume", path=path,
                         fix="give one 3D volume (e.g. the T1 hepatobiliary phase), or extract one volume of it")
    if dim < 3:
        raise InputError(f"a {dim}D image ({' x '.join(map(str, size))}): one slice cannot be registered in 3D",
                         path=path, fix="give the whole 3D MR series")
    if comps != 1:
        raise InputError(f"{comps} components per voxel (colour or vector image)", path=path,
                         fix="give a grey-level 3D MR")
    if float(np.prod(size, dtype=np.float64)) > MAX_VOXELS:
        raise InputError(f"header claims {' x '.join(map(str, size))} voxels", path=path,
                         fix="check the MR file is not damaged")
    try:
        img = sitk.Cast(reader.Execute(), sitk.sitkFloat32)
        if img.GetDimension() == 4:
            img = img[:, :, :, 0]
        vol = Volume.from_sitk(img)
    except (RuntimeError, InputError) as exc:
        raise InputError(f"cannot read the MR ({str(exc).strip()[:160]})", path=path,
                         fix="check the image header geometry") from None
    vol.metadata.update(source=path, format=_suffix(path).lstrip("."), modality="MR", series_description="",
                        mr_phase="unknown", weighting="unknown", warnings=[])
    return vol


def _load_mr_dicom(path: str, series_uid: Optional[str], progress: Optional[ProgressFn]) -> Volume:
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if os.path.isfile(path) and _read_header(path) is None:
        raise InputError("not a DICOM file nor a supported image format", path=path, fix=_FIX_FORMAT)
    series = list_mr_series(folder, progress=progress)
    if os.path.isfile(path):
        series = [s for s in series if os.path.abspath(path) in map(os.path.abspath, s.series.files)]
        if not series:
            raise InputError("this DICOM file is not an image slice", path=path, fix="give the MR series folder")
    info = pick_mr_series(series, folder, series_uid)
    if info.weighting in ("DWI", "ADC"):
        raise InputError(f"series {info.series_uid} is a diffusion ({info.weighting}) series "
                         f"({info.weighting_reason}): not an anatomical image to register", path=folder,
                         fix="choose a T1 or T2 series (for liver metastases the T1 hepatobiliary phase)")
    if info.series.modality == "CT":
        raise InputError(f"series {info.series_uid} looks like a CT, not an MR (DICOM Modality CT)", path=folder,
                         fix="give it with --ct (or --fixed for 'ctus align'); --mr takes an MR")
    if len(info.series.files) < MIN_SLICES:
        raise InputError(f"series {info.series_uid} has {len(info.series.files)} slice(s): one slice cannot be "
                         "registered in 3D", path=folder, fix="give the whole 3D MR series")
    vol = _load_series(info.series, folder, progress, max_voxels=MAX_VOXELS)
    vol.array = np.asarray(vol.array, np.float32)
    warnings = [w for w in vol.metadata.get("warnings", []) if "not CT" not in w and "-1024" not in w]
    vol.metadata.update(modality=info.series.modality or "MR", warnings=warnings,
                        sequence_name=info.sequence_name, echo_time_ms=info.echo_time_ms,
                        repetition_time_ms=info.repetition_time_ms, weighting=info.weighting,
                        mr_phase=info.mr_phase, mr_phase_reason=info.mr_phase_reason)
    return vol


def _check_volume(vol: Volume, path: str) -> None:
    size = vol.shape_ijk
    if min(size) < MIN_SLICES:
        raise InputError(f"the MR is {size[0]} x {size[1]} x {size[2]} voxels: fewer than {MIN_SLICES} along an "
                         "axis is a slice, not a volume", path=path, fix="give the whole 3D MR series")
    if not np.all(np.isfinite(vol.array)):
        bad = int(np.sum(~np.isfinite(vol.array)))
        raise InputError(f"{bad} voxels are NaN or infinite", path=path, fix="export the MR again")
