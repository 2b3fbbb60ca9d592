"""The whole PACS round trip on the demo case's two-phase DICOM study, against a real Orthanc:

store both phases -> ``ctus pacs find`` lists both -> ``ctus pacs get`` (portal by C-GET,
arterial by C-MOVE) gives voxel-identical CTs -> ``ctus plan`` on the retrieved CT ->
``ctus pacs send`` -> Orthanc holds the new series in the CT's study with the right SOP
classes; the SEG read back equals our label map, the PDF bytes equal ours, the registration
matrix equals reference_to_ct.tfm; the objects pass dciodvfy; sending again adds nothing.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from planner.cli.main import main
from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from registration.pacs.node import Pacs
from registration.pacs.store import store
from registration.spatial.transforms import read_tfm

pytestmark = pytest.mark.slow

SOP = {901: "1.2.840.10008.5.1.4.1.1.104.1", 902: "1.2.840.10008.5.1.4.1.1.7",
       903: "1.2.840.10008.5.1.4.1.1.66.4", 904: "1.2.840.10008.5.1.4.1.1.66.1"}


@pytest.fixture(scope="module")
def pacs(orthanc_server, demo_case):
    """Orthanc holding the demo case's arterial and portal series."""
    store(Pacs.parse(orthanc_server.server), sorted((demo_case / "ct").glob("*/*.dcm")))
    return orthanc_server


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("roundtrip")


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    assert rc == 0, out.err
    return out


@pytest.fixture(scope="module")
def series_uids(pacs):
    from registration.pacs.query import find_studies
    (study,) = find_studies(Pacs.parse(pacs.server), patient_id="CTUS-DEMO-0")
    return {("portal" if "portal" in s.description else "arterial"): s.series_uid for s in study.series}


def test_find_lists_both_phases(pacs, capsys):
    out = _run(["pacs", "find", "--server", pacs.server, "--patient", "CTUS-DEMO-0", "--modality", "CT",
                "--json"], capsys)
    (study,) = json.loads(out.out)["studies"]
    assert study["patient_ids"] == ["CTUS-DEMO-0"] and study["modalities"] == ["CT"]
    phases = sorted(s["description"] for s in study["series"])
    assert phases == ["Pancreas protocol - late arterial 45s", "Pancreas protocol - portal venous 70s"]
    assert [s["n_instances"] for s in study["series"]] == [134, 134]


def test_get_both_phases_voxel_identical(pacs, series_uids, demo_case, work, capsys):
    out = _run(["pacs", "get", "--server", pacs.server, "--series", series_uids["portal"],
                "--out", str(work / "portal")], capsys)
    assert "134 instances" in out.out and "C-GET" in out.out
    out = _run(["pacs", "get", "--server", pacs.server, "--series", series_uids["arterial"],
                "--out", str(work / "arterial"), "--move-port", str(pacs.move_port), "--move-bind", "127.0.0.1"],
               capsys)
    assert "C-MOVE" in out.out
    for phase in ("portal", "arterial"):
        a, b = load_ct(demo_case / "ct" / phase), load_ct(work / phase)
        assert np.array_equal(a.array, b.array), phase
        assert np.array_equal(a.spacing, b.spacing) and np.array_equal(a.origin, b.origin)
        assert np.array_equal(a.direction, b.direction)
        assert a.metadata["series_uid"] == b.metadata["series_uid"] == series_uids[phase]


@pytest.fixture(scope="module")
def plan_dir(pacs, series_uids, demo_case, work):
    """ctus plan on the retrieved CT (headless_demo.sh's arguments; the true registration of the
    demo sweep instead of running ctus register; one lesion to keep the test short)."""
    if not (work / "portal").exists():
        pytest.skip("needs the retrieved CT (test_get_both_phases_voxel_identical)")
    truth = json.loads((demo_case / "truth.json").read_text())
    (work / "registration.json").write_text(json.dumps({"reference_to_ct": truth["reference_to_ct"]}))
    rc = main(["plan", "--ct", str(work / "portal"), "--ct-arterial", str(work / "arterial"),
               "--labels", str(demo_case / "labels.nrrd"), "--label-names", str(demo_case / "label_names.json"),
               "--sweep", str(demo_case / "sweep_survey.igs.mha"), "--registration", str(work / "registration.json"),
               "--lesion", "lesion_1", "--out", str(work / "plan")])
    assert rc == 0
    return work / "plan"


def _send_args(pacs, plan_dir, demo_case, work, *extra):
    return ["pacs", "send", "--server", pacs.server, str(plan_dir), "--ct", str(work / "portal"),
            "--labels", str(demo_case / "labels.nrrd"), "--label-names", str(demo_case / "label_names.json"),
            "--sweep", str(demo_case / "sweep_survey.igs.mha"), *extra]


@pytest.fixture(scope="module")
def sent(pacs, plan_dir, demo_case, work):
    rc = main(_send_args(pacs, plan_dir, demo_case, work, "--dicom-out", str(work / "sent")))
    assert rc == 0
    plan = json.loads((plan_dir / "plan.json").read_text())
    assert plan["case"]["series_uid"]          # plan.json names its CT series: send picks it from the folder
    return work / "sent"


