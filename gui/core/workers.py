"""Long work off the GUI thread: a QThread with progress and cancel.

The work function receives a ``progress(fraction, message) -> bool`` callback
(fraction in [0, 1]); it returns False once cancel was requested, and the
work should then raise :class:`~registration.spatial.errors.CancelledError` or
return early. Engine functions taking ``progress=`` use exactly this form.
"""
from __future__ import annotations

import threading
import traceback
from typing import Callable, Optional

from PyQt5.QtCore import QThread, pyqtSignal

from registration.spatial.errors import CancelledError


class Worker(QThread):
    """Runs ``fn(*args, progress=cb, **kwargs)`` (or without ``progress`` if
    ``pass_progress=False``) in a thread; emits ``succeeded(result)`` or
    ``failed(exception, traceback_text)`` on the GUI thread."""

    progress = pyqtSignal(float, str)
    succeeded = pyqtSignal(object)
    failed = pyqtSignal(object, str)

    def __init__(self, name: str, fn: Callable, *args, pass_progress: bool = True, **kwargs):
        super().__init__()
        self.name = name
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._pass_progress = pass_progress
        self._cancel = threading.Event()
        self.result = None
        self.error: Optional[BaseException] = None

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _progress(self, fraction: float, message: str = "") -> bool:
        self.progress.emit(float(fraction), str(message))
        return not self._cancel.is_set()

    def run(self) -> None:
        try:
            kwargs = dict(self._kwargs)
            if self._pass_progress:
                kwargs["progress"] = self._progress
            result = self._fn(*self._args, **kwargs)
            if self._cancel.is_set():
                raise CancelledError(f"{self.name} was cancelled")
            self.result = result
            self.succeeded.emit(result)
        except BaseException as exc:  # reported on the GUI thread, never lost
            self.error = exc
            self.failed.emit(exc, traceback.format_exc())
