"""DICOM objects of a plan, without a network: the CT's study copied, the registration matrix in
the right direction, the PDF bytes unchanged, key views drawn where the plan says, values
checked against their VR, and CTs that cannot be filed refused with the reason."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from planner.export.dicom_objects import SeriesIds, encapsulated_pdf, spatial_registration
from planner.export.dicom_segmentation import _codes, segment_table
from planner.export.dicom_source import load_ct_source
from planner.export.key_views import _PATH, _TARGET, render_key_views
from planner.export.pacs_results import check_dataset
from registration.spatial.errors import InputError
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import LabelMap, Volume


@pytest.fixture
def crlm(shared_data):
    return load_ct_source(shared_data("ct", "crlm-1004", "dicom"))


def _ids(n=1, number=900):
    return SeriesIds(generate_uid(), number, [generate_uid() for _ in range(n)], "test series")


def test_ct_source_of_a_real_ct(crlm):
    assert len(crlm.headers) == 41
    assert crlm.study_uid.startswith("1.3.6.1.4.1.14519") and crlm.frame_of_reference_uid
    pos = [float(h.ImagePositionPatient[2]) for h in crlm.headers]
    assert pos == sorted(pos)                          # slice order = the CT's k axis
    assert all("PatientBirthDate" in h for h in crlm.headers)


def test_ct_without_uids_is_refused(shared_data):
    with pytest.raises(InputError, match="no StudyInstanceUID.*cannot be sent to a PACS"):
        load_ct_source(shared_data("ct", "abdomen-20slice", "dicom"))


def test_spatial_registration_holds_reference_to_ct(crlm):
    m = rigid_matrix([5.0, -3.0, 10.0, 12.5, -40.0, 7.25])
    tracker = generate_uid()
    ds = spatial_registration(crlm.headers, m, _ids(), reference_frame_uid=tracker, method="lc2")
    back = pydicom.dcmread(__import__("io").BytesIO(check_dataset(ds)))
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.1" and back.Modality == "REG"
    assert back.StudyInstanceUID == crlm.study_uid and back.PatientID == "CRLM-CT-1004"
    assert back.FrameOfReferenceUID == crlm.frame_of_reference_uid           # registered RCS = CT
    (item,) = back.RegistrationSequence
    assert item.FrameOfReferenceUID == tracker                               # source RCS = tracker
    reg = item.MatrixRegistrationSequence[0]
    assert reg.RegistrationTypeCodeSequence[0].CodeValue == "125024"
    mat = reg.MatrixSequence[0]
    assert mat.FrameOfReferenceTransformationMatrixType == "RIGID"
    got = np.array([float(v) for v in mat.FrameOfReferenceTransformationMatrix]).reshape(4, 4)
    p_ref = np.array([10.0, -20.0, 30.0, 1.0])
    np.testing.assert_allclose(got @ p_ref, m @ p_ref, atol=1e-6)           # maps reference -> CT
    scaled = m.copy()
    scaled[:3, :3] *= 1.1
    ds = spatial_registration(crlm.headers, scaled, _ids(), reference_frame_uid=tracker)
    assert ds.RegistrationSequence[0].MatrixRegistrationSequence[0].MatrixSequence[0] \
        .FrameOfReferenceTransformationMatrixType == "AFFINE"


def test_encapsulated_pdf_keeps_the_bytes(crlm):
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 3 + b"\n%%EOF"                # odd length
    assert len(pdf) % 2 == 1
    ds = encapsulated_pdf(crlm.headers, pdf, _ids(), title="plan", identifies_patient=False)
    back = pydicom.dcmread(__import__("io").BytesIO(check_dataset(ds)))
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.104.1" and back.Modality == "DOC"
    assert back.EncapsulatedDocument[:back.EncapsulatedDocumentLength] == pdf
    assert back.BurnedInAnnotation == "NO" and back.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert back.StudyDescription == "CT CH/ABD/PEL W/ CONTRAST"               # study module copied
    assert len(back.SourceInstanceSequence) == 41
    with pytest.raises(ValueError):
        encapsulated_pdf(crlm.headers, b"not a pdf", _ids(), title="x", identifies_patient=False)


def test_values_are_checked_against_their_vr(crlm):
    ds = encapsulated_pdf(crlm.headers, b"%PDF-1.4\n", _ids(), title="plan", identifies_patient=False)
    with pytest.warns(UserWarning, match="exceeds the maximum length"):
        ds.ContentDescription = "x" * 65                                       # LO holds 64
    with pytest.raises(ValueError):
        check_dataset(ds)


def test_segments_numbered_and_coded():
    arr = np.zeros((3, 4, 5), np.uint16)
    arr[0, 0, 0], arr[1, 1, 1], arr[2, 2, 2] = 2, 21, 7
    lm = LabelMap(arr, names={"liver": 2, "lesion_1": 21, "mystery": 7, "absent": 9})
    assert segment_table(lm) == [(1, "liver", 2), (2, "mystery", 7), (3, "lesion_1", 21)]
    assert _codes("lesion_1")[1].value == "52988006" and _codes("liver")[1].value == "10200004"
    assert _codes("rib_left_7")[1].value == "272673000" and _codes("mystery")[1].value == "85756007"


def _synthetic():
    """A 2 mm CT with a 10 mm lesion at (0, 0, 0) inside a 'liver' block, and a plan with one CT path."""
    n = 60
    origin = np.array([-59.0, -59.0, -59.0])
    k, j, i = np.meshgrid(*[np.arange(n) * 2.0 - 59.0] * 3, indexing="ij")
    hu = np.where((np.abs(i) < 40) & (np.abs(j) < 40) & (np.abs(k) < 40), 60.0, -1000.0).astype(np.float32)
    lab = np.where(hu > 0, 2, 0).astype(np.uint8)
    lab[i ** 2 + j ** 2 + k ** 2 < 25] = 21
    ct = Volume(hu, (2.0, 2.0, 2.0), origin)
    labels = LabelMap(lab, (2.0, 2.0, 2.0), origin, names={"liver": 2, "lesion_1": 21})
    path = {"guidance": "ct", "entry_ct": [1.0, -45.0, 1.0], "target_ct": [1.0, 1.0, 1.0], "length_mm": 46.0,
            "ct": {"gantry_tilt_deg": 0.0}}
    plan = {"recommendation": {"biopsy_first": "lesion_1"}, "lesions": [{
        "name": "lesion_1", "target_ct": [1.0, 1.0, 1.0], "recommendation": {"guidance": "ct"},
        "trajectories": [path], "visibility": {}}]}
    return ct, labels, plan


def test_key_views_draw_the_plan_where_it_is():
    ct, labels, plan = _synthetic()
    axial, along = render_key_views(ct, labels, plan, size=256)
    assert axial.name == "axial_at_target" and along.name == "along_needle"
    assert axial.orientation == ("L", "P") and along.orientation == ("L", "P")
    for view in (axial, along):
        assert view.rgb.shape == (256, 256, 3) and view.rgb.dtype == np.uint8
        px = view.pixel_spacing_mm[0]
        assert px == pytest.approx(2 * 60.0 / 255)
        # the target cross sits where the target is: centre column, below the centre by half the path
        target = np.argwhere(np.all(view.rgb == _TARGET, axis=2))
        assert len(target) > 0
        centre = (np.array(view.rgb.shape[:2]) - 1) / 2
        expect = centre + np.array([23.0, 0.0]) / px                 # (row, col): target 23 mm posterior
        assert np.abs(np.median(target, axis=0) - expect).max() < 2
        # the needle runs straight up from it to the entry, in the CT-path colour
        path_px = np.argwhere(np.all(view.rgb == _PATH["ct"], axis=2))
        assert abs(np.median(path_px[:, 1]) - expect[1]) < 2 and path_px[:, 0].min() < centre[0] - 20 / px
    # no lesion outline where there is no lesion: an axial view far from it shows none
    plan["lesions"][0]["target_ct"] = [1.0, 1.0, 31.0]
    plan["lesions"][0]["trajectories"] = []
    (only,) = render_key_views(ct, labels, plan, size=128)
    assert not np.any(np.all(only.rgb == _TARGET, axis=2))
