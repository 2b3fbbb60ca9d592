"""The demo case in the real window: open it, overlay with the case's TRUE registration on a
frame that cuts a lesion (the lesion outline must sit on the simulated lesion), screenshots.

Uses the demo case from the per-user cache
(generated on first use by ``sample_data.case.demo_case.ensure_demo_case()``).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gui.window.main_window import MainWindow
from gui.views.overlay import lesion_guidance
from gui.core.session import RegistrationState

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _cached_demo():
    """The demo case, generated into the per-user cache on first use (about a minute)."""
    from sample_data.case.demo_case import ensure_demo_case
    from pathlib import Path
    return Path(ensure_demo_case())


def _true_reference_to_ct(truth: dict, sweep_name: str) -> np.ndarray:
    sweeps = truth.get("sweeps")
    if isinstance(sweeps, dict):
        entry = sweeps.get(sweep_name) or sweeps.get(sweep_name.replace(".igs.mha", ""))
        if entry is None:
            entry = next(iter(sweeps.values()))
        return np.asarray(entry["reference_to_ct"], float)
    if isinstance(sweeps, list):
        for entry in sweeps:
            if sweep_name.startswith(str(entry.get("name", entry.get("file", ""))).replace(".igs.mha", "")):
                return np.asarray(entry["reference_to_ct"], float)
        return np.asarray(sweeps[0]["reference_to_ct"], float)
    return np.asarray(truth["reference_to_ct"], float)


def test_demo_case_overlay_on_a_lesion(qtbot, artifacts_dir):
    folder = _cached_demo()
    # The 3D view needs an X server with OpenGL (xvfb-run); elsewhere test the 2D views only.
    w = MainWindow(enable_3d=bool(os.environ.get("DISPLAY"))
                   and os.environ.get("QT_QPA_PLATFORM", "") != "offscreen")
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    ready = []
    w.open_demo(then=lambda: ready.append(True))
    qtbot.waitUntil(lambda: bool(ready) or bool(w.reporter.history), timeout=120000)
    assert w.reporter.history == [] and ready
    assert w.ct is not None and w.labels is not None and w.sweep is not None
    assert w.us_view.reason_text == "no registration yet: overlay off"
    lesions = w.us_view.engine.lesions
    assert lesions, "the demo labels have lesions"
    truth = json.loads((folder / "truth.json").read_text())
    ref_to_ct = _true_reference_to_ct(truth, w.sweep.source.split("/")[-1])
    w.set_registration(RegistrationState(ref_to_ct, "ground truth (test only)", tre_mm=0.0))
    # Find a valid frame whose plane cuts a lesion near its centre.
    i2r, valid = w.sweep.image_to_reference_all()
    best = None
    for i in np.flatnonzero(valid):
        for les in lesions:
            inside, msg = lesion_guidance(les, ref_to_ct @ i2r[i], w.sweep.image_shape)
            if inside:
                n = np.cross(*(ref_to_ct @ i2r[i])[:3, :2].T)
                d = abs((les.centroid_lps - (ref_to_ct @ i2r[i])[:3, 3]) @ (n / np.linalg.norm(n)))
                if best is None or d < best[0]:
                    best = (d, int(i), les)
    if best is None:
        pytest.skip("no frame of the first demo sweep cuts a lesion")
    _, frame, les = best
    w.player.seek(frame, force=True)
    us = w.us_view
    assert us.overlay_visible
    assert any(m.startswith(f"{les.name}: in plane") for m in us.lesion_messages)
    ov = us.overlay
    assert (ov.labels == les.value).any()
    # The lesion's outline is centred where the lesion centroid projects in the frame.
    m = ref_to_ct @ i2r[frame]
    x, y = m[:3, 0], m[:3, 1]
    d = les.centroid_lps - m[:3, 3]
    col, row = d @ x / (x @ x), d @ y / (y @ y)
    rr, cc = np.nonzero(ov.labels == les.value)
    assert abs(cc.mean() * ov.step - col) < les.radius_mm / np.linalg.norm(x)
    assert abs(rr.mean() * ov.step - row) < les.radius_mm / np.linalg.norm(y)
    w.views["axial"].set_cursor(les.centroid_lps)
    w.set_cursor(les.centroid_lps)
    if w.view3d is not None:
        w.view3d.wait_for_surfaces()
        qtbot.waitUntil(lambda: bool(w.view3d.surfaces), timeout=60000)
        w.view3d.flush_plane()          # the US plane is drawn by a timer: draw it before the picture
        w.view3d._render_now()
    us.grab().save(str(artifacts_dir / "gui_demo_us_overlay_lesion.png"))
    w.grab().save(str(artifacts_dir / "gui_demo_main_window.png"))
    if w.view3d is not None:
        w.view3d.grab().save(str(artifacts_dir / "gui_demo_view3d.png"))
    w.close()
