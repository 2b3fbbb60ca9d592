"""SweepPlayer: deterministic playback with an injected clock."""
from __future__ import annotations

import numpy as np
import pytest

from registration.spatial.errors import InputError
from registration.ultrasound.player import SweepPlayer
from registration.io.seq_mha_write import write_sequence
from registration.spatial.sweep import Sweep


class FakeClock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, dt):
        self.t += dt


def sweep_with_times(times):
    n = len(times)
    return Sweep(np.zeros((n, 2, 3), np.uint8), np.asarray(times, float))


def play_collect(player, clock, seconds, dt=0.01):
    """Poll tick() every dt for ``seconds`` of wall time; return (wall time, index) pairs."""
    out = []
    for _ in range(int(round(seconds / dt))):
        clock.advance(dt)
        i = player.tick()
        if i is not None:
            out.append((round(clock.t - 1000.0, 6), i))
    return out


@pytest.mark.parametrize("speed", [1.0, 2.0, 0.5, 3.7])
def test_frames_come_at_recorded_times_scaled_by_speed(speed):
    times = 50.0 + np.arange(10) * 0.1          # 10 fps recording
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(times), speed=speed, clock=clock)
    assert p.tick() == 0                          # first frame shown before playing
    p.play()
    got = play_collect(p, clock, 1.2 / speed, dt=0.001)
    assert [i for _, i in got] == list(range(1, 10))
    # Frame k is due at wall time k * 0.1 / speed (to the polling step).
    for wall, i in got:
        assert wall == pytest.approx(i * 0.1 / speed, abs=0.0011)
    assert not p.playing and p.current_index == 9  # stopped at the end (no loop)


def test_slow_polling_skips_frames_but_stays_in_time():
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(np.arange(100) * 0.01), clock=clock)
    p.tick()
    p.play()
    clock.advance(0.255)
    assert p.tick() == 25
    clock.advance(0.001)
    assert p.tick() is None                        # nothing new yet
    clock.advance(0.5)
    assert p.tick() == 75


def test_unsorted_timestamps_play_in_time_order():
    times = [0.3, 0.0, 0.2, 0.1]
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(times), clock=clock)
    seen = [p.tick()]
    p.play()
    seen += [i for _, i in play_collect(p, clock, 0.5)]
    assert seen == [1, 3, 2, 0]


def test_pause_holds_and_play_resumes():
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(np.arange(10) * 0.1), clock=clock)
    p.tick()
    p.play()
    clock.advance(0.35)
    assert p.tick() == 3
    p.pause()
    clock.advance(5.0)
    assert p.tick() is None and p.current_index == 3
    p.play()
    clock.advance(0.1)
    assert p.tick() == 4


def test_step_and_seek():
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(np.arange(5) * 0.2), clock=clock)
    assert p.tick() == 0
    assert p.step(+1) == 1 and p.step(+1) == 2 and p.step(-1) == 1
    assert p.step(-5) == 0                          # clamps without loop
    assert p.tick() is None                         # step already reported its frame
    assert p.seek(3) == 3 and p.tick() == 3 and p.tick() is None
    assert p.seek(time=0.45) == 2                   # latest frame at or before 0.45 s
    assert p.seek(time=-10) == 0 and p.seek(time=99) == 4
    p.play()                                        # at the end: starts again from 0
    assert p.tick() == 0
    p.seek(2)
    clock.advance(0.2)
    assert p.tick() == 3                            # playing continues from the seek
    with pytest.raises(InputError):
        p.seek(5)
    with pytest.raises(InputError):
        p.seek()


def test_loop_wraps_and_steps_wrap():
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(np.arange(4) * 0.25), clock=clock, loop=True)
    assert p.duration == pytest.approx(1.0)
    p.tick()
    p.play()
    got = [i for _, i in play_collect(p, clock, 2.3, dt=0.01)]
    assert got == [1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert p.playing
    assert p.step(-1) == 0 and p.step(-1) == 3     # wraps backwards


def test_speed_change_while_playing_keeps_position():
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times(np.arange(20) * 0.1), clock=clock)
    p.tick()
    p.play()
    clock.advance(0.5)
    assert p.tick() == 5
    p.speed = 2.0
    clock.advance(0.25)                             # 0.5 recorded seconds at 2x
    assert p.tick() == 10
    with pytest.raises(InputError):
        p.speed = 0
    with pytest.raises(InputError):
        p.speed = float("nan")


def test_frame_at():
    p = SweepPlayer(sweep_with_times([10.0, 10.5, 11.0]), clock=FakeClock())
    assert [p.frame_at(t) for t in (0, 10.0, 10.49, 10.5, 10.9, 11.0, 50)] == [0, 0, 0, 1, 1, 2, 2]


def test_empty_sweep_and_path_source(tmp_path):
    p = SweepPlayer(sweep_with_times([]), clock=FakeClock())
    assert p.tick() is None and p.current_index is None and p.step(1) is None
    path = tmp_path / "s.mha"
    write_sequence(sweep_with_times([0.0, 0.04, 0.08]), path)
    clock = FakeClock()
    p = SweepPlayer(str(path), clock=clock)
    assert len(p) == 3 and p.tick() == 0
    with pytest.raises(InputError):
        SweepPlayer(object())


def test_iter_frames_sleeps_until_each_frame_is_due():
    clock = FakeClock()
    sleeps = []

    def fake_sleep(dt):
        sleeps.append(round(dt, 9))
        clock.advance(dt)

    times = [5.0, 5.1, 5.3, 5.35]
    p = SweepPlayer(sweep_with_times(times), speed=2.0, clock=clock)
    walls, got = [], []
    for i in p.iter_frames(sleep=fake_sleep):
        got.append(i)
        walls.append(round(clock.t - 1000.0, 9))
    assert got == [0, 1, 2, 3]
    assert walls == pytest.approx([0.0, 0.05, 0.15, 0.175])   # recorded gaps / 2
    # a late consumer is not made to wait and loses no frame
    p.seek(0)
    gen = p.iter_frames(sleep=fake_sleep)
    assert next(gen) == 0
    clock.advance(10.0)
    n_sleeps = len(sleeps)
    assert list(gen) == [1, 2, 3] and len(sleeps) == n_sleeps


def test_iter_frames_loops():
    clock = FakeClock()
    p = SweepPlayer(sweep_with_times([0.0, 0.5]), clock=clock, loop=True)
    gen = p.iter_frames(sleep=clock.advance)
    got = [next(gen) for _ in range(5)]
    assert got == [0, 1, 0, 1, 0]
    assert clock.t - 1000.0 == pytest.approx(2.0)               # period = 1 s (0.5 + one interval)
