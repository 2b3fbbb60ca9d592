"""Pixel insertion of volume reconstruction: accumulation buffers, frames in, voxel values out.

Buffers are flat over the output grid's numpy ``[k, j, i]`` voxels
(:class:`~registration.ultrasound.reconstruction_grid.OutputGrid`); each valid
frame's pixels go to their nearest voxels (PLUS's rule,
:func:`~registration.ultrasound.reconstruction_grid.voxel_indices`) and are
combined by the compounding mode (:mod:`registration.ultrasound.compounding`):
MEAN keeps exact integer sums (or PLUS's running mean), MAXIMUM the largest
value, LATEST the last pixel in file order, raster order within a frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

from registration.spatial.errors import CancelledError

from .compounding import plus_running_mean_update
from .reconstruction_grid import OutputGrid, index_coefficients, voxel_indices


@dataclass
class InsertionBuffers:
    """Accumulation per voxel (flat ``[k, j, i]``) and what went in."""
    count: np.ndarray                                    # uint32 pixels inserted per voxel
    acc: Optional[np.ndarray]                            # sums (MEAN), maxima or latest values
    plus_state: Optional[Tuple[np.ndarray, np.ndarray]]  # PLUS running value + capped hit count
    n_used: int = 0                                      # frames inserted
    n_pixels: int = 0                                    # pixels inserted


def new_buffers(dtype, n_vox: int, mode: str, plus_running_mean: bool) -> InsertionBuffers:
    """Zeroed buffers for ``n_vox`` voxels, frames of ``dtype`` and compounding ``mode``."""
    integer = np.issubdtype(dtype, np.integer)
    count = np.zeros(n_vox, np.uint32)
    if mode == "mean":
        # Exact sums: uint32 for 8-bit unsigned frames (below 16M hits/voxel), int64 for other
        # integer frames (signed values and 16/32-bit sums would wrap a uint32), else float64.
        small = integer and np.dtype(dtype).itemsize == 1 and not np.issubdtype(dtype, np.signedinteger)
        acc = np.zeros(n_vox, np.uint32 if small else (np.int64 if integer else np.float64))
    elif mode == "max" and not np.issubdtype(dtype, np.unsignedinteger):
        low = np.iinfo(dtype).min if integer else -np.inf
        acc = np.full(n_vox, low, dtype)     # signed/float frames: start below any value
    else:
        acc = np.zeros(n_vox, dtype)
    plus_state = None
    if plus_running_mean and mode == "mean" and integer:
        # PLUS's running value (in the frames' dtype) and its hit counter (capped at 255).
        plus_state = (np.zeros(n_vox, dtype), np.zeros(n_vox, np.int32))
    return InsertionBuffers(count, acc, plus_state)


def insert_frames(frames: np.ndarray, image_to_reference: np.ndarray, valid: np.ndarray,
                  grid: OutputGrid, pixel_mask: Optional[np.ndarray], mode: str,
                  buffers: InsertionBuffers, skip_interval: int = 1,
                  progress: Optional[Callable[[float], Optional[bool]]] = None,
                  progress_share: float = 1.0) -> None:
    """Insert frames 0, s, 2s, ... (s = ``skip_interval``) that are ``valid``, in file order.

    ``frames`` ``[n, rows, cols]``; ``image_to_reference`` ``[n, 4, 4]`` (pixels -> mm);
    ``pixel_mask`` bool ``[rows, cols]`` or None (every pixel). ``progress(fraction)`` is
    called before each frame with fractions 0..``progress_share``; False cancels.
    """
    shape = frames.shape[1:]
    use = np.flatnonzero(valid[::int(skip_interval)]) * int(skip_interval)
    for step, f in enumerate(use):
        if progress is not None and progress(progress_share * step / max(len(use), 1)) is False:
            raise CancelledError(f"reconstruction cancelled after {step} of {len(use)} frames")
        coef = index_coefficients(image_to_reference[f], grid.grid_origin, grid.spacing)
        flat, sel = voxel_indices(coef, shape, grid.dims, pixel_mask)
        buffers.n_used += 1
        if flat.size == 0:
            continue
        vals = frames[f].reshape(-1)[sel]
        buffers.n_pixels += flat.size
        np.add.at(buffers.count, flat, np.ones(flat.size, np.uint32))
        if mode == "mean" and buffers.plus_state is not None:
            plus_running_mean_update(buffers.plus_state[0], buffers.plus_state[1], flat, vals)
        elif mode == "mean":
            np.add.at(buffers.acc, flat, vals.astype(buffers.acc.dtype))
        elif mode == "max":
            np.maximum.at(buffers.acc, flat, vals)
        else:
            # Last pixel in raster order wins inside a frame, like PLUS's scan-line loop.
            rev = flat[::-1]
            uniq, first = np.unique(rev, return_index=True)
            buffers.acc[uniq] = vals[::-1][first]


def inserted_values(buffers: InsertionBuffers, mode: str, integer_frames: bool, output_dtype):
    """(flat indices of the voxels that were hit, their values).

    MEAN of integer frames into an integer output is the exact mean rounded half up,
    in integers; PLUS's running mean is taken as it is. Later stages work on these
    voxels only (often < 1/4 of the grid), which keeps memory near two grid-sized
    buffers plus the output.
    """
    hit = np.flatnonzero(buffers.count)
    if buffers.plus_state is not None:
        return hit, buffers.plus_state[0][hit]
    if mode != "mean":
        return hit, buffers.acc[hit]
    c = buffers.count[hit]
    if integer_frames and np.issubdtype(np.dtype(output_dtype), np.integer):
        # Half-up rounding of sum / count in integers: no float error on inserted voxels.
        return hit, (2 * buffers.acc[hit].astype(np.int64) + c) // (2 * c)   # floor: half up
    return hit, buffers.acc[hit] / c
