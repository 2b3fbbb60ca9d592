"""Pivot calibration: the tip of a tracked tool in its marker frame, by least squares.

While the tip rests in a divot and the tool is pivoted about it, the tip is
one fixed point ``p_ref`` of the Reference frame and one fixed point ``p_tip``
of the marker frame. For every pose ``(R_i, t_i) = marker_to_reference[i]``::

    R_i p_tip + t_i = p_ref   ->   [R_i | -I] [p_tip; p_ref] = -t_i

stacked over the poses: a linear least-squares problem in six unknowns, the
formulation of PLUS's ``vtkPlusPivotCalibrationAlgo`` (IGSIO
``vtkIGSIOPivotCalibrationAlgo::GetPivotPointPosition``). A recording that
pivots about several divots (PLUS's phantom-landmark recording) shares
``p_tip`` and has one ``p_ref`` per pivot: ``3 + 3k`` unknowns, same solve.

The error of pose i is ``|R_i p_tip + t_i - p_ref|`` (mm): how far the
calibrated tip lands from the pivot point. We report its RMS and maximum.

The problem is only well posed when the tool rotates: a pose set whose
orientations span less than ``MIN_ORIENTATION_SPAN_DEG`` (15 deg, PLUS's
default ``MinimumOrientationDifferenceDeg``) is refused, as PLUS refuses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import InputError

#: PLUS / IGSIO default minimum orientation difference between the poses of a pivot calibration.
MIN_ORIENTATION_SPAN_DEG = 15.0
#: PLUS / IGSIO default target error of an automatic pivot calibration (mm).
MAX_RMS_MM = 2.0
#: Windows whose pivot points agree within this (PLUS's AutoCalibrationMaximumBucketError, mm) are one pivot.
MERGE_MM = 3.0


@dataclass
class PivotResult:
    """A pivot calibration: tip in the marker frame, pivot point(s) in Reference, its errors."""
    tip_in_marker_mm: np.ndarray            # (3,) mm, marker frame
    pivots_in_reference_mm: np.ndarray      # (k, 3) mm, one per pivot segment
    rms_mm: float                           # RMS over the poses used of |R p_tip + t - p_ref|
    max_mm: float
    n_poses: int                            # poses used
    orientation_span_deg: float             # largest angle between two used poses
    segments: List[Tuple[int, int]] = field(default_factory=list)  # [start, stop) pose indices per pivot
    segment_rms_mm: List[float] = field(default_factory=list)

    @property
    def pivot_in_reference_mm(self) -> np.ndarray:
        """The pivot point of the first (or only) segment, mm in Reference."""
        return self.pivots_in_reference_mm[0]

    def tip_to_marker(self) -> np.ndarray:
        """4x4 ``TipToMarker`` as PLUS writes it: translation = tip, z axis = marker origin -> tip.

        The rotation is PLUS's convention for a pivot-calibrated stylus (its
        orientation about the shaft is arbitrary); only the translation and the
        marker -> tip line are measured.
        """
        m = np.eye(4)
        m[:3, 3] = self.tip_in_marker_mm
        n = float(np.linalg.norm(self.tip_in_marker_mm))
        if n > 1e-6:
            z = self.tip_in_marker_mm / n
            helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.94 else np.array([0.0, 1.0, 0.0])
            y = np.cross(z, helper)
            y /= np.linalg.norm(y)
            m[:3, 0], m[:3, 1], m[:3, 2] = np.cross(y, z), y, z
        return m

    def summary(self) -> dict:
        return {"tip_in_marker_mm": [round(float(v), 3) for v in self.tip_in_marker_mm],
                "rms_mm": round(self.rms_mm, 3), "max_mm": round(self.max_mm, 3),
                "poses": self.n_poses, "pivots": len(self.pivots_in_reference_mm),
                "orientation_span_deg": round(self.orientation_span_deg, 1)}


def _as_poses(marker_to_reference, what: str = "poses") -> np.ndarray:
    m = np.asarray(marker_to_reference, dtype=float)
    if m.ndim != 3 or m.shape[1:] != (4, 4):
        raise InputError(f"{what} must be [n, 4, 4] marker-to-reference matrices, got shape {m.shape}")
    return m


def orientation_span_deg(marker_to_reference, max_poses: int = 400) -> float:
    """Largest rotation angle (deg) between any two poses (subsampled to ``max_poses``)."""
    r = _as_poses(marker_to_reference)[:, :3, :3]
    if len(r) > max_poses:
        r = r[np.linspace(0, len(r) - 1, max_poses).round().astype(int)]
    if len(r) < 2:
        return 0.0
    # angle between R_i and R_j: trace(R_i^T R_j) = 1 + 2 cos(angle)
    tr = np.einsum("iab,jab->ij", r, r)
    cos = np.clip((tr - 1.0) / 2.0, -1.0, 1.0)
    return float(np.degrees(np.arccos(cos.min())))


def _solve(poses: np.ndarray, seg_of_pose: np.ndarray, n_seg: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Joint least squares: shared tip, one pivot per segment -> (tip, pivots (k,3), residuals (n,))."""
    n = len(poses)
    a = np.zeros((3 * n, 3 + 3 * n_seg))
    a[:, :3] = poses[:, :3, :3].reshape(3 * n, 3)
    rows = np.arange(3 * n)
    a[rows, 3 + 3 * np.repeat(seg_of_pose, 3) + np.tile(np.arange(3), n)] = -1.0
    b = -poses[:, :3, 3].reshape(-1)
    x, *_ = np.linalg.lstsq(a, b, rcond=None)
    tip, pivots = x[:3], x[3:].reshape(n_seg, 3)
    tips_ref = np.einsum("nij,j->ni", poses[:, :3, :3], tip) + poses[:, :3, 3]
    res = np.linalg.norm(tips_ref - pivots[seg_of_pose], axis=1)
    return tip, pivots, res


