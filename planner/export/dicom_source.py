"""The CT a plan was made on, as DICOM: the headers that results sent to the PACS copy and reference.

Results go into the CT's own study: the same Study Instance UID, the patient
and study modules copied from the CT, the segmentation on the CT's slices
(referenced by their SOP Instance UIDs) and the registration in the CT's
Frame of Reference. :func:`load_ct_source` reads those headers (no pixels)
for one series of a DICOM folder and refuses, naming the file, what makes
filing impossible: a missing Study, Series, SOP Instance or Frame of
Reference UID (anonymisation that emptied them: the shared
``abdomen-20slice`` CT), or instances of one series that disagree on the
patient ID or the study.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from registration.io.dicom_series import list_dicom_series, pick_series
from registration.io.series_info import SeriesInfo
from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

# Type 2 attributes of the Patient and General Study modules: present in every object, maybe empty.
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "StudyID", "AccessionNumber")
_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")
_WHY = ("results are filed into the CT's study by its Study Instance UID and refer to its slices by "
        "their SOP Instance UIDs and Frame of Reference UID")


@dataclass
class CtSource:
    """One DICOM CT series: headers (no pixels) in slice order, i.e. the order of the CT's k axis."""

    folder: str
    series: SeriesInfo
    headers: List[Dataset]

    @property
    def reference(self) -> Dataset:
        """The first slice's header: patient and study modules are copied from it."""
        return self.headers[0]

    @property
    def study_uid(self) -> str:
        return str(self.reference.StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.reference.SeriesInstanceUID)

    @property
    def frame_of_reference_uid(self) -> str:
        return str(self.reference.FrameOfReferenceUID)


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def load_ct_source(folder, series_uid: Optional[str] = None) -> CtSource:
    """Headers of one CT series in ``folder`` (all of the folder's series are listed first).

    Missing type 2 Patient/Study attributes are added empty, as PS3.3 wants them in every
    object copied from these headers.

    ``series_uid`` picks one (needed when the folder holds several). Raises
    InputError when a UID needed for filing is missing or when the slices
    disagree on patient ID, study or frame of reference.
    """
    folder = os.fspath(folder)
    info = pick_series(list_dicom_series(folder), folder, series_uid, what=" (the plan's CT)",
                       missing_fix="give --ct the folder of the CT the plan was made on",
                       several_fix="choose the plan's CT with --series UID")
    headers = []
    for path in info.files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        empty = [k for k in _UIDS if not _text(ds, k)]
        if empty:
            raise InputError(f"has no {', '.join(empty)} (emptied by anonymisation?), so results cannot be "
                             f"sent to a PACS: {_WHY}", path=path,
                             fix="use the CT as the PACS holds it (ctus pacs get); this CT still opens and "
                                 "plans from its folder")
        for keyword in _TYPE2:      # a CT written without them (the demo CT) still gets filed
            if keyword not in ds:
                setattr(ds, keyword, "")
        headers.append(ds)
    for keyword in ("PatientID", "StudyInstanceUID", "FrameOfReferenceUID"):
        values = sorted({_text(ds, keyword) for ds in headers})
        if len(values) > 1:
            raise InputError(f"the slices of series {info.series_uid} carry {len(values)} different "
                             f"{keyword}s ({', '.join(values)}): results cannot be filed into one "
                             "patient's study", path=folder,
                             fix="have the PACS administrator correct the series, then retrieve it again")
    return CtSource(folder, info, headers)


def check_on_slices(source: CtSource, ct: Volume, tol_mm: float = 1e-3) -> None:
    """The loaded CT's k axis must be the series' slices (not resampled on load), because a
    segmentation frame refers to one slice by its SOP Instance UID."""
    pos = np.asarray(source.series.positions, float)
    k = np.arange(ct.array.shape[0])
    grid = ct.origin[None, :] + (k * ct.spacing[2])[:, None] * ct.direction[:, 2][None, :]
    if len(pos) != len(k) or np.max(np.abs(grid - pos)) > tol_mm:
        raise InputError(f"the CT was resampled when loaded ({len(pos)} slices, {len(k)} planes: uneven "
                         "spacing or gantry tilt), so its segmentation cannot refer to the slices",
                         path=source.folder, fix="this CT's results can be exported to files, not to the PACS")
