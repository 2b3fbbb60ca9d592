"""What the two PACS dialogs share: saved servers, the server fields, and one task with progress.

Servers are kept in QSettings (INI, user scope, ``ctus/ctus-gui``; tests point
``QSettings.setPath`` at a temporary folder) under ``pacs/servers``: the PACS AE
title, host, DICOM port, our (calling) AE title and an optional C-MOVE port
(0: retrieve by C-GET). :class:`ServerBox` edits them and builds the
:class:`registration.pacs.node.Pacs` every engine call takes.

:class:`PacsTaskDialog` runs one engine call at a time in a
:class:`gui.core.workers.Worker` with a progress bar, a status line and a
Cancel button. Progress may come from pynetdicom's network thread (a
retrieval calls it once per instance received), so it reaches the widgets
through a queued signal only. Cancel sets an event the progress callback
answers with False; the engine then raises CancelledError and cleans up. A
report of 100 % is never refused, so work that has finished (a series placed
in its folder) is never reported as cancelled. Errors are shown in the
dialog's status line, not as a separate message box: the window stays as it was.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Callable, List, Optional

from PyQt5.QtCore import QSettings, Qt, pyqtSlot
from PyQt5.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
)

from gui.core.workers import Worker
from registration.pacs.node import DEFAULT_CALLING_AET, Pacs
from registration.spatial.errors import CancelledError, InputError

TIMEOUT_S = 30.0            # association, each answer and network silence (the CLI's default)
ERROR_STYLE = "color: #b3261e"
# The engine's messages name the CLI's options; in the dialogs they name the fields.
_GUI_WORDS = ((r"the part before @ in --server; ", "the 'AE title' field; "),
              (r"--server AET@HOST:PORT", "the server fields (AE title, host, port)"),
              (r"--server", "the server fields"), (r"--calling-aet", "the 'Our AE title' field"),
              (r"--move-port", "the 'C-MOVE port' field"), (r"--timeout", "the time-out"))


def settings() -> QSettings:
    return QSettings(QSettings.IniFormat, QSettings.UserScope, "ctus", "ctus-gui")


def gui_text(exc: BaseException) -> str:
    """An engine error in the dialogs' words (fields instead of CLI options)."""
    text = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    for pattern, words in _GUI_WORDS:
        text = re.sub(pattern, words, text)
    return text


@dataclass
class PacsServer:
    """One saved PACS: its AE title, host and DICOM port; our AE title; C-MOVE port (0: C-GET)."""

    called_aet: str
    host: str
    port: int
    calling_aet: str = DEFAULT_CALLING_AET
    move_port: int = 0

    def pacs(self) -> Pacs:
        """The engine's address (InputError naming the bad field)."""
        return Pacs(self.called_aet.strip(), self.host.strip(), int(self.port),
                    calling_aet=self.calling_aet.strip(), timeout_s=TIMEOUT_S)

    def label(self) -> str:
        way = f"C-MOVE to port {self.move_port}" if self.move_port else "C-GET"
        return f"{self.called_aet}@{self.host}:{self.port} as {self.calling_aet} ({way})"


def load_servers() -> List[PacsServer]:
    s = settings()
    out = []
    for n in range(s.beginReadArray("pacs/servers")):
        s.setArrayIndex(n)
        try:
            out.append(PacsServer(str(s.value("called_aet", "")), str(s.value("host", "")),
                                  int(s.value("port", 104)), str(s.value("calling_aet", DEFAULT_CALLING_AET)),
                                  int(s.value("move_port", 0))))
        except (TypeError, ValueError):     # a hand-edited entry that is not numbers: skip it
            continue
    s.endArray()
    return out


def save_servers(servers: List[PacsServer], last: int) -> None:
    s = settings()
    s.remove("pacs/servers")
    s.beginWriteArray("pacs/servers", len(servers))
    for n, sv in enumerate(servers):
        s.setArrayIndex(n)
        for key in ("called_aet", "host", "port", "calling_aet", "move_port"):
            s.setValue(key, getattr(sv, key))
    s.endArray()
    s.setValue("pacs/last_server", int(last))
    s.sync()


