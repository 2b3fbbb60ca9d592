"""Costal cartilage: the rib's soft continuation in the front of the chest wall, labelled bone.

Non-calcified costal cartilage reads about 80-150 HU: below any bone threshold
(:mod:`.bone` grows ribs into > 150 HU only) and close to the liver's own HU in
the portal phase, so it is missed as bone and it is not liver. A needle cannot
pass it, and the costal margin is exactly where subcostal and low intercostal
paths to the liver enter, so a plan from labels without it can cross it.

What tells it apart (heuristic, from anatomy): it lies in the body wall (at
most :data:`WALL_DEPTH_MM` under the skin), is denser than skeletal muscle by
:data:`ABOVE_MUSCLE_HU` (muscle barely enhances; cartilage matrix is denser),
is thin (no ball of radius :data:`MAX_RADIUS_MM` fits in it, measured from
the candidate's surface, not from voxel centres, and over the whole dense
region, not only its part in the wall: organs that touch a rib, the spleen,
kidney or heart, are thick and are left out with a one-voxel rim)
and is attached to a rib: only candidate components within
:data:`RIB_CONTACT_MM` of bone are kept, or the ones in the front of the wall
within :data:`MIDLINE_MM` of the midline (the xiphoid process, cartilage
into middle age, hangs from the sternum's lower end and may touch no rib;
there the sternum itself is taken too, whatever its HU: a thick
homogeneous sternum can pass for a contrast lumen in :mod:`.bone`). Found on the working grid (block
means: noise is low), redrawn on the CT grid at the same threshold on the
voxel's own HU smoothed by the block.
"""
from __future__ import annotations

import numpy as np

from .morphology import close_mm, dilate_mm, label_components, open_mm

WALL_DEPTH_MM = 45.0
ABOVE_MUSCLE_HU = 35.0
MAX_RADIUS_MM = 7.0
RIB_CONTACT_MM = 3.0
CORTEX_HU = 450.0
MIDLINE_MM = 20.0
HOLE_CLOSE_BLOCKS = 1.0
GAS_CONTACT_MM = 3.0


def costal_cartilage(hu_w: np.ndarray, skin_depth_w: np.ndarray, bone_w: np.ndarray, excluded_w: np.ndarray,
                     muscle_hu: float, spacing_w, gas_w: np.ndarray | None = None) -> np.ndarray:
    """Working-grid mask of cartilage attached to the ribs (bool, same shape as ``hu_w``).

    ``skin_depth_w``: mm under the skin (0 outside the body); ``bone_w``: bone found so far;
    ``excluded_w``: what it cannot be (liver region, lungs, gas, aorta, IVC, the vertebrae).
    ``gas_w`` (optional): the bowel gas; a component touching it (within
    :data:`GAS_CONTACT_MM`) is bowel content (oral contrast layering under the gas), not
    cartilage: the wall's muscles lie between a cartilage and the bowel.
    """
    threshold = float(muscle_hu) + ABOVE_MUSCLE_HU
    midline = anterior_midline(skin_depth_w > 0, spacing_w)
    dense = (hu_w >= threshold) & ((hu_w < CORTEX_HU) | midline) & (skin_depth_w > 0) & ~excluded_w & ~bone_w
    cand = dense & (skin_depth_w <= WALL_DEPTH_MM)
    if not cand.any():
        return cand
    # the opening keeps the thick organs' own shape: one voxel more takes their partial-volume rim,
    # not a cartilage lying against them. Distances run between voxel centres, so a block
    # surviving an erosion by r lies r + half a block inside the candidate's surface: the ball
    # is widened by half an in-plane block (the wall's structures are thin across the wall,
    # which runs along the slices; else a 10 mm xiphoid on 2.4 mm blocks, whose middle block
    # is 7.2 mm from the outside, passed for a thick organ)
    # Thickness is judged on the whole dense region, not on its part within the wall: the
    # heart cut at the wall's depth is a thin shell, not cartilage.
    # An organ near the threshold (a spleen 10 HU above it) is a sieve of noise holes whose
    # solid parts are all thin: its holes of a block or two are closed before its thickness
    # is judged (a cartilage is solid and keeps its shape)
    radius = MAX_RADIUS_MM + 0.5 * float(max(spacing_w[:2]))
    solid = close_mm(dense, spacing_w, HOLE_CLOSE_BLOCKS * float(max(spacing_w[:2]))) & (hu_w >= muscle_hu) \
        & (skin_depth_w > 0) & ~excluded_w & ~bone_w
    thick = dilate_mm(open_mm(solid | dense, spacing_w, radius), spacing_w, max(spacing_w))
    thin = cand & ~thick
    lab, sizes = label_components(thin, full_connectivity=True)
    if sizes.size == 0:
        return thin
    touching = np.unique(lab[(dilate_mm(bone_w, spacing_w, RIB_CONTACT_MM) | midline) & thin])
    touching = touching[touching > 0]
    if gas_w is not None and gas_w.any():
        in_bowel = np.unique(lab[dilate_mm(gas_w, spacing_w, GAS_CONTACT_MM) & thin])
        touching = np.setdiff1d(touching, in_bowel)
    return np.isin(lab, touching)


def anterior_midline(body: np.ndarray, spacing_w) -> np.ndarray:
    """Voxels in front of each slice's body centre and within :data:`MIDLINE_MM` of its
    left-right centre (canonical order: +i to the patient's left, +j posterior)."""
    out = np.zeros(body.shape, bool)
    half = int(round(MIDLINE_MM / float(spacing_w[0])))
    for k in range(body.shape[0]):
        jj, ii = np.nonzero(body[k])
        if jj.size == 0:
            continue
        ci, cj = int(round(ii.mean())), int(round(jj.mean()))
        out[k, :cj, max(0, ci - half):ci + half + 1] = True
    return out


def cartilage_on_ct(zone: np.ndarray, hs: np.ndarray, excluded: np.ndarray, muscle_hu: float) -> np.ndarray:
    """The CT-grid cartilage inside ``zone`` (the working-grid result, one block wider): voxels
    whose smoothed HU ``hs`` passes the same threshold, outside ``excluded``."""
    return zone & (hs >= float(muscle_hu) + ABOVE_MUSCLE_HU) & ~excluded
