"""Sweep player: play/pause, step, scrub, speed; frame number and timestamp;
INVALID-tracking frames marked red on the timeline.

Replay follows the recording's own timestamps (seconds) scaled by the speed
(the engine's :class:`~registration.ultrasound.player.SweepPlayer` is the clock, polled
by a QTimer); :attr:`PlayerWidget.frame_changed` carries the frame index.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt5.QtCore import QRectF, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QWidget

from registration.ultrasound.player import SweepPlayer

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


class TimelineBar(QWidget):
    """Frames as a bar: INVALID frames red, current frame a white marker; click/drag to scrub."""

    scrubbed = pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("timeline")
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.valid = np.zeros(0, bool)
        self.current = 0

    def set_valid(self, valid: np.ndarray) -> None:
        self.valid = np.asarray(valid, bool)
        self.update()

    def set_current(self, index: int) -> None:
        self.current = int(index)
        self.update()

    def index_at(self, x: float) -> int:
        n = len(self.valid)
        if n == 0:
            return 0
        return int(np.clip(x / max(self.width(), 1) * n, 0, n - 1))

    def x_of(self, index: int) -> float:
        n = max(len(self.valid), 1)
        return (index + 0.5) / n * self.width()

    def paintEvent(self, event):  # noqa: N802
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(self.rect(), QColor(60, 140, 60))
        n = len(self.valid)
        if n == 0:
            p.fillRect(self.rect(), QColor(70, 70, 70))
            p.end()
            return
        bad = np.flatnonzero(~self.valid)
        for i in bad:
            p.fillRect(QRectF(i / n * w, 0, max(w / n, 1.0), h), QColor(220, 40, 40))
        x = self.x_of(self.current)
        p.fillRect(QRectF(x - 1.5, 0, 3, h), QColor(255, 255, 255))
        p.end()

    def mousePressEvent(self, event):  # noqa: N802
        self.scrubbed.emit(self.index_at(event.pos().x()))

    def mouseMoveEvent(self, event):  # noqa: N802
        if event.buttons() & Qt.LeftButton:
            self.scrubbed.emit(self.index_at(event.pos().x()))


class PlayerWidget(QWidget):
    """Controls + timeline over :class:`registration.ultrasound.player.SweepPlayer` (the replay clock).

    A QTimer polls ``SweepPlayer.tick()``; the player decides which frame is
    due from the recorded timestamps and the speed (frames are skipped, never
    queued, when the view is slower than the recording).
    """

    frame_changed = pyqtSignal(int)
    playing_changed = pyqtSignal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("player")
        self.clock: Optional[SweepPlayer] = None
        self.timestamps = np.zeros(0)
        self.index = 0
        self.speed = 1.0
        self.loop = True
        self._timer = QTimer(self)
        self._timer.setInterval(4)     # ms; the clock picks frames by time, the tick only bounds latency
        self._timer.timeout.connect(self._tick)

        self.play_button = QToolButton(text="Play")
        self.play_button.setObjectName("play_button")
        self.play_button.setCheckable(True)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.back_button = QToolButton(text="<")
        self.back_button.setObjectName("step_back_button")
        self.back_button.clicked.connect(lambda: self.step(-1))
        self.fwd_button = QToolButton(text=">")
        self.fwd_button.setObjectName("step_forward_button")
        self.fwd_button.clicked.connect(lambda: self.step(1))
        self.speed_box = QComboBox()
        self.speed_box.setObjectName("speed_box")
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}x", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(SPEEDS[i]))
        self.label = QLabel("no sweep")
        self.label.setObjectName("frame_label")
        self.timeline = TimelineBar()
        self.timeline.scrubbed.connect(self.seek)

        # One row (controls, timeline, frame/time) so the player costs the views little height;
        # the label is as wide as its longest text so it is never elided.
        self.label.setMinimumWidth(self.label.fontMetrics().horizontalAdvance(
            "frame 00000/00000   t = 0000.00 s   INVALID tracking") + 8)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        for wdg in (self.back_button, self.play_button, self.fwd_button, self.speed_box):
            row.addWidget(wdg)
        row.addWidget(self.timeline, 1)
        row.addWidget(self.label)
        self._set_enabled(False)

    # ------------------------------------------------------------ model
    def set_sweep(self, sweep, valid: Optional[np.ndarray] = None) -> None:
        """``sweep``: anything with ``timestamps`` (a Sweep) or None; ``valid``: bool [n] tracking."""
        self.pause()
        self.clock = None if sweep is None or len(sweep.timestamps) == 0 else \
            SweepPlayer(sweep, speed=self.speed, loop=self.loop)
        self.timestamps = np.zeros(0) if self.clock is None else np.asarray(sweep.timestamps, float)
        self.timeline.set_valid(np.zeros(0, bool) if valid is None else valid)
        self._set_enabled(self.clock is not None)
        self.index = 0
        if self.clock is not None:
            self.seek(0, force=True)
        else:
            self.label.setText("no sweep")

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def playing(self) -> bool:
        return self.clock is not None and self.clock.playing

    def _set_enabled(self, on: bool) -> None:
        for wdg in (self.play_button, self.back_button, self.fwd_button, self.speed_box, self.timeline):
            wdg.setEnabled(on)
            wdg.setFocusPolicy(Qt.NoFocus)   # Space/arrows stay window shortcuts

    # ------------------------------------------------------------ control
    def seek(self, index: int, force: bool = False) -> None:
        """Go to frame ``index``; playing continues from there."""
        if self.clock is None:
            return
        index = int(np.clip(index, 0, self.n_frames - 1))
        if index == self.index and not force:
            return
        self.clock.seek(index)
        self.clock.tick()                  # consume the clock's own "new frame" report
        self._show(self.clock.current_index)

    def step(self, delta: int) -> None:
        if self.clock is None:
            return
        self.pause()
        self._show(self.clock.step(int(delta)))

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        if self.clock is not None:
            self.clock.speed = self.speed

    def play(self) -> None:
        if self.n_frames > 1 and not self.playing:
            self.play_button.setChecked(True)

    def pause(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def _on_play_toggled(self, on: bool) -> None:
        if self.clock is None:
            return
        if on and self.n_frames > 1:
            self.clock.play()
            self._timer.start()
            self.play_button.setText("Pause")
        else:
            self.clock.pause()
            self._timer.stop()
            self.play_button.setText("Play")
            self._show(self.clock.tick())
        self.playing_changed.emit(self.playing)

    def _tick(self) -> None:
        self._show(self.clock.tick())
        if not self.clock.playing and self.play_button.isChecked():   # reached the end (no loop)
            self.play_button.setChecked(False)

    def _show(self, index: Optional[int]) -> None:
        if index is None:
            return
        self.index = int(index)
        self.timeline.set_current(index)
        valid = self.timeline.valid
        bad = len(valid) == self.n_frames and not valid[index]
        self.label.setText(f"frame {index + 1}/{self.n_frames}   t = {self.timestamps[index] - self.timestamps[0]:.2f} s"
                           + ("   INVALID tracking" if bad else ""))
        self.frame_changed.emit(int(index))
