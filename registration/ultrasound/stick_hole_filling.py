"""PLUS's ``STICK`` hole-filling element (``vtkPlusFillHolesInVolume``), vectorised.

PLUS's ``STICK`` element (:func:`fill_holes_sticks`, used by the PLUS
SpinePhantom configs) interpolates along the shortest of 13 line directions
between inserted voxels on both sides of the hole, never beyond
``StickLengthLimit`` voxels: it fills between slices and never extrapolates.
It reproduces PLUS's integer arithmetic when asked to.

Arrays are numpy ``[k, j, i]``; stick directions are written (i, j, k) as in
PLUS; lengths are in voxels (PLUS convention, not mm).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np

from registration.spatial.errors import CancelledError, InputError

# PLUS's 13 stick directions (i, j, k); each is searched both ways.
_STICKS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, -1, 0),
           (1, 0, -1), (0, 1, -1), (1, 1, 1), (-1, 1, 1), (1, -1, 1), (-1, -1, 1))


def fill_holes_sticks(values: np.ndarray, known: np.ndarray, stick_length_limit: int = 9,
                      sticks_to_use: int = 1, integer_values: bool = False,
                      progress: Optional[Callable[[float], Optional[bool]]] = None
                      ) -> Tuple[np.ndarray, np.ndarray]:
    """PLUS's ``STICK`` hole filling, vectorised.

    For every empty voxel and each of 13 directions, find the nearest inserted
    voxel forward (at most ``L - 1`` steps, L = ``stick_length_limit``) and
    then backward (``rvs + fwd + 1 <= L``). A stick with both ends gives the
    linear interpolation ``(rvs+1)/(fwd+rvs+1) * v_fwd + ...`` and the score
    ``1 / ((fwd+rvs+1) * |direction|)``; the best-scoring stick (ties averaged,
    or the ``sticks_to_use`` best) sets the voxel. Arrays ``[k, j, i]``;
    directions are written (i, j, k) as in PLUS. Computed in float64 like PLUS's doubles, so
    truncating the result reproduces PLUS's integer voxels; with ``integer_values`` each
    stick's value is truncated first, as PLUS stores it in the voxel type. Returns (values float64, filled bool).
    """
    values = np.asarray(values)
    known = np.asarray(known, bool)
    if values.shape != known.shape or values.ndim != 3:
        raise InputError(f"values {values.shape} and known {known.shape} must be the same 3D shape")
    L = int(stick_length_limit)
    out = np.where(known, values, 0).astype(np.float64)
    todo = ~known
    if L < 2 or not todo.any() or not known.any():
        return out, np.zeros(known.shape, bool)
    pad = L
    kp = np.pad(known, pad)
    vp = np.pad(out, pad)
    shape = known.shape
    best_w = np.zeros(shape, np.float64)      # score of the best stick so far
    best_sum = np.zeros(shape, np.float64)    # sum of value * score of sticks with that score
    best_n = np.zeros(shape, np.float64)      # sum of their scores (PLUS's sumWeights)
    # Weighted accumulation of the top `sticks_to_use` sticks is only needed for > 1.
    scores, vals = ([], []) if sticks_to_use > 1 else (None, None)

    def view(arr, off):
        dk, dj, di = off
        return arr[pad + dk:pad + dk + shape[0], pad + dj:pad + dj + shape[1],
                   pad + di:pad + di + shape[2]]

    for n, (di, dj, dk) in enumerate(_STICKS):
        if progress is not None and progress(n / len(_STICKS)) is False:
            raise CancelledError("hole filling cancelled")
        fwd = np.zeros(shape, np.int16)
        vf = np.zeros(shape, np.float64)
        for j in range(1, L):
            hit = view(kp, (j * dk, j * dj, j * di)) & (fwd == 0) & todo
            if hit.any():
                fwd[hit] = j
                vf[hit] = view(vp, (j * dk, j * dj, j * di))[hit]
        rvs = np.zeros(shape, np.int16)
        vr = np.zeros(shape, np.float64)
        for j in range(1, L - 1):
            hit = view(kp, (-j * dk, -j * dj, -j * di)) & (rvs == 0) & (fwd > 0) & (j + fwd + 1 <= L)
            if hit.any():
                rvs[hit] = j
                vr[hit] = view(vp, (-j * dk, -j * dj, -j * di))[hit]
        ok = rvs > 0
        total = (fwd + rvs + 1).astype(np.float64)
        w_fwd = (rvs + 1) / total
        value = (1 - w_fwd) * vr + w_fwd * vf
        if integer_values:
            value = np.trunc(value)
        score = np.where(ok, 1.0 / (total * np.sqrt(float(di * di + dj * dj + dk * dk))), 0.0)
        if sticks_to_use > 1:
            scores.append(score)
            vals.append(np.where(ok, value, 0).astype(np.float64))
            continue
        better = score > best_w
        same = ok & (score == best_w)
        vs = value * score
        best_sum = np.where(better, vs, np.where(same, best_sum + vs, best_sum))
        best_n = np.where(better, score, np.where(same, best_n + score, best_n))
        best_w = np.maximum(best_w, score)
    if sticks_to_use > 1:
        s = np.stack(scores)
        v = np.stack(vals)
        order = np.argsort(-s, axis=0)[:sticks_to_use]
        ws = np.take_along_axis(s, order, 0)
        vs = np.take_along_axis(v, order, 0)
        wsum = ws.sum(axis=0)
        filled = todo & (wsum > 0)
        out[filled] = ((ws * vs).sum(axis=0)[filled] / wsum[filled])
    else:
        filled = todo & (best_n > 0)
        out[filled] = best_sum[filled] / best_n[filled]
    return out, filled
