"""Status bar of the main window: cursor readout, worker progress + stage + Cancel, tracking
and registration state.

A mixin of :class:`gui.window.main_window.MainWindow`. Fields, left to right: the cursor
(LPS mm, HU and structure name; written by ``set_cursor``), then permanently, while a
worker runs (see :mod:`gui.window.window_workers`), the work's name and current stage
(the engine's message, e.g. "Plan lesions: lesion 2 of 6 (lesion_2): safety margins";
full text in the tooltip), its progress bar (0..100 %) and Cancel; then the tracking
state of the shown frame (frame numbers 1-based; in live mode the live stream's own
text) and the registration in plain words.
"""
from __future__ import annotations

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QProgressBar, QPushButton, QSizePolicy

#: Width (px) of the stage text while a worker runs: room for "Plan lesions: lesion 2 of 6
#: (lesion_2): safety margins" at 1366 px wide beside the cursor readout, tracking and registration.
STAGE_TEXT_WIDTH = 360


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
        self.progress.setObjectName("worker_progress")
        self.progress.setFixedWidth(110)
        self.progress.setRange(0, 100)
        self.progress.setFormat("%p %")
        self.progress.hide()
        self.stage_label = QLabel()
        self.stage_label.setObjectName("worker_stage")
        self.stage_label.setFixedWidth(STAGE_TEXT_WIDTH)
        self.stage_label.setSizePolicy(QSizePolicy.Fixed, QSizePolicy.Preferred)
        self.stage_label.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_work)
        sb.addWidget(self.cursor_label, 1)
        for w in (self.stage_label, self.progress, self.cancel_button, self.tracking_label, self.registration_label):
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
                                        else f"Registration: {self.registration.quality_text()}")

    def show_stage(self, name: str, fraction: float, message: str) -> None:
        """The running work's name and stage beside its progress bar; the text is shortened
        (middle) only if it does not fit, the whole of it stays in the tooltip."""
        self.progress.setValue(int(100 * fraction))
        text = f"{name}: {message}" if message else name
        metrics = self.stage_label.fontMetrics()
        self.stage_label.setText(metrics.elidedText(text, Qt.ElideMiddle, self.stage_label.width() - 4))
        self.stage_label.setToolTip(text)
