"""PLUS's ``GAUSSIAN`` hole-filling element, computed for the whole volume at once.

The rule (PLUS's ``vtkPlusFillHolesInVolume``, see :mod:`registration.ultrasound.hole_filling`):
an empty voxel whose s x s x s window holds more than ``min_ratio`` * s^3
inserted voxels gets the Gaussian-weighted mean of those inserted voxels
(weights exp(-d^2 / 2 sigma^2), d in voxels); only inserted voxels are read.

Here the same rule is computed for the whole volume at once with separable
convolutions (shifted slab adds, see ``_correlate_axis``): numerator = G * (v * known),
denominator = G * known, count = box_s * known. With r > 0.5 a voxel is only
filled when more than half of its window is inserted data, so nothing is
extrapolated beyond a flat edge of the swept region (but periodic slices with
gaps of 2+ voxels are not filled either); the defaults use lower ratios and at
most a 7-voxel window, so filled voxels are at most 3 voxels from data. The
grid is processed in blocks (with a halo of the largest radius) so that
temporaries stay small and blocks without holes or without data are skipped.

Arrays are numpy ``[k, j, i]``; sizes and sigmas are in voxels (PLUS
convention, not mm).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import CancelledError, InputError

from .hole_filling_elements import DEFAULT_ELEMENTS, GaussianElement

# Voxels per block edge (+ halo): ~4 MB float32 temporaries per block. Timings of other
# edges: benchmarks/results/reconstruct.md (64-128 are within noise; smaller or larger are slower).
BLOCK_VOXELS = 96


def _gauss1d(element: GaussianElement) -> np.ndarray:
    r = (element.size - 1) // 2
    d = np.arange(-r, r + 1, dtype=np.float64)
    # PLUS's 3D kernel is a product of 1D Gaussians (its normalising constant cancels in the ratio).
    return np.exp(-d * d / (2.0 * element.stdev ** 2)).astype(np.float32)


def _correlate_axis(a: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """1D correlation along ``axis`` with zeros outside (``mode='constant'``), by shifted adds.

    Same result as ``ndimage.correlate1d`` up to float rounding order, but several times
    faster for these short kernels on the outer axes (whole contiguous slabs per add).
    """
    r = len(w) // 2
    out = a * w[r] if w[r] != 1 else a.copy()
    n = a.shape[axis]
    for t in range(len(w)):
        d = t - r
        if d == 0 or abs(d) >= n:
            continue
        dst = [slice(None)] * a.ndim
        src = [slice(None)] * a.ndim
        if d > 0:
            dst[axis], src[axis] = slice(0, n - d), slice(d, n)
        else:
            dst[axis], src[axis] = slice(-d, n), slice(0, n + d)
        if w[t] == 1:
            out[tuple(dst)] += a[tuple(src)]
        else:
            out[tuple(dst)] += w[t] * a[tuple(src)]
    return out


def _separable(data: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = data
    for axis in range(3):
        out = _correlate_axis(out, kernel, axis)
    return out


def fill_holes(values: np.ndarray, known: np.ndarray,
               elements: Sequence[GaussianElement] = DEFAULT_ELEMENTS,
               progress: Optional[Callable[[float], Optional[bool]]] = None
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Fill empty voxels near inserted data.

    Parameters
    ----------
    values : float array ``[k, j, i]`` (values of unknown voxels are ignored)
    known : bool ``[k, j, i]``, True where pixels were inserted
    elements : hole-filling elements, tried in order (small to large)
    progress : optional callable(fraction in [0, 1]) -> False to cancel

    Returns
    -------
    (filled_values float32 ``[k, j, i]``, filled bool ``[k, j, i]``): known
    voxels keep their value, filled voxels get the element's weighted mean,
    everything else is 0.
    """
    values = np.asarray(values)
    known = np.asarray(known, dtype=bool)
    if values.shape != known.shape or values.ndim != 3:
        raise InputError(f"values {values.shape} and known {known.shape} must be the same 3D shape")
    out = np.where(known, values, 0).astype(np.float32)
    filled = np.zeros(known.shape, bool)
    if not elements or known.all() or not known.any():
        return out, filled
    # Blocks with a halo of the largest radius: each block's core is computed exactly as on
    # the whole grid (the halo holds every voxel its windows see), temporaries stay small,
    # and blocks with no data near them or no hole in them are skipped.
    r = max((e.size - 1) // 2 for e in elements)
    shape = known.shape
    starts = [range(0, n, BLOCK_VOXELS) for n in shape]
    blocks = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    for n, (k0, j0, i0) in enumerate(blocks):
        if progress is not None and progress(n / len(blocks)) is False:
            raise CancelledError("hole filling cancelled")
        core = (slice(k0, min(k0 + BLOCK_VOXELS, shape[0])), slice(j0, min(j0 + BLOCK_VOXELS, shape[1])),
                slice(i0, min(i0 + BLOCK_VOXELS, shape[2])))
        if known[core].all():
            continue
        halo = tuple(slice(max(c.start - r, 0), min(c.stop + r, m)) for c, m in zip(core, shape))
        kh = known[halo]
        if not kh.any():
            continue
        v, f = _fill_block(out[halo], kh, elements)
        inner = tuple(slice(c.start - h.start, c.stop - h.start) for c, h in zip(core, halo))
        fi = f[inner]
        oc = out[core]
        oc[fi] = v[inner][fi]
        filled[core] = fi
    if progress is not None and progress(1.0) is False:
        raise CancelledError("hole filling cancelled")
    return out, filled


def _fill_block(values: np.ndarray, known: np.ndarray, elements) -> Tuple[np.ndarray, np.ndarray]:
    """The element list on one block (values already 0 where unknown)."""
    kb = known.astype(np.float32)
    vb = values * kb
    out = values.copy()
    todo = ~known
    done = np.zeros(known.shape, bool)
    for element in elements:
        count = _separable(kb, np.ones(element.size, np.float32))
        # count holds small integers computed in float32 (exact): compare with the ratio directly.
        cand = todo & ~done & (count > element.min_ratio * element.size ** 3)
        if not cand.any():
            continue
        # The Gaussian sums are only needed around the candidates: crop to their box + radius.
        r = (element.size - 1) // 2
        where = [np.flatnonzero(cand.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
        sub = tuple(slice(max(int(w[0]) - r, 0), min(int(w[-1]) + r + 1, cand.shape[ax]))
                    for ax, w in enumerate(where))
        g = _gauss1d(element)
        den = _separable(kb[sub], g)
        num = _separable(vb[sub], g)
        ok = cand[sub] & (den > 0)
        view = out[sub]
        view[ok] = num[ok] / den[ok]
        done[sub] |= ok
        if not (todo & ~done).any():
            break
    return out, done
