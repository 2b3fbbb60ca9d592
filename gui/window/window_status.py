"""Status bar of the main window: cursor readout, worker progress + Cancel, tracking
and registration state.

A mixin of :class:`gui.window.main_window.MainWindow`. Fields, left to right: the cursor
(LPS mm, HU and structure name; written by ``set_cursor``), then permanently
the worker progress bar (0..100 %) with its Cancel button (shown only while a
worker runs, see :mod:`gui.window.window_workers`), the tracking state of the shown
frame (frame numbers 1-based; in live mode the live stream's own text) and the
registration quality.
"""
from __future__ import annotations

from PyQt5.QtWidgets import QLabel, QProgressBar, QPushButton


class StatusBarMixin:
    """Status-bar widgets and their texts; mixed into MainWindow (needs its state)."""

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.tracking_label = QLabel()
        self.tracking_label.setObjectName("tracking_status")
        self.registration_label = QLabel()
        self.registration_label.setObjectName("registration_status")
        self.cursor_label = QLabel()
        self.cursor_label.setObjectName("cursor_status")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setRange(0, 100)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_work)
        sb.addWidget(self.cursor_label, 1)
        for w in (self.progress, self.cancel_button, self.tracking_label, self.registration_label):
            sb.addPermanentWidget(w)

    def _update_status(self) -> None:
        live = getattr(self, "live", None)
        if live is not None and live.client is not None:
            self.tracking_label.setText(live.status_text)   # live mode owns the tracking field
        elif self.sweep is None:
            self.tracking_label.setText("no tracking")
        elif self._valid[self.player.index]:
            self.tracking_label.setText(f"tracking OK (frame {self.player.index + 1})")
        else:
            self.tracking_label.setText(f"tracking INVALID (frame {self.player.index + 1})")
        self.registration_label.setText("no registration" if self.registration is None
                                        else f"registration {self.registration.quality_text()}")
