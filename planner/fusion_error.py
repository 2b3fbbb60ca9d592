"""Registration error at a target, as the planner uses it for fusion guidance.

Errors are rms distances in mm. The TRE comes from the registration RESULT
dict (per target when it has one); the total adds tracking, needle and
breathing errors in quadrature (the registration package owns that budget).
"""
from __future__ import annotations

from typing import Optional


def _total_error_mm(tre_mm: float) -> float:
    """Registration TRE plus tracking, needle and breathing errors in quadrature (DESIGN section 7)."""
    try:
        from registration.uncertainty import total_error_mm
    except ImportError:  # pragma: no cover - the registration package owns the error budget
        return float(tre_mm)
    return float(total_error_mm(tre_mm))


def registration_tre_mm(registration: Optional[dict], name: str) -> Optional[float]:
    """TRE rms (mm) at a target from a RESULT dict: per-target first, else the global value.

    None when unknown, and when the registration's own verdict is "poor": a result the
    registration does not trust gives no hit probability (fusion is then not recommended)."""
    if not registration or registration.get("verdict") == "poor":
        return None
    for key in ("targets", "target_tre", "tre"):
        t = registration.get(key)
        if isinstance(t, dict) and name in t:
            v = t[name]
            return float(v["tre_rms_mm"] if isinstance(v, dict) else v)
        if isinstance(t, list):
            for row in t:
                if isinstance(row, dict) and row.get("name") == name:
                    for k in ("tre_rms_mm", "tre_registration_mm", "tre_mm"):
                        if row.get(k) is not None:
                            return float(row[k])
                    return None
    for k in ("tre_rms_mm", "predicted_tre_mm", "tre_mm"):
        if isinstance(registration.get(k), (int, float)):
            return float(registration[k])
    return None
