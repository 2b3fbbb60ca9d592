"""Per-target lookup maps on the CT grid: region codes, hard clearance, liver signed distance.

Arrays are ``[k, j, i]`` on the (planning) CT grid; distances in mm; points
LPS mm, turned into continuous ``[k, j, i]`` indices by
:meth:`PlanningMaps.to_kji`. The maps are built once per target
(:func:`build_maps`) and then sampled along thousands of candidate paths.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy import ndimage

from planner.anatomy.derived import bounding_box
from planner.anatomy.structures import Anatomy
from registration.spatial.distance_map import distance_transform_edt

from .constraints import Constraints

#: Region codes of :attr:`PlanningMaps.region` (OFF_GRID only when sampled outside the array).
OFF_GRID, OUTSIDE, BODY, LIVER, LESION, OTHER_LESION, VESSEL = -1, 0, 1, 2, 3, 4, 5
#: The liver signed distance is exact within this distance (mm) of the liver's box.
LIVER_SDF_MARGIN_MM = 15.0


@dataclass
class PlanningMaps:
    """Per-target lookup maps on the CT grid.

    region int8: (-1 off the grid when sampled), 0 outside body, 1 body, 2 liver, 3 the target
    lesion, 4 another lesion, 5 vessel (>= 2 counts as inside the liver envelope).
    organ_mm float32: distance (mm) to the nearest voxel centre of any hard class (bone, lung,
    gallbladder, bowel, kidney, heart, spleen, pancreas); the anatomy's map, not a copy.
    vessel_mm float32 or None: distance (mm) to the nearest large-vessel (>= 3 mm) voxel centre.
    liver_sdf_mm float32: signed distance to the liver surface (+ outside).
    """
    anatomy: Anatomy
    region: np.ndarray
    organ_mm: np.ndarray
    vessel_mm: Optional[np.ndarray]
    liver_sdf_mm: np.ndarray
    constraints: Constraints
    oracle: Optional[object] = None       # the clearance rule at full resolution (planner.paths.clearance)
    lps_to_kji: np.ndarray = field(init=False)

    def __post_init__(self):
        ijk = self.anatomy.ct.lps_to_ijk
        self.lps_to_kji = ijk[[2, 1, 0, 3]]

    def to_kji(self, pts: np.ndarray) -> np.ndarray:
        """(..., 3) LPS -> (3, ...) continuous [k, j, i] indices."""
        m = self.lps_to_kji
        return np.tensordot(m[:3, :3], pts, axes=([1], [pts.ndim - 1])) + \
            m[:3, 3].reshape((3,) + (1,) * (pts.ndim - 1))

    @staticmethod
    def nearest(arr: np.ndarray, kji: np.ndarray, fill=0) -> np.ndarray:
        """Values of ``arr`` at the voxels nearest to ``kji`` (3, ...); ``fill`` off the array."""
        return nearest_voxel(arr, kji, fill)

    @staticmethod
    def linear(arr: np.ndarray, kji: np.ndarray, fill: float) -> np.ndarray:
        """Trilinear values of ``arr`` at ``kji`` (3, ...); ``fill`` off the array."""
        flat = kji.reshape(3, -1)
        v = ndimage.map_coordinates(arr, flat, order=1, mode="constant", cval=fill)
        return v.reshape(kji.shape[1:])


def nearest_voxel(arr: np.ndarray, kji: np.ndarray, fill) -> np.ndarray:
    """Nearest-voxel lookup of ``arr`` at continuous ``[k, j, i]`` indices ``kji`` (3, ...).

    Indices are rounded half to even (``np.rint``); points off the array get
    ``fill``. One flat gather (int32 indices): this is the hot loop of
    :func:`planner.paths.trajectories.evaluate`.
    """
    K, J, I = arr.shape
    k = np.rint(kji[0]).astype(np.int32)
    j = np.rint(kji[1]).astype(np.int32)
    i = np.rint(kji[2]).astype(np.int32)
    inside = (k >= 0) & (k < K) & (j >= 0) & (j < J) & (i >= 0) & (i < I)
    flat = (k.astype(np.int64) * J + j) * I + i
    flat[~inside] = 0
    out = arr.reshape(-1)[flat]
    out[~inside] = fill
    return out


def build_maps(anatomy: Anatomy, lesion_mask: Optional[np.ndarray],
               constraints: Constraints, other_lesions: Optional[np.ndarray] = None,
               sdf_mm: Optional[np.ndarray] = None) -> PlanningMaps:
    """Maps for one target (its lesion mask may be None for a point target);
    ``other_lesions`` are the other lesions' voxels (a path through one is not normal liver).
    ``sdf_mm``: the liver signed distance when already computed (:func:`liver_sdf` of the liver
    with every lesion: the same for all the lesions of a case, the slowest map to build)."""
    m = anatomy.masks
    region = np.zeros(m["body"].shape, np.int8)
    region[m["body"]] = BODY
    if "vessel" in m:
        # vessels are carved out of the liver label: crossing one inside the
        # liver is not a capsule crossing (large ones are excluded by clearance)
        region[m["vessel"]] = VESSEL
    region[m["liver"]] = LIVER
    if other_lesions is not None:
        region[other_lesions] = OTHER_LESION
    if lesion_mask is not None:
        region[lesion_mask] = LESION
    if sdf_mm is None:
        sdf_mm = liver_sdf(anatomy, lesion_mask, other_lesions)
    return PlanningMaps(anatomy, region, anatomy.distance_mm["hard"], anatomy.distance_mm.get("vessel_large"),
                        sdf_mm, constraints)


def liver_sdf(anatomy: Anatomy, lesion_mask=None, other_lesions=None,
              margin_mm: float = LIVER_SDF_MARGIN_MM) -> np.ndarray:
    """Signed distance (mm, + outside) to the liver surface (lesions and vessels count as liver):
    exact inside the liver's box grown by ``margin_mm``, ``margin_mm`` beyond it."""
    liver = anatomy.masks["liver"].copy()
    for extra in (lesion_mask, other_lesions, anatomy.masks.get("vessel")):
        if extra is not None:
            liver |= extra
    margin = tuple(int(np.ceil(margin_mm / s)) for s in anatomy.spacing_kji)
    box = bounding_box(liver, margin)
    samp = anatomy.spacing_kji
    sdf = np.full(liver.shape, margin_mm, np.float32)
    sub = liver[box]
    sdf[box] = distance_transform_edt(~sub, sampling=samp) - distance_transform_edt(sub, sampling=samp)
    return sdf
