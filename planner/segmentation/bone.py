"""Bone (ribs, spine, pelvis, limbs) at the CT's resolution, without contrast-filled lumens.

HU alone cannot do it: an enhanced aorta reaches 250-450 HU in the arterial
phase, oral or excreted contrast 300-1000 HU, while osteoporotic vertebral
marrow can be below 150 HU. What differs is shape and texture:

- cortical bone is a dense thin shell (ribs, the cortex of vertebrae and of
  the pelvis) whose HU varies widely (compact bone partial-volumed with
  marrow and soft tissue);
- a contrast-filled lumen (aorta, bowel, renal pelvis) is a thick, homogeneous
  plateau: its HU spread is the image noise plus mixing.

Stage 1 (:func:`cortex_seeds`): voxels above :data:`CORTEX_HU`; a seed
component counts as bone unless the region above :data:`SUPPORT_HU` holding
it is thick (a ball of radius :data:`LUMEN_MIN_RADIUS_MM` fits inside) *and*
homogeneous (50th to 90th HU percentile spread below
:data:`LUMEN_MAX_SPREAD_HU`): that is a lumen.

Stage 2 (:func:`segment_bone`), once the aorta and IVC are known: seeds grow
at most :data:`GROW_MM` into voxels above :data:`GROW_HU` (the
partial-volume rim of cortex, thin rib marrow) but never into those vessels;
the vertebrae are completed inside the vertebra's per-slice outline
(:func:`planner.segmentation.spine.spine_outline`) less its outer
:data:`HULL_INSET_MM` (a convex hull on the coarse grid; an organ lying
against the vertebra stays out): everything there denser than
:data:`VERTEBRA_MIN_HU` (marrow of any age; the spinal canal, muscle and fat
are lighter), and their arch and processes, often only 200-400 HU, from
:data:`ARCH_HU` within :data:`ARCH_MM` of that outline when connected to the
cortex; each axial slice is closed by :data:`CLOSE_MM` and its holes filled
when they hold marrow (mean above :data:`MARROW_MIN_HU`; the spinal canal
does not); a last one-voxel rim above :data:`RIM_HU` but outside the HU
band of the organ bone touches most (the liver: ``organ_band``) takes the
partial volume (a needle must keep off it anyway; across slices
only when they are at most :data:`RIM_MAX_SLICE_MM` thick).
Thresholds are heuristics measured on the project's CTs (docs/segmentation.md).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from .morphology import bbox, depth_mm, erode_mm, fill_holes_2d

CORTEX_HU = 450.0
LOW_CORTEX_HU = 300.0       # once the brightest vessel is known: seeds above max(this, vessel + margin)
ABOVE_VESSEL_HU = 150.0     # above the aorta's median: its noise and mixing stay below
GROW_HU = 150.0
GROW_MM = 6.0
CLOSE_MM = 2.5
VERTEBRA_MIN_HU = 90.0
MARROW_MIN_HU = 50.0
ARCH_HU = 200.0
ARCH_MM = 15.0
HULL_INSET_MM = 3.0
RIM_HU = 60.0
RIM_MAX_SLICE_MM = 2.5
MIN_SEED_ML = 0.02
MIN_BONE_ML = 0.05
LUMEN_MIN_RADIUS_MM = 5.0
LUMEN_MAX_SPREAD_HU = 80.0
SUPPORT_HU = 200.0
FILLED_CORE_MM = 3.0         # core and shell of a support region (heuristics: a rib's cortex is
FILLED_SHELL_MM = 1.5        # ~1-2 mm, its marrow below the support threshold in most adults)
FILLED_MIN_CORE_ML = 0.1
FILLED_ABOVE_SHELL_HU = 50.0


def _is_lumen(hu_box: np.ndarray, comp: np.ndarray, spacing) -> bool:
    """Thick and homogeneous: a contrast-filled lumen, not bone."""
    if comp.sum() * float(np.prod(spacing)) < 4.0 / 3.0 * np.pi * LUMEN_MIN_RADIUS_MM ** 3:
        return False                      # too small to hold the ball: not thick
    p50, p90 = np.percentile(hu_box[comp], [50, 90])
    if p90 - p50 >= LUMEN_MAX_SPREAD_HU:
        return False                      # heterogeneous: cortex and marrow
    depth = depth_mm(np.pad(comp, 1), spacing)[1:-1, 1:-1, 1:-1]
    return bool(depth.max() >= LUMEN_MIN_RADIUS_MM)


def _is_filled(hu_box: np.ndarray, comp: np.ndarray, spacing) -> bool:
    """Denser inside than at its surface: contrast filling a lumen (oral contrast in the bowel,
    mixed with its content, is heterogeneous and escapes :func:`_is_lumen`), not bone, whose
    cortex is its densest part. Needs a core :data:`FILLED_CORE_MM` deep (thin structures: no
    verdict, bone)."""
    depth = depth_mm(np.pad(comp, 1), spacing)[1:-1, 1:-1, 1:-1]
    core = depth >= FILLED_CORE_MM
    if core.sum() * float(np.prod(spacing)) < FILLED_MIN_CORE_ML * 1000.0:
        return False
    shell = comp & (depth <= FILLED_SHELL_MM)
    return bool(np.median(hu_box[core]) >= np.median(hu_box[shell]) + FILLED_ABOVE_SHELL_HU)


def cortex_seeds(hu: np.ndarray, patient: np.ndarray, spacing, threshold_hu: float = CORTEX_HU) -> tuple:
    """(seeds, lumens): bone voxels above ``threshold_hu``, and the thick homogeneous lumens rejected.

    The lumen test looks at each seed component's *support*, the region above
    :data:`SUPPORT_HU` that holds it: a lumen near the seed threshold breaks
    into noisy specks there, but its support is one solid plateau; a bone's
    support mixes cortex and marrow.
    """
    vox_ml = float(np.prod(spacing)) / 1000.0
    seeds = np.zeros(hu.shape, bool)
    lumen = np.zeros(hu.shape, bool)
    box = bbox(patient)
    if box is None:
        return seeds, lumen
    h = hu[box]
    inside = patient[box]
    dense = (h >= threshold_hu) & inside
    lab, n = ndimage.label(dense, np.ones((3, 3, 3), bool))
    sup, _ = ndimage.label((h >= min(SUPPORT_HU, threshold_hu)) & inside, np.ones((3, 3, 3), bool))
    sup_boxes = ndimage.find_objects(sup)
    verdict = {}
    keep = np.zeros(n + 1, bool)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    for c, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sizes[c] * vox_ml < MIN_SEED_ML:
            continue
        s_id = int(sup[sl][lab[sl] == c][0])
        if s_id not in verdict:
            ssl = sup_boxes[s_id - 1]
            verdict[s_id] = _is_lumen(h[ssl], sup[ssl] == s_id, spacing)
        keep[c] = not verdict[s_id]
    lum_ids = [s for s, v in verdict.items() if v]
    seeds[box] = keep[lab]
    if lum_ids:
        table = np.zeros(int(sup.max()) + 1, bool)
        table[lum_ids] = True
        lumen[box] = table[sup]
    return seeds, lumen


def _close_slices(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Per-slice closing (4-connected steps): bridges gaps in a cortical ring of about 2 * radius."""
    r = max(1, int(round(radius_mm / float(min(spacing[:2])))))
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    padded = np.pad(mask, ((0, 0), (r, r), (r, r)))
    closed = ndimage.binary_closing(padded, st, iterations=r)[:, r:-r, r:-r]
    return closed | mask