def _orthanc_series(pacs, study_uid):
    """{series number: (modality, [SOP class UID per instance], [instance ids])} of one study in Orthanc."""
    (study_id,) = [s for s in pacs.get("/studies")
                   if pacs.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"] == study_uid]
    out = {}
    for se in pacs.get(f"/studies/{study_id}")["Series"]:
        info = pacs.get(f"/series/{se}")
        tags = [pacs.get(f"/instances/{i}/simplified-tags") for i in info["Instances"]]
        out[int(info["MainDicomTags"]["SeriesNumber"])] = (info["MainDicomTags"]["Modality"],
                                                          [t["SOPClassUID"] for t in tags], info["Instances"])
    return out


def test_sent_series_are_in_the_cts_study(pacs, sent, work, capsys):
    study_uid = pydicom.dcmread(next((work / "portal").iterdir()), stop_before_pixels=True).StudyInstanceUID
    series = _orthanc_series(pacs, study_uid)
    ct_series = sorted(n for n in series if n not in SOP)
    assert len(ct_series) == 2 and all(series[n][0] == "CT" for n in ct_series)   # both phases ...
    assert sorted(set(series) - set(ct_series)) == sorted(SOP)                   # ... + ours, one study
    for number, sop in SOP.items():
        assert set(series[number][1]) == {sop}, number
    assert len(series[902][1]) == 3                           # axial, along the needle, registered US frame
    assert [series[n][0] for n in (901, 902, 903, 904)] == ["DOC", "OT", "SEG", "REG"]


def _instance(pacs, sent_dir, number, work):
    study_uid = pydicom.dcmread(next((work / "portal").iterdir()), stop_before_pixels=True).StudyInstanceUID
    (iid, *_) = _orthanc_series(pacs, study_uid)[number][2]
    path = work / f"from_pacs_{number}.dcm"
    path.write_bytes(pacs.get_bytes(f"/instances/{iid}/file"))
    return path


def test_seg_read_back_equals_the_label_map(pacs, sent, demo_case, work):
    ct = load_ct(work / "portal")
    ours = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
    back = load_labels(_instance(pacs, sent, 903, work))
    assert back.same_grid(ct)
    assert set(back.names) == set(ours.names)
    for name, value in ours.names.items():
        assert np.array_equal(back.array == back.names[name], ours.array == value), name


def test_pdf_bytes_equal_ours(pacs, sent, plan_dir, work):
    ds = pydicom.dcmread(_instance(pacs, sent, 901, work))
    pdf = (plan_dir / "plan.pdf").read_bytes()
    assert ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength] == pdf
    assert ds.EncapsulatedDocumentLength == len(pdf)


def test_registration_matrix_equals_the_tfm(pacs, sent, plan_dir, work):
    ds = pydicom.dcmread(_instance(pacs, sent, 904, work))
    ct_head = pydicom.dcmread(next((work / "portal").iterdir()), stop_before_pixels=True)
    assert ds.FrameOfReferenceUID == ct_head.FrameOfReferenceUID
    reg = ds.RegistrationSequence[0]
    assert reg.FrameOfReferenceUID != ct_head.FrameOfReferenceUID
    m = np.array([float(v) for v in reg.MatrixRegistrationSequence[0].MatrixSequence[0]
                  .FrameOfReferenceTransformationMatrix]).reshape(4, 4)
    np.testing.assert_allclose(m, read_tfm(plan_dir / "reference_to_ct.tfm"), atol=1e-8)


def test_objects_pass_dciodvfy(sent):
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy is not installed (Debian package 'dicom3tools')")
    files = sorted(sent.glob("*.dcm"))
    assert len(files) == 6
    for f in files:
        r = subprocess.run([exe, "-new", str(f)], capture_output=True, text=True)
        report = r.stdout + r.stderr
        assert "Error" not in report, f"{f.name}:\n{report}"
        assert report.split()[0] in ("EncapsulatedPDF", "SCImage", "Segmentation", "SpatialRegistration")


def test_objects_read_back_with_highdicom(sent):
    import highdicom as hd
    seg = hd.seg.segread(sent / "903_001.dcm")
    assert seg.number_of_segments == 22
    assert {d.segment_label for d in seg.SegmentSequence} >= {"liver", "lesion_1", "portal_vein"}
    for f in sorted(sent.glob("902_*.dcm")):
        sc = pydicom.dcmread(f)
        assert sc.PhotometricInterpretation == "RGB" and sc.pixel_array.ndim == 3


def test_sending_again_adds_nothing(pacs, sent, plan_dir, demo_case, work, capsys):
    before = len(pacs.get("/instances"))
    _run(_send_args(pacs, plan_dir, demo_case, work), capsys)
    assert len(pacs.get("/instances")) == before


def test_send_refuses_another_series_than_the_plans(pacs, plan_dir, series_uids, demo_case, work, capsys):
    rc = main(_send_args(pacs, plan_dir, demo_case, work, "--series", series_uids["arterial"]))
    err = capsys.readouterr().err
    assert rc == 2 and "is not the plan's CT" in err
