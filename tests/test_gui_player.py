"""Sweep player widget: play N frames, pause, step, scrub, speed; INVALID frames on the timeline."""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, Qt

from gui.views.player_widget import PlayerWidget
from registration.spatial.sweep import Sweep

pytestmark = pytest.mark.gui


def _sweep(n=60, fps=50.0, invalid=(10, 11, 40)):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 255, size=(n, 8, 10), dtype=np.uint8)
    mats = np.tile(np.eye(4), (n, 1, 1))
    status = np.ones(n, bool)
    status[list(invalid)] = False
    return Sweep(frames, 100.0 + np.arange(n) / fps, {"ImageToReference": mats}, {"ImageToReference": status})


@pytest.fixture
def player(qtbot):
    w = PlayerWidget()
    qtbot.addWidget(w)
    w.resize(600, 60)
    sweep = _sweep()
    w.set_sweep(sweep, sweep.valid)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_play_advances_in_order_then_pause(player, qtbot):
    seen = []
    player.frame_changed.connect(seen.append)
    qtbot.mouseClick(player.play_button, Qt.LeftButton)
    assert player.playing and player.play_button.text() == "Pause"
    qtbot.waitUntil(lambda: player.index >= 20, timeout=5000)     # 20 frames at 50 fps ~ 0.4 s
    qtbot.mouseClick(player.play_button, Qt.LeftButton)
    assert not player.playing
    assert seen == sorted(seen) and seen[-1] >= 20                 # never backwards
    stopped = player.index
    qtbot.wait(100)
    assert player.index == stopped


def test_speed_scales_replay(player, qtbot):
    import time
    player.speed_box.setCurrentIndex(player.speed_box.findText("4x"))
    assert player.clock.speed == 4.0
    t0 = time.perf_counter()
    player.play()
    qtbot.waitUntil(lambda: player.index >= 40, timeout=5000)
    dt = time.perf_counter() - t0
    player.pause()
    # 40 frames of a 50 fps recording take 0.8 s in real time, 0.2 s at 4x.
    assert dt < 0.6


def test_step_seek_and_label(player, qtbot):
    player.seek(9)
    qtbot.mouseClick(player.fwd_button, Qt.LeftButton)
    assert player.index == 10
    assert player.label.text() == "frame 11/60   t = 0.20 s   INVALID tracking"
    qtbot.mouseClick(player.back_button, Qt.LeftButton)
    assert player.index == 9 and "INVALID" not in player.label.text()
    # Scrub: a click on the timeline at 3/4 of its width goes to ~frame 45.
    tl = player.timeline
    with qtbot.waitSignal(player.frame_changed):
        qtbot.mouseClick(tl, Qt.LeftButton, pos=QPoint(int(tl.width() * 0.75), tl.height() // 2))
    assert abs(player.index - 45) <= 1           # ~3/4 of 60 frames (pixel rounding)


def test_invalid_frames_are_red_on_the_timeline(player, artifacts_dir):
    tl = player.timeline
    img = tl.grab().toImage()
    y = tl.height() // 2
    colour = lambda i: img.pixelColor(int((i + 0.5) / 60 * tl.width()), y)  # noqa: E731
    for i in (10, 11, 40):
        c = colour(i)
        assert (c.red(), c.green(), c.blue()) == (220, 40, 40), i
    c = colour(30)
    assert (c.red(), c.green(), c.blue()) == (60, 140, 60)
    player.grab().save(str(artifacts_dir / "gui_player.png"))


def test_empty_player_is_disabled(qtbot):
    w = PlayerWidget()
    qtbot.addWidget(w)
    w.set_sweep(None)
    assert not w.play_button.isEnabled() and w.label.text() == "no sweep"
    w.toggle()
    w.step(1)
    assert not w.playing and w.index == 0
