"""How far a point is from what a sweep imaged: distance to the union of the frames' fans.

Each frame's fan is a planar region (the fan mask, in Image pixels) placed in
space by its ``image_to_world`` (Image pixels -> LPS mm, the pixel spacing in
its columns). The distance from a point to one fan is
``sqrt(z^2 + d_in^2)``: ``z`` its distance to the frame's plane, ``d_in`` the
in-plane distance from its projection to the fan (Euclidean distance
transform of the mask, padded by half the image size on every side, in mm; 0
inside). A projection beyond the padding adds its distance to the padded
border (an upper bound there, exact within it; up to one pixel from
rounding). The sweep's distance is the minimum over its valid frames.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage


def fan_distance_mm(points, image_to_world: np.ndarray, fan_mask: np.ndarray, *,
                    chunk: int = 200000) -> np.ndarray:
    """[m] mm from ``points`` [m, 3] (LPS mm) to the union of the fans of ``image_to_world``
    [n, 4, 4] (frames with NaN matrices are skipped); ``fan_mask`` bool [rows, cols]."""
    pts = np.asarray(points, float).reshape(-1, 3)
    mats = np.asarray(image_to_world, float).reshape(-1, 4, 4)
    mats = mats[np.all(np.isfinite(mats.reshape(len(mats), -1)), axis=1)]
    out = np.full(len(pts), np.inf)
    if not len(mats) or not len(pts):
        return out
    pad = max(np.asarray(fan_mask).shape) // 2
    mask = np.pad(np.asarray(fan_mask, bool), pad)
    rows, cols = mask.shape
    sx = float(np.linalg.norm(mats[0, :3, 0]))
    sy = float(np.linalg.norm(mats[0, :3, 1]))
    sz = float(np.linalg.norm(mats[0, :3, 2])) or 1.0
    edt = ndimage.distance_transform_edt(~mask, sampling=(sy, sx)) if mask.any() else np.full(mask.shape, np.inf)
    for m in mats:
        inv = np.linalg.inv(m)
        for a in range(0, len(pts), chunk):
            p = pts[a:a + chunk]
            c, r, z = (p @ inv[:3, :3].T + inv[:3, 3]).T
            c, r = c + pad, r + pad
            cc = np.clip(c, 0, cols - 1)
            rc = np.clip(r, 0, rows - 1)
            border = np.hypot((c - cc) * sx, (r - rc) * sy)
            d_in = edt[np.rint(rc).astype(np.intp), np.rint(cc).astype(np.intp)] + border
            np.minimum(out[a:a + chunk], np.hypot(z * sz, d_in), out=out[a:a + chunk])
    return out
