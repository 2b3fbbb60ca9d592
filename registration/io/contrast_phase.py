"""Contrast phase hints for the series of one DICOM folder (no pixels read).

Hints come, in order of trust, from SeriesDescription keywords, the time
since the contrast injection (AcquisitionTime - ContrastBolusStartTime, s),
then acquisition times relative to the other series of the folder (s). The
hint is one of 'non-contrast', 'arterial', 'portal venous', 'delayed',
'contrast, phase unknown', 'unknown', and ``phase_reason`` says why.
"""
from __future__ import annotations

import re
from typing import List, Optional

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


def _phase_from_injection(seconds: Optional[float]) -> Optional[str]:
    """Pancreatic protocol (DESIGN section 1): late arterial at 40-50 s, portal venous ~70 s."""
    if seconds is None or seconds < 15:
        return None
    if seconds < 60:
        return "arterial"
    if seconds <= 120:
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
    enhanced = []
    for s in series:
        desc = s.series_description.lower()
        for phase, patterns in _KEYWORDS:
            if any(re.search(p, desc) for p in patterns):
                s.phase_hint, s.phase_reason = phase, f"series description '{s.series_description}'"
                break
        else:
            agent = (s.contrast_agent or "").strip().lower()
            if agent in _NO_AGENT and s.contrast_agent is not None:
                s.phase_hint, s.phase_reason = "non-contrast", f"ContrastBolusAgent '{s.contrast_agent}'"
            elif s.contrast_agent or s.time_from_injection_s is not None:
                s.phase_hint = "contrast, phase unknown"
                s.phase_reason = (f"ContrastBolusAgent '{s.contrast_agent}'" if s.contrast_agent
                                  else "ContrastBolusStartTime")
                enhanced.append(s)
                by_injection = _phase_from_injection(s.time_from_injection_s)
                if by_injection:
                    s.phase_hint = by_injection
                    s.phase_reason += (f"; {s.time_from_injection_s:.0f} s after the contrast "
                                       "injection (ContrastBolusStartTime)")
    # every contrast series (tagged or named) anchors the timing; only untyped ones get a phase
    contrast = [s for s in series if s in enhanced or s.phase_hint in _CONTRAST_PHASES]
    timed = sorted((s for s in contrast if s.time_from_first_s is not None),
                   key=lambda s: s.time_from_first_s)
    if len(timed) >= 2:
        t0 = timed[0].time_from_first_s
        for s in (x for x in timed if x in enhanced and x.phase_hint == "contrast, phase unknown"):
            dt = s.time_from_first_s - t0
            if dt == 0:
                if not any(15 <= o.time_from_first_s - t0 <= 90 for o in timed):
                    continue
                s.phase_hint = "arterial"
            elif 15 <= dt <= 90:
                s.phase_hint = "portal venous"
            elif dt > 120:
                s.phase_hint = "delayed"
            else:
                continue
            s.phase_reason += f"; {dt:.0f} s after the first contrast series"
    # an untagged series acquired before every contrast series is the plain scan
    first_contrast = min((s._when for s in contrast if s._when is not None), default=None)
    for s in series:
        if (s.phase_hint == "unknown" and s.contrast_agent is None and s._when is not None
                and first_contrast is not None and s._when < first_contrast):
            s.phase_hint = "non-contrast"
            s.phase_reason = "no ContrastBolusAgent, acquired before the contrast series"
