"""Contrast phase hints for the series of one DICOM folder (no pixels read).

Hints come, in order of trust, from SeriesDescription keywords, the time
since the contrast injection (AcquisitionTime - ContrastBolusStartTime, s),
then acquisition times relative to the other series of the folder (s). The
hint is one of 'non-contrast', 'arterial', 'portal venous', 'delayed',
'contrast, phase unknown', 'unknown', and ``phase_reason`` says why.
"""
from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

from .series_info import SeriesInfo

_KEYWORDS = (  # checked in this order on the lower-case SeriesDescription
    ("non-contrast", (r"non[- ]?con", r"\bnative?\b", r"\bplain\b", r"\bunenhanced\b",
                      r"\bw/?o\b", r"\bwithout\b", r"\bnc\b", r"\bpre\b", r"\bnativ\b")),
    ("arterial", (r"arter", r"\bart\b", r"\bhat\b", r"\blate art")),
    ("portal venous", (r"portal", r"\bpv\b", r"venous", r"\bven\b", r"\bpvp\b")),
    ("delayed", (r"delay", r"equilib", r"\blate\b")),
)
_CONTRAST_PHASES = ("arterial", "portal venous", "delayed")
_NO_AGENT = {"none", "no", "nil", "n/a", "na", "0"}
# Phase windows in seconds, a heuristic read from the pancreatic protocol (DESIGN section 1:
# late arterial at 40-50 s, portal venous at about 70 s after injection).
_MIN_AFTER_INJECTION_S = 15      # earlier than this: no phase from the injection time
_ARTERIAL_END_S = 60             # after injection: arterial below, portal venous from here
_PORTAL_END_S = 120              # after injection or after the first series: later is delayed
_PORTAL_AFTER_FIRST_S = (15, 90)  # a contrast series this long after the first one is portal


def _phase_from_injection(seconds: Optional[float]) -> Optional[str]:
    """Phase from the time since the contrast injection (s), or None when too early/unknown."""
    if seconds is None or seconds < _MIN_AFTER_INJECTION_S:
        return None
    if seconds < _ARTERIAL_END_S:
        return "arterial"
    if seconds <= _PORTAL_END_S:
        return "portal venous"
    return "delayed"


def _assign_phases(series: List[SeriesInfo]) -> None:
    """Phase hints, in order of trust: SeriesDescription keywords, time since the
    injection (ContrastBolusStartTime), then times relative to the other series.

    Relative times follow the pancreatic protocol (DESIGN section 1): late
    arterial at 40-50 s and portal venous at ~70 s after injection, so a
    contrast series 15-90 s after the first contrast series is portal venous
    and the first is arterial; more than 120 s after it is delayed.
    """
    times = [s._when for s in series if s._when is not None]
    first = min(times) if times else None
    for s in series:
        if first is not None and s._when is not None:
            s.time_from_first_s = (s._when - first).total_seconds()
    enhanced = [s for s in series if _hint_from_headers(s)]
    # every contrast series (tagged or named) anchors the timing; only untyped ones get a phase
    contrast = [s for s in series if s in enhanced or s.phase_hint in _CONTRAST_PHASES]
    _hint_from_relative_times(contrast, enhanced)
    # an untagged series acquired before every contrast series is the plain scan
    first_contrast = min((s._when for s in contrast if s._when is not None), default=None)
    for s in series:
        if (s.phase_hint == "unknown" and s.contrast_agent is None and s._when is not None
                and first_contrast is not None and s._when < first_contrast):
            s.phase_hint = "non-contrast"
            s.phase_reason = "no ContrastBolusAgent, acquired before the contrast series"


def _hint_from_headers(s: SeriesInfo) -> bool:
    """Set the hint from SeriesDescription keywords, else ContrastBolusAgent / the injection
    time. True when the series is contrast-enhanced by its tags without a described phase."""
    desc = s.series_description.lower()
    for phase, patterns in _KEYWORDS:
        if any(re.search(p, desc) for p in patterns):
            s.phase_hint, s.phase_reason = phase, f"series description '{s.series_description}'"
            return False
    agent = (s.contrast_agent or "").strip().lower()
    if agent in _NO_AGENT and s.contrast_agent is not None:
        s.phase_hint, s.phase_reason = "non-contrast", f"ContrastBolusAgent '{s.contrast_agent}'"
        return False
    if not (s.contrast_agent or s.time_from_injection_s is not None):
        return False
    s.phase_hint = "contrast, phase unknown"
    s.phase_reason = (f"ContrastBolusAgent '{s.contrast_agent}'" if s.contrast_agent
                      else "ContrastBolusStartTime")
    by_injection = _phase_from_injection(s.time_from_injection_s)
    if by_injection:
        s.phase_hint = by_injection
        s.phase_reason += (f"; {s.time_from_injection_s:.0f} s after the contrast "
                           "injection (ContrastBolusStartTime)")
    return True


def _hint_from_relative_times(contrast: List[SeriesInfo], enhanced: List[SeriesInfo]) -> None:
    """Enhanced series still without a phase get one from their time after the first
    contrast series: the first is arterial (when a portal one follows), 15-90 s later
    portal venous, more than 120 s later delayed."""
    lo, hi = _PORTAL_AFTER_FIRST_S
    timed = sorted((s for s in contrast if s.time_from_first_s is not None),
                   key=lambda s: s.time_from_first_s)
    if len(timed) < 2:
        return
    t0 = timed[0].time_from_first_s
    for s in (x for x in timed if x in enhanced and x.phase_hint == "contrast, phase unknown"):
        dt = s.time_from_first_s - t0
        if dt == 0:
            if not any(lo <= o.time_from_first_s - t0 <= hi for o in timed):
                continue
            s.phase_hint = "arterial"
        elif lo <= dt <= hi:
            s.phase_hint = "portal venous"
        elif dt > _PORTAL_END_S:
            s.phase_hint = "delayed"
        else:
            continue
        s.phase_reason += f"; {dt:.0f} s after the first contrast series"


def listed_phase_hints(listing: Sequence[Tuple[str, str, str]]) -> List[Tuple[str, str]]:
    """(phase hint, reason) per series of one study known only from a listing (a PACS's C-FIND
    answer): ``(SeriesDescription, SeriesDate DA, SeriesTime TM)`` each, '' when unknown.

    The same rules as for a folder (:func:`_assign_phases`), with what a listing has: the
    description keywords, and a series acquired before every described contrast series is the
    plain scan. Without ContrastBolusAgent the timing rules for enhanced series do not apply.
    """
    from .dicom_header import _parse_when
    series = []
    for n, (description, date, time) in enumerate(listing):
        series.append(SeriesInfo(
            series_uid=str(n), series_description=description or "", modality="", n_files=0,
            size=(0, 0, 0), spacing=(0.0, 0.0, 0.0), contrast_agent=None, acquisition_time=time or "",
            time_from_first_s=None, phase_hint="unknown", files=[],
            _when=_parse_when({"SeriesTime": time or "", "SeriesDate": date or ""})))
    _assign_phases(series)
    return [(s.phase_hint, s.phase_reason) for s in series]
