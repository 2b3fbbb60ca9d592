"""Per tracked frame: needle pose in, ``GuidanceState`` out (no Qt; a view asks for it).

``NeedleGuide`` holds what does not change during a procedure (planned path,
risk distance maps, needle calibration, ``reference_to_ct``) and turns each
``NeedleToReference`` sample into a :class:`GuidanceState` in about a
millisecond (:func:`compute_guidance`). It also remembers the last sample so
a view polling at its own frame rate gets :meth:`NeedleGuide.current`: the
last state while it is fresh, and a hidden, ``stale`` state once no valid
needle transform arrived for ``stale_after_s`` (0.2 s, the tracking watchdog
of ``registration.live.igtl_client``). An INVALID transform, a missing one
or a missing calibration give a hidden state that says why.
"""
from __future__ import annotations

import threading
import time
from typing import Optional, Tuple

import numpy as np

from registration.tracking.needle_tool import NeedleCalibration

from .guidance_state import GuidanceState, plane_numbers
from .planned_path import PlannedPath, plan_needle, plan_vessel_floor, planned_path
from .risk_field import RiskField, build_risk_field

STALE_AFTER_S = 0.2
STEP_MM = 0.5


def _clearances(tip, d, depth, risk: RiskField, step_mm: float) -> dict:
    """Tip and projected-path clearances per structure, nearest structure, breach (see guidance_state)."""
    s = np.arange(0.0, depth, step_mm) if depth > 0 else np.zeros(1)
    if depth > 0:
        s = np.append(s, depth)
    pts = tip[None, :] + s[:, None] * d[None, :]
    dist = risk.distances(pts)                       # (S, m), NaN outside the region
    inside = risk.in_target(pts)
    marg = risk.margins(inside)
    names = risk.names
    out = {"tip_clearance_mm": {}, "path_clearance_mm": {}, "outside_region": bool(np.isnan(dist[:, 0]).any()),
           "clearance_cap_mm": risk.exact_within_mm}
    if not names:
        return out
    with np.errstate(invalid="ignore"):
        viol = dist <= marg
        slack = dist - marg
    finite = ~np.isnan(dist)
    for n, name in enumerate(names):
        if finite[n, 0]:
            out["tip_clearance_mm"][name] = float(dist[n, 0])
        if finite[n].any():
            out["path_clearance_mm"][name] = float(np.nanmin(dist[n]))
    if finite[:, 0].any():
        k = int(np.nanargmin(dist[:, 0]))
        out["nearest_structure"], out["nearest_distance_mm"] = names[k], float(dist[k, 0])
    hit = np.nonzero(viol.any(axis=0))[0]
    if hit.size:
        col = int(hit[0])
        k = int(np.nanargmin(np.where(viol[:, col], slack[:, col], np.inf)))
        out.update(breach=True, breach_where="tip" if col == 0 else "path", breach_structure=names[k],
                   breach_distance_mm=float(dist[k, 0]) if col == 0 else float(np.nanmin(dist[k])),
                   breach_margin_mm=float(marg[k, col]), breach_ahead_mm=float(s[col]))
        return out
    soft = risk.caution_margins(inside)
    with np.errstate(invalid="ignore"):
        near = dist <= soft
    hit = np.nonzero(near.any(axis=0))[0]
    if hit.size:
        col = int(hit[0])
        k = int(np.nanargmin(np.where(near[:, col], dist[:, col] - soft[:, col], np.inf)))
        out.update(caution=True, caution_structure=names[k],
                   caution_distance_mm=float(dist[k, 0]) if col == 0 else float(np.nanmin(dist[k])),
                   caution_margin_mm=float(soft[k, col]), caution_ahead_mm=float(s[col]))
    return out


def compute_guidance(tip: np.ndarray, d: np.ndarray, path: PlannedPath, risk: Optional[RiskField],
                     *, step_mm: float = STEP_MM) -> dict:
    """The numbers of :class:`GuidanceState` for a tip and unit shaft direction in CT (LPS mm)."""
    tip = np.asarray(tip, float)
    d = np.asarray(d, float)
    target = np.asarray(path.target_ct, float)
    v = target - tip
    depth = float(v @ d)
    lateral = float(np.linalg.norm(v - depth * d))
    to_target = float(np.linalg.norm(v))
    out = {"tip_ct": tip, "direction_ct": d, "tip_to_target_mm": to_target, "depth_to_target_mm": depth,
           "lateral_mm": lateral, "miss_mm": lateral if depth >= 0 else to_target,
           "angle_deg": float(np.degrees(np.arccos(np.clip(d @ path.direction, -1.0, 1.0)))),
           "projected_end_ct": tip + max(depth, 0.0) * d}
    if risk is not None:
        out.update(_clearances(tip, d, depth, risk, step_mm))
    return out


