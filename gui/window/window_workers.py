"""Background work of the main window: start :class:`~gui.core.workers.Worker` threads with
progress and Cancel in the status bar, cancel them, and wait for them.

A mixin of :class:`gui.window.main_window.MainWindow` (it uses the window's ``workers``
list, ``show_stage``, ``progress`` bar, ``cancel_button``, ``reporter`` and
``update_workflow``). Worker progress is a fraction 0..1 shown as 0..100 % with the
engine's stage message beside it; timeouts are in milliseconds. When a worker ends the
workflow bar is refreshed (a plan or an export may be done). Results are
delivered on the GUI thread inside ``reporter.action(name)``, so a failure shows
one dialog and is logged.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

from PyQt5.QtCore import QEventLoop
from PyQt5.QtWidgets import QApplication

from gui.core.workers import Worker


class WorkerMixin:
    """run_worker / cancel_work / wait_for_workers; mixed into MainWindow."""

    # ------------------------------------------------------------ workers
    def run_worker(self, name: str, fn, on_done: Callable, *args, before_start: Optional[Callable] = None,
                   **kwargs) -> Worker:
        """Run ``fn`` off the GUI thread with progress + cancel; ``on_done(result)`` on success.

        ``before_start(worker)`` connects the caller's own slots before the thread starts: a
        signal emitted before a connection exists is lost (the first progress message, or a
        failure of a worker that fails at once)."""
        w = Worker(name, fn, *args, **kwargs)
        self.workers.append(w)
        self.show_stage(name, 0.0, "starting")
        self.progress.show()
        self.stage_label.show()
        self.cancel_button.show()
        self.cancel_button.setToolTip(f"stop: {name}")
        w.progress.connect(lambda f, m: self.show_stage(name, f, m))

        def done(result):
            with self.reporter.action(name):
                on_done(result)
                self.reporter.info(f"{name}: done")

        def failed(exc, tb):
            self.reporter.report(name, exc, tb)

        def finished():
            if w in self.workers:
                self.workers.remove(w)
            if not self.workers:
                self.progress.hide()
                self.stage_label.hide()
                self.cancel_button.hide()
            self.update_workflow()

        w.succeeded.connect(done)
        w.failed.connect(failed)
        w.finished.connect(finished)
        self.reporter.info(f"{name}...")
        if before_start is not None:
            before_start(w)
        w.start()
        return w

    def cancel_work(self) -> None:
        for w in list(self.workers):
            w.cancel()

    def wait_for_workers(self, timeout_ms: int = 120000) -> None:
        """Let running workers finish while still processing events (results are delivered,
        the window repaints). Used to sequence start-up loading and session restore."""
        deadline = time.monotonic() + timeout_ms / 1000.0
        while self.workers and time.monotonic() < deadline:
            QApplication.processEvents(QEventLoop.AllEvents, 50)
            for w in list(self.workers):
                w.wait(20)
        QApplication.processEvents()
