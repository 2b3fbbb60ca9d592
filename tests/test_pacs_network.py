"""PACS networking against a real Orthanc: find, get (C-GET and C-MOVE), and every bad case
(wrong AE titles, server down, silent server, unknown series, fewer instances than announced,
a study under two patient IDs, files without UIDs, cancel): exit 2, one clear line, nothing
written at --out and no temporary folder left."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from _orthanc import free_port
from planner.cli.main import main
from registration.io.ct_io import load_ct
from registration.pacs.node import Pacs, PacsError
from registration.pacs.retrieve import retrieve_series
from registration.pacs.store import store
from registration.spatial.errors import CancelledError, InputError

CRLM = ("ct", "crlm-1004", "dicom")
SHARED = Path(os.environ.get("CTUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _shared(*parts) -> Path:
    """../shared/data path for module-scoped fixtures (the shared_data fixture is per test)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


@pytest.fixture(scope="module")
def orthanc(orthanc_server):
    return orthanc_server


@pytest.fixture(scope="module")
def crlm_series(orthanc, tmp_path_factory):
    """The real CRLM CT stored into Orthanc once: (folder, series UID)."""
    folder = _shared(*CRLM)
    files = sorted(folder.glob("*.dcm"))
    store(Pacs.parse(orthanc.server), files)
    return folder, str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)


def _no_leftovers(parent, name):
    return [p.name for p in parent.iterdir() if p.name.startswith(f".{name}.")]


def test_server_address_parsing():
    p = Pacs.parse("ORTHANC@pacs.example.org:4242", calling_aet="WS1")
    assert (p.called_aet, p.host, p.port, p.calling_aet) == ("ORTHANC", "pacs.example.org", 4242, "WS1")
    assert str(Pacs.parse("A@[::1]:104")) == "A@[::1]:104"
    for bad in ("ORTHANC@host", "host:4242", "@host:1", "A@host:0", "A@host:70000", "A\\B@h:1",
                "THIS_AET_IS_TOO_LONG@h:1"):
        with pytest.raises(InputError):
            Pacs.parse(bad)
    with pytest.raises(InputError, match="calling-aet"):
        Pacs.parse("A@h:1", calling_aet="X" * 17)


