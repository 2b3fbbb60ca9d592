"""Workers: progress and cancel through the status bar; errors reported once; UI keeps running."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from gui.window.app import build_parser, open_inputs
from gui.window.main_window import MainWindow
from gui.core.workers import Worker
from registration.spatial.errors import CancelledError, InputError

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.close()


def test_worker_result_progress_and_error(qtbot):
    seen = []
    w = Worker("sum", lambda a, b, progress: (progress(0.5, "half"), a + b)[1], 2, 3)
    w.progress.connect(lambda f, m: seen.append((f, m)))
    with qtbot.waitSignal(w.succeeded) as sig:
        w.start()
    assert sig.args == [5] and seen == [(0.5, "half")]
    w.wait()

    def bad(progress):
        raise InputError("broken", path="x.nrrd", fix="use another file")

    w2 = Worker("bad", bad)
    with qtbot.waitSignal(w2.failed) as sig:
        w2.start()
    assert str(sig.args[0]) == "x.nrrd: broken; use another file" and "Traceback" in sig.args[1]
    w2.wait()


def test_cancel_button_stops_work_without_an_error_dialog(window, qtbot):
    started = threading.Event()

    def slow(progress):
        started.set()
        for i in range(2000):
            if not progress(i / 2000, "working"):
                raise CancelledError("stopped at step %d" % i)
            time.sleep(0.005)
        return "finished"

    done = []
    window.run_worker("Long job", slow, done.append)
    assert started.wait(5)
    qtbot.waitUntil(lambda: window.progress.isVisible() and window.cancel_button.isVisible(), timeout=2000)
    # The UI stays responsive while the worker runs: the player and views still take events.
    qtbot.mouseClick(window.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: not window.workers, timeout=5000)
    assert done == []
    assert window.reporter.history[-1][0] == "Long job" and "stopped at step" in window.reporter.history[-1][1]
    assert window.reporter.last_dialog is None                 # a cancel is not an error dialog
    assert not window.progress.isVisible() and not window.cancel_button.isVisible()


def test_bad_registration_file(window, tmp_path):
    p = tmp_path / "result.json"
    p.write_text(json.dumps({"metrics": {}}))
    window.open_registration(p)
    action, message = window.reporter.history[-1]
    assert action == "Load registration" and "result.json" in message and "reference_to_ct" in message
    assert window.registration is None and window.registration_label.text() == "no registration"
    p.write_text(json.dumps({"reference_to_ct": np.eye(4).tolist(), "tre_rms_mm": 2.2}))
    window.open_registration(p)
    assert window.registration.tre_mm == 2.2
    assert window.registration_label.text() == "Registration: from file, within ~4 mm"     # 95 %: 1.61 x 2.2


@pytest.mark.slow
def test_command_line_inputs_open_in_order(window, shared_data, tmp_path):
    ct_dir = shared_data("ct", "abdomen-20slice")
    sweep = shared_data("liver-us", "liver_sweep.igs.mha")
    reg = tmp_path / "init.json"
    reg.write_text(json.dumps({"reference_to_ct": np.eye(4).tolist()}))
    args = build_parser().parse_args(["--ct", str(ct_dir / "dicom"), "--labels", str(ct_dir / "labels.nii.gz"),
                                      "--label-names", str(ct_dir / "label_names.txt"), "--sweep", str(sweep),
                                      "--registration", str(reg)])
    open_inputs(window, args)
    assert window.reporter.history == []
    assert window.ct.shape_ijk == (512, 512, 20) and "liver" in window.labels.names
    assert window.sweep.n_frames == 140 and window.registration.method == "file"
    # INIT.json has no error estimate: the overlay says so instead of hiding it.
    assert window.us_view.overlay.quality == "from file, error not estimated"
