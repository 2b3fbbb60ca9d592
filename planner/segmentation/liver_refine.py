"""The liver's capsule redrawn at the CT's own resolution.

The working grid (about 2 mm) places the liver; its surface is then decided
on the CT grid inside a shell one working voxel either side of the coarse
surface: a voxel of the shell is liver when its lightly smoothed HU (Gaussian
:data:`SMOOTH_MM`, against noise) is within the liver's band around the local
mean found on the working grid (upsampled linearly) and above the muscle floor.
Everything deeper than the shell stays liver, and what the coarse region
added as lesion or vessel (filled holes, closed concavities) stays with it.
Axial holes are filled again and the largest component is kept.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .grid import WorkGrid
from .liver import LiverIntensity
from .morphology import dilate_mm, erode_mm, fill_holes_2d, largest_component

SMOOTH_MM = 0.8


def smooth_hu(a: np.ndarray, spacing) -> np.ndarray:
    """float32 HU smoothed by a Gaussian of :data:`SMOOTH_MM` (in-plane only on thick slices)."""
    img = sitk.GetImageFromArray(a.astype(np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing))
    sig = [SMOOTH_MM if s < 2.0 * SMOOTH_MM else 1e-3 for s in spacing]   # not across thick slices
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, sig))


def refine_liver(grid: WorkGrid, region_w: np.ndarray, parenchyma_w: np.ndarray,
                 mean_w: np.ndarray, inten: LiverIntensity, box: tuple, hs: np.ndarray) -> np.ndarray:
    """The liver region on the CT grid (bool ``[k, j, i]``, canonical order).

    ``box`` is a crop of the CT grid holding the coarse liver plus a working
    voxel, ``hs`` the CT's HU smoothed by :func:`smooth_hu` on that crop.
    """
    ct = grid.ct
    one = float(max(grid.spacing))
    out = np.zeros(ct.array.shape, bool)
    outer = grid.mask_to_ct(dilate_mm(region_w, grid.spacing, one), box)
    inner = grid.mask_to_ct(erode_mm(region_w, grid.spacing, one), box)
    extra = grid.mask_to_ct(region_w & ~parenchyma_w, box)
    mean = np.where(np.isfinite(mean_w), mean_w, inten.mode_hu).astype(np.float32)
    m = grid.values_to_ct(mean, inten.mode_hu, box)
    band = (np.abs(hs - m) <= inten.half_width) & (hs >= inten.floor_hu)
    out[box] = largest_component(fill_holes_2d(inner | extra | (outer & band)))
    return out
