"""Automatic rigid CT -> tracked-ultrasound registration (LC2 on frames; MI baseline).

Result: ``reference_to_ct`` (Reference mm -> CT LPS mm), refined from an
initial estimate (landmarks or a manual placement).

Design (LC2):

* **Frames, not a reconstructed sub-volume.** The CT features are resliced on
  each selected US frame plane (``image_to_ct = reference_to_ct @
  image_to_reference``) and LC2 is computed on the 2D frames with 2D patches.
  Reasons: no reconstruction step (which costs seconds per sweep, blurs
  speckle by compounding and fills holes by interpolation), the fan mask and
  the beam geometry stay exact, and the number of samples is set directly by
  the frame subset and pixel size per level. A reconstructed sub-volume was
  not benchmarked against it here (see the report): this is a design choice,
  justified by cost per evaluation, measured in ``benchmarks/registration.py``.
* CT features ``p`` (soft-tissue window) and ``g`` (gradient magnitude) are
  precomputed once per resolution level on a resampled CT grid, and sampled at
  the fan pixels with trilinear ``map_coordinates`` (only fan pixels, in one
  call per feature for all frames).
* Multi-resolution (coarse: 3 mm pixels, fine: 1.5 mm by default), multi-start
  (the initial pose plus seeded random perturbations), bounded Nelder-Mead over 6
  rigid parameters ``(rx, ry, rz [deg], tx, ty, tz [mm])`` of a CT-space update
  about a centre near the ROI: ``reference_to_ct = rigid(params, centre) @ init``.
* Frames with INVALID tracking are never used.

The MI baseline lives in :mod:`registration.mi_registration`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage, optimize
from scipy.spatial.transform import Rotation

from .errors import CancelledError, InputError
from .lc2 import ct_feature_arrays, lc2
from .sweep import Sweep
from .transforms import apply, as_matrix, rigid_matrix
from .volume import Volume

ProgressFn = Callable[[float, str], Optional[bool]]

#: (pixel size mm, patch size px, max frames) per level, coarse to fine. Chosen by
#: measurement on the demo case (benchmarks/registration.py): 1.5 mm / 16 frames cost
#: 10x more per evaluation than 2.5 mm / 10 frames for no gain in success rate.
DEFAULT_LEVELS: Tuple[Tuple[float, int, int], ...] = ((4.0, 5, 10), (2.5, 7, 10), (1.6, 9, 6))
#: CT margin (mm) kept around the sweep's fan under the start (covers BOUNDS translation).
CROP_MARGIN_MM = 45.0
#: Parameter scaling for the optimiser: 1 unit = this many deg / mm.
PARAM_SCALE = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
#: Search bounds around each start (deg, mm).
BOUNDS = np.array([15.0, 15.0, 15.0, 30.0, 30.0, 30.0])
#: Minimum fraction of fan samples that must fall inside the CT under the start.
MIN_OVERLAP = 0.2


# ---------------------------------------------------------------------------- CT levels
@dataclass
class FeatureLevel:
    """CT features resampled on an isotropic grid (same direction as the CT)."""
    p: np.ndarray             # float32 [k, j, i]
    g: np.ndarray             # float32 [k, j, i]
    lps_to_ijk: np.ndarray    # 4x4
    spacing_mm: float


def _smoothed_resampled(img: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Gaussian (sigma^2 = (s/2)^2 - (s_in/2)^2 per axis) then linear resampling to ``spacing_mm``."""
    sp_in = np.asarray(img.GetSpacing(), float)
    # Integer block averaging first (cheap), so the Gaussian runs on a smaller image.
    shrink = np.maximum(np.floor(spacing_mm / sp_in / 1.5).astype(int), 1)
    if np.any(shrink > 1):
        img = sitk.BinShrink(img, [int(v) for v in shrink])
        sp_in = np.asarray(img.GetSpacing(), float)
    sigma = np.sqrt(np.maximum((spacing_mm / 2.0) ** 2 - (sp_in / 2.0) ** 2, 0.0))
    if np.any(sigma > 0):
        img = sitk.SmoothingRecursiveGaussian(img, [float(max(s, 1e-3)) for s in sigma])
    size_out = np.maximum(np.round(np.asarray(img.GetSize()) * sp_in / spacing_mm).astype(int), 1)
    res = sitk.ResampleImageFilter()
    res.SetOutputSpacing([float(spacing_mm)] * 3)
    res.SetSize([int(v) for v in size_out])
    res.SetOutputOrigin(img.GetOrigin())
    res.SetOutputDirection(img.GetDirection())
    res.SetInterpolator(sitk.sitkLinear)
    res.SetDefaultPixelValue(-1000.0)
    return res.Execute(img)


