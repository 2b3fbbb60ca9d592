"""The PACS we talk to and who we are: :class:`Pacs`, its error class and progress reports.

``Pacs.parse("ORTHANC@pacs.example.org:4242")`` gives the called AE title,
host and port; our (calling) AE title and the time-outs travel with it so
every call of this wing gets one object. AE titles follow DICOM PS3.5 (AE
value representation): 1 to 16 characters, no backslash, no control
characters, not only spaces. Time-outs are seconds.

Errors from the network are :class:`PacsError`, a kind of
:class:`~registration.spatial.errors.InputError` (the CLI exits 2): what
needs fixing is the address, an AE title, or the PACS configuration, and the
message says which.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from registration.spatial.errors import CancelledError, InputError

DEFAULT_CALLING_AET = "CTUS"
ProgressFn = Callable[[float, str], Optional[bool]]   # (fraction 0..1, message) -> False cancels
_SERVER_FIX = "write --server AET@HOST:PORT, e.g. ORTHANC@127.0.0.1:4242"


class PacsError(InputError):
    """The PACS could not be reached, refused us, or answered with a failure or with less
    than it announced. Raised with ``path`` = the server (``AET@HOST:PORT``)."""


def check_aet(aet: str, what: str = "AE title") -> str:
    """``aet`` stripped, or InputError if it is not a DICOM AE title."""
    text = str(aet).strip()
    if not 1 <= len(text) <= 16 or "\\" in text or re.search(r"[\x00-\x1f\x7f]", text):
        raise InputError(f"{what} {aet!r} is not a DICOM AE title",
                         fix="use 1 to 16 characters without backslash, e.g. CTUS")
    return text


def report(progress: Optional[ProgressFn], fraction: float, message: str, what: str) -> None:
    """Call ``progress``; a False answer raises CancelledError('<what> cancelled')."""
    if progress is not None and progress(float(min(max(fraction, 0.0), 1.0)), message) is False:
        raise CancelledError(f"{what} cancelled")


@dataclass(frozen=True)
class Pacs:
    """A remote DICOM node (``called_aet`` at ``host``:``port``) and our side of the talk.

    ``timeout_s`` bounds the association request, each DIMSE response and
    network silence; ``connect_timeout_s`` the TCP connection.
    """

    called_aet: str
    host: str
    port: int
    calling_aet: str = DEFAULT_CALLING_AET
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0

    def __post_init__(self):
        object.__setattr__(self, "called_aet", check_aet(self.called_aet, "the PACS AE title"))
        object.__setattr__(self, "calling_aet", check_aet(self.calling_aet, "our AE title (--calling-aet)"))
        if not self.host or any(c.isspace() for c in self.host):
            raise InputError(f"host {self.host!r} is not a host name or address", fix=_SERVER_FIX)
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise InputError(f"port {self.port!r} is not a TCP port (1..65535)", fix=_SERVER_FIX)
        if not (self.timeout_s > 0 and self.connect_timeout_s > 0):
            raise InputError(f"time-outs must be > 0 s (got {self.timeout_s}, {self.connect_timeout_s})",
                             fix="give a positive --timeout in seconds")

    @classmethod
    def parse(cls, text: str, *, calling_aet: str = DEFAULT_CALLING_AET, timeout_s: float = 30.0,
              connect_timeout_s: float = 10.0) -> "Pacs":
        """``AET@HOST:PORT`` (IPv6 as ``AET@[::1]:PORT``) -> Pacs; InputError when malformed."""
        m = re.match(r"^(?P<aet>[^@]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^:@\[\]]+):(?P<port>\d{1,5})$",
                     str(text).strip())
        if not m:
            raise InputError(f"--server {text!r} is not AET@HOST:PORT", fix=_SERVER_FIX)
        return cls(m["aet"], m["host"].strip("[]"), int(m["port"]), calling_aet=calling_aet,
                   timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.called_aet}@{host}:{self.port}"
