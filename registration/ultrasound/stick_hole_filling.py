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

from .hole_filling_elements import DEFAULT_STICK_LENGTH_LIMIT_VOXELS, DEFAULT_STICKS_TO_USE

# PLUS's 13 stick directions (i, j, k); each is searched both ways.
_STICKS = ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, -1, 0),
           (1, 0, -1), (0, 1, -1), (1, 1, 1), (-1, 1, 1), (1, -1, 1), (-1, -1, 1))


class _Padded:
    """``known`` and ``values`` padded by the stick length, read at shifted offsets."""

    def __init__(self, known: np.ndarray, values: np.ndarray, pad: int):
        self.known = np.pad(known, pad)
        self.values = np.pad(values, pad)
        self.pad = pad
        self.shape = known.shape

    def view(self, arr: np.ndarray, off) -> np.ndarray:
        """``arr`` (padded) shifted by ``off`` = (dk, dj, di) voxels, cropped to the volume."""
        p, shape = self.pad, self.shape
        dk, dj, di = off
        return arr[p + dk:p + dk + shape[0], p + dj:p + dj + shape[1], p + di:p + di + shape[2]]


def fill_holes_sticks(values: np.ndarray, known: np.ndarray,
                      stick_length_limit: int = DEFAULT_STICK_LENGTH_LIMIT_VOXELS,
                      sticks_to_use: int = DEFAULT_STICKS_TO_USE, integer_values: bool = False,
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
    padded = _Padded(known, out, L)
    pick = _BestStick(known.shape) if sticks_to_use <= 1 else _TopSticks(sticks_to_use)
    for n, direction in enumerate(_STICKS):
        if progress is not None and progress(n / len(_STICKS)) is False:
            raise CancelledError("hole filling cancelled")
        pick.add(*_stick(padded, todo, L, direction, integer_values))
    filled, filled_values = pick.result(todo)
    out[filled] = filled_values
    return out, filled


def _stick(padded: _Padded, todo: np.ndarray, L: int, direction, integer_values: bool):
    """(score, ok, value) of the stick along ``direction`` (i, j, k) through every voxel:
    ``ok`` where it has an inserted voxel on both sides within the length limit, score 0
    elsewhere."""
    di, dj, dk = direction
    shape = padded.shape
    fwd = np.zeros(shape, np.int16)
    vf = np.zeros(shape, np.float64)
    for j in range(1, L):
        off = (j * dk, j * dj, j * di)
        hit = padded.view(padded.known, off) & (fwd == 0) & todo
        if hit.any():
            fwd[hit] = j
            vf[hit] = padded.view(padded.values, off)[hit]
    rvs = np.zeros(shape, np.int16)
    vr = np.zeros(shape, np.float64)
    for j in range(1, L - 1):
        off = (-j * dk, -j * dj, -j * di)
        hit = padded.view(padded.known, off) & (rvs == 0) & (fwd > 0) & (j + fwd + 1 <= L)
        if hit.any():
            rvs[hit] = j
            vr[hit] = padded.view(padded.values, off)[hit]
    ok = rvs > 0
    total = (fwd + rvs + 1).astype(np.float64)
    w_fwd = (rvs + 1) / total
    value = (1 - w_fwd) * vr + w_fwd * vf
    if integer_values:
        value = np.trunc(value)
    score = np.where(ok, 1.0 / (total * np.sqrt(float(di * di + dj * dj + dk * dk))), 0.0)
    return score, ok, value


class _BestStick:
    """PLUS with one stick per voxel: the best-scoring stick, ties averaged by score."""

    def __init__(self, shape):
        self.best_w = np.zeros(shape, np.float64)      # score of the best stick so far
        self.best_sum = np.zeros(shape, np.float64)    # sum of value * score of sticks with that score
        self.best_n = np.zeros(shape, np.float64)      # sum of their scores (PLUS's sumWeights)

    def add(self, score, ok, value) -> None:
        better = score > self.best_w
        same = ok & (score == self.best_w)
        vs = value * score
        self.best_sum = np.where(better, vs, np.where(same, self.best_sum + vs, self.best_sum))
        self.best_n = np.where(better, score, np.where(same, self.best_n + score, self.best_n))
        self.best_w = np.maximum(self.best_w, score)

    def result(self, todo):
        """(filled bool, values of the filled voxels)."""
        filled = todo & (self.best_n > 0)
        return filled, self.best_sum[filled] / self.best_n[filled]


class _TopSticks:
    """PLUS's NumberOfSticksToUse > 1: score-weighted mean of the ``n`` best sticks."""

    def __init__(self, n: int):
        self.n = n
        self.scores, self.values = [], []

    def add(self, score, ok, value) -> None:
        self.scores.append(score)
        self.values.append(np.where(ok, value, 0).astype(np.float64))

    def result(self, todo):
        """(filled bool, values of the filled voxels)."""
        s = np.stack(self.scores)
        v = np.stack(self.values)
        order = np.argsort(-s, axis=0)[:self.n]
        ws = np.take_along_axis(s, order, 0)
        vs = np.take_along_axis(v, order, 0)
        wsum = ws.sum(axis=0)
        filled = todo & (wsum > 0)
        return filled, (ws * vs).sum(axis=0)[filled] / wsum[filled]
