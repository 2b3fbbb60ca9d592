"""Guidance panel and needle overlays in the real window on the hand-built needle case (exact
geometry, tests/_needle_helpers.py): the player replays a recorded needle with its frames
(numbers equal the engine's for the shown frame, INVALID frames hidden with the reason), the
needle is drawn on the US view where the geometry puts it, a missing calibration says what to
supply, and a least-risk path is guided as UNSAFE."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from _gui_helpers import make_window
from _needle_helpers import (IMAGE_TO_CT, TARGET, in_plane_sweep, needle_config, needle_ct, needle_labels,
                             plan_folder_with_labels, write_case)
from gui.core.session import RegistrationState
from planner.guidance.guidance_stream import sweep_states
from planner.guidance.needle_guide import guide_for_plan
from planner.guidance.needle_simulation import SIMULATED_NEEDLE
from planner.guidance.planned_path import read_plan
from registration.io.seq_mha_read import read_sequence
from registration.io.seq_mha_write import write_sequence
from registration.spatial.transforms import rigid_matrix

pytestmark = [pytest.mark.gui]

REFERENCE_TO_CT = rigid_matrix([4, -6, 9, 25, -10, 15])


@pytest.fixture
def case(tmp_path):
    c = write_case(tmp_path / "case", REFERENCE_TO_CT)
    c["plan"] = plan_folder_with_labels(c)
    c["config"] = needle_config(tmp_path)
    return c


def guided_window(qtbot, case, size=(1500, 950)):
    w = make_window(qtbot, size=size, panels=True)
    w.set_ct(needle_ct(), needle_labels())
    w.set_registration(RegistrationState(REFERENCE_TO_CT, method="truth (test)", tre_mm=0.0))
    panel = w.panel_docks["guidance"].widget()
    panel.open_plan_folder(case["plan"])
    panel.start()
    qtbot.waitUntil(lambda: w.guidance.guide is not None, timeout=30000)
    assert not w.reporter.history, w.reporter.history
    return w, panel


def test_player_replays_the_recorded_needle_with_its_frames(qtbot, case, tmp_path, artifacts_dir):
    sweep, sim = in_plane_sweep(REFERENCE_TO_CT, n=30, needle_invalid=(12,))
    path = tmp_path / "needle.igs.mha"
    write_sequence(sweep, path)
    w, panel = guided_window(qtbot, case)
    w.set_sweep(read_sequence(path))
    # no calibration in the sweep, none given yet: says what to supply
    qtbot.waitUntil(lambda: "calibration" in panel.setup_label.text(), timeout=5000)
    text = panel.setup_label.text()
    assert "no Needle calibration" in text and "PLUS config" in text and "pivot recording" in text
    assert w.guidance.recorded is None
    panel.load_calibration(case["config"])
    qtbot.waitUntil(lambda: w.guidance.recorded is not None, timeout=20000)
    assert "recorded needle in 29 of 30 frames" in panel.setup_label.text()

    plan, plan_path = read_plan(case["plan"])
    engine = guide_for_plan(plan, needle_labels(), REFERENCE_TO_CT, calibration=SIMULATED_NEEDLE)
    expected = list(sweep_states(read_sequence(path), engine))
    for k in (3, 21, 29):
        w.player.seek(k)
        state = w.guidance.state
        assert state is w.guidance.recorded[k] and state.valid
        tip = sim.tip_ct[k]
        assert np.allclose(state.tip_ct, tip, atol=1e-6)
        assert panel.values["to_target"].text() == f"{np.linalg.norm(TARGET - tip):.1f} mm"
        assert panel.values["to_target"].text() == f"{expected[k].tip_to_target_mm:.1f} mm"
        assert panel.values["miss"].text() == "0.0 mm" and panel.values["angle"].text() == "0.0\u00b0"
        offset = -(-0.75 + 0.05 * k)          # the tip lies at y = 0; the plane at y = -0.75 + 0.05 k
        assert panel.values["off_plane"].text() == f"{offset:+.1f} mm"
        assert "BREACH" not in panel.alert_label.text()
    assert np.linalg.norm(w.guidance.state.tip_ct - TARGET) < 1.0

    w.player.seek(12)                      # INVALID needle on this frame: hidden, and why
    assert not w.guidance.state.valid
    assert all(v.text() == "--" for v in panel.values.values())
    assert "NEEDLE HIDDEN" in panel.alert_label.text() and "INVALID" in panel.alert_label.text()
    us = next(o for o in panel.overlays if o.kind == "us")
    assert us.state is w.guidance.state and us.level is None

    # the needle on the US view: its colour along the shaft, not beside it
    w.player.seek(20)
    qtbot.wait(50)
    img = w.us_view.grab().toImage()
    tip_px = np.linalg.solve(IMAGE_TO_CT, np.r_[sim.tip_ct[20], 1.0])[:2]
    hub_side = np.linalg.solve(IMAGE_TO_CT, np.r_[sim.tip_ct[20] + [0, 0, 6.0], 1.0])[:2]
    for px, expect in ((tip_px, True), (hub_side, True), (tip_px + [16, 0], False)):
        p = w.us_view.pixel_to_widget(*px)
        c = img.pixelColor(int(round(p.x())), int(round(p.y())))
        pink = c.red() > 200 and c.green() < 120 and c.blue() > 150
        assert pink == expect, (px, c.getRgb())
    w.panel_docks["guidance"].raise_()
    qtbot.wait(50)
    w.grab().save(str(artifacts_dir / "gui_guidance_recorded.png"))


def test_least_risk_path_is_guided_as_unsafe(qtbot, case):
    plan_file = Path(case["plan"]) / "plan.json"
    plan_json = json.loads(plan_file.read_text())
    plan_json["lesions"][0]["trajectories"][0]["safe"] = False
    plan_file.write_text(json.dumps(plan_json))
    w, panel = guided_window(qtbot, case, size=(1366, 768))
    assert "UNSAFE (least-risk only)" in panel.path_box.itemText(0)
    assert panel.unsafe_label.isVisible() and panel.unsafe_label.text() == "PLANNED PATH UNSAFE (least-risk only)"
    assert "PLANNED PATH UNSAFE" in panel.setup_label.text()
    sweep, _ = in_plane_sweep(REFERENCE_TO_CT, n=8)
    panel.load_calibration(case["config"])
    w.set_sweep(sweep)
    qtbot.waitUntil(lambda: w.guidance.recorded is not None, timeout=20000)
    w.player.seek(5)
    assert w.guidance.state.valid and not w.guidance.state.planned_path_safe
    qtbot.wait(50)
    us = next(o for o in panel.overlays if o.kind == "us")
    us.repaint()
    assert any("PLANNED PATH UNSAFE" in t for t, _box in us.drawn_text)


def test_caution_is_amber_and_a_breach_then_clears_on_every_view(qtbot, case):
    """States straight from the engine's type: caution -> amber border and message; breach -> red on
    every view with the structure and distance; a clear state removes both in the same slot."""
    from planner.guidance.guidance_state import GuidanceState
    w, panel = guided_window(qtbot, case, size=(1366, 768))
    base = dict(t=1.0, timestamp=1.0, received=1.0, valid=True, lesion="lesion_1", tip_ct=np.array([-5.0, 0, 10]),
                direction_ct=np.array([0, 0, -1.0]), projected_end_ct=np.array([-5.0, 0, 0]),
                tip_to_target_mm=10.0, miss_mm=0.0, angle_deg=0.0)
    caution = GuidanceState(**base, caution=True, caution_structure="portal_vein", caution_distance_mm=4.2,
                            caution_margin_mm=5.0, caution_ahead_mm=3.0)
    breach = GuidanceState(**base, breach=True, breach_where="tip", breach_structure="portal_vein",
                           breach_distance_mm=1.3, breach_margin_mm=1.1)
    clear = GuidanceState(**base)
    for state, level, word in ((caution, "caution", "CAUTION: portal_vein 4.2 mm"),
                               (breach, "breach", "BREACH: portal_vein 1.3 mm"), (clear, None, None)):
        w.guidance._show(state)
        assert all(o.level == level for o in panel.overlays)
        if word:
            assert word in panel.alert_label.text() and all(word in o.message for o in panel.overlays)
        else:
            assert "no breach" in panel.alert_label.text() and not any(o.message for o in panel.overlays)
        us = next(o for o in panel.overlays if o.kind == "us")
        us.repaint()
        img = us.grab().toImage()
        c = img.pixelColor(2, us.height() // 2)          # the border
        if level == "breach":
            assert c.red() > 200 and c.green() < 80
        elif level == "caution":
            assert c.red() > 200 and 120 < c.green() < 200 and c.blue() < 60
        assert panel.values["to_target"].text() == "10.0 mm"


def test_beep_once_per_breach_only_when_asked(qtbot, case, monkeypatch):
    """The optional sound: off by default; when ticked, one beep as a breach begins (not on every
    frame of it), none on a caution, and again for the next breach after a clear frame."""
    from PyQt5.QtWidgets import QApplication

    from planner.guidance.guidance_state import GuidanceState
    w, panel = guided_window(qtbot, case, size=(1366, 768))
    beeps = []
    monkeypatch.setattr(QApplication, "beep", staticmethod(lambda: beeps.append(1)))
    base = dict(t=1.0, timestamp=1.0, received=1.0, valid=True, lesion="lesion_1", tip_ct=np.array([-5.0, 0, 10]),
                direction_ct=np.array([0, 0, -1.0]), projected_end_ct=np.array([-5.0, 0, 0]),
                tip_to_target_mm=10.0, miss_mm=0.0, angle_deg=0.0)
    breach = GuidanceState(**base, breach=True, breach_where="tip", breach_structure="portal_vein",
                           breach_distance_mm=1.3, breach_margin_mm=1.1)
    caution = GuidanceState(**base, caution=True, caution_structure="portal_vein", caution_distance_mm=4.2,
                            caution_margin_mm=5.0, caution_ahead_mm=3.0)
    clear = GuidanceState(**base)
    assert not panel.sound_box.isChecked()
    w.guidance._show(breach)
    assert beeps == []                                   # off by default
    w.guidance._show(clear)
    panel.sound_box.setChecked(True)
    for state in (breach, breach, breach, caution, clear, breach):
        w.guidance._show(state)
    assert len(beeps) == 2


def test_slices_follow_the_needle_tip_and_the_probe_waits(qtbot, case):
    """With "slices follow the needle tip" ticked (the default) a valid needle state puts the
    crosshair of every slice view on the tip and probe following pauses; unticked, or the needle
    lost, the crosshair stays and the probe may lead again."""
    import time as _time

    from planner.guidance.guidance_state import GuidanceState
    from gui.views.probe_geometry import FOLLOW_INTERVAL_MS
    w, panel = guided_window(qtbot, case, size=(1366, 768))
    base = dict(t=1.0, timestamp=1.0, received=1.0, lesion="lesion_1", direction_ct=np.array([0, 0, -1.0]),
                projected_end_ct=np.array([-5.0, 0, 0]), tip_to_target_mm=10.0, miss_mm=0.0, angle_deg=0.0)
    assert panel.follow_tip_box.isChecked()
    tip = np.array([-12.5, 31.0, 8.0])
    w.guidance._show(GuidanceState(**base, valid=True, tip_ct=tip))
    assert np.allclose(w.session.cursor_lps, tip)
    assert all(np.allclose(v.cursor_lps, tip) for v in w.views.values())
    assert w.needle_follow and not w.following()
    _time.sleep(FOLLOW_INTERVAL_MS / 1000 + 0.01)
    w.guidance._show(GuidanceState(**base, valid=False, tip_ct=tip + 20))       # lost: stays put
    assert np.allclose(w.session.cursor_lps, tip) and not w.needle_follow
    panel.follow_tip_box.setChecked(False)
    _time.sleep(FOLLOW_INTERVAL_MS / 1000 + 0.01)
    w.guidance._show(GuidanceState(**base, valid=True, tip_ct=tip + 20))
    assert np.allclose(w.session.cursor_lps, tip) and not w.needle_follow