def test_find_lists_the_real_ct(orthanc, crlm_series, capsys):
    folder, series_uid = crlm_series
    assert main(["pacs", "find", "--server", orthanc.server, "--patient", "CRLM-CT-1004", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    (study,) = found["studies"]
    (series,) = study["series"]
    assert series["series_uid"] == series_uid and series["n_instances"] == 41
    assert series["count_source"] == "announced" and series["modality"] == "CT"
    assert study["patient_ids"] == ["CRLM-CT-1004"] and study["date"] == "19941122"
    assert main(["pacs", "find", "--server", orthanc.server, "--modality", "CT"]) == 0
    text = capsys.readouterr().out
    assert series_uid in text and "41 images" in text and "CT CH/AB/PEL" in text
    assert main(["pacs", "find", "--server", orthanc.server, "--patient", "NOBODY"]) == 0
    assert "no study" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["get", "move"])
def test_retrieve_is_voxel_identical(orthanc, crlm_series, tmp_path, capsys, how):
    folder, series_uid = crlm_series
    out = tmp_path / "ct"
    extra = ["--move-port", str(orthanc.move_port), "--move-bind", "127.0.0.1"] if how == "move" else []
    assert main(["pacs", "get", "--server", orthanc.server, "--series", series_uid, "--out", str(out), *extra]) == 0
    captured = capsys.readouterr()
    assert "retrieved 41 instances" in captured.out and ("C-MOVE" if how == "move" else "C-GET") in captured.out
    assert "100 %" in captured.err                                   # progress on stderr
    a, b = load_ct(folder), load_ct(out)
    assert a.array.dtype == b.array.dtype and np.array_equal(a.array, b.array)
    for attr in ("spacing", "origin", "direction"):
        assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
    assert not _no_leftovers(tmp_path, "ct")
    # the same --out again: refused before any network work, the folder left as it is
    assert main(["pacs", "get", "--server", orthanc.server, "--series", series_uid, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and len(list(out.iterdir())) == 41


@pytest.mark.parametrize("server_part, calling, expect", [
    ("WRONG_AET@127.0.0.1:{port}", "CTUS", "Called AE title not recognised"),
    ("{aet}@127.0.0.1:{port}", "STRANGER", "register our AE title 'STRANGER'"),
])
def test_association_rejected(orthanc, capsys, server_part, calling, expect):
    server = server_part.format(aet=orthanc.aet, port=orthanc.dicom_port)
    assert main(["pacs", "find", "--server", server, "--calling-aet", calling]) == 2
    err = capsys.readouterr().err.strip()
    assert "association rejected" in err and expect in err and len(err.splitlines()) == 1


def test_rejection_read_even_when_the_peer_closes_first(orthanc, capsys, monkeypatch):
    """The race a busy CPU makes: the PACS rejects and closes the connection before pynetdicom's
    requesting thread looks at the socket (forced here by waiting for exactly that); the message
    is still the rejection with its reason, not "did not accept the association"."""
    import time
    from pynetdicom import acse
    send_request = acse.ACSE.send_request

    def send_then_let_the_peer_answer_and_close(self):
        send_request(self)
        deadline = time.monotonic() + 10
        while (self.dul.to_user_queue.empty() or self.socket._is_connected) and time.monotonic() < deadline:
            time.sleep(0.01)
    monkeypatch.setattr(acse.ACSE, "send_request", send_then_let_the_peer_answer_and_close)
    assert main(["pacs", "find", "--server", f"WRONG_AET@127.0.0.1:{orthanc.dicom_port}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "association rejected" in err and "Called AE title not recognised" in err, err


def test_server_down(capsys):
    port = free_port()
    assert main(["pacs", "find", "--server", f"PACS@127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert "nothing listens" in err and "connection refused" in err and str(port) in err


def test_silent_server_times_out(tmp_path, capsys):
    with socket.socket() as s:               # accepts TCP connections, never speaks DICOM
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        port = s.getsockname()[1]
        rc = main(["pacs", "get", "--server", f"PACS@127.0.0.1:{port}", "--timeout", "1", "--series", "1.2.3",
                   "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "did not accept the association within 1 s" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_unknown_series(orthanc, crlm_series, tmp_path, capsys):
    rc = main(["pacs", "get", "--server", orthanc.server, "--series", "1.2.3.4.5.6", "--out", str(tmp_path / "x")])
    assert rc == 2
    assert "has no series 1.2.3.4.5.6" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cancel_leaves_nothing(orthanc, crlm_series, tmp_path):
    calls = []

    def progress(fraction, message):
        calls.append(message)
        return not message.startswith("received 5/")
    with pytest.raises(CancelledError):
        retrieve_series(Pacs.parse(orthanc.server), crlm_series[1], tmp_path / "ct", progress=progress)
    assert any(m.startswith("received 5/") for m in calls)
    assert list(tmp_path.iterdir()) == []


def test_move_port_in_use(orthanc, crlm_series, tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        rc = main(["pacs", "get", "--server", orthanc.server, "--series", crlm_series[1], "--out",
                   str(tmp_path / "x"), "--move-port", str(port), "--move-bind", "127.0.0.1"])
    assert rc == 2 and "cannot listen" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_move_to_a_port_the_pacs_does_not_know(orthanc, crlm_series, tmp_path, capsys):
    """Our SCP listens on a port the PACS does not have for our AE title: its store fails."""
    rc = main(["pacs", "get", "--server", orthanc.server, "--series", crlm_series[1], "--out",
               str(tmp_path / "x"), "--move-port", str(free_port()), "--move-bind", "127.0.0.1", "--timeout", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and "C-MOVE failed" in err and "--move-port" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- a PACS that lies
def _fake_pacs(files, *, announce, listed, sent):
    """A tiny pynetdicom Q/R SCP: SERIES level announces ``announce`` instances, IMAGE level lists
    the first ``listed`` files, C-GET sends the first ``sent`` files and reports success."""
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
    from pynetdicom.sop_class import (CTImageStorage, StudyRootQueryRetrieveInformationModelFind,
                                      StudyRootQueryRetrieveInformationModelGet)
    heads = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    ae = AE(ae_title="FAKEPACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
    ae.add_supported_context(CTImageStorage, ALL_TRANSFER_SYNTAXES, scu_role=False, scp_role=True)

    def row(h, level):
        ds = pydicom.Dataset()
        ds.QueryRetrieveLevel = level
        for k in ("PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyTime", "SeriesInstanceUID",
                  "Modality", "SeriesNumber", "SOPInstanceUID", "SOPClassUID"):
            if k in h:
                setattr(ds, k, h.get(k))
        return ds

    def on_find(event):
        level = event.identifier.QueryRetrieveLevel
        if level == "IMAGE":
            for h in heads[:listed]:
                yield 0xFF00, row(h, "IMAGE")
        else:
            ds = row(heads[0], level)
            if level == "SERIES":
                ds.NumberOfSeriesRelatedInstances = announce
            yield 0xFF00, ds

    def on_get(event):
        yield sent
        for f in files[:sent]:
            yield 0xFF00, pydicom.dcmread(f)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_FIND, on_find), (evt.EVT_C_GET, on_get)])
    return server, f"FAKEPACS@127.0.0.1:{port}"


def test_fake_pacs_sending_everything_succeeds(shared_data, tmp_path):
    """The control for the next test: the same fake PACS, all instances sent -> a complete folder."""
    files = sorted(shared_data(*CRLM).glob("*.dcm"))[:3]
    server, address = _fake_pacs(files, announce=3, listed=3, sent=3)
    try:
        series = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        result = retrieve_series(Pacs.parse(address), series, tmp_path / "ct")
    finally:
        server.shutdown()
    assert result.n_instances == 3 and len(list((tmp_path / "ct").iterdir())) == 3


@pytest.mark.parametrize("listed, message", [(3, "received 2 of the 3 instances the PACS lists"),
                                             (2, "received 2 instances, the PACS announced 3")])
def test_fewer_instances_than_announced(shared_data, tmp_path, capsys, listed, message):
    files = sorted(shared_data(*CRLM).glob("*.dcm"))[:3]
    server, address = _fake_pacs(files, announce=3, listed=listed, sent=2)
    try:
        series = str(pydicom.dcmread(files[0], stop_before_pixels=True).SeriesInstanceUID)
        rc = main(["pacs", "get", "--server", address, "--series", series, "--out", str(tmp_path / "ct")])
    finally:
        server.shutdown()
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "nothing was written" in err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- broken studies
@pytest.fixture(scope="module")
def two_patient_study(orthanc, tmp_path_factory):
    """The CRLM series under new UIDs, half of its slices with another patient ID, stored in Orthanc."""
    src = sorted(_shared(*CRLM).glob("*.dcm"))
    folder = tmp_path_factory.mktemp("two_patients")
    study, series = generate_uid(), generate_uid()
    for n, f in enumerate(src):
        ds = pydicom.dcmread(f)
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID = "PATIENT-A" if n % 2 else "PATIENT-B"
        ds.save_as(folder / f"{n:03d}.dcm")
    store(Pacs.parse(orthanc.server), sorted(folder.glob("*.dcm")))
    return folder, study, series


def test_study_under_two_patient_ids(orthanc, two_patient_study, tmp_path, capsys):
    folder, study, series = two_patient_study
    assert main(["pacs", "find", "--server", orthanc.server, "--study", study]) == 0
    text = capsys.readouterr().out
    assert "listed under 2 patient IDs" in text and "PATIENT-A" in text and "PATIENT-B" in text
    rc = main(["pacs", "get", "--server", orthanc.server, "--series", series, "--out", str(tmp_path / "ct")])
    err = capsys.readouterr().err
    assert rc == 2 and "2 patient IDs" in err and "nothing was retrieved" in err
    assert list(tmp_path.iterdir()) == []
    # sending results into it from the local copy is refused as well, before any network work
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "plan.json").write_text(json.dumps({"lesions": []}))
    (plan / "plan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    rc = main(["pacs", "send", "--server", f"PACS@127.0.0.1:{free_port()}", str(plan), "--ct", str(folder),
               "--labels", str(folder)])
    err = capsys.readouterr().err
    assert rc == 2 and "2 different PatientIDs" in err and "PATIENT-A" in err


def test_files_without_uids_cannot_be_sent(shared_data, tmp_path, capsys):
    folder = shared_data("ct", "abdomen-20slice")
    dicom = sorted((folder / "dicom").iterdir())
    port = free_port()                       # nothing listens: the check happens before connecting
    with pytest.raises(InputError, match="has no .*SOPInstanceUID.*cannot be stored") as exc:
        store(Pacs.parse(f"PACS@127.0.0.1:{port}"), dicom)
    assert not isinstance(exc.value, PacsError)
    plan = tmp_path / "plan"
    plan.mkdir()
    (plan / "plan.json").write_text(json.dumps({"lesions": []}))
    (plan / "plan.pdf").write_bytes(b"%PDF-1.4\n%%EOF\n")
    rc = main(["pacs", "send", "--server", f"PACS@127.0.0.1:{port}", str(plan), "--ct", str(folder / "dicom"),
               "--labels", str(folder / "labels.nii.gz")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot be sent to a PACS" in err and "StudyInstanceUID" in err
    assert "still opens" in err
    ct = load_ct(folder / "dicom")           # ... and it still opens from its folder
    assert ct.array.shape[0] == 20