def ct_feature_level(ct: Volume, spacing_mm: float) -> FeatureLevel:
    """Smooth (sigma = spacing/2), resample to ``spacing_mm`` and compute (p, g)."""
    return ct_feature_levels(ct, [spacing_mm])[0]


def ct_feature_levels(ct: Volume, spacings_mm: Sequence[float]) -> List[FeatureLevel]:
    """Feature levels, computed fine to coarse, each from the previous (smoothed) one:
    the expensive smoothing of the full-resolution CT happens once."""
    order = np.argsort(spacings_mm)
    img = sitk.Cast(ct.to_sitk(), sitk.sitkFloat32)
    out: List[Optional[FeatureLevel]] = [None] * len(spacings_mm)
    for k in order:
        sp = float(spacings_mm[k])
        img = _smoothed_resampled(img, sp)
        vol = Volume.from_sitk(img)
        p, g = ct_feature_arrays(vol.array, (sp,) * 3, smooth_mm=0.0)
        out[k] = FeatureLevel(p, g, vol.lps_to_ijk, sp)
    return out  # type: ignore[return-value]


def crop_to_points(ct: Volume, points_ct: np.ndarray, margin_mm: float) -> Volume:
    """The CT restricted to the bounding box of ``points_ct`` (LPS mm) plus ``margin_mm``."""
    ijk = ct.lps_to_index(points_ct)
    m = margin_mm / np.asarray(ct.spacing, float)
    lo = np.maximum(np.floor(ijk.min(axis=0) - m).astype(int), 0)
    hi = np.minimum(np.ceil(ijk.max(axis=0) + m).astype(int) + 1, np.asarray(ct.shape_ijk))
    if np.any(hi - lo < 2):
        return ct
    arr = ct.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    return Volume(arr, ct.spacing, ct.index_to_lps(lo.astype(float)), ct.direction, dict(ct.metadata))


# ---------------------------------------------------------------------------- frames
def select_frames(sweep: Sweep, max_frames: int, frames: Optional[Sequence[int]] = None) -> np.ndarray:
    """Indices of valid-tracking frames, evenly spread, at most ``max_frames``."""
    _, valid = sweep.require_image_to_reference()
    if frames is not None:
        idx = np.asarray(frames, dtype=int)
        if idx.size and (idx.min() < 0 or idx.max() >= len(sweep)):
            raise InputError(f"frame index out of range 0..{len(sweep) - 1}", path=sweep.source)
        idx = idx[valid[idx]]
    else:
        idx = np.flatnonzero(valid)
    if idx.size == 0:
        raise InputError("no frame with valid tracking among the frames asked for", path=sweep.source,
                         fix="record the sweep again with the probe and reference visible")
    if idx.size > max_frames:
        idx = idx[np.round(np.linspace(0, idx.size - 1, max_frames)).astype(int)]
    return idx


def sweep_fan_mask(sweep: Sweep) -> np.ndarray:
    if sweep.fan_mask is not None:
        return sweep.fan_mask
    from .fan_mask import detect_fan_mask
    return detect_fan_mask(sweep.frames)


@dataclass
class FrameSamples:
    """US frames resampled to ``pixel_mm`` with their fan pixels in Reference mm."""
    u: np.ndarray              # float32 [n, rows, cols] (0 outside the fan)
    fan: np.ndarray            # bool [n, rows, cols]
    points_ref: np.ndarray     # [m, 3] Reference mm of the fan pixels (row-major over fan)

    @property
    def points_ref_t(self) -> np.ndarray:
        """[3, m] contiguous copy (cached): one 3x3 @ 3xm product per evaluation."""
        if getattr(self, "_pt", None) is None:
            self._pt = np.ascontiguousarray(self.points_ref.T)
        return self._pt
    pixel_mm: float


