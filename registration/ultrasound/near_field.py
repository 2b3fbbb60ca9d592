"""Leave the near field (the first millimetres under the probe) out of LC2: an experiment hook.

``sweep.metadata['skip_near_mm'] = D``: :func:`registration.align.lc2_cost.frame_samples`
then drops, per column of the fan, the resampled pixels less than ``D`` mm below the fan's top
edge (the skin line under a convex or linear probe): the body wall, which between an MR
session and the sweep does not move with the organ under it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Tuple

import numpy as np


def mark_near_field(sweep, mm: float):
    """``sweep`` with ``metadata['skip_near_mm'] = mm`` (a new Sweep)."""
    return replace(sweep, metadata=dict(sweep.metadata, skip_near_mm=float(mm)))


def drop_near_field(sweep, fan_mask: np.ndarray, fan: np.ndarray, fy: np.ndarray, fx: np.ndarray, u: np.ndarray,
                    fans: np.ndarray, pts: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """Drop the pixels within ``metadata['skip_near_mm']`` of the fan's top edge (per column)."""
    mats, valid = sweep.require_image_to_reference()
    sy = float(np.linalg.norm(mats[np.flatnonzero(valid)[0]][:3, 1]))
    cols_any = fan_mask.any(axis=0)
    top = np.where(cols_any, np.argmax(fan_mask, axis=0), fan_mask.shape[0])
    c = np.clip(np.rint(fx).astype(int), 0, fan_mask.shape[1] - 1)
    keep = (fy - top[c]) * sy >= float(sweep.metadata["skip_near_mm"])
    out_pts = []
    for n in range(len(u)):
        sel = fans[n][fan]
        out_pts.append(pts[n][keep[sel]])
        frame_fan = np.zeros(fan.shape, bool)
        frame_fan[fan] = sel & keep
        fans[n] = frame_fan
        u[n][~frame_fan] = 0.0
    return u, fans, out_pts
