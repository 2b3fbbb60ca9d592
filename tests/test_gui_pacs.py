"""File > Open from PACS and Export > Send to PACS, driven through the real window against a real
Orthanc (the ``orthanc_server`` fixture of conftest.py) holding the demo case's two-phase DICOM study
and, when ../shared/data is there, the real CRLM CT.

Find lists both studies and both phases (with their phase hints); the server is kept in a temporary
QSettings file; retrieving the portal series (C-GET) or the CRLM CT (C-MOVE) shows progress and opens
a CT voxel-identical to the original; Cancel during a retrieval leaves no folder and the window as it
was; a wrong AE title or a server that is down gives one message in the dialog and nothing else; Send
to PACS from the export dialog files the exported PDF, key views, SEG and Spatial Registration into
the CT's study (checked with Orthanc's REST API and C-FIND), and sending again adds nothing. Without
the Orthanc binary every test here skips with the reason. Screenshots at 1366x768 go to tests/artifacts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PyQt5.QtCore import QSettings, Qt

from _gui_helpers import grab_screen, make_window, small_planning_case
from _orthanc import ORTHANC_AET, OUR_AET, free_port
from gui.core.session import RegistrationState
from registration.io.ct_io import load_ct
from registration.pacs.node import Pacs
from registration.pacs.store import store

pytestmark = [pytest.mark.gui, pytest.mark.slow]

SIZE = (1366, 768)
SHARED = Path(os.environ.get("CTUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CRLM = SHARED / "ct" / "crlm-1004" / "dicom"
PORTAL, ARTERIAL = "Pancreas protocol - portal venous 70s", "Pancreas protocol - late arterial 45s"
SOP = {901: "1.2.840.10008.5.1.4.1.1.104.1", 902: "1.2.840.10008.5.1.4.1.1.7",
       903: "1.2.840.10008.5.1.4.1.1.66.4", 904: "1.2.840.10008.5.1.4.1.1.66.1"}


@pytest.fixture(scope="module", autouse=True)
def gui_settings(tmp_path_factory):
    """Saved servers go to a temporary INI file, never to the user's settings."""
    folder = tmp_path_factory.mktemp("qsettings")
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(folder))
    return folder


@pytest.fixture(scope="module")
def orthanc(orthanc_server, demo_case):
    """The conftest's Orthanc holding the demo's arterial and portal series (134 slices each) and,
    when ../shared/data is there, the real CRLM CT (41 slices)."""
    files = sorted((demo_case / "ct").glob("*/*.dcm"))
    if CRLM.exists():
        files = sorted(CRLM.glob("*.dcm")) + files
    store(Pacs.parse(orthanc_server.server), files)
    return orthanc_server


@pytest.fixture
def window(qtbot):
    w = make_window(qtbot, size=SIZE, panels=True)
    w.move(0, 0)
    yield w
    w.close()


def _open_dialog(w, qtbot, orthanc, root, *, aet=ORTHANC_AET, port=None):
    w.act_open_pacs.trigger()                   # File > Open from PACS
    dlg = w.pacs_dialog
    qtbot.waitExposed(dlg)
    dlg.move(w.geometry().center() - dlg.rect().center())     # as a window manager would place it
    box = dlg.server_box
    box.aet.setText(aet)
    box.host.setText("127.0.0.1")
    box.port.setValue(port or orthanc.dicom_port)
    box.our_aet.setText(OUR_AET)
    box.move_port.setValue(0)
    dlg.folder.setText(str(root))
    return dlg


def _run(qtbot, dlg, button):
    qtbot.mouseClick(button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120000)


def _find(qtbot, dlg, patient=""):
    dlg.patient.setText(patient)
    _run(qtbot, dlg, dlg.find_button)


def _pick(dlg, description):
    (item,) = [it for it in dlg.series_items() if it.text(2) == description]
    dlg.tree.setCurrentItem(item)
    return item


def _unchanged(w):
    """No error dialog, nothing in the error history, no CT."""
    return w.ct is None and w.reporter.history == [] and w.reporter.last_dialog is None


