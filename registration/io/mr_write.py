"""Write a :class:`~registration.spatial.volume.Volume` as a DICOM MR image series (one file per slice).

Geometry as :mod:`registration.io.dicom_write` (the CT writer, whose helpers for
decimal strings, UIDs and file names are reused): ImageOrientationPatient =
``direction[:, 0]``, ``direction[:, 1]``; ImagePositionPatient of slice k = LPS
of voxel (0, 0, k); PixelSpacing = ``(spacing_j, spacing_i)``. Pixels are
stored as unsigned 16 bit (values rounded, clipped at 0..65535; MR has no
rescale), with the MR fields a reader lists a series by: SequenceName,
ScanningSequence, EchoTime, RepetitionTime, FlipAngle, MagneticFieldStrength,
contrast agent and its start time. Every file is written under a temporary name
and renamed; on failure the files already written are removed.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from typing import Callable, List, Mapping, Optional, Sequence, Union

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .dicom_write import _check_extra, _fmt, _names, _sop_uids, write_slice_files

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass(frozen=True)
class MRSequence:
    """The acquisition fields of an MR series (ms, degrees, tesla)."""
    sequence_name: str = "*fl3d1"
    scanning_sequence: str = "GR"
    sequence_variant: str = "SP\\SS"
    echo_time_ms: float = 1.9
    repetition_time_ms: float = 4.1
    flip_angle_deg: float = 10.0
    field_strength_t: float = 1.5


def write_mr_series(volume: Volume, folder, *, series_description: str, sequence: MRSequence = MRSequence(),
                    contrast_agent: Optional[str] = None, acquisition_time: Optional[str] = None,
                    contrast_start_time: Optional[str] = None, study_date: Optional[str] = None,
                    series_uid: Optional[str] = None, study_uid: Optional[str] = None,
                    frame_of_reference_uid: Optional[str] = None, patient_id: str = "ANON",
                    patient_name: str = "ANON", series_number: int = 1,
                    file_names: Union[None, Sequence[str], Callable[[int], str]] = None,
                    sop_instance_uids: Union[None, Sequence[str], Callable[[int], str]] = None,
                    extra_tags: Optional[Mapping[str, object]] = None) -> List[str]:
    """Write ``volume`` (MR intensities, LPS mm) as one MR series in ``folder``; return the paths.

    Times are DICOM TM strings, ``study_date`` DA. Give every UID and the date for byte-identical
    output (the demo case). ``file_names``: None (``MR.<SOPInstanceUID>.dcm``), a list, or ``k -> name``."""
    if not isinstance(volume, Volume):
        raise InputError(f"expected a Volume, got {type(volume).__name__}", path=folder)
    if not np.all(np.isfinite(volume.array)):
        raise InputError("the volume contains NaN or infinite values", path=folder, fix="replace them first")
    extra = _check_extra(extra_tags, folder)
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    n_k = volume.array.shape[0]
    sop_uids = _sop_uids(sop_instance_uids, n_k, folder)
    names = _names(file_names, n_k, sop_uids, folder)
    names = [n.replace("CT.", "MR.", 1) if file_names is None else n for n in names]
    base = _base(volume, series_description, sequence, contrast_agent, acquisition_time, contrast_start_time,
                 study_date, (study_uid or generate_uid(), series_uid or generate_uid(),
                              frame_of_reference_uid or generate_uid()), patient_id, patient_name, series_number)
    for keyword, value in extra.items():
        setattr(base, keyword, value)
    return _write(volume, folder, base, sop_uids, names)


# long: one DICOM attribute per line (patient, study, series, MR acquisition, geometry, pixel format)
def _base(volume: Volume, description: str, seq: MRSequence, agent, acq_time, start_time, date, uids,
          patient_id, patient_name, series_number) -> Dataset:
    now = _dt.datetime.now()
    date = str(date) if date else now.strftime("%Y%m%d")
    series_time = acq_time or now.strftime("%H%M%S")
    _, rows, cols = volume.array.shape
    d = volume.direction
    b = Dataset()
    b.SOPClassUID = MR_IMAGE_STORAGE
    b.Modality = "MR"
    b.ImageType = ["DERIVED", "SECONDARY", "M", "ND"]
    b.Manufacturer = "ctus"
    b.PatientID, b.PatientName = str(patient_id), str(patient_name)
    b.StudyInstanceUID, b.SeriesInstanceUID, b.FrameOfReferenceUID = uids
    b.StudyDate = b.SeriesDate = b.AcquisitionDate = b.ContentDate = date
    b.StudyTime = b.SeriesTime = b.ContentTime = series_time
    if acq_time:
        b.AcquisitionTime = str(acq_time)
    b.StudyID = "1"
    b.SeriesNumber = int(series_number)
    b.SeriesDescription = str(description)
    b.SequenceName = seq.sequence_name
    b.ScanningSequence = seq.scanning_sequence
    b.SequenceVariant = seq.sequence_variant
    b.MRAcquisitionType = "3D"
    b.EchoTime = _fmt(seq.echo_time_ms)
    b.RepetitionTime = _fmt(seq.repetition_time_ms)
    b.FlipAngle = _fmt(seq.flip_angle_deg)
    b.MagneticFieldStrength = _fmt(seq.field_strength_t)
    if agent:
        b.ContrastBolusAgent = str(agent)
    if start_time:
        b.ContrastBolusStartTime = str(start_time)
    b.ImageOrientationPatient = [_fmt(v) for v in np.concatenate([d[:, 0], d[:, 1]])]
    b.PixelSpacing = [_fmt(volume.spacing[1]), _fmt(volume.spacing[0])]
    b.SliceThickness = b.SpacingBetweenSlices = _fmt(volume.spacing[2])
    b.Rows, b.Columns = rows, cols
    b.SamplesPerPixel = 1
    b.PhotometricInterpretation = "MONOCHROME2"
    b.BitsAllocated = b.BitsStored = 16
    b.HighBit = 15
    b.PixelRepresentation = 0
    b.PositionReferenceIndicator = ""
    return b


def _write(volume: Volume, folder: str, base: Dataset, sop_uids: List[str], names: List[str]) -> List[str]:
    """The MR series' slice files: MR Image Storage, intensities rounded into unsigned 16 bits."""
    return write_slice_files(volume, folder, base, sop_uids, names, MR_IMAGE_STORAGE, lambda k: np.clip(
        np.rint(volume.array[k].astype(np.float64)), 0, 65535).astype(np.uint16).tobytes())
