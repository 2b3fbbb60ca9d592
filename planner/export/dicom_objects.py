"""DICOM objects of a plan's results, filed into the CT's own study (highdicom over pydicom).

Every object gets the CT's Study Instance UID, the Patient and Study modules
copied from a CT slice (highdicom's ``SOPClass`` machinery), a new series of
its own with our series description, and new SOP Instance UIDs:

- :func:`encapsulated_pdf`: the PDF report, **Encapsulated PDF Storage**
  (modality DOC; the bytes unchanged, padded to even length as DICOM
  requires, the true length in EncapsulatedDocumentLength);
- :func:`key_view_images`: rendered views, **Secondary Capture Image
  Storage** (RGB, 8 bit; highdicom ``SCImage``);
- :func:`spatial_registration`: ``reference_to_ct``, **Spatial Registration
  Storage** (modality REG): the Registered RCS is the CT's Frame of
  Reference; the one Registration Sequence item names the tracker's
  Reference frame (a Frame of Reference UID of its own) and holds the 4x4
  matrix that maps Reference points to CT points, exactly PS3.3 C.20.2.1.1's
  "transform a point with respect to the source RCS into the registered
  RCS". highdicom has no Spatial Registration class: its ``SOPClass`` builds
  the common modules and this module adds the registration module's
  attributes with pydicom.

The segmentation (DICOM SEG) is in :mod:`planner.export.dicom_segmentation`.
UIDs are passed in (the caller derives them from the content, so sending
the same plan twice sends the same instances).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import List, Optional, Sequence

import highdicom as hd
import numpy as np
from highdicom.base import SOPClass
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (EncapsulatedPDFStorage, ExplicitVRLittleEndian, SpatialRegistrationStorage)

from planner.case.case_plan import SOFTWARE_VERSION

from .key_views import KeyView

MANUFACTURER = "ctus"
_METHOD_CODES = {   # CID 7100 RCS Registration Method Type
    "lc2": ("125024", "Image Content-based Alignment"), "mi": ("125024", "Image Content-based Alignment"),
    "landmarks": ("125022", "Fiducial Alignment"), "fiducials": ("125022", "Fiducial Alignment")}


@dataclass(frozen=True)
class SeriesIds:
    """Where an object goes: its series UID and number, and the SOP Instance UIDs of its instances."""

    series_uid: str
    series_number: int
    sop_uids: Sequence[str]
    description: str


def _text(ds: Dataset, keyword: str) -> Optional[str]:
    value = ds.get(keyword, None)
    return None if value is None or str(value) == "" else str(value)


def _common(ref: Dataset, ids: SeriesIds, n: int, sop_class: str, modality: str) -> dict:
    """Arguments of highdicom's SOPClass that put the object into the CT's study (the patient's
    name comes with the copied Patient module, as the CT has it)."""
    return dict(study_instance_uid=str(ref.StudyInstanceUID), series_instance_uid=ids.series_uid,
                series_number=ids.series_number, sop_instance_uid=ids.sop_uids[n], sop_class_uid=sop_class,
                instance_number=n + 1, modality=modality, manufacturer=MANUFACTURER,
                transfer_syntax_uid=ExplicitVRLittleEndian, patient_id=_text(ref, "PatientID"),
                patient_name=None, patient_birth_date=_text(ref, "PatientBirthDate"),
                patient_sex=_text(ref, "PatientSex"), accession_number=_text(ref, "AccessionNumber"),
                study_id=_text(ref, "StudyID"), study_date=_text(ref, "StudyDate"),
                study_time=_text(ref, "StudyTime"),
                referring_physician_name=_text(ref, "ReferringPhysicianName"),
                series_description=ids.description, manufacturer_model_name="ctus planner",
                software_versions=SOFTWARE_VERSION)


class _FromCt(SOPClass):
    """highdicom SOPClass whose Patient and Study modules are copied whole from a CT slice."""

    def _copy_patient_and_study(self, ref: Dataset, *, body_part: bool = True) -> None:
        self._copy_root_attributes_of_module(ref, "Patient")
        self._copy_root_attributes_of_module(ref, "Study")
        if "SpecificCharacterSet" in ref:
            self.SpecificCharacterSet = ref.SpecificCharacterSet
        if body_part:                   # General Series attributes (not in an encapsulated document's series)
            copy_body_part(ref, self)


def copy_body_part(ref: Dataset, ds: Dataset) -> None:
    """BodyPartExamined and Laterality of the CT's series (General Series) onto a result object:
    the results are about the same body part (and validators want Laterality unless the body
    part says it is unpaired)."""
    for keyword in ("BodyPartExamined", "Laterality"):
        if keyword in ref:
            setattr(ds, keyword, ref.get(keyword))


def _image_refs(headers: Sequence[Dataset]) -> DicomSequence:
    items = []
    for ds in headers:
        item = Dataset()
        item.ReferencedSOPClassUID = ds.SOPClassUID
        item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        items.append(item)
    return DicomSequence(items)


def _now():
    now = _dt.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def encapsulated_pdf(headers: Sequence[Dataset], pdf: bytes, ids: SeriesIds, *, title: str,
                     identifies_patient: bool) -> Dataset:
    """The report as Encapsulated PDF Storage in the CT's study.

    ``identifies_patient``: the PDF itself names the patient (BurnedInAnnotation YES);
    the plan report is de-identified unless planned with ``--include-patient-id``.
    """
    if not pdf.startswith(b"%PDF"):
        raise ValueError("the report bytes are not a PDF")
    ref = headers[0]
    ds = _FromCt(**_common(ref, ids, 0, EncapsulatedPDFStorage, "DOC"))
    ds._copy_patient_and_study(ref, body_part=False)
    ds.ConversionType = "WSD"                       # SC Equipment: produced on a workstation
    date, time = _now()
    ds.ContentDate, ds.ContentTime = date, time
    ds.AcquisitionDateTime = ""
    ds.BurnedInAnnotation = "YES" if identifies_patient else "NO"
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = DicomSequence([])
    ds.SourceInstanceSequence = _image_refs(headers)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\0" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def key_view_images(headers: Sequence[Dataset], views: List[KeyView], ids: SeriesIds) -> List[Dataset]:
    """One Secondary Capture image per view (RGB), in the CT's study; title in ImageComments."""
    ref = headers[0]
    out = []
    for n, view in enumerate(views):
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ref, pixel_array=np.ascontiguousarray(view.rgb, np.uint8),
            photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
            series_instance_uid=ids.series_uid, series_number=ids.series_number,
            sop_instance_uid=ids.sop_uids[n], instance_number=n + 1, manufacturer=MANUFACTURER,
            pixel_spacing=tuple(float(v) for v in view.pixel_spacing_mm),
            patient_orientation=view.orientation, series_description=ids.description,
            manufacturer_model_name="ctus planner", software_versions=SOFTWARE_VERSION,
            transfer_syntax_uid=ExplicitVRLittleEndian)
        copy_body_part(ref, sc)
        sc.ConversionType = "WSD"
        sc.BurnedInAnnotation = "NO"
        sc.ImageComments = view.title[:10240]
        sc.DerivationDescription = f"ctus key view '{view.name}' rendered from the CT and the plan"[:1024]
        sc.SourceImageSequence = _image_refs(headers[:1])
        out.append(sc)
    return out


