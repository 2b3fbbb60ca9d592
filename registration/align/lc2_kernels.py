"""Compiled (numba) kernels of the frame LC2 cost: CT feature sampling and patch sums in one pass each.

The numpy form (:meth:`registration.align.lc2.FixedUS.sums` after two
``scipy.ndimage.map_coordinates`` calls) is the definition; these kernels compute
the same quantities in float64 and are tested against it (tests/test_lc2_kernels.py):

* :func:`sample_features` maps the fan samples (Reference mm) through a pose into
  the CT feature grid and interpolates ``p`` and ``g`` trilinearly in one gather
  (``pg`` holds both, interleaved), writing them into frame-shaped arrays; samples
  outside the grid (``map_coordinates(mode="constant")``: outside ``[0, n - 1]``
  on any axis) get ``p = g = 0`` and are not counted as inside. It returns the
  sums needed for the global standardisation.
* :func:`lc2_frame_sums` standardises ``p`` and ``g`` over the fan, forms the
  seven patch moments with running box sums (rows, then columns; zero outside
  the frame, as ``uniform_filter(mode="constant")``), solves the 2x2 normal
  equations per patch centre (:func:`registration.align.lc2._explained_variance`)
  and returns per frame ``sum w * LC2`` and ``sum w``.

Both release the GIL (``nogil``): the cost's worker threads run them in parallel.
Compiled code is cached on disk beside this module (``cache=True``); without a
writable cache every process compiles them again (a few seconds). Without numba
:data:`AVAILABLE` is False and the cost uses the numpy form.
"""
from __future__ import annotations

import math

import numpy as np

try:  # pragma: no cover - exercised by the import itself
    import numba
    AVAILABLE = True
except ImportError:  # pragma: no cover - numba is an install requirement; the numpy form still works
    numba = None
    AVAILABLE = False


def _jit(fn):
    if not AVAILABLE:
        return fn
    return numba.njit(cache=True, nogil=True, fastmath=False, error_model="numpy")(fn)


@_jit
def sample_features(pg, m, points, first, last, pix, out_p, out_g):  # pragma: no cover - compiled
    """Trilinear p and g at samples ``first:last`` of ``points`` ([m, 3] Reference mm) under ``m``.

    ``pg``: float32 [k, j, i, 2] (p, g); ``m``: 3x4 float64 mapping Reference mm to
    continuous (k, j, i) indices; ``pix``: flat index of each sample in ``out_p`` /
    ``out_g`` (float64, frame-shaped, raveled). Returns ``(inside count, sum p, sum p^2,
    sum g, sum g^2)`` over the samples (outside ones count as 0 in the sums)."""
    nk, nj, ni = pg.shape[0], pg.shape[1], pg.shape[2]
    n_in = 0
    sp = spp = sg = sgg = 0.0
    for s in range(first, last):
        x, y, z = points[s, 0], points[s, 1], points[s, 2]
        ck = m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3]
        cj = m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3]
        ci = m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3]
        q = pix[s]
        if not (ck >= 0.0 and cj >= 0.0 and ci >= 0.0 and ck <= nk - 1 and cj <= nj - 1 and ci <= ni - 1):
            out_p[q] = 0.0
            out_g[q] = 0.0
            continue
        k0 = min(int(ck), nk - 2) if nk > 1 else 0
        j0 = min(int(cj), nj - 2) if nj > 1 else 0
        i0 = min(int(ci), ni - 2) if ni > 1 else 0
        fk, fj, fi = ck - k0, cj - j0, ci - i0
        k1 = k0 + 1 if nk > 1 else k0
        j1 = j0 + 1 if nj > 1 else j0
        i1 = i0 + 1 if ni > 1 else i0
        w00 = (1.0 - fk) * (1.0 - fj)
        w01 = (1.0 - fk) * fj
        w10 = fk * (1.0 - fj)
        w11 = fk * fj
        a = 0.0
        b = 0.0
        for kk, jj, w in ((k0, j0, w00), (k0, j1, w01), (k1, j0, w10), (k1, j1, w11)):
            a += w * ((1.0 - fi) * pg[kk, jj, i0, 0] + fi * pg[kk, jj, i1, 0])
            b += w * ((1.0 - fi) * pg[kk, jj, i0, 1] + fi * pg[kk, jj, i1, 1])
        out_p[q] = a
        out_g[q] = b
        n_in += 1
        sp += a
        spp += a * a
        sg += b
        sgg += b * b
    return n_in, sp, spp, sg, sgg


