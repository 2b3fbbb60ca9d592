"""Progress reporting while a CT is read: ``progress(fraction, message)``.

``fraction`` runs 0..1 over the whole load (DICOM headers 0..0.2, pixel
decoding 0.2..0.95, 1.0 when the CT is loaded); a callback returning False
cancels the load with :class:`~registration.spatial.errors.CancelledError`.
"""
from __future__ import annotations

from typing import Callable, Optional

from registration.spatial.errors import CancelledError

ProgressFn = Callable[[float, str], Optional[bool]]   # (fraction 0..1, message) -> False cancels

HEADERS_SHARE = 0.2                       # fractions 0..0.2 while DICOM headers are read
DECODE_START, DECODE_SHARE = 0.2, 0.75    # fractions 0.2..0.95 while pixels are decoded


def _report(progress: Optional[ProgressFn], fraction: float, message: str) -> None:
    if progress is not None and progress(float(fraction), message) is False:
        raise CancelledError("CT loading cancelled")