def test_find_lists_both_studies_and_both_phases(window, qtbot, orthanc, tmp_path, artifacts_dir, gui_settings):
    w = window
    dlg = _open_dialog(w, qtbot, orthanc, tmp_path / "pacs")
    qtbot.mouseClick(dlg.server_box.save_button, Qt.LeftButton)         # kept in the settings ...
    ini = (gui_settings / "ctus" / "ctus-gui.ini").read_text()         # ... in the temporary INI file
    assert f"called_aet={ORTHANC_AET}" in ini and f"port={orthanc.dicom_port}" in ini, ini
    assert dlg.server_box.choice.currentText().startswith(f"{ORTHANC_AET}@127.0.0.1:{orthanc.dicom_port}")
    _find(qtbot, dlg)
    assert dlg.modality.currentText() == "CT"
    tops = [dlg.tree.topLevelItem(i) for i in range(dlg.tree.topLevelItemCount())]
    real = CRLM.exists()
    assert sorted(t.text(0).split(" ")[0] for t in tops) == ["CRLM-CT-1004"] * real + ["CTUS-DEMO-0"]
    rows = {it.text(2): (it.text(3), it.text(4)) for it in dlg.series_items()}
    assert rows[PORTAL] == ("134", "portal venous") and rows[ARTERIAL] == ("134", "arterial")
    assert len(rows) == 2 + real and ("41" in [n for n, _ in rows.values()]) == real
    assert f"{1 + real} stud{'ies' if real else 'y'} with {2 + real} series" in dlg.status.text()
    assert not dlg.retrieve_button.isEnabled()          # nothing picked yet
    _pick(dlg, PORTAL)
    assert dlg.retrieve_button.isEnabled()
    dlg.move(w.geometry().center() - dlg.rect().center())
    assert dlg.width() <= SIZE[0] and dlg.height() <= SIZE[1]
    qtbot.wait(200)
    grab_screen(w, artifacts_dir / "gui_pacs_find_both_phases_1366x768.png")
    # The patient filter narrows to the demo study; a study row cannot be retrieved.
    _find(qtbot, dlg, "CTUS-DEMO-*")
    assert dlg.tree.topLevelItemCount() == 1 and len(dlg.series_items()) == 2
    dlg.tree.setCurrentItem(dlg.tree.topLevelItem(0))
    assert dlg.selected_series() is None and not dlg.retrieve_button.isEnabled()
    dlg.close()
    # The saved server comes back in a new dialog (and in Send to PACS).
    dlg2 = w.ask_open_from_pacs()
    assert dlg2 is not dlg and dlg2.server_box.aet.text() == ORTHANC_AET
    assert dlg2.server_box.port.value() == orthanc.dicom_port
    assert _unchanged(w)


def test_retrieve_portal_opens_a_voxel_identical_ct(window, qtbot, orthanc, demo_case, tmp_path):
    w = window
    root = tmp_path / "pacs"
    dlg = _open_dialog(w, qtbot, orthanc, root)
    _find(qtbot, dlg, "CTUS-DEMO-0")
    se = _pick(dlg, PORTAL).data(0, Qt.UserRole)
    shown, messages = [], []
    dlg.progress_bar.valueChanged.connect(shown.append)
    qtbot.mouseClick(dlg.retrieve_button, Qt.LeftButton)
    dlg.worker.progress.connect(lambda f, m: messages.append(m), Qt.QueuedConnection)
    qtbot.waitUntil(lambda: w.ct is not None or dlg.worker is None and dlg.isVisible(), timeout=120000)
    w.wait_for_workers()
    assert not dlg.isVisible() and dlg.retrieved is not None, dlg.status.text()
    assert any(0 < v < 1000 for v in shown) and max(shown) >= 950      # progress was shown
    assert any(m.startswith("received ") and m.endswith("/134 instances") for m in messages)
    assert dlg.retrieved.n_instances == 134 and dlg.retrieved.method == "C-GET"
    assert Path(dlg.retrieved.folder) == root / se.series_uid and len(list(root.iterdir())) == 1
    original = load_ct(demo_case / "ct" / "portal")
    assert np.array_equal(w.ct.array, original.array)
    assert np.array_equal(w.ct.spacing, original.spacing) and np.array_equal(w.ct.origin, original.origin)
    assert np.array_equal(w.ct.direction, original.direction)
    assert w.ct.metadata["format"] == "dicom" and w.ct.metadata["series_uid"] == se.series_uid
    assert w.reporter.history == [] and "Retrieved 134 images" in w.statusBar().currentMessage()


