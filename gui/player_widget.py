"""Sweep player: play/pause, step, scrub, speed; frame number and timestamp;
INVALID-tracking frames marked red on the timeline.

Replay follows the recording's own timestamps (seconds) scaled by the speed,
driven by a QTimer; it emits :attr:`PlayerWidget.frame_changed` with the
frame index, and never skips backwards.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PyQt5.QtCore import QRectF, Qt, QTimer, pyqtSignal
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout,
                             QWidget)

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


class TimelineBar(QWidget):
    """Frames as a bar: INVALID frames red, current frame a white marker; click/drag to scrub."""

    scrubbed = pyqtSignal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("timeline")
        self.setMinimumHeight(18)
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
    frame_changed = pyqtSignal(int)
    playing_changed = pyqtSignal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("player")
        self.timestamps = np.zeros(0)
        self.index = 0
        self.speed = 1.0
        self.loop = True
        self._timer = QTimer(self)
        self._timer.setInterval(10)    # ms; frames are chosen by time, so the tick only bounds latency
        self._timer.timeout.connect(self._tick)
        self._t0_wall = 0.0
        self._t0_rec = 0.0

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

        row = QHBoxLayout()
        for wdg in (self.back_button, self.play_button, self.fwd_button, self.speed_box):
            row.addWidget(wdg)
        row.addWidget(self.label, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addLayout(row)
        lay.addWidget(self.timeline)
        self._set_enabled(False)

    # ------------------------------------------------------------ model
    def set_sweep(self, timestamps: Optional[np.ndarray], valid: Optional[np.ndarray]) -> None:
        self.pause()
        self.timestamps = np.zeros(0) if timestamps is None else np.asarray(timestamps, float)
        self.timeline.set_valid(np.zeros(0, bool) if valid is None else valid)
        self._set_enabled(len(self.timestamps) > 0)
        self.index = 0
        if len(self.timestamps):
            self.seek(0, force=True)
        else:
            self.label.setText("no sweep")

    @property
    def n_frames(self) -> int:
        return len(self.timestamps)

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def _set_enabled(self, on: bool) -> None:
        for wdg in (self.play_button, self.back_button, self.fwd_button, self.speed_box, self.timeline):
            wdg.setEnabled(on)

    # ------------------------------------------------------------ control
    def seek(self, index: int, force: bool = False) -> None:
        """Go to frame ``index`` (user action: restarts the replay clock there)."""
        if self.n_frames == 0:
            return
        index = int(np.clip(index, 0, self.n_frames - 1))
        if index == self.index and not force:
            return
        self._show(index)
        if self.playing:
            self._restart_clock()

    def _show(self, index: int) -> None:
        self.index = index
        self.timeline.set_current(index)
        valid = self.timeline.valid
        bad = len(valid) == self.n_frames and not valid[index]
        self.label.setText(f"frame {index + 1}/{self.n_frames}   t = {self.timestamps[index] - self.timestamps[0]:.2f} s"
                           + ("   INVALID tracking" if bad else ""))
        self.frame_changed.emit(index)

    def step(self, delta: int) -> None:
        self.pause()
        self.seek(self.index + int(delta))

    def set_speed(self, speed: float) -> None:
        self.speed = float(speed)
        if self.playing:
            self._restart_clock()

    def play(self) -> None:
        if self.n_frames > 1 and not self.playing:
            self.play_button.setChecked(True)

    def pause(self) -> None:
        if self.play_button.isChecked():
            self.play_button.setChecked(False)

    def toggle(self) -> None:
        self.pause() if self.playing else self.play()

    def _on_play_toggled(self, on: bool) -> None:
        if on and self.n_frames > 1:
            if self.index >= self.n_frames - 1:
                self.seek(0)
            self._restart_clock()
            self._timer.start()
            self.play_button.setText("Pause")
        else:
            self._timer.stop()
            self.play_button.setText("Play")
        self.playing_changed.emit(self.playing)

    def _restart_clock(self) -> None:
        self._t0_wall = time.perf_counter()
        self._t0_rec = float(self.timestamps[self.index])

    def _tick(self) -> None:
        t = self._t0_rec + (time.perf_counter() - self._t0_wall) * self.speed
        target = int(np.searchsorted(self.timestamps, t, side="right") - 1)
        target = max(target, self.index)
        if target >= self.n_frames - 1:
            if self.loop and self.index == self.n_frames - 1:
                self.seek(0)
                self._restart_clock()
                return
            target = self.n_frames - 1
        if target != self.index:
            self._show(target)