def frame_samples(sweep: Sweep, indices: np.ndarray, pixel_mm: float) -> FrameSamples:
    mats, _ = sweep.require_image_to_reference()
    mask = sweep_fan_mask(sweep)
    rows, cols = sweep.image_shape
    sx = float(np.linalg.norm(mats[indices[0]][:3, 0]))
    sy = float(np.linalg.norm(mats[indices[0]][:3, 1]))
    nc = max(int(cols * sx / pixel_mm), 4)
    nr = max(int(rows * sy / pixel_mm), 4)
    # Pixel centres of the coarse grid in original pixel units (x = col, y = row).
    xs = (np.arange(nc) + 0.5) * (cols / nc) - 0.5
    ys = (np.arange(nr) + 0.5) * (rows / nr) - 0.5
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    fan = ndimage.map_coordinates(mask.astype(np.float32), [yy.ravel(), xx.ravel()], order=1,
                                  mode="constant", cval=0.0).reshape(nr, nc) > 0.99
    sig = (0.5 * pixel_mm / sy, 0.5 * pixel_mm / sx)   # anti-alias before decimation
    u = np.zeros((len(indices), nr, nc), np.float32)
    pts = []
    fy, fx = yy[fan], xx[fan]
    img_pts = np.stack([fx, fy, np.zeros_like(fx)], axis=1)
    for n, f in enumerate(indices):
        sm = ndimage.gaussian_filter(sweep.frames[f].astype(np.float32), sig)
        u[n][fan] = ndimage.map_coordinates(sm, [fy, fx], order=1)
        pts.append(apply(mats[f], img_pts))
    fans = np.broadcast_to(fan, u.shape).copy()
    return FrameSamples(u, fans, np.concatenate(pts, axis=0), float(pixel_mm))


class FrameLC2Cost:
    """Negative LC2 between resampled US frames and the CT features under a pose."""

    def __init__(self, level: FeatureLevel, samples: FrameSamples, patch_px: int):
        self.level = level
        self.samples = samples
        self.patch = (1, patch_px, patch_px)
        self.n_evals = 0
        self._fan_idx = np.flatnonzero(samples.fan.ravel())

    def sample_features(self, reference_to_ct: np.ndarray):
        m = (self.level.lps_to_ijk @ reference_to_ct)[2::-1]     # rows k, j, i
        coords = m[:, :3] @ self.samples.points_ref_t + m[:, 3:]
        p = ndimage.map_coordinates(self.level.p, coords, order=1, mode="constant", cval=np.nan)
        g = ndimage.map_coordinates(self.level.g, coords, order=1, mode="constant", cval=np.nan)
        return p, g

    def overlap(self, reference_to_ct: np.ndarray) -> float:
        p, _ = self.sample_features(reference_to_ct)
        return float(np.mean(np.isfinite(p)))

    def metric(self, reference_to_ct: np.ndarray) -> Tuple[float, float]:
        """(LC2, fraction of fan samples inside the CT)."""
        self.n_evals += 1
        p, g = self.sample_features(reference_to_ct)
        inside = np.isfinite(p)
        shape = self.samples.u.shape
        pv = np.zeros(shape, np.float32).ravel()
        gv = np.zeros(shape, np.float32).ravel()
        mk = np.zeros(shape, bool).ravel()
        pv[self._fan_idx] = np.where(inside, p, 0.0)
        gv[self._fan_idx] = np.where(inside, g, 0.0)
        mk[self._fan_idx] = inside
        value = lc2(self.samples.u, pv.reshape(shape), gv.reshape(shape), mk.reshape(shape), self.patch,
                    dtype=np.float32)
        return value, float(inside.mean())


# ---------------------------------------------------------------------------- results
@dataclass
class StartResult:
    start_params: np.ndarray       # perturbation of the start (deg, mm) about the centre
    reference_to_ct: np.ndarray
    metric_initial: float
    metric_final: float
    evaluations: int