def test_retrieve_the_real_ct_by_c_move(window, qtbot, orthanc, tmp_path):
    if not CRLM.exists():
        pytest.skip(f"real data not available: {CRLM}")
    w = window
    dlg = _open_dialog(w, qtbot, orthanc, tmp_path / "pacs")
    dlg.server_box.move_port.setValue(orthanc.move_port)
    _find(qtbot, dlg, "CRLM-CT-1004")
    _pick(dlg, dlg.series_items()[0].text(2))
    qtbot.mouseClick(dlg.retrieve_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.ct is not None or dlg.worker is None and dlg.isVisible(), timeout=120000)
    w.wait_for_workers()
    assert dlg.retrieved is not None and dlg.retrieved.method == "C-MOVE", dlg.status.text()
    assert np.array_equal(w.ct.array, load_ct(CRLM).array) and w.ct.array.shape[0] == 41


def test_cancel_during_a_retrieval_leaves_nothing(window, qtbot, orthanc, tmp_path, artifacts_dir):
    w = window
    ct, labels = small_planning_case()
    w.set_ct(ct, labels)
    root = tmp_path / "pacs"
    dlg = _open_dialog(w, qtbot, orthanc, root)
    _find(qtbot, dlg, "CTUS-DEMO-0")
    _pick(dlg, PORTAL)
    seen, clicked = [], []

    def on_progress(_f, message):       # Cancel as soon as the first instances have arrived
        seen.append(message)
        if message.startswith("received ") and not clicked:
            clicked.append(message)
            dlg.repaint()                                   # the progress bar as it is now
            grab_screen(w, artifacts_dir / "gui_pacs_retrieve_progress_1366x768.png")
            qtbot.mouseClick(dlg.cancel_button, Qt.LeftButton)
    qtbot.mouseClick(dlg.retrieve_button, Qt.LeftButton)
    dlg.worker.progress.connect(on_progress, Qt.QueuedConnection)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120000)
    received = [int(m.split()[1].split("/")[0]) for m in seen if m.startswith("received ")]
    assert received and max(received) < 134, seen            # stopped part-way
    assert dlg.isVisible() and dlg.retrieved is None
    assert dlg.status.text() == "Retrieval stopped: nothing was written."
    assert not root.exists() or list(root.iterdir()) == []   # no series folder, no temporary folder
    assert w.ct is ct and w.labels is labels and w.reporter.history == []
    assert dlg.retrieve_button.isEnabled() and dlg.cancel_button.text() == "Close"


def test_wrong_ae_titles_and_a_server_down_say_so_in_the_dialog(window, qtbot, orthanc, tmp_path, artifacts_dir):
    w = window
    root = tmp_path / "pacs"
    dlg = _open_dialog(w, qtbot, orthanc, root, aet="WRONG_AET")
    _find(qtbot, dlg)
    text = dlg.status.text()
    assert text.startswith("Find failed: ") and "association rejected" in text and "Called AE" in text
    assert "the 'AE title' field" in text and "--server" not in text, text
    assert dlg.tree.topLevelItemCount() == 0 and _unchanged(w)
    qtbot.wait(100)
    grab_screen(w, artifacts_dir / "gui_pacs_association_rejected_1366x768.png")
    dlg.server_box.aet.setText(ORTHANC_AET)
    dlg.server_box.our_aet.setText("NOT_REGISTERED")
    _find(qtbot, dlg)
    assert "Calling AE" in dlg.status.text() and "'Our AE title' field" in dlg.status.text()
    assert "--calling-aet" not in dlg.status.text() and _unchanged(w)
    # Find works; then the server is "down" (nothing listens on the port) when retrieving.
    dlg.server_box.our_aet.setText(OUR_AET)
    _find(qtbot, dlg, "CTUS-DEMO-0")
    _pick(dlg, PORTAL)
    dead = free_port()
    dlg.server_box.port.setValue(dead)
    _run(qtbot, dlg, dlg.retrieve_button)
    assert dlg.status.text().startswith("Retrieve failed: ")
    assert f"nothing listens on 127.0.0.1:{dead} (connection refused)" in dlg.status.text()
    assert not root.exists() or list(root.iterdir()) == []
    assert dlg.isVisible() and _unchanged(w)
    # A field that is not an AE title is refused before any network work.
    dlg.server_box.aet.setText("")
    _find(qtbot, dlg)
    assert "is not a DICOM AE title" in dlg.status.text() and _unchanged(w)