@_jit
def lc2_frame_sums(p, g, fan, u, mu, inv_vu, w, cnt, half, mean_p, inv_sd_p, mean_g, inv_sd_g,
                   eps, rank_tol, first, last, num, den):  # pragma: no cover - compiled
    """Per frame ``f`` in ``first:last``: ``num[f] = sum w * LC2``, ``den[f] = sum w`` over its patch centres.

    ``p``, ``g``: float64 [n, rows, cols] raw sampled features (anything outside the fan);
    standardised here as ``(x - mean) * inv_sd`` inside ``fan`` and 0 outside. ``u``, ``mu``,
    ``inv_vu``, ``w``: the US side (:class:`registration.align.lc2.FixedUS`: standardised US,
    its local mean, 1 / local variance and weight, 0 where the patch is skipped); ``cnt``: fan
    pixels in each patch; ``half``: patch half-size (patch = 2 half + 1 pixels a side)."""
    n, rows, cols = p.shape
    h = np.zeros((7, rows, cols))
    acc = np.zeros((7, cols))
    ps = np.zeros(cols)
    gs = np.zeros(cols)
    us = np.zeros(cols)
    for f in range(first, last):
        # standardised channels (0 outside the fan) and their row box sums
        for r in range(rows):
            for c in range(cols):
                if fan[f, r, c]:
                    ps[c] = (p[f, r, c] - mean_p) * inv_sd_p
                    gs[c] = (g[f, r, c] - mean_g) * inv_sd_g
                    us[c] = u[f, r, c]
                else:
                    ps[c] = 0.0
                    gs[c] = 0.0
                    us[c] = 0.0
            r0 = r1 = r2 = r3 = r4 = r5 = r6 = 0.0
            for c in range(-half, cols):
                a = c + half
                if a < cols:
                    x, y, v = ps[a], gs[a], us[a]
                    r0 += x
                    r1 += y
                    r2 += x * x
                    r3 += y * y
                    r4 += v * x
                    r5 += v * y
                    r6 += x * y
                b = c - half - 1
                if b >= 0:
                    x, y, v = ps[b], gs[b], us[b]
                    r0 -= x
                    r1 -= y
                    r2 -= x * x
                    r3 -= y * y
                    r4 -= v * x
                    r5 -= v * y
                    r6 -= x * y
                if c >= 0:
                    h[0, r, c] = r0
                    h[1, r, c] = r1
                    h[2, r, c] = r2
                    h[3, r, c] = r3
                    h[4, r, c] = r4
                    h[5, r, c] = r5
                    h[6, r, c] = r6
        # column box sums, then LC2 at every patch centre with a weight
        acc[:, :] = 0.0
        for r in range(half):
            if r < rows:
                for k in range(7):
                    for c in range(cols):
                        acc[k, c] += h[k, r, c]
        tot = 0.0
        wsum = 0.0
        for r in range(rows):
            add = r + half
            sub = r - half - 1
            if add < rows:
                for k in range(7):
                    for c in range(cols):
                        acc[k, c] += h[k, add, c]
            if sub >= 0:
                for k in range(7):
                    for c in range(cols):
                        acc[k, c] -= h[k, sub, c]
            for c in range(cols):
                wt = w[f, r, c]
                if wt <= 0.0:
                    continue
                inv_n = 1.0 / cnt[f, r, c]
                mp = acc[0, c] * inv_n
                mg = acc[1, c] * inv_n
                vp = max(acc[2, c] * inv_n - mp * mp, 0.0)
                vg = max(acc[3, c] * inv_n - mg * mg, 0.0)
                m_u = mu[f, r, c]
                cup = acc[4, c] * inv_n - m_u * mp
                cug = acc[5, c] * inv_n - m_u * mg
                cpg = acc[6, c] * inv_n - mp * mg
                det = vp * vg - cpg * cpg
                if det > rank_tol * max(vp * vg, eps):
                    expl = (vg * cup * cup - 2.0 * cpg * cup * cug + vp * cug * cug) / det
                else:   # p and g collinear or one constant: the better one-regressor fit
                    e_p = cup * cup / vp if vp > eps else 0.0
                    e_g = cug * cug / vg if vg > eps else 0.0
                    expl = max(e_p, e_g)
                lc = min(max(expl * inv_vu[f, r, c], 0.0), 1.0)
                tot += lc * wt
                wsum += wt
        num[f] = tot
        den[f] = wsum


