"""One way to show errors: a dialog for the action that failed, details in the log.

Use :meth:`ErrorReporter.action` around every user action::

    with reporter.action("Open CT"):
        ...

An :class:`~registration.spatial.errors.InputError` is shown as its own message
("file: what is wrong; how to fix it"); anything else as "unexpected error"
with the traceback in the log panel. The dialog is non-modal so the window
keeps running (and tests can read it). :func:`install_excepthook` routes
uncaught exceptions (e.g. in Qt slots) to the same place.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from typing import List, Optional, Tuple

from PyQt5.QtCore import QObject, Qt, pyqtSignal
from PyQt5.QtWidgets import QMessageBox, QPlainTextEdit

from registration.spatial.errors import CancelledError, InputError, ProjectError

log = logging.getLogger("ctus.gui")


def describe(exc: BaseException) -> Tuple[str, str]:
    """(short message for the dialog, kind) of an exception."""
    if isinstance(exc, InputError):
        return str(exc), "bad input"
    if isinstance(exc, CancelledError):
        return str(exc) or "cancelled", "cancelled"
    if isinstance(exc, ProjectError):
        return str(exc), "failed"
    return f"{type(exc).__name__}: {exc}", "unexpected error"


class LogPanel(QPlainTextEdit):
    """Read-only log text (the "Log" dock)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("log_panel")
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)

    def append_line(self, text: str) -> None:
        self.appendPlainText(text)


class ErrorReporter(QObject):
    """Shows failures of user actions; keeps a history tests and the log can read."""

    reported = pyqtSignal(str, str)   # action, message

    def __init__(self, parent_widget=None, log_panel: Optional[LogPanel] = None):
        super().__init__(parent_widget)
        self.parent_widget = parent_widget
        self.log_panel = log_panel
        self.history: List[Tuple[str, str]] = []
        self.last_dialog: Optional[QMessageBox] = None
        self.show_dialogs = True

    def info(self, text: str) -> None:
        log.info(text)
        if self.log_panel is not None:
            self.log_panel.append_line(text)

    def report(self, action: str, exc: BaseException, tb: Optional[str] = None) -> None:
        message, kind = describe(exc)
        details = tb or "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.history.append((action, message))
        log.warning("%s failed (%s): %s", action, kind, message)
        if self.log_panel is not None:
            self.log_panel.append_line(f"[{kind}] {action}: {message}")
            if kind == "unexpected error":
                self.log_panel.append_line(details.rstrip())
        self.reported.emit(action, message)
        if self.show_dialogs and kind != "cancelled":
            self._dialog(action, kind, message, details)

    def _dialog(self, action: str, kind: str, message: str, details: str) -> None:
        if self.last_dialog is not None:
            self.last_dialog.close()
        box = QMessageBox(QMessageBox.Critical if kind != "bad input" else QMessageBox.Warning,
                          f"{action} failed", f"{action} failed ({kind}).", QMessageBox.Ok,
                          self.parent_widget)
        box.setObjectName("error_dialog")
        box.setInformativeText(message)
        if kind == "unexpected error":
            box.setDetailedText(details)
        box.setWindowModality(Qt.NonModal)
        box.setAttribute(Qt.WA_DeleteOnClose, False)
        box.show()
        self.last_dialog = box

    @contextlib.contextmanager
    def action(self, name: str):
        """Run a user action; on failure report it and swallow the error (state is kept)."""
        try:
            yield
        except Exception as exc:  # the one place that turns any failure into a dialog
            self.report(name, exc)


def install_excepthook(reporter: ErrorReporter):
    """Route uncaught exceptions to ``reporter``; returns the previous hook."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        try:
            reporter.report("Unexpected error", exc, text)
        except Exception:  # never let the hook itself crash the app
            previous(exc_type, exc, tb)

    sys.excepthook = hook
    return previous