def _study_series(orthanc, study_uid):
    """{series number: [SOP Class UID per instance]} of one study in Orthanc (REST API)."""
    (study_id,) = [s for s in orthanc.get("/studies")
                   if orthanc.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"] == study_uid]
    out = {}
    for se in orthanc.get(f"/studies/{study_id}")["Series"]:
        info = orthanc.get(f"/series/{se}")
        out[int(info["MainDicomTags"]["SeriesNumber"])] = [
            orthanc.get(f"/instances/{i}/simplified-tags")["SOPClassUID"] for i in info["Instances"]]
    return out


def _study_pdf(orthanc, study_uid, tmp_path):
    """The Encapsulated PDF document of series 901 in ``study_uid`` (Orthanc REST, read with pydicom)."""
    (study_id,) = [s for s in orthanc.get("/studies")
                   if orthanc.get(f"/studies/{s}")["MainDicomTags"]["StudyInstanceUID"] == study_uid]
    for se in orthanc.get(f"/studies/{study_id}")["Series"]:
        info = orthanc.get(f"/series/{se}")
        if info["MainDicomTags"]["SeriesNumber"] == "901":
            path = tmp_path / "report_from_pacs.dcm"
            path.write_bytes(orthanc.get_bytes(f"/instances/{info['Instances'][0]}/file"))
            ds = pydicom.dcmread(path)
            return ds.EncapsulatedDocument[:ds.EncapsulatedDocumentLength]
    return None


def _plan_on_the_pacs_ct(w, qtbot, orthanc, demo_case, tmp_path):
    """Retrieve the portal CT through the dialog, open the demo labels and survey sweep, register
    with the sweep's true transform and plan lesion_1 in the Planning panel; -> the panel."""
    dlg = _open_dialog(w, qtbot, orthanc, tmp_path / "pacs")
    qtbot.mouseClick(dlg.server_box.save_button, Qt.LeftButton)
    _find(qtbot, dlg, "CTUS-DEMO-0")
    _pick(dlg, PORTAL)
    before = w.ct
    qtbot.mouseClick(dlg.retrieve_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.ct is not before or dlg.worker is None and dlg.isVisible(), timeout=120000)
    w.wait_for_workers()
    assert w.ct is not before and w.ct.metadata["format"] == "dicom", dlg.status.text()
    w.open_labels(demo_case / "labels.nrrd", demo_case / "label_names.json")
    w.wait_for_workers()
    w.open_sweep(demo_case / "sweep_survey.igs.mha")
    w.wait_for_workers()
    truth = json.loads((demo_case / "truth.json").read_text())
    w.set_registration(RegistrationState(np.asarray(truth["reference_to_ct"], float), method="file"))
    assert not w.act_send_pacs.isEnabled() and "needs a plan" in w.act_send_pacs.toolTip()
    planning = w.panel_docks["planning"].widget()
    planning.plan_options = {"lesion": "lesion_1"}      # one lesion keeps the test short
    w.act_plan.trigger()
    qtbot.waitUntil(lambda: planning.worker is None, timeout=600000)
    assert planning.result is not None and w.reporter.history == [], w.reporter.history
    return planning


def test_send_to_pacs_from_the_export_dialog_files_the_plan_into_the_cts_study(
        window, qtbot, orthanc, demo_case, tmp_path, artifacts_dir):
    w = window
    assert not w.act_send_pacs.isEnabled() and "needs a CT opened from DICOM" in w.act_send_pacs.toolTip()
    ct, labels = small_planning_case()
    w.set_ct(ct, labels)
    assert not w.act_send_pacs.isEnabled() and "not read from DICOM" in w.act_send_pacs.toolTip()
    _plan_on_the_pacs_ct(w, qtbot, orthanc, demo_case, tmp_path)
    assert w.act_send_pacs.isEnabled(), w.act_send_pacs.toolTip()
    assert w.act_send_pacs in w.export_menu.actions()
    # Export the plan (Ctrl+E), then "Send to PACS..." in the same dialog.
    w.act_export.trigger()
    export = w.panel_docks["planning"].widget().export_dialog
    qtbot.waitExposed(export)
    export.open_folder_when_done = False
    export.folder.setText(str(tmp_path / "plan"))
    qtbot.mouseClick(export.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: export.worker is None and bool(export.written), timeout=120000)
    assert export.send_button.isEnabled(), export.send_button.toolTip()
    qtbot.mouseClick(export.send_button, Qt.LeftButton)
    send = w.pacs_send_dialog
    qtbot.waitExposed(send)
    # The saved server is chosen; the dialog says what goes where.
    assert send.server_box.port.value() == orthanc.dicom_port and send.send_button.isEnabled()
    assert "Spatial Registration" in send.what.text() and "SEG" in send.what.text()
    before = len(orthanc.get("/instances"))
    _run(qtbot, send, send.send_button)
    text = send.status.text()
    assert send.report is not None, text
    study_uid = send.results.study_uid
    assert text.startswith(f"Stored 6 instances on {ORTHANC_AET}@127.0.0.1:{orthanc.dicom_port} "
                           f"in the CT's study {study_uid}")
    for number in SOP:
        assert f"series {number} " in text
    assert "the PACS lists ?" not in text and "warning" not in text
    ct_head = pydicom.dcmread(next(Path(w.ct.metadata["source"]).iterdir()), stop_before_pixels=True)
    assert study_uid == ct_head.StudyInstanceUID
    # Orthanc's REST API: both CT phases and our four series, one study, the right SOP classes ...
    series = _study_series(orthanc, study_uid)
    assert len([n for n in series if n not in SOP]) == 2
    for number, sop in SOP.items():
        assert set(series[number]) == {sop}, number
    assert len(series[902]) == 3 and len(orthanc.get("/instances")) == before + 6
    # ... the exported PDF's very bytes ...
    assert _study_pdf(orthanc, study_uid, tmp_path) == (tmp_path / "plan" / "plan.pdf").read_bytes()
    # ... and C-FIND at series level lists them in the CT's study.
    from registration.pacs.query import find_studies
    (study,) = find_studies(Pacs.parse(orthanc.server, calling_aet=OUR_AET), study_uid=study_uid)
    assert {se.series_number for se in study.series} >= set(SOP)
    assert {se.modality for se in study.series if se.series_number in SOP} == {"DOC", "OT", "SEG", "REG"}
    send.move(w.geometry().center() - send.rect().center())
    qtbot.wait(200)
    grab_screen(w, artifacts_dir / "gui_pacs_send_result_1366x768.png")
    # Sending the same plan again stores the same instances: the PACS keeps one copy.
    _run(qtbot, send, send.send_button)
    assert send.status.text().startswith("Stored 6 instances") and len(orthanc.get("/instances")) == before + 6
    assert w.reporter.history == []


def test_without_orthanc_every_test_here_skips_with_the_reason(tmp_path):
    """With the Orthanc binary missing (CTUS_ORTHANC pointing at nothing) the other tests of this
    module all skip, each with the reason in pytest's summary, and none fails or errors."""
    import subprocess
    import sys
    env = dict(os.environ, CTUS_ORTHANC=str(tmp_path / "no-orthanc-here"))
    here = Path(__file__).resolve()
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "--basetemp", str(tmp_path / "basetemp"), str(here), "-k", "not without_orthanc"],
                       cwd=here.parents[1], env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    n_tests = sum(1 for line in here.read_text().splitlines() if line.startswith("def test_")) - 1
    assert f"{n_tests} skipped, 1 deselected" in out, out
    assert "passed" not in out and "failed" not in out and "error" not in out.lower(), out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all("Orthanc is not installed (Debian package 'orthanc'" in line for line in skipped), out