class ServerBox(QGroupBox):
    """Saved servers (combo box), the fields of the chosen one, Save and Remove."""

    def __init__(self, parent=None, *, move_port: bool = True):
        super().__init__("PACS server", parent)
        self.setObjectName("pacs_server_box")
        self.servers = load_servers()
        self.choice = QComboBox()
        self.choice.setObjectName("pacs_server_choice")
        self.aet, self.host, self.our_aet = QLineEdit(), QLineEdit(), QLineEdit(DEFAULT_CALLING_AET)
        for w, name, tip in ((self.aet, "pacs_aet", "the PACS's AE title (called AE title)"),
                             (self.host, "pacs_host", "host name or IP address of the PACS"),
                             (self.our_aet, "pacs_our_aet", "our AE title, as registered at the PACS")):
            w.setObjectName(name)
            w.setToolTip(tip)
        self.aet.setMaxLength(16)
        self.our_aet.setMaxLength(16)
        self.port = QSpinBox()
        self.port.setObjectName("pacs_port")
        self.port.setRange(1, 65535)
        self.port.setValue(104)
        self.move_port = QSpinBox()
        self.move_port.setObjectName("pacs_move_port")
        self.move_port.setRange(0, 65535)
        self.move_port.setSpecialValueText("none: C-GET")
        self.move_port.setToolTip("retrieve by C-MOVE to our storage SCP on this port (the PACS must know "
                                  "our AE title at this computer's address and port); none: C-GET")
        self.save_button = QPushButton("Save server")
        self.save_button.setObjectName("pacs_save_server")
        self.save_button.setToolTip("keep these settings in the list of servers")
        self.remove_button = QPushButton("Remove")
        self.remove_button.setObjectName("pacs_remove_server")
        lay = QGridLayout(self)
        lay.addWidget(QLabel("Server"), 0, 0)
        lay.addWidget(self.choice, 0, 1, 1, 5)
        lay.addWidget(self.save_button, 0, 6)
        lay.addWidget(self.remove_button, 0, 7)
        for col, (text, w) in enumerate((("AE title", self.aet), ("Host", self.host), ("Port", self.port),
                                         ("Our AE title", self.our_aet))):
            lay.addWidget(QLabel(text), 1, 2 * col)
            lay.addWidget(w, 1, 2 * col + 1)
        lay.setColumnStretch(3, 1)
        if move_port:
            lay.addWidget(QLabel("C-MOVE port"), 2, 0)
            lay.addWidget(self.move_port, 2, 1)
        else:
            self.move_port.hide()
        self.choice.currentIndexChanged.connect(self._chosen)
        self.save_button.clicked.connect(self.save)
        self.remove_button.clicked.connect(self.remove)
        self._fill(int(settings().value("pacs/last_server", 0) or 0))

    def _fill(self, index: int) -> None:
        self.choice.blockSignals(True)
        self.choice.clear()
        for sv in self.servers:
            self.choice.addItem(sv.label())
        self.choice.addItem("(new server)")
        self.choice.blockSignals(False)
        self.choice.setCurrentIndex(min(max(index, 0), len(self.servers)))
        self._chosen(self.choice.currentIndex())

    def _chosen(self, index: int) -> None:
        self.remove_button.setEnabled(0 <= index < len(self.servers))
        if 0 <= index < len(self.servers):
            sv = self.servers[index]
            self.aet.setText(sv.called_aet)
            self.host.setText(sv.host)
            self.port.setValue(sv.port)
            self.our_aet.setText(sv.calling_aet)
            self.move_port.setValue(sv.move_port)

    def server(self) -> PacsServer:
        return PacsServer(self.aet.text().strip(), self.host.text().strip(), self.port.value(),
                          self.our_aet.text().strip(), self.move_port.value())

    def save(self) -> None:
        """Keep the fields as the chosen server (or a new one); InputError when they are not valid."""
        sv = self.server()
        sv.pacs()
        index = self.choice.currentIndex()
        if 0 <= index < len(self.servers):
            self.servers[index] = sv
        else:
            self.servers.append(sv)
            index = len(self.servers) - 1
        save_servers(self.servers, index)
        self._fill(index)

    def remove(self) -> None:
        index = self.choice.currentIndex()
        if 0 <= index < len(self.servers):
            del self.servers[index]
            save_servers(self.servers, max(0, index - 1))
            self._fill(max(0, index - 1))

    def remember(self) -> None:
        """The server just used becomes the one chosen next time (when it is a saved one)."""
        sv = self.server()
        if sv in self.servers:
            save_servers(self.servers, self.servers.index(sv))


