"""Aorta and inferior vena cava: enhanced tubes running head to foot beside the spine.

Anatomy gives the search windows, relative to the vertebral body found on
each axial slice (:mod:`planner.segmentation.spine`): the aorta lies anterior and to the left of
the vertebral body (its centre at most 5 mm right of the body's centre: the IVC's, 12-25 mm
right of it on the project's CTs, must not fit), the IVC anterior and to the right
(:data:`AORTA_WINDOW_MM`, :data:`IVC_WINDOW_MM`, as (left-right from the spine's centre,
antero-posterior from its anterior edge) ranges in mm, positive = patient left / posterior).
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

from .ivc_groove import AP_TO_LR, groove_candidates
from .ivc_groove import window_slices as _window
from .morphology import fill_small_holes_2d

AORTA_WINDOW_MM = ((-5.0, 50.0), (-50.0, 25.0))
IVC_WINDOW_MM = ((-45.0, 0.0), (-50.0, 5.0))
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
IVC_BRIDGE_MM = 100.0
SEEN_BRIGHT, SEEN_FAT_BOUNDED, BRIDGED, PLACED_IN_GROOVE = 1, 2, 3, 4
MAX_RIM_FRACTION = 1.0 / 3.0  # a lumen of the liver's HU: two thirds of its rim darker (fat, crus)
RING_MM = 3.0        # the IVC's course through the liver, interpolated between where it is seen
MAX_CANDIDATES = 4
SKIP_COST = 6.0
NOISE_HOLE_MM2 = 25.0


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


def _slice_candidates(mask: np.ndarray, axis: np.ndarray, window_mm, spacing, min_radius_mm: float,
                      tag: int = 0) -> list:
    """Per slice, the lumen centres of ``mask`` in the window: [(j, i, radius mm, tag), ...]."""
    samp = (float(spacing[1]), float(spacing[0]))
    (x0, x1), (y0, y1) = window_mm
    grown = ((x0 - MAX_RADIUS_MM, x1 + MAX_RADIUS_MM), (y0 - MAX_RADIUS_MM, y1 + MAX_RADIUS_MM))
    out = []
    for k in range(mask.shape[0]):
        wj, wi = _window(mask.shape[1:], axis[k], window_mm, spacing)
        oj, oi = _window(mask.shape[1:], axis[k], grown, spacing)
        sub = np.pad(mask[k, oj, oi], 1)          # beyond the image is not lumen
        inner = (slice(wj.start - oj.start + 1, wj.stop - oj.start + 1),
                 slice(wi.start - oi.start + 1, wi.stop - oi.start + 1))
        found = _candidates(sub, inner, samp, min_radius_mm) if sub[inner].any() else []
        out.append([(j - 1 + oj.start, i - 1 + oi.start, r, tag) for j, i, r in found])
    return out


def _rim_fraction(mask2d: np.ndarray, cand, spacing) -> float:
    """Share of the ring :data:`RIM_MM` to :data:`RIM_MM` + :data:`RING_MM` outside a
    candidate's disk that the lumen mask still covers."""
    j, i, r = cand[:3]
    reach = r + RIM_MM + RING_MM
    dj, di = int(np.ceil(reach / spacing[1])), int(np.ceil(reach / spacing[0]))
    j0, i0 = max(0, j - dj), max(0, i - di)
    sub = mask2d[j0:j + dj + 1, i0:i + di + 1]
    jj, ii = np.mgrid[0:sub.shape[0], 0:sub.shape[1]]
    d = np.hypot((jj + j0 - j) * spacing[1], (ii + i0 - i) * spacing[0])
    ring = (d > r + RIM_MM) & (d <= reach)
    return float(sub[ring].mean()) if ring.any() else 1.0


