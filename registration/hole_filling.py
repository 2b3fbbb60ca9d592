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
convolutions (``scipy.ndimage.correlate1d``): numerator = G * (v * known),
denominator = G * known, count = box_s * known. With r > 0.5 (PLUS's usual
0.50001) a voxel is only filled when more than half of its window is
inserted data, so gaps *between* slices are filled but nothing is
extrapolated beyond a flat edge of the swept region.

Arrays are numpy ``[k, j, i]``; sizes and sigmas are in voxels (PLUS
convention, not mm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

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


# Growing kernel, bounded to 4 passes (at most 4 voxels from data). 0.50001 is the ratio
# PLUS's example configurations use: fill inside gaps, never extrapolate past a flat edge.
DEFAULT_ELEMENTS: Tuple[GaussianElement, ...] = (
    GaussianElement(3, 0.6667, 0.50001),
    GaussianElement(5, 1.0, 0.50001),
    GaussianElement(7, 1.3333, 0.50001),
    GaussianElement(9, 1.6667, 0.50001),
)


def elements_from_plus(items: Iterable[dict]) -> Tuple[List[GaussianElement], List[str]]:
    """Convert PLUS ``<HoleFillingElement>`` attribute dicts.

    Returns (elements, notes). GAUSSIAN and GAUSSIAN_ACCUMULATION are used as
    GAUSSIAN; other types (STICK, NEAREST_NEIGHBOR, DISTANCE_WEIGHT_INVERSE) are
    not implemented and are reported in ``notes`` so the caller can say so.
    """
    out: List[GaussianElement] = []
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
        else:
            notes.append(f"hole-filling element {kind or '?'} is not implemented; "
                         "the default growing Gaussian kernels are used instead")
    return out, notes


def _gauss1d(element: GaussianElement) -> np.ndarray:
    r = (element.size - 1) // 2
    d = np.arange(-r, r + 1, dtype=np.float64)
    # PLUS's 3D kernel is a product of 1D Gaussians (its normalising constant cancels in the ratio).
    return np.exp(-d * d / (2.0 * element.stdev ** 2)).astype(np.float32)


def _separable(data: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    out = data
    for axis in range(3):
        out = ndimage.correlate1d(out, kernel, axis=axis, mode="constant", cval=0.0)
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
    todo = ~known
    if not elements or not todo.any() or not known.any():
        return out, filled
    # Work inside the box of the inserted data grown by the largest radius: outside it
    # nothing can be filled, and swept regions are often much smaller than the grid.
    rmax = max((e.size - 1) // 2 for e in elements)
    nz = [np.flatnonzero(known.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
    box = tuple(slice(max(int(n[0]) - rmax, 0), min(int(n[-1]) + rmax + 1, known.shape[ax]))
                for ax, n in enumerate(nz))
    kb = known[box].astype(np.float32)
    vb = out[box] * kb
    todo_b = todo[box]
    done_b = np.zeros(kb.shape, bool)
    out_b = out[box]
    for n, element in enumerate(elements):
        if progress is not None and progress(n / len(elements)) is False:
            raise CancelledError("hole filling cancelled")
        g = _gauss1d(element)
        den = _separable(kb, g)
        count = _separable(kb, np.ones(element.size, np.float32))
        # count holds integers computed in float32 (exact below 2^24): compare to the ratio directly.
        ok = todo_b & ~done_b & (den > 0) & (count > element.min_ratio * element.size ** 3)
        if ok.any():
            num = _separable(vb, g)
            out_b[ok] = num[ok] / den[ok]
            done_b |= ok
        if not (todo_b & ~done_b).any():
            break
    out[box] = out_b
    filled[box] = done_b
    if progress is not None and progress(1.0) is False:
        raise CancelledError("hole filling cancelled")
    return out, filled
