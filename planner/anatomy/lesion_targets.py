"""The lesions to plan and the target point in each.

Masks are boolean arrays ``[k, j, i]`` on the (planning) CT grid; points are
CT LPS mm. Lesions come from :func:`registration.spatial.lesions.lesion_table`
(named ``lesion_*`` labels and the components of a generic ``lesion`` label)
and are measured by :func:`registration.spatial.lesions.measure_lesion`; a
point target is one voxel inside the liver.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.lesions import LesionMeasure, lesion_mask, lesion_table, measure_lesion
from registration.spatial.volume import LabelMap, Volume

from .structures import Anatomy

#: Name of the one target of a plan made with ``--target x,y,z``.
POINT_TARGET_NAME = "target"


@dataclass
class PlanTarget:
    """One thing to plan a needle to.

    ``mask``: the lesion (a single voxel for a point target), bool ``[k, j, i]``;
    ``target_lps``: where the needle tip goes (LPS mm); ``measure``: the
    lesion's centroid and size (None for a point target, which has no outline).
    """
    name: str
    mask: np.ndarray
    target_lps: np.ndarray
    measure: Optional[LesionMeasure] = None

    @property
    def point_target(self) -> bool:
        return self.measure is None

    @property
    def centroid_lps(self) -> Tuple[float, float, float]:
        """The lesion's centroid (LPS mm); the point itself for a point target."""
        if self.measure is None:
            return tuple(float(v) for v in self.target_lps)
        return self.measure.centroid_lps


def target_point(mask: np.ndarray, ct: Volume, centroid_ijk) -> np.ndarray:
    """Needle target (LPS mm) in a lesion: its centroid if that lies in the mask, else the
    deepest voxel of the mask (a crescent's centroid lies outside it)."""
    c_ijk = np.asarray(centroid_ijk, float)
    k, j, i = np.rint(c_ijk[::-1]).astype(int)
    if mask[k, j, i]:
        return ct.index_to_lps(c_ijk)
    depth = ndimage.distance_transform_edt(mask, sampling=ct.spacing[::-1])
    k, j, i = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return ct.index_to_lps(np.array([i, j, k], float))


def lesions_to_plan(labels: LabelMap, ct: Volume, only: Optional[str] = None,
                    labels_path=None) -> List[PlanTarget]:
    """Every lesion of ``labels`` (or only the one named ``only``) with its mask, measure and target.

    ``labels`` must be on ``ct``'s grid. Raises InputError when ``only`` is not a lesion of the map.
    """
    rows = lesion_table(labels)
    if only is not None:
        names = [r["name"] for r in rows]
        rows = [r for r in rows if r["name"] == only]
        if not rows:
            raise InputError(f"lesion '{only}' is not in the label map (lesions: {', '.join(names) or 'none'})",
                             path=labels_path, fix="pass one of the listed names to --lesion")
    out = []
    for r in rows:
        mask = lesion_mask(labels, r)
        m = measure_lesion(mask, labels)
        out.append(PlanTarget(r["name"], mask, target_point(mask, ct, m.centroid_ijk), m))
    return out


def point_target(target_lps, anatomy: Anatomy, ct_path=None) -> PlanTarget:
    """A point target (LPS mm) inside the liver, as a one-voxel lesion.

    Raises InputError when the point is outside the CT, the body or the liver.
    """
    ct = anatomy.ct
    t = np.asarray(target_lps, float)
    ijk = np.rint(ct.lps_to_index(t)).astype(int)
    inside_grid = np.all(ijk >= 0) and np.all(ijk < np.array(ct.shape_ijk))
    if not inside_grid or not anatomy.masks["body"][ijk[2], ijk[1], ijk[0]]:
        raise InputError(f"target {t.round(1).tolist()} (LPS mm) is outside the body",
                         path=ct_path, fix="give --target x,y,z in LPS mm inside the liver")
    if not anatomy.masks["liver"][ijk[2], ijk[1], ijk[0]]:
        raise InputError(f"target {t.round(1).tolist()} (LPS mm) is not inside the liver",
                         path=ct_path, fix="give --target x,y,z in LPS mm inside the liver")
    voxel = np.zeros(ct.array.shape, bool)
    voxel[ijk[2], ijk[1], ijk[0]] = True
    return PlanTarget(POINT_TARGET_NAME, voxel, t)
