"""Registration error at a target, as the planner uses it for fusion guidance.

Errors are RMS distances in mm. The TRE comes from the registration RESULT
(read by :func:`registration.align.result_document.parse_result`: per target
when it has a row, else the global value); the total adds tracking, needle and
breathing errors in quadrature (the registration package owns that budget).
"""
from __future__ import annotations

from typing import Optional, Union

from registration.align.result_document import ResultRecord, parse_result
from registration.align.uncertainty import total_error_mm


def _total_error_mm(tre_mm: float) -> float:
    """Registration TRE plus tracking, needle and breathing errors in quadrature (DESIGN section 7)."""
    return float(total_error_mm(tre_mm))


def registration_tre_mm(registration: Union[None, dict, ResultRecord], name: str) -> Optional[float]:
    """TRE rms (mm) at target ``name`` from a RESULT (its dict or the parsed record).

    None when unknown, and when the registration's own verdict is "poor": a result the
    registration does not trust gives no hit probability (fusion is then not recommended).
    A malformed RESULT raises InputError naming its ``source`` and the field."""
    if not registration:
        return None
    if not isinstance(registration, ResultRecord):
        registration = parse_result(registration, registration.get("source"), need_matrix=False)
    return registration.tre_at(name)
