"""Aorta and inferior vena cava: enhanced tubes running head to foot beside the spine.

Anatomy gives the search windows, relative to the vertebral body found on
each axial slice (:mod:`planner.segmentation.spine`): the aorta lies anterior and to the left of
the vertebral body, the IVC anterior and to the right (:data:`AORTA_WINDOW_MM`,
:data:`IVC_WINDOW_MM`, as (left-right from the spine's centre, antero-posterior
from its anterior edge) ranges in mm, positive = patient left / posterior).
Physics gives the lumen: the aorta is surrounded by fat and contrast blood is
at least about as bright as the liver (:data:`AORTA_BELOW_LIVER_HU`, never
below :data:`AORTA_MIN_HU`, which unenhanced blood at ~40 HU does not reach);
the IVC touches the liver and must be brighter than it
(:data:`ENHANCED_ABOVE_LIVER_HU`); a lumen is a disk, so on each slice the
centre is the candidate voxel deepest inside the bright region (largest
inscribed circle, radius at least :data:`MIN_RADIUS_MM`), and the tube is the
track of those centres that stays continuous from slice to slice (a centre
more than :data:`MAX_JUMP_MM` from the running median of its neighbours is
dropped). The lumen on each kept slice is the bright region connected to the
centre within the inscribed radius plus :data:`RIM_MM`, which cuts branches
and touching structures. A slice without such a disk has no lumen: an IVC of
the liver's own HU (common in the portal phase) is not found and the caller
says so.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy import ndimage

from .morphology import fill_small_holes_2d

AORTA_WINDOW_MM = ((-10.0, 50.0), (-50.0, 25.0))
IVC_WINDOW_MM = ((-45.0, 0.0), (-40.0, 5.0))
ENHANCED_ABOVE_LIVER_HU = 20.0       # the IVC: only an enhanced one can be told from the liver
AORTA_BELOW_LIVER_HU = 10.0          # the aorta, surrounded by fat, only needs to be blood-bright:
AORTA_MIN_HU = 100.0                 # portal-phase aortas reach only ~130 HU; unenhanced blood is ~40
MAX_LUMEN_HU = 700.0
MIN_RADIUS_MM = 4.5
MAX_RADIUS_MM = 18.0
IVC_MIN_RADIUS_MM = 6.0
RADIUS_CHANGE_COST = 2.0    # per mm of radius change between kept slices
MAX_JUMP_MM = 8.0
RIM_MM = 2.5
MIN_TRACK_FRACTION = 0.3     # a tube seen on fewer slices than this is not trusted
MAX_CANDIDATES = 4
SKIP_COST = 6.0
NOISE_HOLE_MM2 = 25.0


def _window(shape_ji, axis_row, window_mm, spacing) -> Tuple[slice, slice]:
    (x0, x1), (y0, y1) = window_mm
    ci, cj = axis_row
    i0, i1 = int(ci + x0 / spacing[0]), int(ci + x1 / spacing[0]) + 1
    j0, j1 = int(cj + y0 / spacing[1]), int(cj + y1 / spacing[1]) + 1
    return (slice(max(0, j0), max(0, min(shape_ji[0], j1))),
            slice(max(0, i0), max(0, min(shape_ji[1], i1))))


def _candidates(sub: np.ndarray, inner: Tuple[slice, slice], samp, min_radius_mm: float) -> list:
    """Up to :data:`MAX_CANDIDATES` lumen centres inside ``inner`` of a region: (j, i, radius mm).

    ``sub`` extends :data:`MAX_RADIUS_MM` beyond the search window so that an
    organ cut by the window is seen whole; regions thicker than
    :data:`MAX_RADIUS_MM` anywhere are organs and give no centre. Centres are
    taken deepest first, each one's disk suppressing the peaks inside it.
    """
    depth = ndimage.distance_transform_edt(sub, sampling=samp)
    lab, n = ndimage.label(sub)
    too_thick = np.zeros(n + 1, bool)
    too_thick[1:] = np.asarray(ndimage.maximum(depth, lab, np.arange(1, n + 1))) > MAX_RADIUS_MM
    depth[too_thick[lab]] = 0.0          # an organ (liver, heart), not a vessel
    window = np.zeros(sub.shape, bool)
    window[inner] = True
    peaks = window & (depth >= min_radius_mm) & (depth == ndimage.maximum_filter(depth, size=5))
    jj, ii = np.nonzero(peaks)
    out: list = []
    for n_ in np.argsort(-depth[jj, ii]):
        j, i, r = int(jj[n_]), int(ii[n_]), float(depth[jj[n_], ii[n_]])
        if any(np.hypot((j - a) * samp[0], (i - b) * samp[1]) < rr for a, b, rr in out):
            continue
        out.append((j, i, r))
        if len(out) == MAX_CANDIDATES:
            break
    return out


def _best_track(cands: list, spacing) -> list:
    """Viterbi over slices: one candidate or none per slice, continuous, as deep as possible.

    Cost: a kept centre earns its radius (mm, deeper lumens preferred); a jump
    between kept centres on neighbouring kept slices costs its length, and more
    than :data:`MAX_JUMP_MM` per slice step is forbidden; a slice without a
    centre costs :data:`SKIP_COST`.
    """
    nk = len(cands)
    states = [[None] + c for c in cands]
    cost = [np.zeros(len(s)) for s in states]
    back = [np.zeros(len(s), int) for s in states]
    last_pos = [[None] * len(s) for s in states]          # (k, j, i, r) of the last kept centre
    for n, st in enumerate(states[0]):
        cost[0][n] = SKIP_COST if st is None else -st[2]
        last_pos[0][n] = None if st is None else (0, st[0], st[1], st[2])
    for k in range(1, nk):
        for n, st in enumerate(states[k]):
            best, arg, pos = np.inf, 0, None
            for m in range(len(states[k - 1])):
                prev = last_pos[k - 1][m]
                c = cost[k - 1][m]
                if st is None:
                    c += SKIP_COST
                    p = prev
                elif prev is None:
                    c += -st[2]
                    p = (k, st[0], st[1], st[2])
                else:
                    dk = k - prev[0]
                    jump = np.hypot((st[0] - prev[1]) * spacing[1], (st[1] - prev[2]) * spacing[0])
                    if jump > MAX_JUMP_MM * dk:
                        continue
                    c += jump - st[2] + RADIUS_CHANGE_COST * abs(st[2] - prev[3])
                    p = (k, st[0], st[1], st[2])
                if c < best:
                    best, arg, pos = c, m, p
            cost[k][n], back[k][n], last_pos[k][n] = best, arg, pos
    n = int(np.argmin(cost[-1]))
    path = [None] * nk
    for k in range(nk - 1, -1, -1):
        path[k] = states[k][n]
        n = back[k][n]
    return path


def track_tube(bright: np.ndarray, axis: np.ndarray, window_mm, spacing,
               exclude: Optional[np.ndarray] = None, min_radius_mm: float = MIN_RADIUS_MM) -> np.ndarray:
    """Mask of the continuous disk-shaped lumen inside the per-slice windows (maybe empty)."""
    nk = bright.shape[0]
    cand = bright if exclude is None else bright & ~exclude
    samp = (float(spacing[1]), float(spacing[0]))
    cands = []
    (x0, x1), (y0, y1) = window_mm
    grown = ((x0 - MAX_RADIUS_MM, x1 + MAX_RADIUS_MM), (y0 - MAX_RADIUS_MM, y1 + MAX_RADIUS_MM))
    for k in range(nk):
        wj, wi = _window(cand.shape[1:], axis[k], window_mm, spacing)
        oj, oi = _window(cand.shape[1:], axis[k], grown, spacing)
        sub = np.pad(cand[k, oj, oi], 1)          # beyond the image is not lumen
        inner = (slice(wj.start - oj.start + 1, wj.stop - oj.start + 1),
                 slice(wi.start - oi.start + 1, wi.stop - oi.start + 1))
        found = _candidates(sub, inner, samp, min_radius_mm) if sub[inner].any() else []
        cands.append([(j - 1 + oj.start, i - 1 + oi.start, r) for j, i, r in found])
    path = _best_track(cands, spacing)
    kept = [k for k in range(nk) if path[k] is not None]
    out = np.zeros(bright.shape, bool)
    if len(kept) < max(2, MIN_TRACK_FRACTION * nk):
        return out
    jj, ii = np.mgrid[0:bright.shape[1], 0:bright.shape[2]]
    for k in kept:
        j, i, r = path[k]
        disk = np.hypot((jj - j) * spacing[1], (ii - i) * spacing[0]) <= r + RIM_MM
        lab, _ = ndimage.label(cand[k] & disk)
        out[k] = lab == lab[j, i]
    return out


def great_vessels(hu: np.ndarray, cortex: np.ndarray, outline: np.ndarray, axis: Optional[np.ndarray],
                  trunk: np.ndarray, liver_hu: float,
                  spacing) -> Tuple[np.ndarray, np.ndarray, Optional[float]]:
    """(aorta, ivc, aorta median HU or None) masks on the grid of ``hu`` (canonical order).

    ``cortex`` is dense bone; ``outline`` and ``axis`` come from
    :func:`planner.segmentation.spine.spine_outline`: vertebral marrow is as
    bright as enhanced blood and is not searched.
    """
    empty = np.zeros(hu.shape, bool)
    if axis is None:
        return empty, empty.copy(), None
    bone = ndimage.binary_dilation(cortex) | outline
    # noise leaves dark specks in a lumen only ~20-30 HU above its threshold
    blood = (hu >= max(liver_hu - AORTA_BELOW_LIVER_HU, AORTA_MIN_HU)) & (hu <= MAX_LUMEN_HU) & trunk
    blood = fill_small_holes_2d(blood & ~bone, NOISE_HOLE_MM2, spacing) & ~bone
    bright = (hu >= liver_hu + ENHANCED_ABOVE_LIVER_HU) & (hu <= MAX_LUMEN_HU) & trunk
    bright = fill_small_holes_2d(bright & ~bone, NOISE_HOLE_MM2, spacing) & ~bone
    aorta = track_tube(blood, axis, AORTA_WINDOW_MM, spacing)
    aorta_hu = float(np.median(hu[aorta])) if aorta.any() else None
    grown = ndimage.binary_dilation(aorta, iterations=2) if aorta.any() else aorta
    ivc = track_tube(bright, axis, IVC_WINDOW_MM, spacing, exclude=grown,
                     min_radius_mm=IVC_MIN_RADIUS_MM)
    return aorta, ivc, aorta_hu
