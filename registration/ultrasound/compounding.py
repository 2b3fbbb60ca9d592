"""Compounding modes of volume reconstruction and PLUS's integer MEAN arithmetic.

* MEAN = running mean of every pixel that hit the voxel (PLUS weights each
  pixel 1, also several pixels of one frame); MAXIMUM = largest; LATEST = the
  last pixel in file order, raster order within a frame.

MEAN values: PLUS keeps the MEAN of ``uint8`` voxels as an integer running
mean truncated at every insertion (and saturates after 255 hits); by default
the mean in :func:`registration.ultrasound.reconstruction.reconstruct` is exact (integer
sums) and rounded half-up once, so values can differ from PLUS's by a few grey
levels; ``plus_running_mean=True`` reproduces PLUS's arithmetic
(:func:`plus_running_mean_update`).

Voxel arrays here are flat indices into a numpy ``[k, j, i]`` grid; pixels are
in raster order (row by row) of the stored frame.
"""
from __future__ import annotations

import numpy as np

COMPOUNDING_ALIASES = {"mean": "mean", "max": "max", "maximum": "max", "latest": "latest"}
# PLUS's MEAN of integer voxels: its accumulation buffer (256 per hit) saturates after
# PLUS_MAX_HITS hits; from then on PLUS weights the new pixel 255/256 and the voxel 1/256.
PLUS_MAX_HITS = 255
_PLUS_SATURATED_PIXEL_WEIGHT = 255 / 256      # 0.99609375, exact in binary
_PLUS_SATURATED_VOXEL_WEIGHT = 1 / 256        # 0.00390625


def plus_running_mean_update(value: np.ndarray, hits: np.ndarray, flat: np.ndarray,
                             pixels: np.ndarray) -> None:
    """Insert one frame's pixels the way PLUS's MEAN does for integer voxels, in place.

    PLUS keeps a running value per voxel, updated pixel by pixel in raster order:
    ``v = (p * 256 + v * acc) // (acc + 256)`` with ``acc = 256 * hits`` (integer
    division, so ``v = (p + v * h) // (h + 1)``); once a voxel has 255 hits its
    accumulation buffer is saturated and PLUS switches to
    ``v = trunc(0.99609375 * p + 0.00390625 * v)`` ("bug: weights reversed?" in PLUS).
    Order matters, so the pixels of each voxel are applied in rounds: round r
    updates, at once, every voxel that receives an (r+1)-th pixel from this frame.
    """
    order = np.argsort(flat, kind="stable")            # group by voxel, keep raster order
    sf = flat[order]
    sv = pixels[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, sf[1:] != sf[:-1]])
    rank = np.arange(sf.size) - np.repeat(starts, np.diff(np.r_[starts, sf.size]))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    for r in range(len(bounds) - 1):
        idx = by_rank[bounds[r]:bounds[r + 1]]
        vox, p = sf[idx], sv[idx]
        h = hits[vox].astype(np.int64)
        v = value[vox].astype(np.int64)
        normal = h < PLUS_MAX_HITS
        new = np.where(normal, (p + v * h) // (h + 1),
                       np.trunc(_PLUS_SATURATED_PIXEL_WEIGHT * p
                                + _PLUS_SATURATED_VOXEL_WEIGHT * v).astype(np.int64))
        value[vox] = new.astype(value.dtype)
        hits[vox] = h + normal