def patch_counts(fan: np.ndarray, patch_px: int) -> np.ndarray:
    """float64 [n, rows, cols]: fan pixels in the ``patch_px`` x ``patch_px`` patch about each pixel."""
    from scipy import ndimage
    s = int(patch_px)
    box = ndimage.uniform_filter(fan.astype(np.float64), size=(1, s, s), mode="constant", cval=0.0)
    return np.rint(box * s * s)


def standardisation(total: int, sp: float, spp: float, eps: float):
    """(mean, 1 / (std + eps)) of ``total`` values with sum ``sp`` and sum of squares ``spp``."""
    mean = sp / max(total, 1)
    return mean, 1.0 / (math.sqrt(max(spp / max(total, 1) - mean * mean, 0.0)) + eps)


@_jit
def feature_pairs(hu, spacing_mm, lo, hi, clip_lo, clip_hi, out):  # pragma: no cover - compiled
    """``out[..., 0] = p``, ``out[..., 1] = g`` of :func:`registration.align.lc2.ct_feature_arrays`
    (``smooth_mm=0``) from float32 HU [k, j, i] on an isotropic ``spacing_mm`` grid, in one pass
    with numpy's float32 arithmetic (bit-identical): p = clip((hu - lo) / (hi - lo), 0, 1),
    g = |gradient| of clip(hu, clip_lo, clip_hi) as ``np.gradient`` (central differences inside,
    one-sided at the edges)."""
    nk, nj, ni = hu.shape
    lo32 = np.float32(lo)
    width32 = np.float32(hi - lo)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    c_lo = np.float32(clip_lo)
    c_hi = np.float32(clip_hi)
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                v = (hu[k, j, i] - lo32) / width32
                out[k, j, i, 0] = min(max(v, zero), one)
                gk = _diff(hu, k, j, i, 0, nk, spacing_mm, c_lo, c_hi)
                gj = _diff(hu, k, j, i, 1, nj, spacing_mm, c_lo, c_hi)
                gi = _diff(hu, k, j, i, 2, ni, spacing_mm, c_lo, c_hi)
                s = gk * gk + gj * gj + gi * gi
                out[k, j, i, 1] = np.float32(math.sqrt(np.float64(s)))


@_jit
def _clipped(hu, k, j, i, c_lo, c_hi):  # pragma: no cover - compiled
    return min(max(hu[k, j, i], c_lo), c_hi)


@_jit
def _diff(hu, k, j, i, axis, n, spacing_mm, c_lo, c_hi):  # pragma: no cover - compiled
    """np.gradient of the clipped HU along ``axis`` at (k, j, i), float32 like numpy's."""
    if n < 2:
        return np.float32(0.0)
    idx = (k, j, i)[axis]
    lo_k, lo_j, lo_i, hi_k, hi_j, hi_i = k, j, i, k, j, i
    if idx == 0:
        step = spacing_mm
    elif idx == n - 1:
        step = spacing_mm
    else:
        step = 2.0 * spacing_mm
    if axis == 0:
        lo_k = max(k - 1, 0)
        hi_k = min(k + 1, n - 1)
    elif axis == 1:
        lo_j = max(j - 1, 0)
        hi_j = min(j + 1, n - 1)
    else:
        lo_i = max(i - 1, 0)
        hi_i = min(i + 1, n - 1)
    d = _clipped(hu, hi_k, hi_j, hi_i, c_lo, c_hi) - _clipped(hu, lo_k, lo_j, lo_i, c_lo, c_hi)
    return np.float32(np.float64(d) / step)