def pivot_calibrate(marker_to_reference, *, segments: Optional[Sequence[Tuple[int, int]]] = None,
                    min_orientation_span_deg: float = MIN_ORIENTATION_SPAN_DEG,
                    source: Optional[str] = None) -> PivotResult:
    """Tip offset (marker frame) and pivot point(s) (Reference) from pivoting poses.

    ``marker_to_reference`` [n, 4, 4]: poses of the tool marker while its tip
    rests in a divot (or in several: give ``segments`` as ``[start, stop)``
    index ranges, one per divot). Raises InputError when there are fewer than
    4 poses per pivot or the orientations span less than
    ``min_orientation_span_deg`` (no rotation, the tip is not determined).
    """
    poses = _as_poses(marker_to_reference)
    if not np.all(np.isfinite(poses)):
        raise InputError("pivot poses contain NaN (invalid tracking)", path=source,
                         fix="use only frames whose transform status is OK")
    segs = [(0, len(poses))] if segments is None else [(int(a), int(b)) for a, b in segments]
    idx = np.concatenate([np.arange(a, b) for a, b in segs]) if segs else np.zeros(0, int)
    seg_of_pose = np.concatenate([np.full(b - a, s) for s, (a, b) in enumerate(segs)]) if segs else idx
    if any(b - a < 4 for a, b in segs) or not segs:
        raise InputError(f"a pivot calibration needs at least 4 poses per pivot (got {[b - a for a, b in segs]})",
                         path=source, fix="record a few seconds of pivoting about the divot")
    used = poses[idx]
    span = max(orientation_span_deg(poses[a:b]) for a, b in segs)
    if span < min_orientation_span_deg:
        raise InputError(f"the tool rotated only {span:.1f} deg while pivoting (at least "
                         f"{min_orientation_span_deg:g} deg needed): the tip offset is not determined",
                         path=source, fix="pivot the tool about its tip through a wider cone (30-60 deg)")
    tip, pivots, res = _solve(used, seg_of_pose, len(segs))
    seg_rms = [float(np.sqrt(np.mean(res[seg_of_pose == s] ** 2))) for s in range(len(segs))]
    return PivotResult(tip, pivots, float(np.sqrt(np.mean(res ** 2))), float(res.max()), len(used),
                       orientation_span_deg(used), segs, seg_rms)


def find_pivot_segments(marker_to_reference, valid=None, *, window: int = 30,
                        max_window_rms_mm: float = 1.0,
                        min_orientation_span_deg: float = MIN_ORIENTATION_SPAN_DEG) -> List[Tuple[int, int]]:
    """``[start, stop)`` stretches of a recording in which the tool pivots about one point.

    Slides a window of ``window`` poses (half-window steps); a window pivots
    when a single-pivot fit leaves RMS <= ``max_window_rms_mm`` and its poses
    span >= ``min_orientation_span_deg``. Overlapping pivoting windows whose
    pivot points agree within ``MERGE_MM`` (3 mm) are merged. Poses with ``valid`` False end
    a stretch.
    """
    poses = _as_poses(marker_to_reference)
    n = len(poses)
    ok = np.ones(n, bool) if valid is None else np.asarray(valid, bool) & np.all(np.isfinite(poses.reshape(n, -1)), 1)
    step = max(1, window // 2)
    found: List[Tuple[int, int, np.ndarray]] = []
    for a in range(0, max(n - window, 0) + 1, step):
        b = a + window
        if b > n or not ok[a:b].all():
            continue
        w = poses[a:b]
        if orientation_span_deg(w) < min_orientation_span_deg:
            continue
        _, piv, res = _solve(w, np.zeros(window, int), 1)
        if np.sqrt(np.mean(res ** 2)) <= max_window_rms_mm:
            if found and a <= found[-1][1] and np.linalg.norm(found[-1][2] - piv[0]) <= MERGE_MM:
                found[-1] = (found[-1][0], b, found[-1][2])
            elif found and a < found[-1][1]:
                found.append((found[-1][1], b, piv[0]))  # a different pivot: no pose in two segments
            else:
                found.append((a, b, piv[0]))
    return [(a, b) for a, b, _ in found]


def pivot_calibrate_recording(marker_to_reference, valid=None, *, window: int = 30,
                              max_window_rms_mm: float = 1.0, source: Optional[str] = None) -> PivotResult:
    """Find the pivoting stretches of a recording and calibrate on all of them jointly."""
    poses = _as_poses(marker_to_reference)
    segs = find_pivot_segments(poses, valid, window=window, max_window_rms_mm=max_window_rms_mm)
    if not segs:
        span = orientation_span_deg(poses[np.asarray(valid, bool)] if valid is not None else poses)
        raise InputError(f"no pivoting found in {len(poses)} poses (no stretch of {window} poses turns "
                         f"by >= {MIN_ORIENTATION_SPAN_DEG:g} deg about a point fixed within "
                         f"{max_window_rms_mm:g} mm RMS; whole recording spans {span:.1f} deg)",
                         path=source, fix="record the tool pivoting about its tip in a divot for a few seconds")
    return pivot_calibrate(poses, segments=segs, source=source)
