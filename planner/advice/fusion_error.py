"""Registration error at a target, as the planner uses it for fusion guidance.

Errors are RMS distances in mm. The TRE comes from the registration RESULT
(read by :func:`registration.align.result_document.parse_result`: per target
when it has a row, else the global value); the total adds tracking, needle and
breathing errors in quadrature (the registration package owns that budget).

A RESULT of a focused refinement (``ctus register --focus``, RESULT ``focus``)
was registered on the region around one lesion: that lesion gets the focused
TRE (its row), every other lesion its row under the focused pose, which counts
its distance from the focused region (usually extrapolated, so larger). A
whole-sweep RESULT may keep focused refinements of some lesions (``focused_targets``,
the GUI's "refine near this lesion"): those lesions get their focused row. The
rows already include the residual deformation the registration measured.
"""
from __future__ import annotations

from typing import Optional, Union

from registration.align.result_document import ResultRecord, parse_result
from registration.align.uncertainty import total_error_mm


def _total_error_mm(tre_mm: float) -> float:
    """Registration TRE plus tracking, needle and breathing errors in quadrature (DESIGN section 7)."""
    return float(total_error_mm(tre_mm))


def _record(registration: Union[dict, ResultRecord]) -> ResultRecord:
    if isinstance(registration, ResultRecord):
        return registration
    return parse_result(registration, registration.get("source"), need_matrix=False)


def registration_tre_mm(registration: Union[None, dict, ResultRecord], name: str) -> Optional[float]:
    """TRE rms (mm) at target ``name`` from a RESULT (its dict or the parsed record).

    None when unknown, and when the registration's own verdict is "poor": a result the
    registration does not trust gives no hit probability (fusion is then not recommended).
    For a focused RESULT the focus lesion's row is its focused TRE. A malformed RESULT
    raises InputError naming its ``source`` and the field."""
    if not registration:
        return None
    return _record(registration).tre_at(name)


def focused_lesion(registration: Union[None, dict, ResultRecord]) -> Optional[str]:
    """The name of the target a focused RESULT was refined on (None for a whole-sweep RESULT)."""
    if not registration:
        return None
    focus = _record(registration).focus
    return None if focus is None else focus.get("name")


def registration_extrapolation_mm(registration: Union[None, dict, ResultRecord], name: str) -> Optional[float]:
    """The distance (mm) of target ``name`` from the imaged region when its RESULT row is
    ``extrapolated`` (beyond the distance the error model is validated to: its TRE is the
    model's inflated guess, never "good"); None when it is not, or not known."""
    if not registration:
        return None
    rec = _record(registration)
    row = rec.focused_target(name) or rec.target(name)
    if row is None or not row.extrapolated:
        return None
    d = row.distance_to_imaged_region_mm if row.distance_to_imaged_region_mm is not None else row.distance_to_sweep_mm
    return float("nan") if d is None else float(d)
