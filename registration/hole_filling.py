"""Hole filling for reconstructed ultrasound volumes, the way PLUS does it.

PLUS (``vtkPlusFillHolesInVolume``) visits every voxel that no pixel hit
(accumulation buffer = 0) and tries an ordered list of *hole-filling
elements*; the first element that succeeds gives the voxel its value. A
``GAUSSIAN`` element of ``size`` s (odd, voxels), ``stdev`` sigma (voxels)
and ``min_ratio`` r looks at the s x s x s window around the voxel, and if
the number of *inserted* voxels in it divided by s^3 is greater than r, sets
the voxel to the Gaussian-weighted mean of the inserted voxels (weights
exp(-d^2 / 2 sigma^2), d in voxels). Only the originally inserted voxels are
read (one pass, no propagation of filled values), voxels outside the volume
count as unknown, and the list goes from small to large kernels: a growing
kernel with a bounded number of passes.

Here the same rule is computed for the whole volume at once with separable
convolutions (shifted slab adds, see ``_correlate_axis``): numerator = G * (v * known),
denominator = G * known, count = box_s * known. With r > 0.5 a voxel is only
filled when more than half of its window is inserted data, so nothing is
extrapolated beyond a flat edge of the swept region (but periodic slices with
gaps of 2+ voxels are not filled either); the defaults use lower ratios and at
most a 7-voxel window, so filled voxels are at most 3 voxels from data. The
grid is processed in blocks (with a halo of the largest radius) so that
temporaries stay small and blocks without holes or without data are skipped.

PLUS's ``STICK`` element (:func:`fill_holes_sticks`, used by the PLUS
SpinePhantom configs) interpolates along the shortest of 13 line directions
between inserted voxels on both sides of the hole, never beyond
``StickLengthLimit`` voxels: it fills between slices and never extrapolates.
It reproduces PLUS's integer arithmetic when asked to.

Arrays are numpy ``[k, j, i]``; sizes and sigmas are in voxels (PLUS
convention, not mm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import CancelledError, InputError


@dataclass(frozen=True)
class GaussianElement:
    """One PLUS ``HoleFillingElement Type="GAUSSIAN"``: window ``size`` (odd, voxels),
    ``stdev`` (voxels), fill only if known/size^3 > ``min_ratio``."""
    size: int
    stdev: float
    min_ratio: float

    def __post_init__(self):
        if self.size < 3 or self.size % 2 == 0:
            raise InputError(f"hole-filling kernel size must be odd and >= 3, got {self.size}")
        if not self.stdev > 0:
            raise InputError(f"hole-filling kernel stdev must be > 0, got {self.stdev}")
        if not 0 <= self.min_ratio < 1:
            raise InputError(f"hole-filling MinimumKnownVoxelsRatio must be in [0, 1), got {self.min_ratio}")


@dataclass(frozen=True)
class StickElement:
    """One PLUS ``HoleFillingElement Type="STICK"`` (see :func:`fill_holes_sticks`)."""
    stick_length_limit: int = 9
    sticks_to_use: int = 1


# Growing kernel, bounded to 3 passes, so a hole is filled only from data at most 3 voxels
# away. Freehand data are thin slices with gaps, so the known fraction of a window is often
# below one half (slices every third voxel: 1/3); PLUS's strict 0.50001 would then fill only
# one-voxel gaps. These ratios fill gaps of up to ~4 voxels between slices and grow the edge
# of a dense region by at most 1-3 voxels (fraction outside a flat face of solid data:
# (r - d + 1) / s at distance d).
DEFAULT_ELEMENTS: Tuple[GaussianElement, ...] = (
    GaussianElement(3, 0.6667, 0.25),
    GaussianElement(5, 1.0, 0.15),
    GaussianElement(7, 1.3333, 0.1),
)


def elements_from_plus(items: Iterable[dict]) -> Tuple[list, List[str]]:
    """Convert PLUS ``<HoleFillingElement>`` attribute dicts.

    Returns (elements, notes). GAUSSIAN and GAUSSIAN_ACCUMULATION are used as
    GAUSSIAN (the accumulation weighting is not applied), STICK as STICK; other
    types (NEAREST_NEIGHBOR, DISTANCE_WEIGHT_INVERSE) are not implemented and
    are reported in ``notes`` so the caller can say so.
    """
    out: list = []
    notes: List[str] = []
    for item in items:
        kind = str(item.get("Type", "")).upper()
        if kind in ("GAUSSIAN", "GAUSSIAN_ACCUMULATION"):
            try:
                out.append(GaussianElement(int(float(item["Size"])), float(item["Stdev"]),
                                           float(item["MinimumKnownVoxelsRatio"])))
            except (KeyError, ValueError) as exc:
                raise InputError(f"HoleFillingElement {item} lacks a numeric {exc}",
                                 fix="give Size, Stdev and MinimumKnownVoxelsRatio") from None
        elif kind == "STICK":
            try:
                out.append(StickElement(int(float(item.get("StickLengthLimit", 9))),
                                        int(float(item.get("NumberOfSticksToUse", 1)))))
            except ValueError:
                raise InputError(f"HoleFillingElement {item} has a non-numeric stick setting",
                                 fix="give StickLengthLimit and NumberOfSticksToUse as integers") from None
        else:
            notes.append(f"hole-filling element {kind or '?'} is not implemented; "
                         "the default growing Gaussian kernels are used instead")
    return out, notes


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
    starts = [range(0, n, BLOCK) for n in shape]
    blocks = [(a, b, c) for a in starts[0] for b in starts[1] for c in starts[2]]
    for n, (k0, j0, i0) in enumerate(blocks):
        if progress is not None and progress(n / len(blocks)) is False:
            raise CancelledError("hole filling cancelled")
        core = (slice(k0, min(k0 + BLOCK, shape[0])), slice(j0, min(j0 + BLOCK, shape[1])),
                slice(i0, min(i0 + BLOCK, shape[2])))
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


BLOCK = 96   # voxels per block edge (+ halo): ~4 MB float32 temporaries per block (fastest measured)


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


# PLUS's 13 stick directions (i, j, k); each is searched both ways.
_STICKS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, -1, 0),
           (1, 0, -1), (0, 1, -1), (1, 1, 1), (-1, 1, 1), (1, -1, 1), (-1, -1, 1))


def fill_holes_sticks(values: np.ndarray, known: np.ndarray, stick_length_limit: int = 9,
                      sticks_to_use: int = 1, integer_values: bool = False,
                      progress: Optional[Callable[[float], Optional[bool]]] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """PLUS's ``STICK`` hole filling, vectorised.

    For every empty voxel and each of 13 directions, find the nearest inserted
    voxel forward (at most ``L - 1`` steps, L = ``stick_length_limit``) and
    then backward (``rvs + fwd + 1 <= L``). A stick with both ends gives the
    linear interpolation ``(rvs+1)/(fwd+rvs+1) * v_fwd + ...`` and the score
    ``1 / ((fwd+rvs+1) * |direction|)``; the best-scoring stick (ties averaged,
    or the ``sticks_to_use`` best) sets the voxel. Arrays ``[k, j, i]``;
    directions are written (i, j, k) as in PLUS. Computed in float64 like PLUS's doubles, so
    truncating the result reproduces PLUS's integer voxels; with ``integer_values`` each
    stick's value is truncated first, as PLUS stores it in the voxel type. Returns (values float64, filled bool).
    """
    values = np.asarray(values)
    known = np.asarray(known, bool)
    if values.shape != known.shape or values.ndim != 3:
        raise InputError(f"values {values.shape} and known {known.shape} must be the same 3D shape")
    L = int(stick_length_limit)
    out = np.where(known, values, 0).astype(np.float64)
    todo = ~known
    if L < 2 or not todo.any() or not known.any():
        return out, np.zeros(known.shape, bool)
    pad = L
    kp = np.pad(known, pad)
    vp = np.pad(out, pad)
    shape = known.shape
    best_w = np.zeros(shape, np.float64)      # score of the best stick so far
    best_sum = np.zeros(shape, np.float64)    # sum of value * score of sticks with that score
    best_n = np.zeros(shape, np.float64)      # sum of their scores (PLUS's sumWeights)
    # Weighted accumulation of the top `sticks_to_use` sticks is only needed for > 1.
    scores, vals = ([], []) if sticks_to_use > 1 else (None, None)

    def view(arr, off):
        dk, dj, di = off
        return arr[pad + dk:pad + dk + shape[0], pad + dj:pad + dj + shape[1],
                   pad + di:pad + di + shape[2]]

    for n, (di, dj, dk) in enumerate(_STICKS):
        if progress is not None and progress(n / len(_STICKS)) is False:
            raise CancelledError("hole filling cancelled")
        fwd = np.zeros(shape, np.int16)
        vf = np.zeros(shape, np.float64)
        for j in range(1, L):
            hit = view(kp, (j * dk, j * dj, j * di)) & (fwd == 0) & todo
            if hit.any():
                fwd[hit] = j
                vf[hit] = view(vp, (j * dk, j * dj, j * di))[hit]
        rvs = np.zeros(shape, np.int16)
        vr = np.zeros(shape, np.float64)
        for j in range(1, L - 1):
            hit = view(kp, (-j * dk, -j * dj, -j * di)) & (rvs == 0) & (fwd > 0) & (j + fwd + 1 <= L)
            if hit.any():
                rvs[hit] = j
                vr[hit] = view(vp, (-j * dk, -j * dj, -j * di))[hit]
        ok = rvs > 0
        total = (fwd + rvs + 1).astype(np.float64)
        w_fwd = (rvs + 1) / total
        value = (1 - w_fwd) * vr + w_fwd * vf
        if integer_values:
            value = np.trunc(value)
        score = np.where(ok, 1.0 / (total * np.sqrt(float(di * di + dj * dj + dk * dk))), 0.0)
        if sticks_to_use > 1:
            scores.append(score)
            vals.append(np.where(ok, value, 0).astype(np.float64))
            continue
        better = score > best_w
        same = ok & (score == best_w)
        vs = value * score
        best_sum = np.where(better, vs, np.where(same, best_sum + vs, best_sum))
        best_n = np.where(better, score, np.where(same, best_n + score, best_n))
        best_w = np.maximum(best_w, score)
    if sticks_to_use > 1:
        s = np.stack(scores)
        v = np.stack(vals)
        order = np.argsort(-s, axis=0)[:sticks_to_use]
        ws = np.take_along_axis(s, order, 0)
        vs = np.take_along_axis(v, order, 0)
        wsum = ws.sum(axis=0)
        filled = todo & (wsum > 0)
        out[filled] = ((ws * vs).sum(axis=0)[filled] / wsum[filled])
    else:
        filled = todo & (best_n > 0)
        out[filled] = best_sum[filled] / best_n[filled]
    return out, filled


def apply_elements(values: np.ndarray, known: np.ndarray, elements: Sequence,
                   progress: Optional[Callable[[float], Optional[bool]]] = None,
                   integer_values: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """PLUS's element list: each hole takes its value from the first element that fills it.

    Every element reads only the originally inserted voxels (``known``), as in PLUS.
    Returns (values float64 if a STICK element is used, else float32; filled bool).
    """
    wide = any(isinstance(e, StickElement) for e in elements)
    out = np.where(known, values, 0).astype(np.float64 if wide else np.float32)
    filled = np.zeros(known.shape, bool)
    # Consecutive Gaussian elements run together (they share the bounding box work).
    groups: list = []
    for e in elements:
        if isinstance(e, GaussianElement) and groups and isinstance(groups[-1], list):
            groups[-1].append(e)
        else:
            groups.append([e] if isinstance(e, GaussianElement) else e)
    for n, g in enumerate(groups):
        sub = None if progress is None else (lambda f, n=n: progress((n + f) / len(groups)))
        if isinstance(g, list):
            v, f = fill_holes(values, known, g, sub)
        elif isinstance(g, StickElement):
            v, f = fill_holes_sticks(values, known, g.stick_length_limit, g.sticks_to_use,
                                     integer_values, sub)
        else:
            raise InputError(f"unknown hole-filling element {g!r}")
        new = f & ~filled
        out[new] = v[new]
        filled |= new
    return out, filled
