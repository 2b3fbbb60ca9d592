"""The lesions to plan and the target point in each.

Masks are boolean arrays ``[k, j, i]`` on the CT grid; points are CT LPS mm.
A lesion row is one entry of :func:`registration.spatial.lesions.lesion_table`
(name, value, centroid_lps, diameters, volume) plus its ``mask``.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume


def _target_in_mask(mask: np.ndarray, volume: Volume) -> np.ndarray:
    """Centroid (LPS) if it lies in the mask, else the deepest voxel of the mask."""
    kji = np.argwhere(mask)
    c_ijk = kji[:, ::-1].mean(axis=0)
    k, j, i = np.rint(c_ijk[::-1]).astype(int)
    if mask[k, j, i]:
        return volume.index_to_lps(c_ijk)
    depth = ndimage.distance_transform_edt(mask, sampling=volume.spacing[::-1])
    k, j, i = np.unravel_index(int(np.argmax(depth)), mask.shape)
    return volume.index_to_lps(np.array([i, j, k], float))


def _lesions(labels: LabelMap, ct: Volume, only: Optional[str], labels_path) -> List[dict]:
    from registration.spatial.lesions import lesion_table
    rows = lesion_table(labels, ct)
    if only is not None:
        rows = [r for r in rows if r["name"] == only]
        if not rows:
            names = ", ".join(r["name"] for r in lesion_table(labels)) or "none"
            raise InputError(f"lesion '{only}' is not in the label map (lesions: {names})",
                             path=labels_path, fix="pass one of the listed names to --lesion")
    comps = {}
    for r in rows:
        m = labels.array == r["value"]
        if r.get("derived"):
            if r["value"] not in comps:
                comps[r["value"]] = ndimage.label(m, structure=np.ones((3, 3, 3)))
            lab, _ = comps[r["value"]]
            ijk = np.rint(labels.lps_to_index(r["centroid_lps"])).astype(int)
            cid = lab[ijk[2], ijk[1], ijk[0]]
            if cid == 0:  # centroid outside a crescent: nearest voxel of the component set
                pts = np.argwhere(lab > 0)
                cid = lab[tuple(pts[np.argmin(np.sum((pts - ijk[::-1]) ** 2, axis=1))])]
            m = lab == cid
        r["mask"] = m
    return rows
