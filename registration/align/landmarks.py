"""Paired-point (landmark) rigid registration with its error predictions.

Points are ``(N, 3)`` arrays in mm: ``ct_points`` in CT LPS, ``reference_points``
in the tracker's Reference frame. The result maps Reference -> CT:
``p_ct = reference_to_ct @ p_reference``.

Closed form: Arun/Horn SVD of the cross-covariance with a reflection guard
(Umeyama's sign fix), so a mirrored solution can never come out.

Error model (Fitzpatrick, West & Maurer 1998):

* FRE = RMS residual after registration;
* FLE estimated from FRE: ``<FRE^2> = (1 - 2/N) FLE^2`` for rigid 3D, hence
  ``FLE^2 = FRE^2 N / (N - 2)``;
* ``<TRE^2>(r) = FLE^2 / N * (1 + 1/3 sum_k d_k^2 / f_k^2)``, ``d_k`` the distance
  of the target from principal axis ``k`` of the fiducial configuration and
  ``f_k`` the RMS distance of the fiducials from that axis.

PLUS stylus-landmark detection (:func:`detect_stylus_landmarks`) reproduces
``vtkPlusLandmarkDetectionAlgo`` so a tracker-only recording of a stylus
pivoting on phantom landmarks gives the landmark positions PLUS would use.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.transforms import apply

#: A landmark whose leave-one-out error exceeds both this many times the median
#: LOO error and OUTLIER_MIN_MM is flagged: likely a wrong pairing or a bad click.
OUTLIER_FACTOR = 3.0
OUTLIER_MIN_MM = 3.0


def _points(p, name: str, path=None) -> np.ndarray:
    try:
        a = np.asarray(p, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{name} are not numeric", path=path, fix="give [x, y, z] triples in mm") from None
    if a.ndim != 2 or a.shape[1] != 3:
        raise InputError(f"{name} must be N x 3 (x, y, z in mm), got shape {a.shape}", path=path,
                         fix="give [x, y, z] triples in mm")
    if not np.all(np.isfinite(a)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(a), axis=1))[0])
        raise InputError(f"{name}: point {bad} contains NaN or infinite values", path=path,
                         fix="remove or re-pick that landmark")
    return a


def check_configuration(points: np.ndarray, name: str = "landmarks", path=None) -> None:
    """Raise InputError unless there are >= 3 points that are not (nearly) collinear."""
    if len(points) < 3:
        raise InputError(f"{name}: {len(points)} landmark pair(s); a rigid registration needs at least 3",
                         path=path, fix="pick at least 3 (better 4-6) well-spread landmarks")
    s = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    # Second singular value ~ spread across the best-fit line; rotation about that line
    # is undetermined when it is tiny (1e-3 of the extent, or < 0.1 mm absolute).
    if s[0] < 1e-9 or s[1] < max(1e-3 * s[0], 0.1):
        raise InputError(f"{name} are collinear (or coincident): the rotation about their line is "
                         f"undetermined", path=path, fix="add a landmark away from the line through the others")


def rigid_fit(moving: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """4x4 rigid ``moving_to_fixed`` minimising sum |R m + t - f|^2 (Arun/Umeyama, det R = +1)."""
    cm, cf = moving.mean(axis=0), fixed.mean(axis=0)
    h = (moving - cm).T @ (fixed - cf)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    # Reflection guard: flip the least significant axis instead of returning a mirror.
    r = vt.T @ np.diag([1.0, 1.0, d if d != 0 else 1.0]) @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = cf - r @ cm
    return m


@dataclass
class LandmarkResult:
    """Result of :func:`register_landmarks`; all distances in mm, points in CT LPS."""
    reference_to_ct: np.ndarray
    ct_points: np.ndarray
    reference_points: np.ndarray
    residuals_mm: np.ndarray          # |T ref_i - ct_i| per landmark
    fre_mm: float                     # RMS of the residuals
    loo_errors_mm: np.ndarray         # leave-one-out error per landmark (NaN if N-1 points degenerate)
    outliers: np.ndarray              # bool per landmark
    fle_mm: float                     # fiducial localisation error (given or estimated)
    fle_estimated: bool
    names: List[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.ct_points)

    def predicted_tre(self, target_ct) -> np.ndarray:
        """RMS target registration error (mm) at CT point(s) ``(..., 3)`` (FWM 1998)."""
        t = np.asarray(target_ct, dtype=float)
        c = self.ct_points.mean(axis=0)
        x = self.ct_points - c
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        axes = vt                                         # rows: principal axes
        tx = t - c
        ratio = np.zeros(t.shape[:-1])
        for k in range(3):
            # squared distance from axis k = |x|^2 - (x . a_k)^2
            f2 = np.mean(np.sum(x ** 2, axis=1) - (x @ axes[k]) ** 2)
            d2 = np.sum(tx ** 2, axis=-1) - (tx @ axes[k]) ** 2
            ratio = ratio + d2 / max(f2, 1e-12)
        tre2 = self.fle_mm ** 2 / self.n * (1.0 + ratio / 3.0)
        return np.sqrt(tre2)

    def to_dict(self) -> dict:
        """JSON form (the ``landmarks`` field of RESULT.json)."""
        return {
            "reference_to_ct": self.reference_to_ct.tolist(),
            "fre_mm": self.fre_mm,
            "fle_mm": self.fle_mm,
            "fle_estimated": self.fle_estimated,
            "landmarks": [
                {"name": self.names[i] if i < len(self.names) else f"L{i + 1}",
                 "residual_mm": float(self.residuals_mm[i]),
                 "loo_error_mm": None if np.isnan(self.loo_errors_mm[i]) else float(self.loo_errors_mm[i]),
                 "outlier": bool(self.outliers[i])}
                for i in range(self.n)],
        }


def register_landmarks(ct_points, reference_points, *, fle_mm: Optional[float] = None,
                       names: Optional[Sequence[str]] = None, path=None) -> LandmarkResult:
    """Rigid ``reference_to_ct`` from paired points (CT LPS mm, Reference mm).

    ``fle_mm``: known fiducial localisation error (RMS, mm); estimated from the FRE
    when None (needs N >= 4 to be meaningful; with N = 3 the FRE of a rigid fit is
    uninformative and the estimate is a lower bound).
    """
    ct = _points(ct_points, "CT landmarks", path)
    ref = _points(reference_points, "reference landmarks", path)
    if len(ct) != len(ref):
        raise InputError(f"{len(ct)} CT landmarks but {len(ref)} reference landmarks", path=path,
                         fix="give the landmarks as pairs (same count and order)")
    check_configuration(ct, "CT landmarks", path)
    check_configuration(ref, "reference landmarks", path)
    m = rigid_fit(ref, ct)
    res = np.linalg.norm(apply(m, ref) - ct, axis=1)
    n = len(ct)
    fre = float(np.sqrt(np.mean(res ** 2)))
    loo = np.full(n, np.nan)
    if n >= 4:
        for i in range(n):
            keep = np.arange(n) != i
            try:
                check_configuration(ct[keep])
            except InputError:
                continue
            mi = rigid_fit(ref[keep], ct[keep])
            loo[i] = float(np.linalg.norm(apply(mi, ref[i]) - ct[i]))
    outliers = np.zeros(n, bool)
    if np.isfinite(loo).sum() >= 3:
        med = float(np.nanmedian(loo))
        outliers = np.nan_to_num(loo) > max(OUTLIER_FACTOR * med, OUTLIER_MIN_MM)
    if fle_mm is None:
        fle = fre * np.sqrt(n / (n - 2.0))
        estimated = True
    else:
        fle = float(fle_mm)
        if not np.isfinite(fle) or fle < 0:
            raise InputError(f"fle_mm must be a non-negative number, got {fle_mm}", path=path)
        estimated = False
    return LandmarkResult(m, ct, ref, res, fre, loo, outliers, float(fle), estimated,
                         list(names) if names is not None else [f"L{i + 1}" for i in range(n)])


# ---------------------------------------------------------------------------- JSON pairs
def load_pairs(path) -> Dict[str, object]:
    """Read ``{"pairs": [{"name", "ct": [x,y,z], "reference": [x,y,z]}], "fle_mm"?}``.

    Returns ``{"names": [...], "ct": (N,3), "reference": (N,3), "fle_mm": float|None}``.
    """
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError("file not found", path=path, fix="check the --landmarks path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc})", path=path,
                         fix='write {"pairs": [{"name": ..., "ct": [x,y,z], "reference": [x,y,z]}]}') from None
    pairs = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(pairs, list):
        raise InputError('no "pairs" list', path=path,
                         fix='write {"pairs": [{"name": ..., "ct": [x,y,z], "reference": [x,y,z]}]}')
    names, ct, ref = [], [], []
    for i, p in enumerate(pairs):
        if not isinstance(p, dict) or "ct" not in p or "reference" not in p:
            raise InputError(f'pair {i} needs "ct" and "reference" points', path=path,
                             fix="give both positions in mm (CT in LPS)")
        names.append(str(p.get("name", f"L{i + 1}")))
        ct.append(p["ct"])
        ref.append(p["reference"])
    fle = data.get("fle_mm")
    return {"names": names,
            "ct": _points(ct if ct else np.zeros((0, 3)), "CT landmarks", path),
            "reference": _points(ref if ref else np.zeros((0, 3)), "reference landmarks", path),
            "fle_mm": None if fle is None else float(fle)}


def save_pairs(path, names: Sequence[str], ct_points, reference_points, fle_mm: Optional[float] = None) -> None:
    """Write the pairs file :func:`load_pairs` reads (atomically); points in mm (CT in LPS)."""
    ct = _points(ct_points, "CT landmarks")
    ref = _points(reference_points, "reference landmarks")
    data = {"pairs": [{"name": str(n), "ct": c.tolist(), "reference": r.tolist()}
                      for n, c, r in zip(names, ct, ref)]}
    if fle_mm is not None:
        data["fle_mm"] = float(fle_mm)
    atomic_write_text(path, json.dumps(data, indent=2))


def register_landmarks_file(path) -> LandmarkResult:
    """:func:`register_landmarks` on a pairs file (``ctus register --landmarks``)."""
    d = load_pairs(path)
    return register_landmarks(d["ct"], d["reference"], fle_mm=d["fle_mm"], names=d["names"], path=path)


# ---------------------------------------------------------------------------- PLUS stylus detection
def detect_stylus_landmarks(stylus_tip_to_reference: np.ndarray, timestamps: np.ndarray, *,
                            min_distance_between_landmarks_mm: float,
                            filter_window_s: float = 0.2, detection_time_s: float = 1.0,
                            shaft_min_displacement_mm: float = 30.0,
                            tip_max_displacement_mm: float = 1.5,
                            max_landmarks: Optional[int] = None) -> np.ndarray:
    """Landmark positions (Reference mm, ``(M, 3)``) from a stylus pivoting on each landmark.

    Reproduces PLUS ``vtkPlusLandmarkDetectionAlgo`` (defaults are its defaults):
    samples are grouped in windows of ``round(rate * filter_window_s)`` frames
    (rate = 1 / first frame interval, as PLUS's test does); at each completed window
    the window-mean tip position and a shaft point 100 mm along the StylusTip x axis
    extend two bounding boxes. If the tip box diagonal exceeds ``tip_max_displacement_mm``
    everything restarts; once ``detection_time_s / filter_window_s`` windows are
    collected and the shaft box diagonal is >= ``shaft_min_displacement_mm`` (the
    stylus pivoted), a landmark is estimated as the mean tip position. PLUS's
    estimate skips ``round(0.1 * windows)`` samples and, because it reuses the
    window-size variable for that count, averages sample indices
    ``[skip * skip, windows * skip)`` of the collected deque (4 samples with the
    defaults); reproduced as is. A landmark closer than a third of
    ``min_distance_between_landmarks_mm`` to an earlier one is ignored.
    """
    mats = np.asarray(stylus_tip_to_reference, dtype=float)
    ts = np.asarray(timestamps, dtype=float)
    if len(mats) < 2:
        raise InputError("fewer than 2 stylus samples", fix="record the stylus touching each landmark")
    rate = 1.0 / (ts[1] - ts[0])
    w = max(1, int(np.floor(rate * filter_window_s + 0.5)))
    n_req = int(detection_time_s / filter_window_s)
    skip = int(np.floor(n_req * 0.1 + 0.5))
    est_w = max(skip, 1)
    found: List[np.ndarray] = []
    deque: List[np.ndarray] = []
    tip_box: List[np.ndarray] = []
    shaft_box: List[np.ndarray] = []

    def diag(box):
        b = np.asarray(box)
        return float(np.linalg.norm(b.max(axis=0) - b.min(axis=0)))

    for m in mats:
        deque.append(m)
        if len(deque) % w:
            continue
        tip_box.append(np.mean([d[:3, 3] for d in deque[-w:]], axis=0))
        shaft_box.append(m[:3, :3] @ np.array([100.0, 0.0, 0.0]) + m[:3, 3])
        n_win = len(deque) // w
        if diag(tip_box) > tip_max_displacement_mm:
            deque, tip_box, shaft_box = [], [], []
            continue
        if n_win < n_req or diag(shaft_box) < shaft_min_displacement_mm:
            continue
        samples = np.array([d[:3, 3] for d in deque[est_w * skip:n_req * est_w]])
        p = samples.mean(axis=0)
        if not any(np.linalg.norm(p - q) < min_distance_between_landmarks_mm / 3.0 for q in found):
            found.append(p)
        deque, tip_box, shaft_box = [], [], []
        if max_landmarks is not None and len(found) >= max_landmarks:
            break
    return np.array(found).reshape(-1, 3)


def min_pairwise_distance(points) -> float:
    """Smallest distance (mm) between two of ``points`` (N x 3): PLUS's landmark spacing parameter."""
    p = np.asarray(points, dtype=float)
    d = np.linalg.norm(p[:, None] - p[None], axis=-1)
    d[np.diag_indices(len(p))] = np.inf
    return float(d.min())


def stylus_tip_to_reference(sweep, tip_to_stylus: np.ndarray, *, stylus: str = "Stylus",
                            reference: str = "Reference", tracker: str = "Tracker"):
    """([m, 4, 4] StylusTip -> Reference, timestamps [m]) over the frames where both the stylus
    and the reference are tracked (INVALID frames dropped, as PLUS's REQUIRE_TRACKING_OK does)."""
    s2t, r2t = f"{stylus}To{tracker}", f"{reference}To{tracker}"
    for name in (s2t, r2t):
        if name not in sweep.transforms:
            raise InputError(f"no {name}Transform in the recording", path=sweep.source,
                             fix="record the stylus and the reference marker with the tracker")
    ok = sweep.statuses[s2t] & sweep.statuses[r2t]
    if not ok.any():
        raise InputError("no frame has both the stylus and the reference tracked", path=sweep.source)
    m = np.linalg.inv(sweep.transforms[r2t][ok]) @ sweep.transforms[s2t][ok] @ np.asarray(tip_to_stylus, float)
    return m, sweep.timestamps[ok]
