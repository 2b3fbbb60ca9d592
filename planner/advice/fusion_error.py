"""Registration error at a target, as the planner uses it for fusion guidance.

Errors are rms distances in mm. The TRE comes from the registration RESULT
dict (per target when it has one); the total adds tracking, needle and
breathing errors in quadrature (the registration package owns that budget).
"""
from __future__ import annotations

from typing import Optional

from registration.align.uncertainty import total_error_mm

_ROW_KEYS = ("tre_rms_mm", "tre_registration_mm", "tre_mm")


def _total_error_mm(tre_mm: float) -> float:
    """Registration TRE plus tracking, needle and breathing errors in quadrature (DESIGN section 7)."""
    return float(total_error_mm(tre_mm))


def _row_tre(row) -> Optional[float]:
    """A target's TRE from its row (dict with one of _ROW_KEYS, or a bare number); None if unknown."""
    if isinstance(row, dict):
        v = next((row[k] for k in _ROW_KEYS if row.get(k) is not None), None)
    else:
        v = row
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def registration_tre_mm(registration: Optional[dict], name: str) -> Optional[float]:
    """TRE rms (mm) at a target from a RESULT dict: per-target first, else the global value.

    None when unknown, and when the registration's own verdict is "poor": a result the
    registration does not trust gives no hit probability (fusion is then not recommended)."""
    if not registration or registration.get("verdict") == "poor":
        return None
    for key in ("targets", "target_tre", "tre"):
        t = registration.get(key)
        if isinstance(t, dict) and name in t:
            return _row_tre(t[name])
        if isinstance(t, list):
            for row in t:
                if isinstance(row, dict) and row.get("name") == name:
                    return _row_tre(row)
    for k in ("tre_rms_mm", "predicted_tre_mm", "tre_mm"):
        if isinstance(registration.get(k), (int, float)):
            return float(registration[k])
    return None
