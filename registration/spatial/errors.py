"""The project's error hierarchy.

Messages name the file, the field and the fix. Logic raises; only the GUI
shows dialogs and only the CLI maps errors to exit codes (InputError -> 2).
"""
from __future__ import annotations

import os
from typing import Any, Collection, Mapping, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

SHOWN_VALUE_CHARS = 60   # a bad value is quoted up to this many characters (files can hold junk)


class ProjectError(Exception):
    """Base class of every error this project raises on purpose."""


class InputError(ProjectError, ValueError):
    """Bad input: a file, a field or an argument that cannot be used.

    Build it with :func:`input_error` so the message always has the form
    ``<file>: <what is wrong>; <how to fix it>``.
    """

    def __init__(self, message: str, *, path: Optional[PathLike] = None,
                 fix: Optional[str] = None):
        self.path = None if path is None else os.fspath(path)
        self.fix = fix
        text = message
        if self.path is not None:
            text = f"{self.path}: {text}"
        if fix:
            text = f"{text}; {fix}"
        super().__init__(text)


class RegistrationError(ProjectError):
    """A registration could not be computed (not bad input: the method failed)."""


class PlanningError(ProjectError):
    """A plan could not be computed."""


class CancelledError(ProjectError):
    """Long work was cancelled by its caller (progress callback returned False)."""


def read_bytes(file_path, what: str, *, path=None, fix: str = "check the path") -> bytes:
    """The whole content of ``file_path``, or one InputError "<what> (<OS reason>)" naming
    ``path`` (the file the user gave; default ``file_path``) and how to fix it."""
    try:
        with open(file_path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise InputError(f"{what} ({exc.strerror})", path=path if path is not None else file_path,
                         fix=fix) from None


def check_choice(value: Any, choices: Union[Collection, Mapping], what: str, *,
                 path: Optional[PathLike] = None, fix: Optional[str] = None) -> Any:
    """``value`` if it is one of ``choices``, else InputError listing the allowed choices.

    ``choices`` is a collection of allowed values or a mapping from allowed
    values (e.g. aliases) to the value to use; for a mapping the mapped value
    is returned. ``what`` names the setting ("compounding", "NRRD encoding",
    ...); the message reads "<what> '<value>' is not supported (choices: a, b)".
    Callers normalise case first when the setting is case-insensitive.
    """
    try:
        allowed = value in choices
    except TypeError:              # an unhashable value (a list, a dict) is never a choice
        allowed = False
    if allowed:
        return choices[value] if isinstance(choices, Mapping) else value
    listed = ", ".join(str(c) for c in choices)
    shown = str(value)[:SHOWN_VALUE_CHARS]
    raise InputError(f"{what} '{shown}' is not supported (choices: {listed})", path=path, fix=fix)
