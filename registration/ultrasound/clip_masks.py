"""Which pixels of a frame are inserted: PLUS's clip rectangle and fan clipping.

Masks are bool ``[rows, cols]`` of the stored frame (x = column, y = row),
True for pixels to insert; positions and sizes are in pixels.

Clip rectangle ``(x0, y0, w, h)`` in pixels keeps columns
``ceil(x0) .. floor(x0 + w)`` and rows ``ceil(y0) .. floor(y0 + h)``
(both ends included, clamped to the image) -- PLUS's ``GetClipExtent``.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

# Stop radius when a config gives fan angles but neither FanRadiusStopPixel nor FanDepth:
# deeper than the frames of the PLUS sample data, so the fan is then cut by its angles only.
DEFAULT_FAN_RADIUS_STOP_PX = 500.0
# PLUS keeps fan pixels one pixel inside each edge and radius.
_FAN_MARGIN_PX = 1


def clip_rectangle_mask(shape: Tuple[int, int], clip_rectangle) -> np.ndarray:
    """bool ``[rows, cols]`` for PLUS's ClipRectangleOrigin (x0, y0) + ClipRectangleSize (w, h), pixels."""
    rows, cols = shape
    x0, y0, w, h = (float(v) for v in clip_rectangle)
    if w <= 0 or h <= 0:
        return np.ones(shape, bool)
    c0, c1 = max(math.ceil(x0), 0), min(math.floor(x0 + w), cols - 1)
    r0, r1 = max(math.ceil(y0), 0), min(math.floor(y0 + h), rows - 1)
    m = np.zeros(shape, bool)
    if c0 <= c1 and r0 <= r1:
        m[r0:r1 + 1, c0:c1 + 1] = True
    return m


def plus_fan_mask(shape: Tuple[int, int], origin_px, angles_deg, radius_start_px: float = 0.0,
                  radius_stop_px: float = DEFAULT_FAN_RADIUS_STOP_PX) -> np.ndarray:
    """bool ``[rows, cols]``: PLUS's fan clipping for unit pixel spacing.

    Row y keeps columns x with ``ceil(tan(a0) * dy + ox + 1) <= x <=
    floor(tan(a1) * dy + ox - 1)`` (dy = y - oy), inside the stop radius and
    outside the start radius (same +-1 pixel margins as PLUS).
    """
    rows, cols = shape
    ox, oy = (float(v) for v in origin_px)
    a0, a1 = (math.radians(float(a)) for a in angles_deg)
    y = np.arange(rows, dtype=float)[:, None] - oy
    x = np.arange(cols, dtype=float)[None, :]
    e = _FAN_MARGIN_PX
    m = (x >= np.ceil(math.tan(a0) * y + ox + e)) & (x <= np.floor(math.tan(a1) * y + ox - e))
    d_stop = radius_stop_px ** 2 - y * y
    half = np.sqrt(np.clip(d_stop, 0, None))
    m &= (d_stop >= 0) & (x >= np.ceil(ox - half + e)) & (x <= np.floor(ox + half - e))
    d_start = radius_start_px ** 2 - y * y
    inner = np.sqrt(np.clip(d_start, 0, None))
    m &= ~((d_start > 0) & (x >= np.ceil(ox - inner + e)) & (x <= np.floor(ox + inner - e)))
    return m
