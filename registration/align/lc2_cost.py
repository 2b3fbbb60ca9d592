"""LC2 cost on tracked frames: frame resampling and the metric under a pose.

Used by :mod:`registration.align.intensity_registration`; the CT feature levels are in
:mod:`.lc2_features` (re-exported here). Geometry: CT features live on
an isotropic grid with the CT's direction (``lps_to_ijk`` maps LPS mm to
``(i, j, k)``); frame samples are fan pixels of the US frames resampled to
``pixel_mm`` and carried to Reference mm with ``image_to_reference``; a pose
``reference_to_ct`` maps them into the CT, where ``p`` and ``g`` are sampled
trilinearly (points outside the CT get flat features p = g = 0: their patches explain
nothing and lower LC2). The metric is computed by the compiled kernels of
:mod:`.lc2_kernels` (``engine="compiled"``, the default when they could be built) or by the
numpy form it is tested against (``engine="numpy"``: ``map_coordinates`` and
:class:`~registration.align.lc2.FixedUS`, float32).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply

from . import lc2_kernels
from .lc2 import FixedUS
from .lc2_features import FeatureLevel, crop_to_points, ct_feature_level, ct_feature_levels  # noqa: F401 (re-exported)

#: LC2 evaluation engine: "compiled" (:mod:`.lc2_kernels`) when they could be built, else "numpy".
DEFAULT_ENGINE = "compiled" if lc2_kernels.AVAILABLE else "numpy"


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
    """The sweep's fan mask [rows, cols] (bool), detected from the frames when it has none."""
    if sweep.fan_mask is not None:
        return sweep.fan_mask
    from registration.spatial.fan_mask import detect_fan_mask
    return detect_fan_mask(sweep.frames)


@dataclass
class FrameSamples:
    """US frames resampled to ``pixel_mm`` with their fan pixels in Reference mm."""
    u: np.ndarray              # float32 [n, rows, cols] (0 outside the fan)
    fan: np.ndarray            # bool [n, rows, cols]
    points_ref: np.ndarray     # [m, 3] Reference mm of the fan pixels (row-major over fan)
    pixel_mm: float

    @property
    def points_ref_t(self) -> np.ndarray:
        """[3, m] contiguous copy (cached): one 3x3 @ 3xm product per evaluation."""
        if getattr(self, "_pt", None) is None:
            self._pt = np.ascontiguousarray(self.points_ref.T)
        return self._pt

    def depth_mm(self) -> np.ndarray:
        """[m] depth (mm) of every fan sample below the probe face, in the order of ``points_ref``:
        its row minus the first fan row of its column over all frames (the convex array's arc, a
        linear array's top row), times ``pixel_mm``. Meaningful on samples of the whole fan (a
        subset's first rows are not the face's)."""
        _, rows, cols = np.nonzero(self.fan)
        top = np.argmax(self.fan.any(axis=0), axis=0)        # per column; 0 where the column has no fan
        return (rows - top[cols]) * float(self.pixel_mm)


def frame_samples(sweep: Sweep, indices: np.ndarray, pixel_mm: float, depth_normalise: bool = True) -> FrameSamples:
    """Frames ``indices`` anti-aliased and resampled to ``pixel_mm`` pixels, with their fan pixels
    carried to Reference mm (``image_to_reference``); ``depth_normalise``: per-row (depth) scale."""
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
    if sweep.metadata.get("zero_is_outside"):   # issue 18: a 3D volume's slices, 0 = not imaged there
        from .volume_sweep import drop_unimaged
        u, fans, pts = drop_unimaged(sweep, indices, fan, fy, fx, u, fans, pts)
    if sweep.metadata.get("drop_shadows"):      # issue 18: MR -> US, shadows move with the ribs and lung
        from registration.ultrasound.shadows import drop_shadows
        u, fans, pts = drop_shadows(sweep, mask, indices, fan, fy, fx, u, fans, pts)
    if depth_normalise:
        # Per-row (depth) scale over all frames, like a TGC: LC2's weights (local std of u)
        # otherwise favour the bright near field over the darker, attenuated liver.
        rows_mean = np.array([u[:, r][fans[:, r]].mean() if fans[:, r].any() else 0.0 for r in range(nr)])
        scale = np.where(rows_mean > 1e-3, rows_mean, 1.0)
        u = (u / scale[None, :, None]).astype(np.float32)
    return FrameSamples(u, fans, np.concatenate(pts, axis=0), float(pixel_mm))


