"""Risk structures derived from the CT when the label map lacks them, and large vessels.

Arrays are ``[k, j, i]`` on the CT grid, ``spacing`` is ``(i, j, k)`` mm, HU are
CT numbers. The rules (thresholds are heuristics, chosen to separate the
classes on contrast CT; see docs/clinical_evidence.md for the needle rules
they serve):

- body: HU > ``BODY_HU``, holes filled per axial slice, largest component;
- bone: HU > ``BONE_HU`` inside the body, components >= ``MIN_BONE_ML`` (the
  skeleton; small bright specks such as calcifications or contrast are
  dropped), excluding voxels labelled as vessels or organs;
- gas: HU < ``GAS_HU`` at least ``SKIN_INSET_VOXELS`` in-plane voxels inside
  the body surface; a component touching the top or bottom slice or larger
  than ``LUNG_MIN_ML`` is lung, the rest bowel gas;
- large vessels (>= ``LARGE_VESSEL_DIAMETER_MM``): vessel voxels where a ball
  of that diameter fits (morphological opening by a ball, done with two
  distance transforms): the local-thickness definition of diameter. Voxel
  centres overestimate the fitting radius by up to one voxel, which errs on
  the safe side (coarse CTs treat all vessels as large).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from registration.spatial.distance_map import distance_transform_edt
from registration.spatial.volume import Volume

BODY_HU = -500.0               # air/skin boundary
BONE_HU = 250.0                # cancellous bone and brighter
GAS_HU = -400.0                # bowel gas and lung (soft tissue and fat are above -150 HU)
MIN_BONE_ML = 0.5              # smaller bright components are calcifications or contrast, not skeleton
LUNG_MIN_ML = 100.0            # a gas component this large is lung even if it misses the edge slices
SKIN_INSET_VOXELS = 2          # skin partial-volume voxels read as gas: look for gas this far inside
LARGE_VESSEL_DIAMETER_MM = 3.0  # DESIGN section 7: keep 5 mm from vessels >= 3 mm


def bounding_box(mask: np.ndarray, margin_vox=(0, 0, 0)) -> tuple:
    """Slices ``[k, j, i]`` around the True voxels, grown by ``margin_vox`` (k, j, i)."""
    k = np.flatnonzero(mask.any(axis=(1, 2)))
    rows = mask[k[0]:k[-1] + 1].any(axis=0)          # [j, i]: one pass over the slices that hold voxels
    idx = k, np.flatnonzero(rows.any(axis=1)), np.flatnonzero(rows.any(axis=0))
    return tuple(slice(max(0, int(a[0]) - m), min(n, int(a[-1]) + 1 + m))
                 for a, m, n in zip(idx, margin_vox, mask.shape))


def fill_per_slice(mask: np.ndarray) -> np.ndarray:
    """Holes filled in each axial slice (a 3D fill leaks through the open top and bottom slices)."""
    return np.stack([ndimage.binary_fill_holes(s) for s in mask])


def body_from_ct(ct: Volume, threshold_hu: float = BODY_HU) -> np.ndarray:
    """Body mask ``[k, j, i]``: HU > threshold, holes filled per axial slice, largest component."""
    # The CT bed and the air in bowel/lung are holes or appendages: fill per slice.
    filled = fill_per_slice(ct.array > threshold_hu)
    lab, n = ndimage.label(filled)
    if n == 0:
        return filled
    sizes = ndimage.sum_labels(filled, lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def components_at_least(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    """The face-connected components of ``mask`` with at least ``min_voxels`` voxels."""
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_voxels
    return keep[lab]


def bone_from_ct(ct: Volume, body: np.ndarray, labelled_soft: np.ndarray,
                 threshold_hu: float = BONE_HU) -> np.ndarray:
    """Skeleton ``[k, j, i]``: HU > threshold in the body, not labelled soft tissue,
    components of at least ``MIN_BONE_ML``."""
    min_vox = max(1, int(round(MIN_BONE_ML * 1000.0 / float(np.prod(ct.spacing)))))
    return components_at_least((ct.array > threshold_hu) & body & ~labelled_soft, min_vox)


def gas_inside_body(ct: Volume, body: np.ndarray, threshold_hu: float = GAS_HU) -> np.ndarray:
    """HU < threshold at least ``SKIN_INSET_VOXELS`` in-plane voxels inside the body surface."""
    inner = ndimage.binary_erosion(body, structure=np.ones((1, 3, 3), bool), iterations=SKIN_INSET_VOXELS)
    return (ct.array < threshold_hu) & inner


def split_gas(gas: np.ndarray, spacing_ijk) -> tuple:
    """Gas mask -> (lung, bowel_gas): lung touches the top/bottom slice or is > ``LUNG_MIN_ML``."""
    vox_ml = float(np.prod(spacing_ijk)) / 1000.0
    lab, n = ndimage.label(gas)
    lung = np.zeros_like(gas)
    if n == 0:
        return lung, gas.copy()
    sizes = np.bincount(lab[gas], minlength=n + 1)[1:] * vox_ml     # voxels per component
    edge = set(np.unique(lab[0])) | set(np.unique(lab[-1]))
    is_lung = np.zeros(n + 1, bool)
    for c in range(1, n + 1):
        is_lung[c] = c in edge or sizes[c - 1] > LUNG_MIN_ML
    lung = is_lung[lab]
    return lung, gas & ~lung


def large_vessels(vessel: np.ndarray, spacing_ijk, min_diameter_mm: float = LARGE_VESSEL_DIAMETER_MM
                  ) -> np.ndarray:
    """Vessel voxels where a ball of diameter ``min_diameter_mm`` fits (opening by a ball)."""
    if not vessel.any():
        return vessel.copy()
    box = bounding_box(vessel, (2, 2, 2))
    out = np.zeros_like(vessel)
    out[box] = _large_vessels_crop(vessel[box], spacing_ijk, min_diameter_mm)
    return out


def _large_vessels_crop(vessel, spacing_ijk, min_diameter_mm):
    """:func:`large_vessels` inside the vessels' box: the voxels within ``r`` of a voxel at
    least ``r`` deep (``r`` = half the diameter), i.e. the union of the balls that fit."""
    samp = np.asarray(spacing_ijk, float)[::-1]
    r = 0.5 * min_diameter_mm
    depth = distance_transform_edt(vessel, sampling=samp)
    # EDT to the nearest background centre overestimates the radius by up to
    # a voxel; we keep the overestimate on purpose (conservative: a vessel is
    # called small only when even the overestimate is below r). At 2 mm voxels
    # every vessel therefore counts as large.
    centres = depth >= r
    if not centres.any():
        return np.zeros_like(vessel)
    to_centre = distance_transform_edt(~centres, sampling=samp)
    return vessel & (to_centre <= r + 0.5 * float(np.max(spacing_ijk)))
