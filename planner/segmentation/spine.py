"""The spine on each axial slice: where it is, and the outline of each vertebra.

The vertebral arch (pedicles, laminae, processes) is dense compact bone in
patients of every age, while the vertebral body may be cancellous bone of
only 150-300 HU with a cortex too thin to reach :data:`planner.segmentation.bone.CORTEX_HU`
(young adults), or osteoporotic. So the arch is found first: dense cortex
within :data:`HALF_WIDTH_MM` of the body's midline in its posterior half;
its median column is the spine's centre. The spinal canal is the largest
region lighter than :data:`CANAL_MAX_HU` (cord, CSF, epidural fat) inside
the arch's convex hull; its anterior edge is the back of the vertebral body
(when the body's cortex is dense it is part of the "arch", which then rings
the canal). The
vertebral body is then the bone-like region (:data:`BODY_MIN_HU`, on the
working grid) in front of the canal, inside a box of :data:`BODY_BOX_MM`,
opened by a disk of :data:`BODY_OPEN_MM` (cuts a thin contact with the
aorta, which is as bright in the portal phase), limited to
:data:`BODY_HALF_WIDTH_MM` either side of the centre, and cut to the largest
disk inscribed in it plus :data:`BODY_DISK_MARGIN_MM` (an aorta lying on the
vertebra is a smaller disk beside it). The outline is the per-slice convex hull of arch and body: the aorta
search skips it and bone completes the vertebra inside it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image, disk

HALF_WIDTH_MM = 40.0
BODY_MIN_HU = 150.0
BODY_BOX_MM = (-55.0, 3.0)        # antero-posterior range from the canal's front (negative: anterior)
BODY_HALF_WIDTH_MM = 24.0
BODY_OPEN_MM = 4.0
BODY_DISK_MARGIN_MM = 3.0
SMOOTH_SLICES_MM = 30.0
CANAL_MAX_HU = 100.0
CANAL_MIN_MM2 = 40.0


def _arch(seeds_k: np.ndarray, trunk_k: np.ndarray, spacing) -> Optional[np.ndarray]:
    cols = np.nonzero(trunk_k.any(axis=0))[0]
    rows = np.nonzero(trunk_k.any(axis=1))[0]
    if cols.size == 0:
        return None
    mid_i, mid_j = 0.5 * (cols[0] + cols[-1]), 0.5 * (rows[0] + rows[-1])
    half = HALF_WIDTH_MM / spacing[0]
    sl = seeds_k.copy()
    sl[:int(mid_j)] = False
    sl[:, :max(0, int(mid_i - half))] = False
    sl[:, int(mid_i + half) + 1:] = False
    lab, n = ndimage.label(sl, np.ones((3, 3), bool))
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    big = np.isin(lab, 1 + np.nonzero(sizes >= max(3, 0.05 * sizes.max()))[0])
    return big if big.sum() >= 5 else None


def _canal_front(hu_k: np.ndarray, arch: np.ndarray, centre_i: float, spacing) -> Optional[float]:
    """Anterior edge (row) of the spinal canal: the largest region lighter than
    :data:`CANAL_MAX_HU` inside the arch's convex hull, near the centre; None if none."""
    hull = convex_hull_image(arch)
    canal = hull & ~arch & (hu_k < CANAL_MAX_HU)
    lab, n = ndimage.label(canal)
    if n == 0:
        return None
    sizes = np.bincount(lab.ravel())[1:]
    pick = 1 + int(np.argmax(sizes))
    if sizes[pick - 1] * spacing[0] * spacing[1] < CANAL_MIN_MM2:
        return None
    jj, ii = np.nonzero(lab == pick)
    if abs(float(np.median(ii)) - centre_i) * spacing[0] > 15.0:
        return None
    return float(jj.min())


def _body(hu_k: np.ndarray, trunk_k: np.ndarray, centre_i: float, front_j: float, spacing) -> np.ndarray:
    out = np.zeros(hu_k.shape, bool)
    j0 = int(max(0, front_j + BODY_BOX_MM[0] / spacing[1]))
    j1 = int(min(hu_k.shape[0], front_j + BODY_BOX_MM[1] / spacing[1] + 1))
    i0 = int(max(0, centre_i - BODY_HALF_WIDTH_MM / spacing[0]))
    i1 = int(min(hu_k.shape[1], centre_i + BODY_HALF_WIDTH_MM / spacing[0] + 1))
    if j1 <= j0 or i1 <= i0:
        return out
    cand = (hu_k[j0:j1, i0:i1] >= BODY_MIN_HU) & trunk_k[j0:j1, i0:i1]
    r = max(1, int(round(BODY_OPEN_MM / float(min(spacing[:2])))))
    cand = ndimage.binary_opening(cand, disk(r))
    lab, n = ndimage.label(cand)
    if n == 0:
        return out
    # the component nearest the canal's front, in the middle
    jj, ii = np.nonzero(lab)
    d = np.hypot((jj + j0 - front_j) * spacing[1], (ii + i0 - centre_i) * spacing[0] * 2.0)
    comp = ndimage.binary_fill_holes(lab == lab[jj[np.argmin(d)], ii[np.argmin(d)]])
    # the body is the largest disk of that region: an aorta touching it is a smaller disk beside it
    depth = ndimage.distance_transform_edt(np.pad(comp, 1), sampling=(spacing[1], spacing[0]))[1:-1, 1:-1]
    cj, ci = np.unravel_index(int(np.argmax(depth)), depth.shape)
    yy, xx = np.mgrid[0:comp.shape[0], 0:comp.shape[1]]
    inside = np.hypot((yy - cj) * spacing[1], (xx - ci) * spacing[0]) <= depth[cj, ci] + BODY_DISK_MARGIN_MM
    out[j0:j1, i0:i1] = comp & inside
    return out


def spine_outline(hu: np.ndarray, seeds: np.ndarray, trunk: np.ndarray,
                  spacing) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    """(outline mask, axis) on the working grid.

    ``axis[k] = (centre i, anterior edge j of the vertebral body)`` in voxels,
    interpolated over slices without spine and median-filtered over
    :data:`SMOOTH_SLICES_MM`; None when no slice shows a spine.
    """
    nk = hu.shape[0]
    outline = np.zeros(hu.shape, bool)
    axis = np.full((nk, 2), np.nan)
    for k in range(nk):
        arch = _arch(seeds[k], trunk[k], spacing)
        if arch is None:
            continue
        jj, ii = np.nonzero(arch)
        centre_i = float(np.median(ii))
        front_j = _canal_front(hu[k], arch, centre_i, spacing)
        if front_j is None:
            front_j = float(np.percentile(jj, 5))
        body = _body(hu[k], trunk[k], centre_i, front_j, spacing)
        both = arch | body
        outline[k] = convex_hull_image(both)
        axis[k] = (centre_i, float(np.percentile(np.nonzero(both)[0], 2)))
    if np.all(np.isnan(axis[:, 0])):
        return outline, None
    ks = np.arange(nk)
    for c in range(2):
        ok = ~np.isnan(axis[:, c])
        axis[:, c] = np.interp(ks, ks[ok], axis[ok, c])
    size = max(1, int(round(SMOOTH_SLICES_MM / spacing[2]))) | 1
    return outline, ndimage.median_filter(axis, size=(size, 1), mode="nearest")
