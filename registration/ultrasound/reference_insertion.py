"""Plain-Python-loop pixel insertion: the slow reference for :func:`registration.ultrasound.reconstruction.reconstruct`.

Same conventions as the reconstruction (:mod:`registration.ultrasound.reconstruction_grid`):
grid axis-aligned in the Reference frame (mm), ``output_origin`` = centre of
voxel (0, 0, 0), ``output_extent`` = inclusive ``i0 i1 j0 j1 k0 k1``; arrays
returned as numpy ``[k, j, i]``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from registration.spatial.errors import check_choice
from registration.spatial.sweep import Sweep

from .compounding import COMPOUNDING_ALIASES
from .reconstruction_grid import index_coefficients


def reference_insert(sweep: Sweep, spacing_mm, output_origin, output_extent, compounding="mean",
                     pixel_mask=None) -> Tuple[np.ndarray, np.ndarray]:
    """Plain-Python-loop insertion, one pixel at a time: the reference that tests and the
    benchmark compare :func:`reconstruct` (without hole filling) against.

    Returns (volume ``[k, j, i]`` uint8, hit counts ``[k, j, i]`` uint32). Slow: use on
    small frames only.
    """
    mode = check_choice(str(compounding).lower(), COMPOUNDING_ALIASES, "compounding",
                        fix="use mean, max or latest")
    spacing = np.broadcast_to(np.asarray(spacing_mm, float).reshape(-1), (3,)).copy()
    ext = [int(v) for v in output_extent]
    ni, nj, nk = (ext[2 * a + 1] - ext[2 * a] + 1 for a in range(3))
    grid_origin = np.asarray(output_origin, float) + np.array(ext[0::2], float) * spacing
    mats, valid = sweep.image_to_reference_all()
    rows, cols = sweep.image_shape
    total = [[[0] * ni for _ in range(nj)] for _ in range(nk)]
    count = [[[0] * ni for _ in range(nj)] for _ in range(nk)]
    for f in range(len(sweep)):
        if not valid[f]:
            continue
        c = index_coefficients(mats[f], grid_origin, spacing).tolist()
        frame = sweep.frames[f].tolist()
        for y in range(rows):
            for x in range(cols):
                if pixel_mask is not None and not pixel_mask[y][x]:
                    continue
                v = [c[a][0] * float(x) + (c[a][1] * float(y) + c[a][2]) for a in range(3)]
                if not (0 <= v[0] < ni and 0 <= v[1] < nj and 0 <= v[2] < nk):
                    continue
                i, j, k = int(v[0]), int(v[1]), int(v[2])
                value = frame[y][x]
                if mode == "mean":
                    total[k][j][i] += value
                elif mode == "max":
                    total[k][j][i] = max(total[k][j][i], value)
                else:
                    total[k][j][i] = value
                count[k][j][i] += 1
    out = np.zeros((nk, nj, ni), np.uint8)
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                n = count[k][j][i]
                if n:
                    out[k, j, i] = (2 * total[k][j][i] + n) // (2 * n) if mode == "mean" else total[k][j][i]
    return out, np.array(count, np.uint32)