class PacsTaskDialog(QDialog):
    """A dialog that runs one PACS task at a time: progress bar, status line, Cancel/Close."""

    def __init__(self, window, parent=None):
        super().__init__(parent or window)
        self.window = window
        self.worker: Optional[Worker] = None
        self._stop = threading.Event()
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("pacs_progress")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setTextVisible(False)
        self.progress_bar.hide()
        self.status = QLabel()
        self.status.setObjectName("pacs_status")
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignLeft | Qt.AlignTop)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.status.setMinimumHeight(2 * self.fontMetrics().lineSpacing())
        self.cancel_button = QPushButton("Close")
        self.cancel_button.setObjectName("pacs_cancel")
        self.cancel_button.clicked.connect(self.reject)
        QApplication.instance().aboutToQuit.connect(self.shut_down)

    # ------------------------------------------------------------ one task
    def run_task(self, name: str, fn: Callable, on_done: Callable) -> Worker:
        """Run ``fn(progress)`` in a worker; ``on_done(result)`` on the GUI thread."""
        self._stop.clear()
        stop = self._stop

        def work(progress):
            def cb(fraction: float, message: str) -> bool:
                progress(fraction, message)         # a signal: safe from any thread
                return fraction >= 1.0 or not stop.is_set()
            return fn(cb)

        w = self.worker = Worker(name, work)
        w.progress.connect(self._progress, Qt.QueuedConnection)
        w.succeeded.connect(on_done)
        w.failed.connect(lambda exc, tb: self._failed(name, exc, tb))
        w.finished.connect(self._finished)
        self.set_status(f"{name}...")
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip(f"stop: {name}")
        self.set_busy(True)
        self.window.reporter.info(f"{name}...")
        w.start()
        return w

    def _progress(self, fraction: float, message: str) -> None:
        if self.worker is not None:
            self.progress_bar.setValue(int(round(1000 * fraction)))
            if not self._stop.is_set():
                self.set_status(message)

    def _failed(self, name: str, exc, tb: str) -> None:
        if isinstance(exc, CancelledError):
            self.set_status(self.cancelled_text(name))
            self.window.reporter.info(f"{name}: cancelled")
            return
        text = gui_text(exc)
        self.set_status(f"{name} failed: {text}", error=True)
        self.window.reporter.info(f"[failed] {name}: {text}")
        if not isinstance(exc, InputError):
            self.window.reporter.info(tb.rstrip())

    def _finished(self) -> None:
        self.worker = None
        self.progress_bar.hide()
        self.cancel_button.setText("Close")
        self.cancel_button.setToolTip("close this dialog")
        self.set_busy(False)

    def set_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet(ERROR_STYLE if error else "")
        self.status.setText(text)

    def cancelled_text(self, name: str) -> str:
        return f"{name} cancelled."

    def set_busy(self, busy: bool) -> None:
        """Subclasses enable or disable their buttons."""

    # ------------------------------------------------------------ ways out
    def stop(self) -> None:
        if self.worker is not None:
            self._stop.set()
            self.set_status("Stopping...")

    def reject(self) -> None:   # Cancel, Escape and the title bar's close button
        if self.worker is not None:
            self.stop()
            return
        super().reject()

    @pyqtSlot()
    def shut_down(self) -> None:
        """The application quits: stop the task and wait for it (a running QThread must not be destroyed)."""
        w = self.worker
        if w is not None:
            self._stop.set()
            w.wait(int(2 * TIMEOUT_S * 1000))
