"""Compiled kernels of the frame LC2 cost: CT feature sampling and patch sums in one pass each.

The numpy form (:meth:`registration.align.lc2.FixedUS.sums` after two
``scipy.ndimage.map_coordinates`` calls) is the definition; these kernels
(``lc2_kernels.c``) compute the same quantities in float64 and are tested against
it (tests/test_lc2_kernels.py):

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
* :func:`feature_pairs` computes ``p`` and ``g`` of a CT level in one pass,
  bit-identical to :func:`registration.align.lc2.ct_feature_arrays`.

Why C through ctypes rather than numba: the same speed, but no 200 MB dependency and
no compiler start-up in every process (numba's import and the loading of its cached
kernels cost 0.5-1 s of CPU per ``ctus register``). The library (~20 kB, ~0.3 s of CPU to
compile) is built and cached by :mod:`registration.spatial.native_build` (``scripts/setup.sh``
builds it, else the first import). Without a compiler (or when the build fails)
:data:`AVAILABLE` is False, :data:`UNAVAILABLE_REASON` says why (a warning is logged once),
and the cost uses its numpy form: the same quantities (within float32 rounding), each
evaluation 5-6x slower (docs/registration_tuning.md).
"""
from __future__ import annotations

import ctypes
import logging
import math
from pathlib import Path

import numpy as np

from registration.spatial.native_build import load_library

log = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("lc2_kernels.c")
_I64, _DBL = ctypes.c_int64, ctypes.c_double
_PTR = ctypes.c_void_p


_LIB, UNAVAILABLE_REASON = load_library(_SOURCE)
#: True when the compiled kernels are loaded (else the cost uses its numpy form).
AVAILABLE = _LIB is not None
if AVAILABLE:
    _LIB.sample_features.argtypes = [_PTR, _I64, _I64, _I64, _PTR, _PTR, _I64, _I64, _PTR, _PTR, _PTR, _PTR]
    _LIB.sample_features.restype = None
    _LIB.lc2_frame_sums.argtypes = [_PTR] * 8 + [_I64] * 4 + [_DBL] * 6 + [_I64, _I64, _PTR, _PTR]
    _LIB.lc2_frame_sums.restype = ctypes.c_int
    _LIB.feature_pairs.argtypes = [_PTR, _I64, _I64, _I64] + [_DBL] * 5 + [_PTR]
    _LIB.feature_pairs.restype = None
else:
    log.warning("LC2 kernels not compiled, registration uses the numpy form (5-6x slower per evaluation): %s",
                UNAVAILABLE_REASON)


def _ptr(a: np.ndarray, dtype) -> int:
    if a.dtype != dtype or not a.flags.c_contiguous:
        raise ValueError(f"kernel array must be C-contiguous {np.dtype(dtype)}, got {a.dtype}")
    return a.ctypes.data


def sample_features(pg: np.ndarray, m: np.ndarray, points: np.ndarray, first: int, last: int, pix: np.ndarray,
                    out_p: np.ndarray, out_g: np.ndarray):
    """Trilinear p and g at samples ``first:last`` of ``points`` ([m, 3] Reference mm) under ``m``.

    ``pg``: float32 [k, j, i, 2] (p, g); ``m``: 3x4 float64 mapping Reference mm to
    continuous (k, j, i) indices; ``pix``: int64 flat index of each sample in ``out_p`` /
    ``out_g`` (float64, flat). Returns ``(inside count, sum p, sum p^2, sum g, sum g^2)`` over
    the samples (outside ones count as 0 in the sums)."""
    stats = np.zeros(5)
    nk, nj, ni = pg.shape[:3]
    _LIB.sample_features(_ptr(pg, np.float32), nk, nj, ni, _ptr(np.ascontiguousarray(m, float), np.float64),
                         _ptr(points, np.float64), int(first), int(last), _ptr(pix, np.int64),
                         _ptr(out_p, np.float64), _ptr(out_g, np.float64), stats.ctypes.data)
    return int(stats[0]), float(stats[1]), float(stats[2]), float(stats[3]), float(stats[4])


def lc2_frame_sums(p, g, fan, u, mu, inv_vu, w, cnt, half, mean_p, inv_sd_p, mean_g, inv_sd_g, eps, rank_tol,
                   first, last, num, den) -> None:
    """Per frame ``f`` in ``first:last``: ``num[f] = sum w * LC2``, ``den[f] = sum w`` over its patch centres.

    ``p``, ``g``: float64 [n, rows, cols] raw sampled features (anything outside the fan);
    standardised here as ``(x - mean) * inv_sd`` inside ``fan`` (bool) and 0 outside. ``u``, ``mu``,
    ``inv_vu``, ``w``: the US side (:class:`registration.align.lc2.FixedUS`, float64: standardised US,
    its local mean, 1 / local variance and weight, 0 where the patch is skipped); ``cnt``: fan
    pixels in each patch; ``half``: patch half-size (patch = 2 half + 1 pixels a side)."""
    n, rows, cols = p.shape
    f64 = np.float64
    ok = _LIB.lc2_frame_sums(_ptr(p, f64), _ptr(g, f64), _ptr(fan, np.bool_), _ptr(u, f64), _ptr(mu, f64),
                             _ptr(inv_vu, f64), _ptr(w, f64), _ptr(cnt, f64), n, rows, cols, int(half),
                             float(mean_p), float(inv_sd_p), float(mean_g), float(inv_sd_g), float(eps),
                             float(rank_tol), int(first), int(last), _ptr(num, f64), _ptr(den, f64))
    if ok != 0:
        raise MemoryError("LC2 kernel: out of memory")


def feature_pairs(hu: np.ndarray, spacing_mm: float, lo: float, hi: float, clip_lo: float, clip_hi: float,
                  out: np.ndarray) -> None:
    """``out[..., 0] = p``, ``out[..., 1] = g`` of :func:`registration.align.lc2.ct_feature_arrays`
    (``smooth_mm=0``) from float32 HU [k, j, i] on an isotropic ``spacing_mm`` grid, in one pass
    with numpy's float32 arithmetic (bit-identical): p = clip((hu - lo) / (hi - lo), 0, 1),
    g = |gradient| of clip(hu, clip_lo, clip_hi) as ``np.gradient`` (central differences inside,
    one-sided at the edges; 0 along an axis of one voxel)."""
    nk, nj, ni = hu.shape
    _LIB.feature_pairs(_ptr(hu, np.float32), nk, nj, ni, float(spacing_mm), float(lo), float(hi),
                       float(clip_lo), float(clip_hi), _ptr(out, np.float32))


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