@dataclass
class RegistrationResult:
    """Outcome of :func:`register_sweep`; metrics are the method's own (LC2 or MI, higher = better)."""
    reference_to_ct: np.ndarray
    method: str
    metric_initial: float
    metric_final: float
    iterations: int                        # cost evaluations over all levels and starts
    wall_time_s: float
    center_ct: np.ndarray
    starts: List[StartResult] = field(default_factory=list)
    history: List[Tuple[int, int, float]] = field(default_factory=list)   # (eval, level, metric)
    frames_used: List[int] = field(default_factory=list)
    init_reference_to_ct: Optional[np.ndarray] = None
    uncertainty: Optional[dict] = None
    cost: Optional[Callable[[np.ndarray], float]] = None   # fine-level metric(reference_to_ct), for uncertainty
    n_eff: Optional[float] = None          # independent patches at the fine level (Laplace scaling)

    def to_dict(self) -> dict:
        return {
            "reference_to_ct": np.asarray(self.reference_to_ct).tolist(),
            "method": self.method,
            "metric_initial": float(self.metric_initial),
            "metric_final": float(self.metric_final),
            "iterations": int(self.iterations),
            "wall_time_s": float(self.wall_time_s),
            "center_ct": [float(v) for v in self.center_ct],
            "frames_used": [int(f) for f in self.frames_used],
            "starts": [{"start_params": s.start_params.tolist(), "metric_initial": s.metric_initial,
                        "metric_final": s.metric_final, "evaluations": s.evaluations,
                        "reference_to_ct": s.reference_to_ct.tolist()} for s in self.starts],
            "history": [list(h) for h in self.history],
            "uncertainty": self.uncertainty,
        }


def start_perturbations(n_starts: int, seed: int, rot_deg: float = 4.0, trans_mm: float = 6.0) -> np.ndarray:
    """[n_starts, 6]: the unperturbed start first, then seeded random rigid perturbations."""
    rng = np.random.default_rng(seed)
    out = [np.zeros(6)]
    for _ in range(max(n_starts, 1) - 1):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out.append(np.concatenate([axis * rot_deg * rng.uniform(0.5, 1.0),
                                   d * trans_mm * rng.uniform(0.5, 1.0)]))
    return np.array(out)


class _Progress:
    def __init__(self, fn: Optional[ProgressFn], total: int):
        self.fn, self.total, self.count = fn, max(total, 1), 0

    def step(self, message: str) -> None:
        self.count += 1
        if self.fn is not None and self.count % 10 == 0:
            if self.fn(min(self.count / self.total, 0.99), message) is False:
                raise CancelledError("registration cancelled")


def _optimise(cost_fn: Callable[[np.ndarray], float], x0: np.ndarray, maxfev: int, step: float,
              xatol: float, fatol: float = 1e-4):
    """Bounded Nelder-Mead from ``x0`` with an initial simplex of ``step`` (scaled units).

    Measured on the synthetic case (benchmarks/registration.py history): fewer
    evaluations than bounded Powell (100-280 vs 200-400 at the coarse level) and
    no worse accuracy; Powell's line searches stalled on LC2's small-scale noise.
    """
    lo = x0 - BOUNDS / PARAM_SCALE
    hi = x0 + BOUNDS / PARAM_SCALE
    simplex = np.vstack([x0, x0 + np.eye(6) * step])
    res = optimize.minimize(cost_fn, x0, method="Nelder-Mead", bounds=list(zip(lo, hi)),
                            options={"initial_simplex": simplex, "xatol": xatol, "fatol": fatol,
                                     "maxfev": maxfev})
    return res.x