def _in_band(h: np.ndarray, where: np.ndarray, band: tuple) -> np.ndarray:
    """At ``where``, whether the median HU of the voxel's in-plane 3x3 neighbourhood lies in
    ``band``: robust to noise and to the few bone voxels beside a rim voxel."""
    out = np.zeros(h.shape, bool)
    k, j, i = np.nonzero(where)
    if k.size == 0:
        return out
    jj = np.clip(j[:, None] + np.repeat([-1, 0, 1], 3)[None, :], 0, h.shape[1] - 1)
    ii = np.clip(i[:, None] + np.tile([-1, 0, 1], 3)[None, :], 0, h.shape[2] - 1)
    med = np.median(h[k[:, None], jj, ii], axis=1)
    out[k, j, i] = (med >= band[0]) & (med <= band[1])
    return out


def _fill_marrow(mask: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Axial holes of the mask filled when they hold marrow (mean HU >= :data:`MARROW_MIN_HU`),
    not the spinal canal (cord and CSF, 0-40 HU)."""
    holes = fill_holes_2d(mask) & ~mask
    if not holes.any():
        return mask
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(holes, st)
    sums = np.bincount(lab.ravel(), weights=h.ravel(), minlength=n + 1)
    counts = np.bincount(lab.ravel(), minlength=n + 1)
    ok = sums >= MARROW_MIN_HU * counts
    ok[0] = False
    return mask | ok[lab]


def segment_bone(hu: np.ndarray, patient: np.ndarray, seeds: np.ndarray, hull: np.ndarray,
                 vessels: np.ndarray, spacing, organ_band: Optional[tuple] = None,
                 hull_core: Optional[np.ndarray] = None) -> np.ndarray:
    """Bone mask ``[k, j, i]``: seeds grown, closed, filled, vertebrae completed; never ``vessels``.

    ``hull_core``: the outline less :data:`HULL_INSET_MM` if already known
    (computed here otherwise). ``organ_band`` (lo, hi) HU: the partial-volume rim does not take voxels in
    this band (pure liver touching a rib is liver, not partial volume).
    ``hull`` is the spine's per-slice outline on the CT grid; the vertebra's
    arch and processes (often only 200-400 HU in older patients) are taken
    within :data:`ARCH_MM` of it when connected to the cortex.
    """
    vox_ml = float(np.prod(spacing)) / 1000.0
    bone = np.zeros(hu.shape, bool)
    box = bbox(seeds)
    if box is None:
        return bone
    h = hu[box]
    free = patient[box] & ~vessels[box]
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)
    steps = max(1, int(round(GROW_MM / float(min(spacing[:2])))))
    s = seeds[box]
    grown = ndimage.binary_dilation(s, in_plane, iterations=steps, mask=(h >= GROW_HU) & free) | s
    hb = hull[box]
    if hb.any():
        arch_steps = max(1, int(round(ARCH_MM / float(min(spacing[:2])))))
        zone = ndimage.binary_dilation(hb, in_plane, iterations=arch_steps)
        arch = (h >= ARCH_HU) & zone & free
        lab, _ = ndimage.label(arch | s, np.ones((3, 3, 3), bool))
        ids = np.unique(lab[s & zone])
        grown |= np.isin(lab, ids[ids > 0]) & arch
        # inside the outline, but not its outer millimetres: the outline is a convex hull on
        # the working grid, and an organ lying against the vertebra must stay outside
        core = hull_core[box] if hull_core is not None else erode_mm(hb, spacing, HULL_INSET_MM)
        grown |= core & (h >= VERTEBRA_MIN_HU) & free
    filled = _fill_marrow(_close_slices(grown, spacing, CLOSE_MM), h) & free
    # the rim also across slices when they are thin (a rib crossing them obliquely smears
    # into its neighbours); on thick slices a neighbour is millimetres away
    rim = ndimage.generate_binary_structure(3, 1) if spacing[2] <= RIM_MAX_SLICE_MM else in_plane
    cand = ndimage.binary_dilation(filled, rim) & ~filled & (h >= RIM_HU) & free
    if organ_band is not None:
        cand &= ~_in_band(h, cand, organ_band)
    filled |= cand
    lab, n = ndimage.label(filled, np.ones((3, 3, 3), bool))
    ok = np.bincount(lab.ravel(), minlength=n + 1) * vox_ml >= MIN_BONE_ML
    ok[0] = False
    bone[box] = ok[lab]
    return bone


def skeleton_only(bone: np.ndarray, hu: np.ndarray, spine_zone: np.ndarray, outer: np.ndarray,
                  spacing) -> tuple:
    """(bone, filled): only the skeleton's 3D components stay bone.

    Away from ``spine_zone`` (the vertebrae and what articulates with them), a component

    - whose dense part (above :data:`SUPPORT_HU`) is denser inside than at its surface
      (:func:`_is_filled`) is contrast in a lumen (oral contrast in the bowel, mixed with its
      content): removed and returned as ``filled``;
    - that never reaches ``outer`` (the outer half of the body's depth on its slices) is not a
      rib, cartilage or pelvis, which lie in the body wall or reach it: a calcified or
      contrast-dense vessel deep in the abdomen; removed.

    The vertebrae are exempt: their marrow can be as dense as their blurred cortex.
    """
    filled = np.zeros(bone.shape, bool)
    lab, n = ndimage.label(bone, np.ones((3, 3, 3), bool))
    if n == 0:
        return bone, filled
    near_spine = np.zeros(n + 1, bool)
    near_spine[np.unique(lab[spine_zone & bone])] = True
    in_wall = np.zeros(n + 1, bool)
    in_wall[np.unique(lab[outer & bone])] = True
    deep = np.zeros(n + 1, bool)
    for c, sl in enumerate(ndimage.find_objects(lab), start=1):
        if near_spine[c]:
            continue
        comp = lab[sl] == c
        dense = comp & (hu[sl] >= SUPPORT_HU)
        if dense.any() and _is_filled(hu[sl], dense, spacing):
            filled[sl] |= comp
        elif not in_wall[c]:
            deep[c] = True
    return bone & ~filled & ~deep[lab], filled