def spatial_registration(headers: Sequence[Dataset], reference_to_ct: np.ndarray, ids: SeriesIds, *,
                         reference_frame_uid: str, method: Optional[str] = None,
                         comment: str = "") -> Dataset:
    """``reference_to_ct`` (4x4, LPS mm, p_ct = M p_reference) as Spatial Registration Storage."""
    m = np.asarray(reference_to_ct, float)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)) or not np.allclose(m[3], [0, 0, 0, 1]):
        raise ValueError("reference_to_ct must be a finite 4x4 affine matrix")
    rot = m[:3, :3]
    rigid = np.allclose(rot.T @ rot, np.eye(3), atol=1e-4) and np.linalg.det(rot) > 0
    ref = headers[0]
    ds = _FromCt(**_common(ref, ids, 0, SpatialRegistrationStorage, "REG"))
    ds._copy_patient_and_study(ref)
    ds.FrameOfReferenceUID = str(ref.FrameOfReferenceUID)      # the Registered RCS: the CT
    ds.PositionReferenceIndicator = ""
    date, time = _now()
    ds.ContentDate, ds.ContentTime = date, time
    ds.ContentLabel = "REFERENCE_TO_CT"
    ds.ContentDescription = ("ctus tracker Reference to CT" + (f", {comment}" if comment else ""))[:64]
    ds.ContentCreatorName = ""
    matrix = Dataset()
    matrix.FrameOfReferenceTransformationMatrixType = "RIGID" if rigid else "AFFINE"
    matrix.FrameOfReferenceTransformationMatrix = [float(f"{v:.10g}") for v in m.reshape(-1)]
    reg = Dataset()
    code = _METHOD_CODES.get(str(method or "").lower())
    if code:
        reg.RegistrationTypeCodeSequence = DicomSequence([hd.sr.CodedConcept(code[0], "DCM", code[1])])
    else:
        reg.RegistrationTypeCodeSequence = DicomSequence([])
    reg.FrameOfReferenceTransformationComment = "Reference (patient marker) mm to CT LPS mm"
    reg.MatrixSequence = DicomSequence([matrix])
    item = Dataset()
    item.FrameOfReferenceUID = reference_frame_uid
    item.MatrixRegistrationSequence = DicomSequence([reg])
    ds.RegistrationSequence = DicomSequence([item])
    return ds
