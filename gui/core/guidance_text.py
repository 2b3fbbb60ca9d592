"""The needle guidance in words: the warning, the reason the needle is hidden, the four numbers.

One place for the texts the guidance panel and the view overlays show, from a
:class:`planner.guidance.guidance_state.GuidanceState` (CT LPS mm, degrees).
A state that is not valid has no numbers: every number reads "--" and the
reason says why (old numbers are never shown as current).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from planner.guidance.guidance_state import GuidanceState

UNSAFE_PATH_TEXT = "PLANNED PATH UNSAFE (least-risk only)"
NO_VALUE = "--"


@dataclass(frozen=True)
class Alert:
    """'breach' (red) or 'caution' (amber), with the line naming the structure and distance."""
    level: str
    text: str


def alert(state: Optional[GuidanceState]) -> Optional[Alert]:
    """The breach or caution of a valid state, or None."""
    if state is None or not state.valid:
        return None
    if state.breach:
        where = "tip inside the margin" if state.breach_where == "tip" else \
            f"projected path, {state.breach_ahead_mm:.0f} mm ahead"
        return Alert("breach", f"BREACH: {state.breach_structure} {state.breach_distance_mm:.1f} mm "
                               f"(margin {state.breach_margin_mm:.1f} mm; {where})")
    if state.caution:
        where = "tip" if not state.caution_ahead_mm else f"projected path, {state.caution_ahead_mm:.0f} mm ahead"
        return Alert("caution", f"CAUTION: {state.caution_structure} {state.caution_distance_mm:.1f} mm "
                                f"(soft margin {state.caution_margin_mm:.1f} mm; {where})")
    return None


def hidden_text(state: Optional[GuidanceState]) -> str:
    """'' for a valid state; otherwise why the needle is not shown."""
    if state is None:
        return "no needle guidance"
    if state.valid:
        return ""
    return f"NEEDLE HIDDEN{' (stale)' if state.stale else ''}: {state.reason}"


def _mm(v: Optional[float], signed: bool = False) -> str:
    if v is None:
        return NO_VALUE
    return f"{v:+.1f} mm" if signed else f"{v:.1f} mm"


def numbers(state: Optional[GuidanceState], plane_offset_mm: Optional[float] = None) -> Dict[str, str]:
    """{'to_target', 'miss', 'angle', 'off_plane'}: the big numbers as text ('--' when hidden).
    ``plane_offset_mm``: the tip's offset from the image shown (the view's frame), when known;
    else the state's own (the frame that arrived with the transform)."""
    if state is None or not state.valid:
        return {k: NO_VALUE for k in ("to_target", "miss", "angle", "off_plane")}
    offset = state.plane_offset_mm if plane_offset_mm is None else plane_offset_mm
    return {"to_target": _mm(state.tip_to_target_mm), "miss": _mm(state.miss_mm),
            "angle": NO_VALUE if state.angle_deg is None else f"{state.angle_deg:.1f}\u00b0",
            "off_plane": _mm(offset, signed=True)}


def details(state: Optional[GuidanceState]) -> str:
    """The smaller line under the numbers: depth to the target, nearest structure, region."""
    if state is None or not state.valid:
        return ""
    parts = []
    if state.depth_to_target_mm is not None:
        parts.append(f"target {state.depth_to_target_mm:.1f} mm ahead along the needle"
                     if state.depth_to_target_mm >= 0 else f"tip {-state.depth_to_target_mm:.1f} mm past the target")
    if state.outside_region:
        parts.append("clearances not evaluated (tip far from the planned path)")
    elif state.nearest_structure is not None:
        cap = state.clearance_cap_mm
        if cap is not None and state.nearest_distance_mm >= cap - 1e-6:
            parts.append(f"no risk structure within {cap:.0f} mm of the tip")
        else:
            parts.append(f"nearest {state.nearest_structure} {state.nearest_distance_mm:.1f} mm from the tip")
    if state.needle_plane_angle_deg is not None:
        parts.append(f"needle {state.needle_plane_angle_deg:.0f}\u00b0 to the US plane")
    return "; ".join(parts)
