"""Live mode in the real window: a `ctus replay` server on loopback streams the demo
lesion sweep; the window shows frames with the CT overlay, records 3 s, and, when the
server stops sending transforms, turns the overlay off and says tracking is stale."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from gui.window.main_window import MainWindow
from gui.core.session import RegistrationState
from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from registration.io.seq_mha_read import read_sequence

pytestmark = [pytest.mark.gui, pytest.mark.slow]



def test_live_window_overlay_record_and_stale(qtbot, demo_case, artifacts_dir, tmp_path, free_port):
    truth = json.loads((demo_case / "truth.json").read_text())
    config = demo_case / truth["ultrasound"]["config"]
    sweep_path = demo_case / "sweep_lesion_1.igs.mha"
    ct = load_ct(demo_case / "ct_portal.nrrd")
    labels = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.reporter.show_dialogs = False
    w.resize(1500, 950)
    w.show()
    w.set_ct(ct, labels)
    w.set_sweep(read_sequence(sweep_path, calibration=config))  # gives the probe calibration
    w.set_registration(RegistrationState(np.asarray(truth["reference_to_ct"]), method="truth (demo)",
                                         tre_mm=0.0))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "planner.cli.main", "replay", "--sweep", str(sweep_path),
                             "--calibration", str(config), "--port", str(port), "--fps", "30", "--loop",
                             "--stop-tracking-after", "9", "--duration", "40"],
                            stderr=subprocess.PIPE, text=True)
    try:
        w.live.connect_host("127.0.0.1", port, "Image_Reference", "ProbeToReference")
        qtbot.waitUntil(lambda: w.live.frames_shown > 10 and w.us_view.overlay_visible, timeout=30000)
        assert "LIVE 127.0.0.1" in w.tracking_label.text() and "tracking OK" in w.tracking_label.text()
        assert "fps" in w.tracking_label.text() and "latency" in w.tracking_label.text()
        w.grab().save(str(artifacts_dir / "gui_live_overlay.png"))

        rec = tmp_path / "live_recording.igs.mhd"
        w.ask_record_path = lambda: str(rec)
        w.live.actions["record"].trigger()
        assert w.live.recording and "REC" in w.live.status_text
        t0 = time.monotonic()
        qtbot.wait(3000)
        w.live.actions["record"].trigger()
        seconds = time.monotonic() - t0
        assert not w.live.recording
        recorded = read_sequence(rec)
        print(f"\nrecorded {len(recorded)} frames in {seconds:.1f} s")
        assert len(recorded) >= 0.7 * 30 * 3
        assert recorded.valid.sum() >= 0.9 * len(recorded)

        qtbot.waitUntil(lambda: "stale" in w.us_view.reason_text, timeout=12000)
        assert not w.us_view.overlay_visible
        assert "stale" in w.tracking_label.text()
        w.grab().save(str(artifacts_dir / "gui_live_stale.png"))
    finally:
        w.live.disconnect_all()
        proc.terminate()
        proc.communicate(timeout=10)
