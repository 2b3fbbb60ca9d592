"""The valid (fan) region of ultrasound frames: detected from the data or built from geometry.

Masks are ``bool [rows, cols]`` over MF-oriented frames (row 0 = transducer
side, rows go away from the transducer; columns towards the marked side).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from .errors import InputError

_MAX_STD_FRAMES = 32  # temporal std on an even subsample: enough to see speckle change
# Detection settings, all in pixels or grey levels of uint8 frames (a heuristic tuned on the
# PLUS sample sequences and the simulated sweeps; tests/test_fan_mask.py checks it on both).
_ZERO_BACKGROUND_FRACTION = 0.05   # more exact zeros than this: scan-converted, clean outside
_ZERO_BRIDGE_RADIUS_PX = 4         # closing that bridges dark water inside a clean fan
_SCORE_SMOOTH_PX = 3               # box filter of the temporal maximum before thresholding
_MIN_THRESHOLD_GREY = 0.5          # Otsu threshold floor: at least half a grey level
_STD_SMOOTH_PX = 9                 # box filter of the temporal std
_MOVING_STD_GREY = 0.05            # temporal std above this: the pixel changes over time
_MOVING_SIGNAL_FRACTION = 0.8      # trust "static = overlay" only when this much signal moves
_MIN_OPENING_RADIUS_PX = 2
_OPENING_RADIUS_DIVISOR = 100      # opening radius = min(rows, cols) / this (>= the minimum)
_CLOSING_RADIUS_DIVISOR = 60       # border smoothing radius = min(rows, cols) / this
_KEEP_COMPONENT_FRACTION = 0.2     # keep blobs at least this fraction of the largest
_OTSU_BINS = 256


def detect_fan_mask(frames: np.ndarray, *, threshold: float = None) -> np.ndarray:
    """Region where any frame has ultrasound signal, ``bool [rows, cols]``.

    ``frames``: ``uint8 [n, rows, cols]`` (MF). Works for convex (sector) and
    linear (rectangle) probes. Steps: temporal maximum; when over 5 % of it is
    exactly 0 (a clean scan-converted outside) every lit pixel is signal, closed
    over 4 px; otherwise the maximum smoothed over 3x3 px is thresholded
    (default: Otsu on log(1 + value), at least 0.5 grey levels, which separates
    the low-noise outside of a scan-converted image from even dark tissue or
    water inside the fan); static overlays are dropped when most of the fan
    changes over time (temporal std over 9x9 px); an opening detaches thin text
    and markers; components at least 20 % of the largest are kept; each column
    is filled between its first and last fan pixel (a column crosses a sector
    or a rectangle in one interval), holes are filled and a closing smooths the
    border. Empty input (no frames or no pixels) -> all True.
    """
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise InputError(f"frames must be [n, rows, cols], got shape {frames.shape}")
    n, rows, cols = frames.shape
    if n == 0 or rows == 0 or cols == 0:
        return np.ones((rows, cols), bool)
    tmax = frames.max(axis=0)
    if threshold is None and (tmax == 0).mean() > _ZERO_BACKGROUND_FRACTION:
        # Clean scan-converted background (exact zeros outside the fan): every lit pixel
        # counts; a closing bridges dark water or shadow inside the fan without moving
        # the outer border (a smoothing + low threshold would dilate it).
        signal = _closing(tmax > 0, _ZERO_BRIDGE_RADIUS_PX, square=True)
    else:
        score = ndimage.uniform_filter(tmax.astype(np.float32), size=_SCORE_SMOOTH_PX)
        if threshold is None:
            threshold = max(_MIN_THRESHOLD_GREY, float(np.expm1(_otsu(np.log1p(score)))))
        signal = score > threshold
    if n >= 3 and signal.any():
        sub = frames[np.linspace(0, n - 1, min(n, _MAX_STD_FRAMES)).round().astype(int)]
        tstd = ndimage.uniform_filter(sub.std(axis=0, dtype=np.float32), size=_STD_SMOOTH_PX)
        moving = tstd > _MOVING_STD_GREY
        # Only trust "static = overlay" when most of the signal does change over time
        # (a probe held still gives a static fan too).
        if moving[signal].mean() > _MOVING_SIGNAL_FRACTION:
            signal &= moving
    radius = max(_MIN_OPENING_RADIUS_PX, min(rows, cols) // _OPENING_RADIUS_DIVISOR)
    signal = _dilate(_erode(signal, radius), radius)  # opening with a disk
    labels, count = ndimage.label(signal)
    if count == 0:
        return np.zeros((rows, cols), bool)
    sizes = np.bincount(labels.ravel())[1:]
    # The fan is the largest component; sparse images (wire phantoms in water) light up
    # as several blobs of similar size: keep every component at least 20 % of the largest.
    keep = np.flatnonzero(sizes >= _KEEP_COMPONENT_FRACTION * sizes.max()) + 1
    mask = np.isin(labels, keep)
    # Column-interval fill: dark water or anechoic tissue between lit pixels of a column.
    any_col = mask.any(axis=0)
    first = np.argmax(mask, axis=0)
    last = rows - 1 - np.argmax(mask[::-1], axis=0)
    r = np.arange(rows)[:, None]
    mask |= any_col[None, :] & (r >= first[None, :]) & (r <= last[None, :])
    mask = _closing(mask, max(_MIN_OPENING_RADIUS_PX, min(rows, cols) // _CLOSING_RADIUS_DIVISOR))
    return ndimage.binary_fill_holes(mask)


def detect_fan_mask_of_images(frames: np.ndarray) -> Optional[np.ndarray]:
    """:func:`detect_fan_mask` for frames of at least 2 x 2 pixels; None otherwise.

    What the sweep readers store as ``Sweep.fan_mask``: tracker-only sequences
    (0 x 0 frames) and single-row or single-column frames have no fan to detect.
    """
    if frames.shape[1] > 1 and frames.shape[2] > 1:
        return detect_fan_mask(frames)
    return None


def _erode(mask: np.ndarray, radius: float) -> np.ndarray:
    """Erosion by a disk via the Euclidean distance transform (fast for large radii)."""
    if mask.all() or not mask.any():
        return mask.copy()  # the transform needs both values present
    return ndimage.distance_transform_edt(mask) > radius


def _dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    if mask.all() or not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= radius


def _closing(mask: np.ndarray, radius: int, square: bool = False) -> np.ndarray:
    """Binary closing that does not erode regions touching the image border (edge padding)."""
    padded = np.pad(mask, radius + 1, mode="edge")
    if square:
        size = 2 * radius + 1
        grown = ndimage.maximum_filter(padded.view(np.uint8), size=size) > 0
        padded = ndimage.minimum_filter(grown.view(np.uint8), size=size) > 0
    else:
        padded = _erode(_dilate(padded, radius), radius)
    return padded[radius + 1:-radius - 1, radius + 1:-radius - 1]


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


def _otsu(values: np.ndarray, bins: int = _OTSU_BINS) -> float:
    """Otsu threshold of a float array (maximum between-class variance)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = w0 * w1 * (m0 / w0 - (m0[-1] - m0) / w1) ** 2
    between = np.nan_to_num(between[:-1])
    return float(edges[1 + int(np.argmax(between))]) if between.size else float(edges[0])
