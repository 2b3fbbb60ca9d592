"""Replay clock for recorded sweeps: play / pause / step / seek at any speed, no GUI toolkit.

The GUI (or the live replay server) polls :meth:`SweepPlayer.tick` from its
own timer; ``tick()`` returns the sweep index of the frame that is due now, or
None when the frame on screen is still the right one. Playback follows the
recorded timestamps (seconds) scaled by ``speed``: frames whose time has
passed between two polls are skipped, as in a live stream, so a slow consumer
never falls behind. Indices are positions in the sweep (``sweep.frames[i]``);
frames are played in timestamp order even if the file stores them otherwise.

The clock is injected (``clock=time.monotonic`` by default, seconds) so tests
drive it deterministically.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable, Optional

import numpy as np

from registration.spatial.errors import InputError


class SweepPlayer:
    """Timestamp-driven playback over a sweep.

    ``sweep_or_source``: a :class:`~registration.spatial.sweep.Sweep`, anything with
    a ``timestamps`` array, or a path to a sweep file (opened with
    :func:`registration.io.sequence_io.load_sweep`). ``speed``: playback rate
    (1.0 = real time, 2.0 = twice as fast, 0.5 = half); ``loop``: restart at
    the end instead of stopping.
    """

    def __init__(self, sweep_or_source, speed: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, *, loop: bool = False):
        if isinstance(sweep_or_source, (str, os.PathLike)):
            from registration.io.sequence_io import load_sweep
            sweep_or_source = load_sweep(sweep_or_source)
        if not hasattr(sweep_or_source, "timestamps"):
            raise InputError("the player needs a sweep (or an object with timestamps) or a sweep file",
                             fix="pass a Sweep or the path of a sequence file")
        self.sweep = sweep_or_source
        ts = np.asarray(sweep_or_source.timestamps, dtype=float).reshape(-1)
        if not np.all(np.isfinite(ts)):
            raise InputError("the sweep has non-finite timestamps",
                             path=getattr(sweep_or_source, "source", None),
                             fix="repair the Timestamp fields of the sequence")
        self._order = np.argsort(ts, kind="stable")          # position -> sweep index
        self._times = ts[self._order]                          # sorted timestamps [s]
        self._clock = clock
        self.loop = bool(loop)
        self._speed = 1.0
        self.speed = speed
        self._pos = 0 if len(ts) else -1                       # current position in sorted order
        self._emitted: Optional[int] = None                    # last position handed out by tick()
        self._playing = False
        self._anchor_wall = 0.0
        self._anchor_media = float(self._times[0]) if len(ts) else 0.0

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self._times.size)

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"playback speed must be a positive number, got {value}",
                             fix="use e.g. 0.5, 1 or 2")
        if getattr(self, "_playing", False):
            self._reanchor()
        self._speed = value

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def current_index(self) -> Optional[int]:
        """Sweep index of the current frame (None for an empty sweep)."""
        return None if self._pos < 0 else int(self._order[self._pos])

    @property
    def current_time(self) -> Optional[float]:
        """Recorded timestamp (s) of the current frame."""
        return None if self._pos < 0 else float(self._times[self._pos])

    @property
    def duration(self) -> float:
        """Length of one pass in recorded seconds (last - first + one typical frame interval)."""
        if len(self) < 2:
            return 0.0
        return float(self._times[-1] - self._times[0] + np.median(np.diff(self._times)))

    # ------------------------------------------------------------------ control
    def play(self) -> None:
        if self._pos < 0 or self._playing:
            return
        if self._pos == len(self) - 1 and not self.loop and len(self) > 1:
            self._set_pos(0)  # play at the end starts again from the beginning
        self._anchor_wall = self._clock()
        self._anchor_media = float(self._times[self._pos])
        self._playing = True

    def pause(self) -> None:
        if self._playing:
            self._advance()
            self._playing = False

    def toggle(self) -> None:
        self.pause() if self._playing else self.play()

    def step(self, delta: int = 1) -> Optional[int]:
        """Pause and move ``delta`` frames (wraps when ``loop``, else clamps); returns the index."""
        if self._pos < 0:
            return None
        self.pause()
        pos = self._pos + int(delta)
        pos = pos % len(self) if self.loop else min(max(pos, 0), len(self) - 1)
        self._set_pos(pos)
        self._emitted = pos
        return self.current_index

    def seek(self, index: Optional[int] = None, *, time: Optional[float] = None) -> Optional[int]:
        """Jump to sweep ``index`` or to recorded ``time`` (s); playing continues from there.

        The next :meth:`tick` reports the new frame. Returns the new index.
        """
        if self._pos < 0:
            return None
        if (index is None) == (time is None):
            raise InputError("seek needs exactly one of index or time")
        if index is not None:
            index = int(index)
            if not 0 <= index < len(self):
                raise InputError(f"frame index {index} is outside 0..{len(self) - 1}")
            pos = int(np.flatnonzero(self._order == index)[0])
        else:
            pos = self._position_at(float(time))
        self._set_pos(pos)
        if self._playing:
            self._anchor_wall = self._clock()
            self._anchor_media = float(self._times[pos])
        return self.current_index

    def frame_at(self, t: float) -> Optional[int]:
        """Sweep index of the frame shown at recorded time ``t`` (s): the latest with timestamp <= t."""
        if self._pos < 0:
            return None
        return int(self._order[self._position_at(float(t))])

    def tick(self) -> Optional[int]:
        """Index of a frame that became due since the last call, or None.

        While paused, returns the current frame once after a seek (so the view
        updates) and None otherwise.
        """
        if self._pos < 0:
            return None
        if self._playing:
            self._advance()
        if self._emitted != self._pos:
            self._emitted = self._pos
            return self.current_index
        return None

    def iter_frames(self, sleep: Callable[[float], None] = time.sleep):
        """Blocking replay without a GUI timer (e.g. streaming a recording to a network client).

        Plays from the current frame and yields every sweep index in timestamp order,
        sleeping until each is due (recorded time difference / ``speed``). No frame is
        skipped: a late consumer gets the overdue frames back to back until it catches up.
        With ``loop`` the generator never ends (each pass lasts :attr:`duration`); close it
        to stop. For interactive play/pause/seek use :meth:`tick` instead.
        """
        if self._pos < 0:
            return
        pos = self._pos
        wall0, media0, offset = self._clock(), float(self._times[pos]), 0.0
        while True:
            due = wall0 + (float(self._times[pos]) + offset - media0) / self._speed
            wait = due - self._clock()
            if wait > 0:
                sleep(wait)
            self._set_pos(pos)
            self._emitted = pos
            yield int(self._order[pos])
            pos += 1
            if pos >= len(self):
                if not self.loop or len(self) < 2:
                    return
                pos, offset = 0, offset + self.duration

    # ------------------------------------------------------------------ internals
    def _set_pos(self, pos: int) -> None:
        self._pos = int(pos)

    def _position_at(self, t: float) -> int:
        pos = int(np.searchsorted(self._times, t, side="right")) - 1
        return min(max(pos, 0), len(self) - 1)

    def _media_now(self) -> float:
        return self._anchor_media + (self._clock() - self._anchor_wall) * self._speed

    def _reanchor(self) -> None:
        media = self._media_now()
        self._anchor_wall = self._clock()
        self._anchor_media = media

    def _advance(self) -> None:
        media = self._media_now()
        start, end = float(self._times[0]), float(self._times[-1])
        if media > end:
            period = self.duration
            if self.loop and period > 0:
                # Wrap into one pass, keeping phase so that looping stays in step with the clock.
                media = start + (media - start) % period
                self._anchor_wall = self._clock()
                self._anchor_media = media
            else:
                self._set_pos(len(self) - 1)
                self._playing = False
                return
        self._set_pos(self._position_at(media))
