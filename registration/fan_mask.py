"""The valid (fan) region of ultrasound frames: detected from the data or built from geometry.

Masks are ``bool [rows, cols]`` over MF-oriented frames (row 0 = transducer
side, rows go away from the transducer; columns towards the marked side).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import InputError

_MAX_STD_FRAMES = 32  # temporal std on an even subsample: enough to see speckle change


def detect_fan_mask(frames: np.ndarray, *, threshold: float = None) -> np.ndarray:
    """Region where any frame has ultrasound signal, ``bool [rows, cols]``.

    ``frames``: ``uint8 [n, rows, cols]``. Works for convex (sector) and linear
    (rectangle) probes: a pixel is signal where the temporal maximum (smoothed
    over 5x5 px) exceeds ``threshold`` grey levels (default: 10 % of the 99th
    percentile of that maximum, at least 4) *and* it is not a static overlay
    (zero temporal std while the rest of the image changes); then an opening
    detaches thin text and markers, the largest component is kept, holes
    (anechoic areas) are filled and a closing smooths the border.
    Empty input (no frames or no pixels) -> all True: nothing to exclude.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise InputError(f"frames must be [n, rows, cols], got shape {frames.shape}")
    n, rows, cols = frames.shape
    if n == 0 or rows == 0 or cols == 0:
        return np.ones((rows, cols), bool)
    tmax = ndimage.uniform_filter(frames.max(axis=0).astype(np.float32), size=5)
    if threshold is None:
        threshold = max(4.0, 0.1 * float(np.percentile(tmax, 99)))
    signal = tmax > threshold
    if n >= 3:
        sub = frames[np.linspace(0, n - 1, min(n, _MAX_STD_FRAMES)).round().astype(int)]
        tstd = ndimage.uniform_filter(sub.std(axis=0, dtype=np.float32), size=5)
        moving = tstd > 1.0
        # Only trust "static = overlay" when most of the signal does change over time
        # (a probe held still gives a static fan too).
        if moving[signal].mean() > 0.5:
            signal &= moving
    radius = max(2, min(rows, cols) // 100)
    signal = ndimage.binary_opening(signal, structure=_disk(radius))
    labels, count = ndimage.label(signal)
    if count == 0:
        return np.zeros((rows, cols), bool)
    sizes = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, count + 1))
    mask = labels == (1 + int(np.argmax(sizes)))
    mask = ndimage.binary_fill_holes(mask)
    close_r = max(2, min(rows, cols) // 60)
    # Pad before closing so the fan edge that touches the image border is not eroded.
    padded = np.pad(mask, close_r + 1, mode="edge")
    padded = ndimage.binary_closing(padded, structure=_disk(close_r))
    mask = padded[close_r + 1:-close_r - 1, close_r + 1:-close_r - 1]
    return ndimage.binary_fill_holes(mask)


def _disk(radius: int) -> np.ndarray:
    y, x = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return x * x + y * y <= radius * radius


def convex_fan_mask(shape, apex_rc, r_min_px: float, r_max_px: float,
                    half_angle_deg: float) -> np.ndarray:
    """Sector of an annulus, ``bool [rows, cols]``, for a convex probe.

    ``shape`` = (rows, cols); ``apex_rc`` = (row, col) of the fan apex in
    pixels (may lie above the image, row < 0); radii in pixels from the apex;
    ``half_angle_deg`` measured from the +row direction (straight away from
    the transducer). A pixel centre (r, c) is inside when
    ``r_min <= dist <= r_max`` and ``|angle| <= half_angle``.
    """
    rows, cols = (int(v) for v in shape)
    if rows < 0 or cols < 0 or not (0 <= r_min_px <= r_max_px) or not (0 < half_angle_deg <= 180):
        raise InputError(f"bad fan geometry: shape {shape}, radii {r_min_px}..{r_max_px} px, "
                         f"half angle {half_angle_deg} deg",
                         fix="use 0 <= r_min <= r_max and 0 < half angle <= 180 degrees")
    r, c = np.mgrid[0:rows, 0:cols].astype(float)
    dr, dc = r - float(apex_rc[0]), c - float(apex_rc[1])
    dist = np.hypot(dr, dc)
    angle = np.degrees(np.arctan2(dc, dr))
    return (dist >= r_min_px) & (dist <= r_max_px) & (np.abs(angle) <= half_angle_deg)


def linear_fan_mask(shape, first_col: int, last_col: int, first_row: int, last_row: int) -> np.ndarray:
    """Rectangle ``[first_row..last_row] x [first_col..last_col]`` (inclusive), ``bool [rows, cols]``."""
    rows, cols = (int(v) for v in shape)
    mask = np.zeros((rows, cols), bool)
    mask[max(first_row, 0):last_row + 1, max(first_col, 0):last_col + 1] = True
    return mask
