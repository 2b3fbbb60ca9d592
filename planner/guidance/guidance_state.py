"""The numbers of one tracked frame (``GuidanceState``) and how each is computed.

Definitions (all CT LPS mm; ``docs/needle_guidance.md`` has the figures):

- ``tip_ct``: the calibrated tip, ``reference_to_ct @ needle_to_reference @ tip``;
  ``direction_ct``: unit shaft direction, hub -> tip.
- projected path: the straight extension ``tip + s d`` for ``0 <= s <= depth``
  where ``depth_to_target_mm = (target - tip) . d`` (negative once the tip is
  past the target: then there is no projected path ahead of the tip).
- ``tip_to_target_mm``: ``|target - tip|``.
- ``miss_mm``: closest approach of the projected path to the target: the
  distance from the target to the ray ``tip + s d, s >= 0`` (equals
  ``tip_to_target_mm`` once the target is behind the tip); ``lateral_mm`` is
  the same for the whole line.
- ``angle_deg``: between ``d`` and the planned direction entry -> target.
- clearances: per risk structure, the distance of the tip and the minimum
  over the projected path sampled every 0.5 mm (``risk_field``); exact up to
  ``clearance_cap_mm`` (larger distances read as the cap), not evaluated
  (``outside_region``) when the tip is far from the planned path.
- breach: the tip within a structure's margin (``breach_where`` 'tip'), or
  the projected path entering one before the target ('path',
  ``breach_ahead_mm`` = how far ahead of the tip); ``breach_structure`` is the
  structure, ``breach_distance_mm`` its clearance (tip distance, or the
  minimum along the path), ``breach_margin_mm`` the margin it broke (the
  plan's hard rule: what the planner would have rejected).
- caution (only without a breach): the same within a soft margin (the vessel
  margin the planner ranks by, 5 mm by default), ``caution_*`` fields.
- ``planned_path_safe`` False when the path guided along is the plan's
  least-risk path, not a safe one: every line and view says so.
- ultrasound plane (when the frame's ``image_to_ct`` is known):
  ``plane_offset_mm`` signed distance of the tip from the image plane (along
  column x row), ``needle_plane_angle_deg`` between the shaft and the plane,
  ``tip_in_image_px`` the tip's (column, row) projected on the image, and
  ``tip_in_image`` whether that lies inside the frame.

A state that is not ``valid`` (needle missing, INVALID, stale, or no
calibration) carries no numbers at all, only ``reason``: old numbers are never
shown as current.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Tuple

import numpy as np


def _r(v, nd: int = 2):
    return None if v is None else round(float(v), nd)


def _vec(v, nd: int = 2):
    return None if v is None else [round(float(x), nd) for x in v]


@dataclass(frozen=True)
class GuidanceState:
    """Everything a view shows for one tracked frame; see the module docstring for definitions."""
    t: float                                   # s since the first needle sample of this session
    timestamp: float                           # sender's time stamp (s)
    received: float                            # our clock when the transform arrived (s)
    valid: bool = False
    stale: bool = False
    reason: str = ""                           # why not valid ('' when valid)
    lesion: str = ""
    tip_ct: Optional[np.ndarray] = None
    direction_ct: Optional[np.ndarray] = None
    projected_end_ct: Optional[np.ndarray] = None   # end of the projected path (closest approach)
    tip_to_target_mm: Optional[float] = None
    depth_to_target_mm: Optional[float] = None
    miss_mm: Optional[float] = None
    lateral_mm: Optional[float] = None
    angle_deg: Optional[float] = None
    tip_clearance_mm: Dict[str, float] = field(default_factory=dict)
    path_clearance_mm: Dict[str, float] = field(default_factory=dict)
    nearest_structure: Optional[str] = None
    nearest_distance_mm: Optional[float] = None
    breach: bool = False
    breach_where: Optional[str] = None         # 'tip' | 'path'
    breach_structure: Optional[str] = None
    breach_distance_mm: Optional[float] = None
    breach_margin_mm: Optional[float] = None
    breach_ahead_mm: Optional[float] = None
    caution: bool = False                      # within a soft margin (vessel margin), no breach
    caution_structure: Optional[str] = None
    caution_distance_mm: Optional[float] = None
    caution_margin_mm: Optional[float] = None
    caution_ahead_mm: Optional[float] = None
    planned_path_safe: bool = True             # False: the plan's least-risk path, not a safe one
    outside_region: bool = False               # tip outside the region where clearances are evaluated
    clearance_cap_mm: Optional[float] = None   # clearances are exact up to this; larger ones read as it
    plane_offset_mm: Optional[float] = None
    needle_plane_angle_deg: Optional[float] = None
    tip_in_image_px: Optional[Tuple[float, float]] = None
    tip_in_image: Optional[bool] = None
    lag_ms: Optional[float] = None             # arrival -> state computed

    def hidden(self, reason: str, *, stale: bool = False) -> "GuidanceState":
        """This frame's time with every number removed (not valid, with the reason)."""
        return GuidanceState(self.t, self.timestamp, self.received, False, stale, reason, self.lesion)

    def with_lag(self, lag_ms: float) -> "GuidanceState":
        return replace(self, lag_ms=lag_ms)

    def to_json(self) -> dict:
        """The ``ctus guide --json`` line (DESIGN section 6 keys first)."""
        return {
            "t": round(self.t, 3), "tip_ct": _vec(self.tip_ct), "tip_to_target_mm": _r(self.tip_to_target_mm),
            "miss_mm": _r(self.miss_mm), "angle_deg": _r(self.angle_deg), "breach": bool(self.breach),
            "breach_structure": self.breach_structure, "breach_distance_mm": _r(self.breach_distance_mm),
            "stale": bool(self.stale),
            "valid": bool(self.valid), "reason": self.reason, "lesion": self.lesion,
            "timestamp": round(self.timestamp, 4),
            "direction_ct": _vec(self.direction_ct, 5), "projected_end_ct": _vec(self.projected_end_ct),
            "depth_to_target_mm": _r(self.depth_to_target_mm),
            "lateral_mm": _r(self.lateral_mm), "breach_where": self.breach_where,
            "breach_margin_mm": _r(self.breach_margin_mm), "breach_ahead_mm": _r(self.breach_ahead_mm),
            "caution": bool(self.caution), "caution_structure": self.caution_structure,
            "caution_distance_mm": _r(self.caution_distance_mm), "caution_margin_mm": _r(self.caution_margin_mm),
            "caution_ahead_mm": _r(self.caution_ahead_mm), "planned_path_safe": bool(self.planned_path_safe),
            "nearest_structure": self.nearest_structure, "nearest_distance_mm": _r(self.nearest_distance_mm),
            "tip_clearance_mm": {k: _r(v) for k, v in self.tip_clearance_mm.items()},
            "path_clearance_mm": {k: _r(v) for k, v in self.path_clearance_mm.items()},
            "outside_region": bool(self.outside_region), "clearance_cap_mm": _r(self.clearance_cap_mm),
            "plane_offset_mm": _r(self.plane_offset_mm), "needle_plane_angle_deg": _r(self.needle_plane_angle_deg),
            "tip_in_image_px": _vec(self.tip_in_image_px, 1), "tip_in_image": self.tip_in_image,
            "lag_ms": _r(self.lag_ms, 1),
        }

    def line(self) -> str:
        """One readable line for a terminal."""
        head = f"t={self.t:7.2f}s"
        if not self.valid:
            return f"{head}  NEEDLE HIDDEN{' (stale)' if self.stale else ''}: {self.reason}"
        x, y, z = self.tip_ct
        text = (f"{head}  tip ({x:7.1f},{y:7.1f},{z:7.1f})  to target {self.tip_to_target_mm:6.1f} mm  "
                f"miss {self.miss_mm:5.1f} mm  angle {self.angle_deg:5.1f} deg")
        if self.plane_offset_mm is not None:
            text += f"  off-plane {self.plane_offset_mm:+5.1f} mm"
        if not self.planned_path_safe:
            text += "  PLANNED PATH UNSAFE (least-risk only)"
        if self.breach:
            where = "tip in margin" if self.breach_where == "tip" else f"path, {self.breach_ahead_mm:.0f} mm ahead"
            return text + (f"  BREACH {self.breach_structure} {self.breach_distance_mm:.1f} mm "
                           f"(margin {self.breach_margin_mm:.1f}; {where})")
        if self.caution:
            where = "tip" if self.caution_ahead_mm == 0 else f"path, {self.caution_ahead_mm:.0f} mm ahead"
            text += (f"  caution {self.caution_structure} {self.caution_distance_mm:.1f} mm "
                     f"(soft margin {self.caution_margin_mm:.1f}; {where})")
        if self.outside_region:
            text += "  clearances not evaluated (tip far from the planned path)"
        elif self.nearest_structure is not None:
            if self.clearance_cap_mm is not None and self.nearest_distance_mm >= self.clearance_cap_mm - 1e-6:
                text += f"  no risk structure within {self.clearance_cap_mm:.0f} mm"
            else:
                text += f"  nearest {self.nearest_structure} {self.nearest_distance_mm:.1f} mm"
        return text + "  OK"


def plane_numbers(tip: np.ndarray, d: np.ndarray, image_to_ct: np.ndarray, image_shape=None) -> dict:
    """Offset of the tip from an ultrasound image plane (mm), shaft-plane angle, tip pixel."""
    m = np.asarray(image_to_ct, float)
    origin, u, v = m[:3, 3], m[:3, 0], m[:3, 1]
    normal = np.cross(u, v)
    normal /= np.linalg.norm(normal)
    rel = tip - origin
    offset = float(rel @ normal)
    angle = float(np.degrees(np.arcsin(min(1.0, abs(float(d @ normal))))))
    uv = np.linalg.lstsq(np.stack([u, v], axis=1), rel - offset * normal, rcond=None)[0]
    inside = None
    if image_shape is not None:
        rows, cols = image_shape
        inside = bool(-0.5 <= uv[0] <= cols - 0.5 and -0.5 <= uv[1] <= rows - 0.5)
    return {"plane_offset_mm": offset, "needle_plane_angle_deg": angle,
            "tip_in_image_px": (float(uv[0]), float(uv[1])), "tip_in_image": inside}
