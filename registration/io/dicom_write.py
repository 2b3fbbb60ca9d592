"""Write a :class:`~registration.spatial.volume.Volume` as a DICOM CT image series.

One file per slice ``k``, written with pydicom directly (no SimpleITK round
trip), one slice in memory at a time. Geometry follows DICOM:

- ``ImageOrientationPatient`` = the +i axis (along a row, towards higher
  column index) then the +j axis (down the rows), both in LPS,
  i.e. ``direction[:, 0]`` and ``direction[:, 1]``;
- ``ImagePositionPatient`` of slice k = LPS mm of voxel (0, 0, k)
  = ``origin + k * spacing_k * direction[:, 2]``;
- ``PixelSpacing`` = (row spacing, column spacing) = ``(spacing_j, spacing_i)``.

Pixel values: ``stored = round((HU - intercept) / slope)``, so values come
back exactly for integer HU with slope 1 and within ``slope / 2`` otherwise.
Stored as unsigned 16 bit when every stored value fits, else signed.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
DEFAULT_RESCALE_INTERCEPT_HU = -1024.0   # stored 0 = -1024 HU: air and above fit unsigned 16 bit
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DA = re.compile(r"^\d{8}$")
_DS_MAX_CHARS = 16        # DICOM decimal string (DS) length limit
_UID_MAX_CHARS = 64       # DICOM UID length limit
_BITS = 16                # BitsAllocated = BitsStored
_WINDOW_CENTER_HU, _WINDOW_WIDTH_HU = 40, 400   # soft-tissue window for viewers

FileNames = Union[None, Sequence[str], Callable[[int], str]]
UidSource = Union[None, Sequence[str], Callable[[int], str]]
_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


@dataclass(frozen=True)
class DicomSeriesOptions:
    """What :func:`write_dicom_series` writes besides the volume (its keyword arguments)."""
    series_description: str
    contrast_agent: Optional[str] = None
    acquisition_time: Optional[str] = None          # DICOM TM
    series_uid: Optional[str] = None
    study_uid: Optional[str] = None
    frame_of_reference_uid: Optional[str] = None
    patient_id: str = "ANON"
    patient_name: str = "ANON"
    series_number: int = 1
    file_names: FileNames = None
    rescale_slope: float = 1.0
    rescale_intercept: float = DEFAULT_RESCALE_INTERCEPT_HU
    sop_instance_uids: UidSource = None
    study_date: Optional[str] = None                # DICOM DA
    study_time: Optional[str] = None                # DICOM TM
    contrast_start_time: Optional[str] = None       # DICOM TM
    extra_tags: Optional[Mapping[str, object]] = None


def _fmt(x: float) -> str:
    """DICOM decimal string (DS, at most 16 characters)."""
    s = f"{float(x):.10g}"
    if len(s) > _DS_MAX_CHARS:
        s = f"{float(x):.6e}"
    return s


def _pixel_representation(array: np.ndarray, slope: float, intercept: float, folder) -> int:
    """0 (unsigned) or 1 (signed) 16-bit storage for the whole series, from its HU range."""
    lo = float(np.rint((float(array.min()) - intercept) / slope))
    hi = float(np.rint((float(array.max()) - intercept) / slope))
    if lo >= 0 and hi <= np.iinfo(np.uint16).max:
        return 0
    if lo >= np.iinfo(np.int16).min and hi <= np.iinfo(np.int16).max:
        return 1
    raise InputError(
        f"values {array.min()}..{array.max()} do not fit 16 bits with "
        f"rescale slope {slope} and intercept {intercept}", path=folder,
        fix="pass a larger rescale_slope or a different rescale_intercept")


def _stored_slice(hu: np.ndarray, slope: float, intercept: float, signed: int) -> np.ndarray:
    """One slice at a time, so writing never holds a float64 copy of the whole volume."""
    stored = np.rint((hu.astype(np.float64) - intercept) / slope)
    return stored.astype(np.int16 if signed else np.uint16)


def _names(file_names: FileNames, n: int, sop_uids: List[str], folder) -> List[str]:
    if file_names is None:
        names = [f"CT.{uid}.dcm" for uid in sop_uids]
    elif callable(file_names):
        names = [str(file_names(k)) for k in range(n)]
    else:
        names = [str(x) for x in file_names]
        if len(names) != n:
            raise InputError(f"{len(names)} file names for {n} slices", path=folder,
                             fix="give one file name per slice")
    if len(set(names)) != n or any(os.sep in x or x in ("", ".", "..") for x in names):
        raise InputError("file names must be unique plain names (no folders)", path=folder,
                         fix="give one distinct file name per slice")
    return names


def _sop_uids(source: UidSource, n: int, folder) -> List[str]:
    if source is None:
        return [generate_uid() for _ in range(n)]
    uids = [str(source(k)) for k in range(n)] if callable(source) else [str(u) for u in source]
    if (len(uids) != n or len(set(uids)) != n
            or not all(_UID.match(u) and len(u) <= _UID_MAX_CHARS for u in uids)):
        raise InputError(f"sop_instance_uids must be {n} distinct valid UIDs", path=folder,
                         fix="give digits and dots, at most 64 characters, one per slice")
    return uids


# set by the writer from its arguments or the volume: not overridable through extra_tags
_RESERVED = {"SOPInstanceUID", "SOPClassUID", "ImagePositionPatient", "ImageOrientationPatient",
             "PixelSpacing", "SliceThickness", "Rows", "Columns", "PixelData", "BitsAllocated",
             "BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope", "RescaleIntercept",
             "SamplesPerPixel", "PhotometricInterpretation", "InstanceNumber", "SliceLocation",
             "SeriesInstanceUID", "StudyInstanceUID", "FrameOfReferenceUID", "SpacingBetweenSlices"}


def _check_extra(extra_tags, folder) -> dict:
    extra = dict(extra_tags or {})
    for keyword in extra:
        if tag_for_keyword(str(keyword)) is None:
            raise InputError(f"extra_tags: '{keyword}' is not a DICOM keyword", path=folder,
                             fix="use pydicom keywords such as 'PatientPosition'")
        if keyword in _RESERVED:
            raise InputError(f"extra_tags: '{keyword}' is set by the writer", path=folder,
                             fix="use the writer's own argument or the Volume's geometry")
    return extra


def write_dicom_series(volume: Volume, folder, *, series_description: str,
                       contrast_agent: Optional[str] = None,
                       acquisition_time: Optional[str] = None,
                       series_uid: Optional[str] = None, study_uid: Optional[str] = None,
                       frame_of_reference_uid: Optional[str] = None,
                       patient_id: str = "ANON", patient_name: str = "ANON",
                       series_number: int = 1,
                       file_names: FileNames = None,
                       rescale_slope: float = 1.0,
                       rescale_intercept: float = DEFAULT_RESCALE_INTERCEPT_HU,
                       sop_instance_uids: UidSource = None,
                       study_date: Optional[str] = None, study_time: Optional[str] = None,
                       contrast_start_time: Optional[str] = None,
                       extra_tags: Optional[Mapping[str, object]] = None) -> List[str]:
    """Write ``volume`` (HU, LPS mm) as one CT series in ``folder``; return the file paths.

    ``acquisition_time`` is DICOM TM (``HHMMSS`` or ``HHMMSS.ffffff``); it is
    what phase hints use to tell arterial from portal-venous series.
    ``file_names`` is None (``CT.<SOPInstanceUID>.dcm``), a list of one name
    per slice, or a callable ``k -> name``. Series sharing a
    ``frame_of_reference_uid`` are declared to share patient space (several
    phases of one scan). Every file is written to a temporary name and
    renamed; if anything fails, files already written by this call are removed.

    Reproducible output: give every UID (``sop_instance_uids`` as a list or a
    callable ``k -> uid``), ``study_date`` (YYYYMMDD) and the times; otherwise
    new UIDs and the clock are used. ``contrast_start_time`` (TM) is written as
    ContrastBolusStartTime, from which readers get the time since injection.
    ``extra_tags`` sets further attributes on every slice by DICOM keyword
    (e.g. ``{"PatientPosition": "HFS", "BodyPartExamined": "ABDOMEN"}``).
    """
    options = DicomSeriesOptions(
        series_description=series_description, contrast_agent=contrast_agent,
        acquisition_time=acquisition_time, series_uid=series_uid, study_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid, patient_id=patient_id,
        patient_name=patient_name, series_number=series_number, file_names=file_names,
        rescale_slope=rescale_slope, rescale_intercept=rescale_intercept,
        sop_instance_uids=sop_instance_uids, study_date=study_date, study_time=study_time,
        contrast_start_time=contrast_start_time, extra_tags=extra_tags)
    extra = _check_arguments(volume, folder, options)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    pixel_representation = _pixel_representation(volume.array, options.rescale_slope,
                                                 options.rescale_intercept, folder)
    n_k = volume.array.shape[0]
    study_uid = options.study_uid or generate_uid()
    series_uid = options.series_uid or generate_uid()
    frame_of_reference_uid = options.frame_of_reference_uid or generate_uid()
    sop_uids = _sop_uids(options.sop_instance_uids, n_k, folder)
    names = _names(options.file_names, n_k, sop_uids, folder)
    base = _series_dataset(volume, options, (study_uid, series_uid, frame_of_reference_uid),
                           pixel_representation)
    for keyword, value in extra.items():
        setattr(base, keyword, value)
    return _write_slices(volume, folder, base, sop_uids, names, options, pixel_representation)


def _check_arguments(volume, folder, options: DicomSeriesOptions) -> dict:
    """InputError for a bad argument (before anything is written); the checked extra tags."""
    if not isinstance(volume, Volume):
        raise InputError(f"expected a Volume, got {type(volume).__name__}", path=folder,
                         fix="pass a registration.spatial.volume.Volume")
    slope = options.rescale_slope
    if slope is None or not np.isfinite(slope) or slope <= 0:
        raise InputError(f"rescale_slope must be > 0, got {slope}", path=folder,
                         fix="use a positive slope such as 1")
    for label, tm in (("acquisition_time", options.acquisition_time),
                      ("study_time", options.study_time),
                      ("contrast_start_time", options.contrast_start_time)):
        if tm is not None and not _TM.match(str(tm)):
            raise InputError(f"{label} {tm!r} is not DICOM TM", path=folder,
                             fix="give HHMMSS, e.g. '101530'")
    if options.study_date is not None and not _DA.match(str(options.study_date)):
        raise InputError(f"study_date {options.study_date!r} is not DICOM DA", path=folder,
                         fix="give YYYYMMDD, e.g. '20240131'")
    extra = _check_extra(options.extra_tags, folder)
    if not np.all(np.isfinite(volume.array)):
        raise InputError("the volume contains NaN or infinite values", path=folder,
                         fix="replace them (e.g. with -1024 HU) before writing")
    return extra


def _series_dataset(volume: Volume, options: DicomSeriesOptions, uids,
                    pixel_representation: int) -> Dataset:
    """The attributes every slice shares: patient, study, series, geometry, pixel format."""
    study_uid, series_uid, frame_of_reference_uid = uids
    now = _dt.datetime.now()
    date = str(options.study_date) if options.study_date else now.strftime("%Y%m%d")
    series_time = options.acquisition_time or now.strftime("%H%M%S")
    _, rows, cols = volume.array.shape
    d = volume.direction
    base = Dataset()
    base.SOPClassUID = CT_IMAGE_STORAGE
    base.Modality = "CT"
    base.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]   # written by software, not a scanner
    base.Manufacturer = "ctus"
    base.PatientPosition = ""                              # type 2: unknown from a Volume
    base.PatientID = str(options.patient_id)
    base.PatientName = str(options.patient_name)
    base.StudyInstanceUID = study_uid
    base.SeriesInstanceUID = series_uid
    base.FrameOfReferenceUID = frame_of_reference_uid
    base.StudyDate = base.SeriesDate = base.AcquisitionDate = date
    base.StudyTime = str(options.study_time) if options.study_time else series_time
    base.SeriesTime = base.ContentTime = series_time
    base.ContentDate = date
    if options.acquisition_time is not None:
        base.AcquisitionTime = str(options.acquisition_time)
    base.StudyID = "1"
    base.SeriesNumber = int(options.series_number)
    base.SeriesDescription = str(options.series_description)
    if options.contrast_agent:
        base.ContrastBolusAgent = str(options.contrast_agent)
    if options.contrast_start_time:
        base.ContrastBolusStartTime = str(options.contrast_start_time)
    base.ImageOrientationPatient = [_fmt(v) for v in np.concatenate([d[:, 0], d[:, 1]])]
    base.PixelSpacing = [_fmt(volume.spacing[1]), _fmt(volume.spacing[0])]
    base.SliceThickness = _fmt(volume.spacing[2])
    base.SpacingBetweenSlices = _fmt(volume.spacing[2])
    base.Rows, base.Columns = rows, cols
    base.SamplesPerPixel = 1
    base.PhotometricInterpretation = "MONOCHROME2"
    base.BitsAllocated = base.BitsStored = _BITS
    base.HighBit = _BITS - 1
    base.PixelRepresentation = pixel_representation
    base.RescaleIntercept = _fmt(options.rescale_intercept)
    base.RescaleSlope = _fmt(options.rescale_slope)
    base.RescaleType = "HU"
    base.WindowCenter, base.WindowWidth = str(_WINDOW_CENTER_HU), str(_WINDOW_WIDTH_HU)
    base.PositionReferenceIndicator = ""
    return base


def _write_slices(volume: Volume, folder: str, base: Dataset, sop_uids: List[str],
                  names: List[str], options: DicomSeriesOptions,
                  pixel_representation: int) -> List[str]:
    """The CT series' slice files (:func:`write_slice_files` with CT Image Storage and HU stored
    by the rescale of ``options``)."""
    return write_slice_files(volume, folder, base, sop_uids, names, CT_IMAGE_STORAGE, lambda k: _stored_slice(
        volume.array[k], options.rescale_slope, options.rescale_intercept, pixel_representation).tobytes())


def write_slice_files(volume: Volume, folder: str, base: Dataset, sop_uids: List[str], names: List[str],
                      sop_class_uid: str, pixel_bytes: Callable[[int], bytes]) -> List[str]:
    """One file per slice k of ``volume`` (``base``'s attributes, its own UID, instance number,
    position along the slice axis and ``pixel_bytes(k)``), each written under a temporary name
    then renamed; on any failure every file already written is removed (no half series)."""
    d = volume.direction
    slice_normal = np.cross(d[:, 0], d[:, 1])
    written: List[str] = []
    try:
        for k in range(volume.array.shape[0]):
            ds = Dataset()
            ds.update(base)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = sop_class_uid
            meta.MediaStorageSOPInstanceUID = sop_uids[k]
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.SOPInstanceUID = sop_uids[k]
            ds.InstanceNumber = k + 1
            pos = volume.origin + k * volume.spacing[2] * d[:, 2]
            ds.ImagePositionPatient = [_fmt(v) for v in pos]
            ds.SliceLocation = _fmt(float(pos @ slice_normal))
            ds.PixelData = pixel_bytes(k)
            path = os.path.join(folder, names[k])
            tmp = os.path.join(folder, f".{names[k]}.tmp")
            ds.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, path)
            written.append(path)
    except BaseException:
        for p in written + [os.path.join(folder, f".{x}.tmp") for x in names]:
            try:
                os.unlink(p)
            except OSError:
                pass
        raise
    return written