class FrameLC2Cost:
    """LC2 between resampled US frames and the CT features under a pose.

    ``metric`` uses :class:`~registration.align.lc2.FixedUS` (the US moments precomputed once);
    ``map_fn(f, chunks)`` (optional) evaluates the two halves of the frames in parallel;
    the sum over the halves is the same LC2.
    """

    def __init__(self, level: FeatureLevel, samples: FrameSamples, patch_px: int, engine: Optional[str] = None):
        self.level = level
        self.samples = samples
        self.patch = (1, patch_px, patch_px)
        self.engine = engine or DEFAULT_ENGINE
        if self.engine not in ("compiled", "numpy") or (self.engine == "compiled" and not lc2_kernels.AVAILABLE):
            raise ValueError(f"LC2 engine {self.engine!r} is not available (compiled kernels built: "
                             f"{lc2_kernels.AVAILABLE})")
        # The compiled form computes in float64 (its US side too); the numpy form in float32.
        self._fixed = FixedUS(samples.u, samples.fan, self.patch,
                              dtype=np.float64 if self.engine == "compiled" else np.float32)
        # (frames, fan samples) of the whole stack, then of its two halves (for map_fn).
        n = samples.u.shape[0]
        per_frame = np.concatenate([[0], np.cumsum(samples.fan.reshape(n, -1).sum(axis=1))])
        half = n // 2
        self._whole = [(slice(0, n), slice(0, int(per_frame[n])))]
        self._halves = self._whole if n < 2 else [
            (slice(0, half), slice(0, int(per_frame[half]))),
            (slice(half, n), slice(int(per_frame[half]), int(per_frame[n])))]
        if self.engine == "compiled":
            self._pix = np.flatnonzero(samples.fan)          # same order as points_ref (frame, row, col)
            self._cnt = lc2_kernels.patch_counts(samples.fan, patch_px)
            self._points = np.ascontiguousarray(samples.points_ref, dtype=np.float64)

    def weight_samples(self, weights) -> None:
        """Multiply the LC2 weight of every fan sample by ``weights`` [n samples, in the order of
        ``samples.points_ref``] (in place). The metric stays a weighted mean of local LC2 values in
        [0, 1]; a focused region weights its samples by their distance from the target."""
        wt = np.zeros(self.samples.fan.shape, self._fixed.w.dtype)
        wt[self.samples.fan] = np.asarray(weights, float)
        self._fixed.w = self._fixed.w * wt

    def sample_features(self, reference_to_ct: np.ndarray, points: slice = slice(None)):
        """p and g (NaN outside the CT) at the fan samples ``points`` under the pose."""
        m = (self.level.lps_to_ijk @ reference_to_ct)[2::-1]     # rows k, j, i
        coords = m[:, :3] @ self.samples.points_ref_t[:, points] + m[:, 3:]
        p = ndimage.map_coordinates(self.level.p, coords, order=1, mode="constant", cval=np.nan)
        g = ndimage.map_coordinates(self.level.g, coords, order=1, mode="constant", cval=np.nan)
        return p, g

    def overlap(self, reference_to_ct: np.ndarray) -> float:
        """Fraction of the fan samples inside the CT under the pose."""
        if self.engine == "compiled":
            m = np.ascontiguousarray((self.level.lps_to_ijk @ np.asarray(reference_to_ct, float))[2::-1])
            scratch = np.empty(self.samples.u.size)
            n_in = lc2_kernels.sample_features(self.level.pg, m, self._points, 0, len(self._points), self._pix,
                                               scratch, scratch)[0]
            return float(n_in / max(len(self._points), 1))
        p, _ = self.sample_features(reference_to_ct)
        return float(np.mean(np.isfinite(p)))

    def metric(self, reference_to_ct: np.ndarray, map_fn=None, per_frame: bool = False):
        """(LC2, fraction of fan samples inside the CT). Outside the CT the features are
        constant (p = g = 0: no structure), so patches there explain nothing and lower LC2.

        ``map_fn(f, items) -> [f(x) for x in items]`` may run the two halves of the frames
        in parallel (sampling, then the patch sums); the value does not depend on it.
        ``per_frame``: instead, per-frame ``(sum w*LC2, sum w)`` arrays; their totals' ratio
        is the LC2 (the weights ``w`` depend on the US alone)."""
        run = map_fn or (lambda f, xs: [f(x) for x in xs])
        chunks = self._halves if map_fn is not None else self._whole
        if self.engine == "compiled":
            return self._metric_compiled(reference_to_ct, run, chunks, per_frame)
        u = self.samples.u
        stacks = run(lambda c: self._chunk_features(reference_to_ct, c), chunks)
        # Global standardisation over the fan (as lc2_maps): moments combined over chunks.
        n_in = sum(st[2] for st in stacks)
        n_all = sum(st[0].size for st in stacks)
        stats = []
        for ch in (0, 1):
            tot = sum(float(st[ch].sum(dtype=np.float64)) for st in stacks)
            sq = sum(float(np.square(st[ch], dtype=np.float64).sum()) for st in stacks)
            mean = tot / n_all
            stats.append((mean, np.sqrt(max(sq / n_all - mean * mean, 0.0)) + self._fixed.eps))

        def sums(k):
            fr, _ = chunks[k]
            p, g = stacks[k][0], stacks[k][1]
            shape = (fr.stop - fr.start,) + u.shape[1:]
            pv = np.zeros(shape, np.float32)
            gv = np.zeros(shape, np.float32)
            fan = self.samples.fan[fr]
            pv[fan] = (p - stats[0][0]) / stats[0][1]
            gv[fan] = (g - stats[1][0]) / stats[1][1]
            return self._fixed.sums(pv, gv, fr, per_frame)
        parts = run(sums, range(len(chunks)))
        if per_frame:
            return np.concatenate([x[0] for x in parts]), np.concatenate([x[1] for x in parts])
        num, den = sum(x[0] for x in parts), sum(x[1] for x in parts)
        return (num / den if den > 0 else 0.0), float(n_in / max(n_all, 1))

    def _metric_compiled(self, reference_to_ct, run, chunks, per_frame: bool):
        """:meth:`metric` by the compiled kernels (:mod:`.lc2_kernels`): the same quantities in float64."""
        m = np.ascontiguousarray((self.level.lps_to_ijk @ np.asarray(reference_to_ct, float))[2::-1])
        pg = self.level.pg
        shape = self.samples.u.shape
        pv, gv = np.empty(shape), np.empty(shape)
        flat_p, flat_g = pv.reshape(-1), gv.reshape(-1)
        stats = run(lambda c: lc2_kernels.sample_features(pg, m, self._points, c[1].start, c[1].stop, self._pix,
                                                          flat_p, flat_g), chunks)
        n_all = self._points.shape[0]
        n_in = sum(st[0] for st in stats)
        eps = self._fixed.eps
        mean_p, inv_p = lc2_kernels.standardisation(n_all, sum(st[1] for st in stats), sum(st[2] for st in stats), eps)
        mean_g, inv_g = lc2_kernels.standardisation(n_all, sum(st[3] for st in stats), sum(st[4] for st in stats), eps)
        fx = self._fixed
        num, den = np.zeros(shape[0]), np.zeros(shape[0])
        run(lambda c: lc2_kernels.lc2_frame_sums(pv, gv, fx.mask, fx.u, fx.mu, fx.inv_vu, fx.w, self._cnt,
                                                 self.patch[1] // 2, mean_p, inv_p, mean_g, inv_g, eps, 1e-3,
                                                 c[0].start, c[0].stop, num, den), chunks)
        if per_frame:
            return num, den
        tot = float(den.sum())
        return (float(num.sum()) / tot if tot > 0 else 0.0), float(n_in / max(n_all, 1))

    def _chunk_features(self, reference_to_ct, chunk):
        p, g = self.sample_features(reference_to_ct, chunk[1])
        inside = np.isfinite(p)
        n_in = int(inside.sum())
        if n_in < p.size:
            p, g = np.where(inside, p, 0.0), np.where(inside, g, 0.0)
        return p.astype(np.float32, copy=False), g.astype(np.float32, copy=False), n_in
