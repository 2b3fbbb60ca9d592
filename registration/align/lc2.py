"""Linear correlation of linear combination (LC2; Wein et al. 2008, 2013).

Per patch of ``n`` valid voxels the US values ``u`` are fitted by least squares
against ``M = [p, g, 1]`` (``p`` = CT intensity in a soft-tissue window, ``g`` =
CT gradient magnitude or a simulated reflection)::

    LC2_patch = 1 - sum (u - M c)^2 / (n Var u)

and the global score is ``sum w LC2_patch / sum w`` with ``w`` = the local
standard deviation of ``u`` (flat, speckle-free patches say nothing). A patch is
centred on every valid voxel (dense, stride 1); only valid voxels (inside the
fan) enter a patch, and patches whose centre is outside the fan, or that have
fewer than ``min_fraction`` of their voxels valid, are skipped.

Arrays may be 2D ``[rows, cols]``, a stack of 2D frames ``[n, rows, cols]``
(use ``size=(1, s, s)`` so patches stay inside one frame) or 3D ``[k, j, i]``.

:func:`lc2` is the fast exact form: local moments with ``uniform_filter`` and the
regression on ``[p, g, 1]`` solved in closed form as the 2x2 normal equations of
the centred regressors (the constant absorbs the means). :func:`lc2_reference`
loops over patches with ``np.linalg.lstsq`` and is the definition the fast form
is tested against.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

Size = Union[int, Sequence[int]]

#: Default soft-tissue window (HU) for the intensity channel p.
SOFT_TISSUE_WINDOW_HU = (-100.0, 300.0)
#: HU range clipped before the gradient, so bone/air edges do not swamp soft-tissue edges.
GRADIENT_CLIP_HU = (-300.0, 700.0)


def _sizes(size: Size, ndim: int) -> Tuple[int, ...]:
    if np.isscalar(size):
        return (int(size),) * ndim
    s = tuple(int(v) for v in size)
    if len(s) != ndim:
        raise ValueError(f"patch size {s} does not match array dimension {ndim}")
    return s


def _explained_variance(vp, vg, cup, cug, cpg, eps: float, dtype):
    """Per patch, the variance of u explained by the least-squares fit on [p, g, 1]:
    c^T S^-1 c with c = [cov(u,p), cov(u,g)], S = cov([p, g]) (the 2x2 normal equations of
    the centred regressors in closed form). ``vp``, ``vg`` are clipped at 0 by the caller."""
    det = vp * vg - cpg * cpg
    full = det > (1e-6 if dtype == np.float64 else 1e-3) * np.maximum(vp * vg, eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        expl2 = (vg * cup * cup - 2 * cpg * cup * cug + vp * cug * cug) / np.where(full, det, 1.0)
        # rank-deficient patch: p and g collinear or one constant -> one-regressor fit
        e_p = np.where(vp > eps, cup * cup / np.where(vp > eps, vp, 1.0), 0.0)
        e_g = np.where(vg > eps, cug * cug / np.where(vg > eps, vg, 1.0), 0.0)
        return np.where(full, expl2, np.maximum(e_p, e_g))


def lc2_maps(u: np.ndarray, p: np.ndarray, g: np.ndarray, mask: Optional[np.ndarray] = None,
             size: Size = 9, min_fraction: float = 0.5, eps: float = 1e-9, dtype=np.float64):
    """Per-voxel LC2 of the patch centred there and its weight (local std of ``u``).

    Returns ``(lc2_map, weight_map)``; skipped patches have weight 0. ``dtype=np.float32``
    halves the cost (agreement with float64 ~1e-5, enough for optimisation).
    """
    u = np.asarray(u, dtype=dtype)
    p = np.asarray(p, dtype=dtype)
    g = np.asarray(g, dtype=dtype)
    m = np.ones(u.shape, dtype) if mask is None else np.asarray(mask, dtype=dtype)
    # Standardise the regressors (LC2 is invariant to their affine scaling) for conditioning.
    valid = m > 0
    if valid.any():
        p = ((p - p[valid].mean()) / (p[valid].std() + eps)).astype(dtype, copy=False)
        g = ((g - g[valid].mean()) / (g[valid].std() + eps)).astype(dtype, copy=False)
        u = ((u - u[valid].mean()) / (u[valid].std() + eps)).astype(dtype, copy=False)
    s = _sizes(size, u.ndim)

    def mean(x):
        return ndimage.uniform_filter(x, size=s, mode="constant", cval=0.0)

    frac = mean(m)
    safe = np.where(frac > 0, frac, 1.0)

    def local(x):  # mean over valid voxels of the patch
        return mean(x * m) / safe

    mu, mp, mg = local(u), local(p), local(g)
    vu = local(u * u) - mu * mu
    vp = local(p * p) - mp * mp
    vg = local(g * g) - mg * mg
    cup = local(u * p) - mu * mp
    cug = local(u * g) - mu * mg
    cpg = local(p * g) - mp * mg
    vu = np.maximum(vu, 0.0)
    vp = np.maximum(vp, 0.0)
    vg = np.maximum(vg, 0.0)
    expl = _explained_variance(vp, vg, cup, cug, cpg, eps, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        lc = np.where(vu > eps, np.clip(expl / np.where(vu > eps, vu, 1.0), 0.0, 1.0), 0.0)
    w = np.sqrt(vu)
    keep = valid & (frac >= min_fraction) & (vu > eps)
    w = np.where(keep, w, 0.0)
    return lc, w


class FixedUS:
    """The US side of LC2 precomputed once for a fixed set of frames and a fixed mask.

    The mask is the fan (samples outside the CT get flat features, they are not masked),
    so the local moments of ``u`` (mean, variance, weight) do not depend on the pose: only
    the five moments involving ``p`` and ``g`` remain per evaluation (7 filters, not 10).
    ``u`` is standardised over the whole mask, as :func:`lc2_maps` does, so sums over
    frame chunks (see :meth:`sums`) add up to the same global LC2.
    """

    def __init__(self, u: np.ndarray, mask: np.ndarray, size: Size, min_fraction: float = 0.5,
                 eps: float = 1e-9, dtype=np.float32):
        self.dtype, self.eps = dtype, eps
        self.mask = np.asarray(mask, bool)
        m = self.mask.astype(dtype)
        u = np.asarray(u, dtype=dtype)
        if self.mask.any():
            u = ((u - u[self.mask].mean()) / (u[self.mask].std() + eps)).astype(dtype, copy=False)
        self.u = np.where(self.mask, u, 0).astype(dtype)
        self.size = _sizes(size, u.ndim)
        frac = self._mean(m)
        self.safe = np.where(frac > 0, frac, 1.0).astype(dtype)
        self.mu = self._local(self.u)
        self.vu = np.maximum(self._local(self.u * self.u) - self.mu * self.mu, 0.0)
        keep = self.mask & (frac >= min_fraction) & (self.vu > eps)
        self.w = np.where(keep, np.sqrt(self.vu), 0.0).astype(dtype)
        self.inv_vu = np.where(keep, 1.0 / np.where(keep, self.vu, 1.0), 0.0).astype(dtype)

    def _mean(self, x):
        return ndimage.uniform_filter(x, size=self.size, mode="constant", cval=0.0)

    def _local(self, x):
        return self._mean(x) / self.safe

    def sums(self, p: np.ndarray, g: np.ndarray, sl: slice = slice(None), per_frame: bool = False):
        """(sum w*LC2, sum w) over frames ``sl`` for standardised ``p``, ``g`` (frames ``sl`` only);
        ``per_frame``: arrays with one sum per frame (axis 0) instead of totals."""
        eps = self.eps
        safe, u, mu = self.safe[sl], self.u[sl], self.mu[sl]

        def local(x):
            return self._mean(x) / safe

        mp, mg = local(p), local(g)
        vp = np.maximum(local(p * p) - mp * mp, 0.0)
        vg = np.maximum(local(g * g) - mg * mg, 0.0)
        cup = local(u * p) - mu * mp
        cug = local(u * g) - mu * mg
        cpg = local(p * g) - mp * mg
        expl = _explained_variance(vp, vg, cup, cug, cpg, eps, self.dtype)
        lc = np.clip(expl * self.inv_vu[sl], 0.0, 1.0)
        w = self.w[sl]
        if per_frame:
            axes = tuple(range(1, w.ndim))
            return (lc * w).sum(axis=axes, dtype=np.float64), w.sum(axis=axes, dtype=np.float64)
        return float((lc * w).sum(dtype=np.float64)), float(w.sum(dtype=np.float64))


def lc2(u, p, g, mask=None, size: Size = 9, min_fraction: float = 0.5, dtype=np.float64) -> float:
    """Global LC2 in [0, 1] (1 = US fully explained by a local linear mix of p and g)."""
    lc, w = lc2_maps(u, p, g, mask, size, min_fraction, dtype=dtype)
    sw = float(w.sum(dtype=np.float64))
    return float((lc * w).sum(dtype=np.float64) / sw) if sw > 0 else 0.0


def lc2_reference(u, p, g, mask=None, size: Size = 9, min_fraction: float = 0.5) -> float:
    """Plain LC2 by looping over patches with ``np.linalg.lstsq`` (slow; for tests)."""
    u = np.asarray(u, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    g = np.asarray(g, dtype=np.float64)
    m = np.ones(u.shape, bool) if mask is None else np.asarray(mask, bool)
    s = _sizes(size, u.ndim)
    half_lo = [k // 2 for k in s]
    half_hi = [k - 1 - k // 2 for k in s]
    num = den = 0.0
    total = int(np.prod(s))
    for idx in zip(*np.nonzero(m)):
        sl = tuple(slice(max(i - lo, 0), min(i + hi + 1, n))
                   for i, lo, hi, n in zip(idx, half_lo, half_hi, u.shape))
        mm = m[sl]
        if mm.sum() < min_fraction * total:
            continue
        uu, pp, gg = u[sl][mm], p[sl][mm], g[sl][mm]
        var_u = uu.var()
        if var_u <= 1e-12 * max(1.0, float(np.mean(uu ** 2))):
            continue
        a = np.stack([pp, gg, np.ones_like(pp)], axis=1)
        coef, *_ = np.linalg.lstsq(a, uu, rcond=None)
        ssr = float(np.sum((uu - a @ coef) ** 2))
        lc = 1.0 - ssr / (len(uu) * var_u)
        w = np.sqrt(var_u)
        num += w * lc
        den += w
    return num / den if den > 0 else 0.0


# ---------------------------------------------------------------------------- CT features
def ct_feature_arrays(hu: np.ndarray, spacing_kji: Sequence[float], *,
                      window_hu: Tuple[float, float] = SOFT_TISSUE_WINDOW_HU,
                      gradient_clip_hu: Tuple[float, float] = GRADIENT_CLIP_HU,
                      smooth_mm: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """(p, g) float32 arrays ``[k, j, i]`` from CT HU.

    ``p`` = HU mapped linearly from ``window_hu`` to [0, 1] and clipped;
    ``g`` = gradient magnitude (HU/mm) of the Gaussian-smoothed (``smooth_mm``),
    ``gradient_clip_hu``-clipped CT; ``spacing_kji`` is the array-order spacing.
    """
    hu = np.asarray(hu, dtype=np.float32)
    lo, hi = window_hu
    p = np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    sp = np.asarray(spacing_kji, dtype=float)
    c = np.clip(hu, *gradient_clip_hu)
    if smooth_mm > 0:
        c = ndimage.gaussian_filter(c, sigma=smooth_mm / sp)
    grads = np.gradient(c.astype(np.float32), *sp)
    g = np.sqrt(sum(gr * gr for gr in grads)).astype(np.float32)
    return p, g
