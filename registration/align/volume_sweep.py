"""Sweeps whose frames are the slices of a 3D ultrasound volume: 0 means "not imaged", per frame.

A reconstructed (or 3D-probe) ultrasound volume given as a sweep has one
frame per slice, all parallel and evenly spaced, and outside the imaged region
of each slice the value 0. One fan mask for all frames (the union) would let
LC2 see that border as a strong edge in every slice and try to explain it. So
for such a sweep every frame keeps only its own imaged pixels:

* :func:`is_volume_stack`: the valid frames' planes are parallel (normals within
  ``PARALLEL_DEG``) and their origins step along the normal evenly (within
  ``STEP_RTOL``): no freehand sweep does that;
* :func:`mark_unimaged`: the same sweep with ``metadata['zero_is_outside'] = True``;
* :func:`drop_unimaged`: called by :func:`registration.align.lc2_cost.frame_samples`
  for a marked sweep: a resampled pixel counts only where the frame's nonzero
  region covers it fully (0.99 of its linear interpolation), and its Reference
  point is dropped with it;
* :func:`with_shadows_marked`: a freehand sweep (not a volume's slices, which are not beams)
  marked for LC2 to leave its acoustic shadows out (:mod:`registration.ultrasound.shadows`),
  the one place the ``shadows`` option ("drop" / "keep") of the registrations is checked.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List, Tuple

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.ultrasound.shadows import mark_shadows

PARALLEL_DEG = 0.5
STEP_RTOL = 0.02
MIN_FRAMES = 3
#: The registrations' ``shadows`` option: leave the frames' acoustic shadows out of LC2, or keep them.
SHADOW_OPTIONS = ("drop", "keep")


def is_volume_stack(sweep: Sweep) -> bool:
    """True when the valid frames are parallel, evenly spaced planes (a volume's slices)."""
    if not sweep.has_images:
        return False
    mats, valid = sweep.require_image_to_reference()
    m = mats[valid]
    if len(m) < MIN_FRAMES:
        return False
    normals = np.cross(m[:, :3, 0], m[:, :3, 1])
    norms = np.linalg.norm(normals, axis=1)
    if np.any(norms <= 0):
        return False
    normals /= norms[:, None]
    if np.degrees(np.arccos(np.clip(np.abs(normals @ normals[0]), -1, 1))).max() > PARALLEL_DEG:
        return False
    along = m[:, :3, 3] @ normals[0]
    steps = np.diff(along)
    if np.any(np.abs(steps) < 1e-6):
        return False
    return bool(np.all(np.abs(steps - np.median(steps)) <= STEP_RTOL * abs(np.median(steps))))


def check_shadows_option(shadows: str) -> None:
    """InputError unless ``shadows`` is one of :data:`SHADOW_OPTIONS`."""
    if shadows not in SHADOW_OPTIONS:
        raise InputError(f"unknown shadows option '{shadows}'", fix="use drop or keep")


def with_shadows_marked(sweep: Sweep, shadows: str, edge_mm: float = 0.0) -> Sweep:
    """``sweep`` marked for LC2 to leave its acoustic shadows out when ``shadows == "drop"`` and it
    is a freehand sweep (a volume's slices are not beams: unchanged, as with "keep"), each shadow
    widened sideways by ``edge_mm`` (:data:`registration.ultrasound.shadows.EDGE_MM` for a whole-sweep
    CT registration). InputError for an unknown option (:func:`check_shadows_option`)."""
    check_shadows_option(shadows)
    return mark_shadows(sweep, edge_mm) if shadows == "drop" and not is_volume_stack(sweep) else sweep


def mark_unimaged(sweep: Sweep) -> Sweep:
    """``sweep`` with ``metadata['zero_is_outside'] = True`` (a new Sweep; the input is unchanged)."""
    return replace(sweep, metadata=dict(sweep.metadata, zero_is_outside=True))


def drop_unimaged(sweep: Sweep, indices, fan: np.ndarray, fy: np.ndarray, fx: np.ndarray, u: np.ndarray,
                  fans: np.ndarray, pts: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """Per frame, keep the resampled fan pixels (``fy``, ``fx``: original pixel coordinates of the
    fan pixels ``fan``) that lie fully inside the frame's imaged (nonzero) region; their values
    ``u``, masks ``fans`` [n, rows, cols] and Reference points ``pts`` (one [m, 3] array per frame)."""
    out_pts = []
    for n, f in enumerate(indices):
        imaged = ndimage.binary_fill_holes(sweep.frames[f] > 0).astype(np.float32)
        keep = ndimage.map_coordinates(imaged, [fy, fx], order=1, mode="constant", cval=0.0) > 0.99
        frame_fan = np.zeros(fan.shape, bool)
        frame_fan[fan] = keep
        fans[n] = frame_fan
        u[n][~frame_fan] = 0.0
        out_pts.append(pts[n][keep])
    return u, fans, out_pts