class NeedleGuide:
    """Guidance engine for one planned path; thread-safe (a receiver thread updates, a view reads)."""

    def __init__(self, path: PlannedPath, risk: Optional[RiskField], reference_to_ct: np.ndarray,
                 calibration: Optional[NeedleCalibration] = None, *, stale_after_s: float = STALE_AFTER_S,
                 step_mm: float = STEP_MM, missing_calibration_reason: str = "no needle calibration"):
        self.path = path
        self.risk = risk
        self.reference_to_ct = np.asarray(reference_to_ct, float)
        self.calibration = calibration
        self.stale_after_s = float(stale_after_s)
        self.step_mm = float(step_mm)
        self.missing_calibration_reason = missing_calibration_reason
        self._lock = threading.Lock()
        self._t0: Optional[float] = None
        self._last: Optional[GuidanceState] = None
        self._last_valid_at: Optional[float] = None

    def _frame(self, timestamp: float, received: float) -> GuidanceState:
        with self._lock:
            if self._t0 is None:
                self._t0 = float(timestamp)
            t0 = self._t0
        return GuidanceState(float(timestamp) - t0, float(timestamp), float(received), lesion=self.path.lesion)

    def _keep(self, state: GuidanceState) -> GuidanceState:
        with self._lock:
            self._last = state
            if state.valid:
                self._last_valid_at = state.received
        return state

    def update(self, needle_to_reference: Optional[np.ndarray], *, ok: bool = True, timestamp: float,
               received: Optional[float] = None, image_to_reference: Optional[np.ndarray] = None,
               image_shape: Optional[Tuple[int, int]] = None, device: str = "NeedleToReference") -> GuidanceState:
        """State for one needle sample; ``received`` is our clock at arrival (default ``time.time()``)."""
        received = time.time() if received is None else float(received)
        frame = self._frame(timestamp, received)
        if needle_to_reference is None or not ok or not np.all(np.isfinite(needle_to_reference)):
            why = f"{device} INVALID (needle marker not seen by the tracker)" if needle_to_reference is not None \
                else f"no {device} received"
            return self._keep(frame.hidden(why, stale=self._is_stale(received)))
        if self.calibration is None:
            return self._keep(frame.hidden(self.missing_calibration_reason))
        tip_ref, d_ref = self.calibration.tip_and_axis(needle_to_reference)
        r = self.reference_to_ct
        tip, d = r[:3, :3] @ tip_ref + r[:3, 3], r[:3, :3] @ d_ref
        nums = compute_guidance(tip, d / np.linalg.norm(d), self.path, self.risk, step_mm=self.step_mm)
        if image_to_reference is not None and np.all(np.isfinite(image_to_reference)):
            nums.update(plane_numbers(tip, nums["direction_ct"], r @ np.asarray(image_to_reference, float),
                                      image_shape))
        state = GuidanceState(frame.t, frame.timestamp, received, True, False, "", self.path.lesion,
                              planned_path_safe=self.path.safe, **nums)
        return self._keep(state.with_lag((time.time() - received) * 1e3))

    def missing(self, *, timestamp: float, received: Optional[float] = None, reason: str) -> GuidanceState:
        """A frame with no usable needle sample at all (e.g. an image frame before any needle transform)."""
        received = time.time() if received is None else float(received)
        return self._keep(self._frame(timestamp, received).hidden(reason, stale=self._is_stale(received)))

    def _is_stale(self, now: float) -> bool:
        with self._lock:
            last = self._last_valid_at
        return last is not None and now - last > self.stale_after_s

    def current(self, now: Optional[float] = None) -> Optional[GuidanceState]:
        """The state a view shows now: the last one, or hidden and stale once older than ``stale_after_s``."""
        now = time.time() if now is None else float(now)
        with self._lock:
            last = self._last
        if last is None:
            return None
        age = now - last.received
        if age > self.stale_after_s:
            return last.hidden(f"needle stale: no needle transform for {age * 1e3:.0f} ms", stale=True)
        return last


def guide_for_plan(plan: dict, labels, reference_to_ct: np.ndarray, *, lesion: Optional[str] = None,
                   trajectory: int = 1, calibration: Optional[NeedleCalibration] = None, plan_path=None,
                   **guide_options) -> NeedleGuide:
    """A NeedleGuide for one path of a plan (``read_plan``), with the labels the plan was made with.

    The needle radius and vessel margin are the plan's; the distance maps
    cover the path (``build_risk_field``). This is the one set-up the CLI and
    a view share; it takes a few seconds (the distance maps).
    """
    path = planned_path(plan, lesion, trajectory, path=plan_path)
    radius, vessel_margin = plan_needle(plan)
    risk = build_risk_field(labels, needle_radius_mm=radius, vessel_margin_mm=vessel_margin,
                            vessel_floor_mm=plan_vessel_floor(plan), planned_segment=[path.entry_ct, path.target_ct],
                            roi_points=[path.entry_ct, path.target_ct], target_name=path.lesion)
    return NeedleGuide(path, risk, reference_to_ct, calibration, **guide_options)
