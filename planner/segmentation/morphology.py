"""Binary morphology in millimetres, components and hole filling for ``[k, j, i]`` masks.

Every radius is in mm and respects anisotropic voxels: dilation, erosion,
opening and closing threshold a Euclidean distance map (SimpleITK's
multithreaded Maurer transform with the image spacing), so a "5 mm ball" is a
5 mm ball whatever the slice thickness. Distances are from voxel centre to
voxel centre. Beyond the image is never background, so a structure cut by
the scan's top or bottom slice is not eroded from that side (the anatomy
continues beyond the field of view).
``spacing`` is always ``(i, j, k)`` mm, like :class:`~registration.spatial.volume.Volume`.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

_FAR_MM = 1e6


def _image(mask: np.ndarray, spacing) -> sitk.Image:
    img = sitk.GetImageFromArray(mask.astype(np.uint8, copy=False))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return img


def distance_to_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """float32 ``[k, j, i]``: mm from each voxel centre to the nearest True voxel centre (0 on it)."""
    if not mask.any():
        return np.full(mask.shape, _FAR_MM, np.float32)
    d = sitk.SignedMaurerDistanceMap(_image(mask, spacing), insideIsPositive=False,
                                     squaredDistance=False, useImageSpacing=True)
    out = sitk.GetArrayFromImage(d)
    np.maximum(out, 0.0, out=out)
    return out


def depth_mm(mask: np.ndarray, spacing) -> np.ndarray:
    """float32: mm from each True voxel centre to the nearest False voxel centre (0 outside).

    The radius of the largest ball centred there that stays inside the mask,
    plus up to one voxel (local thickness / 2).
    """
    if mask.all():
        return np.full(mask.shape, _FAR_MM, np.float32)
    out = distance_to_mm(~mask, spacing)
    out[~mask] = 0.0
    return out


def dilate_mm(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` of the mask."""
    if radius_mm <= 0:
        return mask.copy()
    return distance_to_mm(mask, spacing) <= radius_mm


def erode_mm(mask: np.ndarray, spacing, radius_mm: float, *, pad: bool = True) -> np.ndarray:
    """Voxels farther than ``radius_mm`` from every background voxel of the image.

    Beyond the image is not background: a structure cut by the scan's edge is
    not eroded from that side (the anatomy continues beyond the field of
    view). ``pad`` is accepted for callers and changes nothing.
    """
    if radius_mm <= 0:
        return mask.copy()
    return distance_to_mm(~mask, spacing) > radius_mm


def open_mm(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Opening by a ball: removes parts and bridges thinner than ``2 * radius_mm``."""
    return dilate_mm(erode_mm(mask, spacing, radius_mm), spacing, radius_mm) & mask


def close_mm(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Closing by a ball: fills gaps and concavities narrower than ``2 * radius_mm``."""
    if radius_mm <= 0:
        return mask.copy()
    return erode_mm(dilate_mm(mask, spacing, radius_mm), spacing, radius_mm) | mask


def label_components(mask: np.ndarray, full_connectivity: bool = False):
    """(labels int32, sizes) of the connected components, sorted largest first (label 1)."""
    img = sitk.ConnectedComponent(_image(mask, (1, 1, 1)), full_connectivity)
    img = sitk.RelabelComponent(img, sortByObjectSize=True)
    lab = sitk.GetArrayFromImage(img).astype(np.int32, copy=False)
    n = int(lab.max())
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:] if n else np.zeros(0, np.int64)
    return lab, sizes


def largest_component(mask: np.ndarray) -> np.ndarray:
    lab, sizes = label_components(mask)
    return lab == 1 if sizes.size else mask.copy()


def keep_components(lab: np.ndarray, keep_ids: Sequence[int]) -> np.ndarray:
    """Mask of the components whose labels are in ``keep_ids``."""
    table = np.zeros(int(lab.max()) + 1, bool)
    table[[int(i) for i in keep_ids if i > 0]] = True
    return table[lab]


def fill_holes_2d(mask: np.ndarray) -> np.ndarray:
    """Holes filled in every axial slice of a ``[k, j, i]`` mask.

    One labelling pass with an in-slice (4-connected) structure over the whole
    background: a background component that reaches no edge of its slice is a hole.
    """
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(~mask, st)
    if n == 0:
        return mask.copy()
    edge = np.zeros(n + 1, bool)
    for face in (lab[:, 0, :], lab[:, -1, :], lab[:, :, 0], lab[:, :, -1]):
        edge[np.unique(face)] = True
    edge[0] = True                                  # label 0 is the mask itself
    return ~edge[lab] | mask


def fill_small_holes_2d(mask: np.ndarray, max_area_mm2: float, spacing) -> np.ndarray:
    """Axial holes no larger than ``max_area_mm2`` filled (vessels inside a lung, not an organ it rings)."""
    holes = fill_holes_2d(mask) & ~mask
    if not holes.any():
        return mask.copy()
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    lab, n = ndimage.label(holes, st)
    area = np.bincount(lab.ravel(), minlength=n + 1) * float(spacing[0] * spacing[1])
    ok = area <= max_area_mm2
    ok[0] = False
    return mask | ok[lab]


def fill_holes_3d(mask: np.ndarray) -> np.ndarray:
    """Cavities not connected to the volume's border filled (SimpleITK, 6-connected background)."""
    img = sitk.BinaryFillhole(_image(mask, (1, 1, 1)), fullyConnected=False, foregroundValue=1)
    return sitk.GetArrayFromImage(img).astype(bool)


def bbox(mask: np.ndarray, margin_vox=(0, 0, 0)) -> Optional[tuple]:
    """Slices ``[k, j, i]`` around the True voxels grown by ``margin_vox`` (k, j, i); None if empty."""
    if not mask.any():
        return None
    out = []
    for axis, (m, n) in enumerate(zip(margin_vox, mask.shape)):
        other = tuple(a for a in range(3) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(0, int(idx[0]) - int(m)), min(n, int(idx[-1]) + 1 + int(m))))
    return tuple(out)


def margin_vox(margin_mm: float, spacing) -> tuple:
    """A margin in mm as whole voxels per axis ``(k, j, i)``."""
    return tuple(int(np.ceil(margin_mm / s)) for s in np.asarray(spacing, float)[::-1])
