"""Display resampling of a slice in physical mm: square display pixels, linear or nearest.

A CT with 0.8 mm pixels and 5 mm slices gives coronal and sagittal slices
whose rows are 5 mm apart. Drawn pixel for pixel (nearest neighbour) they are
stair-stepped; a workstation resamples them onto square display pixels with
linear interpolation. :func:`display_shape` picks that grid (the finer of the
two spacings, so the fine axis is never resampled, capped at ``max_px`` per
side) and :func:`resample` fills it, separably, so the result covers exactly
the same physical extent as the input: output pixel ``j`` of ``n_out`` has its
centre at input index ``(j + 0.5) * n_in / n_out - 0.5`` (clamped to the
first/last input pixel at the edges). Arrays are ``[rows, cols]``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

INTERPOLATIONS = ("linear", "nearest")


def display_shape(shape: Tuple[int, int], spacing_cr: Tuple[float, float], max_px: int = 2048) -> Tuple[int, int]:
    """(rows, cols) of square display pixels covering a ``shape`` slice with (col, row) mm spacing."""
    rows, cols = int(shape[0]), int(shape[1])
    sc, sr = float(spacing_cr[0]), float(spacing_cr[1])
    pixel = min(sc, sr)
    w_mm, h_mm = cols * sc, rows * sr
    pixel = max(pixel, max(w_mm, h_mm) / max_px)
    out_cols = cols if sc <= pixel * 1.0001 else int(round(w_mm / pixel))
    out_rows = rows if sr <= pixel * 1.0001 else int(round(h_mm / pixel))
    return max(out_rows, 1), max(out_cols, 1)


def _coords(n_in: int, n_out: int) -> np.ndarray:
    return np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)


def _linear_axis(a: np.ndarray, n_out: int, axis: int) -> np.ndarray:
    n_in = a.shape[axis]
    if n_out == n_in:
        return a
    x = _coords(n_in, n_out)
    i0 = np.floor(x).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (x - i0).astype(np.float32)
    a0, a1 = np.take(a, i0, axis=axis), np.take(a, i1, axis=axis)
    shape = [1, 1]
    shape[axis] = n_out
    w = w.reshape(shape)
    return a0 * (1.0 - w) + a1 * w


def resample(img: np.ndarray, out_shape: Tuple[int, int], interpolation: str = "linear") -> np.ndarray:
    """``img`` [rows, cols] on an ``out_shape`` grid over the same extent.

    ``linear``: float32, separable linear interpolation; ``nearest``: the input
    dtype, nearest pixel (labels must use this).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, not {interpolation!r}")
    rows, cols = int(out_shape[0]), int(out_shape[1])
    if (rows, cols) == img.shape:
        return img
    if interpolation == "nearest":
        r = np.rint(_coords(img.shape[0], rows)).astype(np.intp)
        c = np.rint(_coords(img.shape[1], cols)).astype(np.intp)
        return img[r][:, c]
    a = np.asarray(img, np.float32)
    return _linear_axis(_linear_axis(a, rows, 0), cols, 1)
