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

This module runs the element list (:func:`apply_elements`); the pieces live in
:mod:`registration.ultrasound.hole_filling_elements` (element settings, defaults, PLUS
config), :mod:`registration.ultrasound.gaussian_hole_filling` (``GAUSSIAN``, blockwise
separable convolutions) and :mod:`registration.ultrasound.stick_hole_filling` (``STICK``),
and are re-exported here.

Arrays are numpy ``[k, j, i]``; sizes and sigmas are in voxels (PLUS
convention, not mm).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import InputError

from .gaussian_hole_filling import fill_holes
from .hole_filling_elements import GaussianElement, StickElement
from .stick_hole_filling import fill_holes_sticks


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