def track_tube(bright: np.ndarray, axis: np.ndarray, window_mm, spacing,
               exclude: Optional[np.ndarray] = None, min_radius_mm: float = MIN_RADIUS_MM,
               fat_bounded: Optional[np.ndarray] = None, bridge_mm: float = 0.0,
               kinds: Optional[np.ndarray] = None) -> np.ndarray:
    """Mask of the continuous disk-shaped lumen inside the per-slice windows (maybe empty).

    ``fat_bounded`` (optional): a second, laxer lumen mask whose disks count too
    where at most :data:`MAX_RIM_FRACTION` of the ring around the disk is in
    that mask (blood of about the liver's HU is a lumen where fat surrounds it;
    a lobe of the liver of that HU is surrounded by liver).
    ``bridge_mm`` > 0: slices between two kept centres at most that far apart
    get the interpolated disk (a vein is continuous; where nothing in the
    image separates it from the liver its course is interpolated, not seen).
    ``kinds`` (optional, int per slice) receives how each slice's lumen was
    found: :data:`SEEN_BRIGHT`, :data:`SEEN_FAT_BOUNDED`, :data:`BRIDGED` or 0.
    """
    masks = [bright if exclude is None else bright & ~exclude]
    if fat_bounded is not None:
        masks.append(fat_bounded if exclude is None else fat_bounded & ~exclude)
    cands = [[] for _ in range(bright.shape[0])]
    for tag, m in enumerate(masks):
        for k, found in enumerate(_slice_candidates(m, axis, window_mm, spacing, min_radius_mm, tag)):
            for c in found:     # a laxer disk at the same place as a bright one adds nothing
                if tag and _rim_fraction(m[k], c, spacing) > MAX_RIM_FRACTION:
                    continue    # not surrounded: a lobe of an organ of the same HU
                if not any(np.hypot((c[0] - a[0]) * spacing[1], (c[1] - a[1]) * spacing[0]) < a[2]
                           for a in cands[k]):
                    cands[k].append(c)
    nk = bright.shape[0]
    path, kept = _continuous_track(cands, spacing)
    out = np.zeros(bright.shape, bool)
    if kept is None:
        return out
    jj, ii = np.mgrid[0:bright.shape[1], 0:bright.shape[2]]
    kinds = np.zeros(nk, int) if kinds is None else kinds
    for k in kept:
        j, i, r, tag = path[k]
        disk = np.hypot((jj - j) * spacing[1], (ii - i) * spacing[0]) <= r + RIM_MM
        lab, _ = ndimage.label(masks[tag][k] & disk)
        out[k] = lab == lab[j, i]
        kinds[k] = SEEN_BRIGHT if tag == 0 else SEEN_FAT_BOUNDED
    _bridge(out, path, kept, kinds, spacing, bridge_mm, exclude)
    return out


def _continuous_track(cands: list, spacing) -> tuple:
    """(path, kept slices) of :func:`_best_track` over the per-slice candidates ``cands``, or
    (path, None) when it holds fewer than 2 slices or :data:`MIN_TRACK_FRACTION` of them."""
    path = _best_track(cands, spacing)
    kept = [k for k in range(len(cands)) if path[k] is not None]
    return path, (kept if len(kept) >= max(2, MIN_TRACK_FRACTION * len(cands)) else None)


def _bridge(out: np.ndarray, path: list, kept: list, kinds: np.ndarray, spacing, bridge_mm: float,
            exclude: Optional[np.ndarray], ap_to_lr: float = 1.0) -> None:
    """Slices between two kept centres at most ``bridge_mm`` apart get the interpolated disk
    (an oval ``ap_to_lr`` times as deep as wide for a placed IVC)."""
    jj, ii = np.mgrid[0:out.shape[1], 0:out.shape[2]]
    for a, b in zip(kept[:-1], kept[1:]):
        if b - a < 2 or (b - a) * spacing[2] > bridge_mm:
            continue
        for k in range(a + 1, b):
            t = (k - a) / float(b - a)
            j, i, r = ((1 - t) * np.asarray(path[a][:3]) + t * np.asarray(path[b][:3])).tolist()
            disk = np.hypot((jj - j) * spacing[1] / ap_to_lr, (ii - i) * spacing[0]) <= r
            out[k] = disk if exclude is None else disk & ~exclude[k]
            kinds[k] = BRIDGED