def _translation_search_starts(cost_fn, n_starts: int, range_mm: float, step_mm: float,
                               fallback: np.ndarray) -> np.ndarray:
    """[n_starts, 6]: zero first, then the best translation-grid points at least 1.5 steps apart."""
    g = np.arange(-range_mm, range_mm + 1e-9, step_mm)
    grid = np.array([(0, 0, 0, x, y, z) for x in g for y in g for z in g], float)
    values = np.array([cost_fn(p / PARAM_SCALE) for p in grid])
    chosen = [np.zeros(6)]
    for k in np.argsort(values):
        p = grid[k]
        if all(np.linalg.norm(p[3:] - c[3:]) >= 1.5 * step_mm for c in chosen):
            chosen.append(p)
        if len(chosen) == n_starts:
            break
    while len(chosen) < n_starts:
        chosen.append(fallback[len(chosen)])
    return np.array(chosen)


def roi_center(sweep: Sweep, indices: np.ndarray, init: np.ndarray, samples: FrameSamples) -> np.ndarray:
    """Centroid of the fan samples mapped to CT under ``init`` (rotation centre, mm)."""
    return apply(init, samples.points_ref.mean(axis=0))


def register_sweep(ct: Volume, sweep: Sweep, init_reference_to_ct, *, method: str = "lc2",
                   frames: Optional[Sequence[int]] = None, roi_center_ct=None,
                   progress: Optional[ProgressFn] = None, seed: int = 0, n_starts: int = 4,
                   levels: Sequence[Tuple[float, int, int]] = DEFAULT_LEVELS,
                   max_evals_per_start: int = 150, max_coarse_evals: int = 200,
                   targets: Optional[dict] = None, hessian: bool = True,
                   translation_search_mm: float = 15.0, search_step_mm: float = 5.0) -> RegistrationResult:
    """Refine ``init_reference_to_ct`` by maximising LC2 (or MI) between the CT and the sweep.

    ``progress(fraction, message)`` is called during the work; returning False cancels
    (raises CancelledError). Raises InputError when all frames are INVALID or the sweep
    does not overlap the CT under the start. ``targets``: ``{name: {"point": CT LPS mm,
    "radius_mm": R}}`` for the uncertainty report (default: the ROI centre); ``hessian``:
    also estimate the Laplace covariance (28 extra fine-level evaluations).
    ``translation_search_mm``: before the multi-start, the coarse metric is evaluated on a
    translation grid (+- this range, ``search_step_mm`` apart); the best distinct grid points
    replace the random starts (the unperturbed start stays first). It widens the capture
    range for translation errors, which dominate a landmark or manual start.
    """
    method = str(method).lower()
    init = as_matrix(init_reference_to_ct, name="initial reference_to_ct")
    if method == "mi":
        from .mi_registration import register_sweep_mi
        return register_sweep_mi(ct, sweep, init, frames=frames, roi_center_ct=roi_center_ct,
                                 progress=progress, seed=seed, n_starts=n_starts, targets=targets)
    if method != "lc2":
        raise InputError(f"unknown registration method '{method}'", fix="use lc2 or mi")
    if not sweep.has_images:
        raise InputError("the sweep has no image frames (tracker-only sequence)", path=sweep.source,
                         fix="register with a sequence that holds ultrasound images")
    t0 = time.perf_counter()
    lv = []
    samples = [frame_samples(sweep, select_frames(sweep, nmax, frames), pixel_mm)
               for pixel_mm, _, nmax in levels]
    # Only the CT around the sweep (under the start, plus the search range) is needed.
    roi_ct = crop_to_points(ct, apply(init, samples[-1].points_ref), CROP_MARGIN_MM)
    feats = ct_feature_levels(roi_ct, [lev[0] for lev in levels])
    for (pixel_mm, patch, nmax), smp, feat in zip(levels, samples, feats):
        lv.append((FrameLC2Cost(feat, smp, patch), select_frames(sweep, nmax, frames)))
    coarse, fine = lv[0][0], lv[-1][0]
    overlap0 = fine.overlap(init)
    if overlap0 < MIN_OVERLAP:
        raise InputError(f"under the initial transform only {100 * overlap0:.0f} % of the sweep's fan "
                         f"lies inside the CT: the sweep and the CT do not overlap", path=sweep.source,
                         fix="check the initial transform / landmarks (units mm, LPS, Reference -> CT)")
    center = (np.asarray(roi_center_ct, float) if roi_center_ct is not None
              else roi_center(sweep, lv[-1][1], init, fine.samples))
    starts = start_perturbations(n_starts, seed)
    n_grid = int(round(2 * translation_search_mm / search_step_mm) + 1) ** 3 if translation_search_mm > 0 else 0
    prog = _Progress(progress, total=n_grid + len(starts) * max_coarse_evals + max_evals_per_start)
    history: List[Tuple[int, int, float]] = []
    evals = [0]

    def make_cost(c: FrameLC2Cost, level_id: int, base: np.ndarray):
        def f(x):
            m = rigid_matrix(x * PARAM_SCALE, center) @ base
            value, inside = c.metric(m)
            evals[0] += 1
            history.append((evals[0], level_id, value))
            prog.step(f"LC2 level {level_id + 1}/{len(lv)}: {value:.4f}")
            # Moving the fan out of the CT must not pay: penalise lost overlap.
            return -value + 2.0 * max(0.0, 0.8 * overlap0 - inside)
        return f

    results: List[StartResult] = []
    initial_metric = fine.metric(init)[0]
    if translation_search_mm > 0 and len(starts) > 1:
        starts = _translation_search_starts(make_cost(coarse, 0, init), len(starts), translation_search_mm,
                                            search_step_mm, starts)
    for s in starts:
        x0 = s / PARAM_SCALE
        f = make_cost(coarse, 0, init)
        m0 = -f(x0)
        n_before = evals[0]
        x = _optimise(f, x0, max_coarse_evals, step=2.0, xatol=0.1, fatol=1e-4)
        m_end = rigid_matrix(x * PARAM_SCALE, center) @ init
        results.append(StartResult(s, m_end, m0, -f(x), evals[0] - n_before))
    best = max(results, key=lambda r: r.metric_final)
    # Fine level(s): refine the best coarse solution about the same centre.
    current = best.reference_to_ct
    for level_id, (c, _) in enumerate(lv[1:], start=1):
        f = make_cost(c, level_id, current)
        last = level_id == len(lv) - 1 and len(lv) > 2
        # The finest level only polishes (small simplex, few evaluations): it is the costliest.
        x = _optimise(f, np.zeros(6), max_evals_per_start // 2 if last else max_evals_per_start,
                      step=0.25 if last else 0.5, xatol=0.05)
        current = rigid_matrix(x * PARAM_SCALE, center) @ current
    final_metric = fine.metric(current)[0]
    n_eff = fine.samples.fan.sum() / float(fine.patch[1] * fine.patch[2])
    result = RegistrationResult(current, "lc2", float(initial_metric), float(final_metric), evals[0],
                                time.perf_counter() - t0, center, results, history,
                                [int(i) for i in lv[-1][1]], init,
                                cost=lambda m: fine.metric(m)[0], n_eff=float(n_eff))
    from .uncertainty import assess, hessian_covariance
    hess = None
    if hessian:
        # Two fine pixels (mm) / as many degrees: smaller steps measured LC2's speckle noise
        # rather than its curvature (spurious negative eigenvalues on the demo case).
        step = (2.0 * fine.level.spacing_mm,) * 6
        hess = hessian_covariance(result.cost, current, center, n_eff, step=step)
    result.uncertainty = assess(result, targets or {}, n_eff=float(n_eff), hessian=hess,
                                resolution_mm=fine.level.spacing_mm)
    result.wall_time_s = time.perf_counter() - t0
    if progress is not None and progress(1.0, f"LC2 done: {final_metric:.4f}") is False:
        raise CancelledError("registration cancelled")
    return result


def random_rigid_perturbation(rng: np.random.Generator, trans_range=(5.0, 20.0), rot_range=(0.0, 10.0),
                              center=(0.0, 0.0, 0.0)) -> np.ndarray:
    """A rigid 4x4 with |t| uniform in ``trans_range`` mm and angle uniform in ``rot_range`` deg
    about a random axis through ``center`` (for benchmarks and tests)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    ang = rng.uniform(*rot_range)
    t = d * rng.uniform(*trans_range)
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(np.deg2rad(ang) * axis).as_matrix()
    c = np.asarray(center, float)
    m[:3, 3] = c - m[:3, :3] @ c + t
    return m