def track_groove(tissue: np.ndarray, trunk: np.ndarray, axis: np.ndarray, aorta: np.ndarray, spacing,
                 exclude: Optional[np.ndarray] = None, bridge_mm: float = 0.0,
                 kinds: Optional[np.ndarray] = None) -> np.ndarray:
    """The IVC placed in the liver's posterior-medial groove (:mod:`.ivc_groove`) where no
    lumen is seen: the per-slice disks, kept continuous by :func:`_best_track`, each drawn
    within ``tissue``; ``kinds`` gets :data:`PLACED_IN_GROOVE` (or :data:`BRIDGED`)."""
    t = tissue if exclude is None else tissue & ~exclude
    cands = groove_candidates(t, trunk, axis, aorta, IVC_WINDOW_MM, spacing)
    nk = tissue.shape[0]
    path, kept = _continuous_track(cands, spacing)
    out = np.zeros(tissue.shape, bool)
    if kept is None:
        return out
    kinds = np.zeros(nk, int) if kinds is None else kinds
    jj, ii = np.mgrid[0:tissue.shape[1], 0:tissue.shape[2]]
    for k in kept:
        j, i, r, _ = path[k]
        out[k] = (np.hypot((jj - j) * spacing[1] / AP_TO_LR, (ii - i) * spacing[0]) <= r) & t[k]
        kinds[k] = PLACED_IN_GROOVE
    _bridge(out, path, kept, kinds, spacing, bridge_mm, exclude, AP_TO_LR)
    return out


def great_vessels(hu: np.ndarray, cortex: np.ndarray, outline: np.ndarray, axis: Optional[np.ndarray],
                  trunk: np.ndarray, liver_hu: float,
                  spacing, muscle_hu: Optional[float] = None
                  ) -> Tuple[np.ndarray, np.ndarray, Optional[float], np.ndarray]:
    """(aorta, ivc, aorta median HU or None, how the IVC was found on each slice: the
    ``kinds`` of :func:`track_tube`) on the grid of ``hu`` (canonical order).

    ``cortex`` is dense bone; ``outline`` and ``axis`` come from
    :func:`planner.segmentation.spine.spine_outline`: vertebral marrow is as
    bright as enhanced blood and is not searched.
    """
    empty = np.zeros(hu.shape, bool)
    kinds = np.zeros(hu.shape[0], int)
    if axis is None:
        return empty, empty.copy(), None, kinds
    bone = ndimage.binary_dilation(cortex) | outline
    # noise leaves dark specks in a lumen only ~20-30 HU above its threshold
    blood = (hu >= max(liver_hu - AORTA_BELOW_LIVER_HU, AORTA_MIN_HU)) & (hu <= MAX_LUMEN_HU) & trunk
    blood = fill_small_holes_2d(blood & ~bone, NOISE_HOLE_MM2, spacing) & ~bone
    bright = (hu >= liver_hu + ENHANCED_ABOVE_LIVER_HU) & (hu <= MAX_LUMEN_HU) & trunk
    bright = fill_small_holes_2d(bright & ~bone, NOISE_HOLE_MM2, spacing) & ~bone
    aorta = track_tube(blood, axis, AORTA_WINDOW_MM, spacing)
    aorta_hu = float(np.median(hu[aorta])) if aorta.any() else None
    grown = ndimage.binary_dilation(aorta, iterations=2) if aorta.any() else aorta
    # a vein of about the liver's HU is a lumen only where fat surrounds it: at the liver's own
    # level (no absolute floor) anything touching the liver joins it and is too thick for a disk
    vein = (hu >= liver_hu - AORTA_BELOW_LIVER_HU) & (hu <= MAX_LUMEN_HU) & trunk
    vein = fill_small_holes_2d(vein & ~bone, NOISE_HOLE_MM2, spacing) & ~bone
    ivc = track_tube(bright, axis, IVC_WINDOW_MM, spacing, exclude=grown,
                     min_radius_mm=IVC_MIN_RADIUS_MM, fat_bounded=vein, bridge_mm=IVC_BRIDGE_MM,
                     kinds=kinds)
    if not ivc.any() and muscle_hu is not None and muscle_hu < liver_hu:
        # no lumen seen on any slice: place it in the liver's groove (anatomy, not image)
        kinds[:] = 0
        tissue = (hu >= 0.5 * (muscle_hu + liver_hu)) & (hu <= MAX_LUMEN_HU) & trunk
        tissue = ndimage.binary_opening(tissue, ndimage.generate_binary_structure(3, 1))
        ivc = track_groove(tissue & ~ndimage.binary_dilation(bone) & ~grown, trunk, axis, aorta, spacing,
                           bridge_mm=IVC_BRIDGE_MM, kinds=kinds)
    return aorta, ivc, aorta_hu, kinds
