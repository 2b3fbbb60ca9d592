"""CT and labels sampled together on an image plane in ONE SimpleITK call (overlay fast path).

The overlay needs, per US frame, the CT (HU) and the label value under every
overlay pixel. Two resamples (linear CT + nearest labels) cost twice one;
here HU and label are packed into one int32 voxel (``label << 16 | HU +
32768``) and sampled nearest-neighbour, which at the overlay's sampling (no
finer than the CT voxel) shows the CT voxels as the slice views do.
Outside the CT the packed value is 0, i.e. HU -32768 (never a real HU).

Planes are given like :mod:`registration.spatial.reslice`: ``pixel_to_lps`` maps
(column, row, 0, 1) to LPS mm; output arrays are ``[rows, cols]``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from registration.spatial.volume import LabelMap, Volume

OUTSIDE_HU = -32768
_MAX_LABEL = 32767


def labels_on_ct_grid(labels: LabelMap, ct: Volume) -> np.ndarray:
    """Label array on the CT grid ``[k, j, i]`` (nearest neighbour by physical position)."""
    if labels.same_grid(ct):
        return labels.array
    img = labels.to_sitk()
    out = sitk.Resample(img, ct.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, img.GetPixelID())
    return sitk.GetArrayFromImage(out)


class PlaneSampler:
    """Holds the packed CT+labels image; :meth:`sample` returns (HU, labels) on a plane."""

    def __init__(self, ct: Volume, labels: Optional[LabelMap] = None):
        packed = np.clip(ct.array, -32767, 32767).astype(np.int32) + 32768
        self.has_labels = labels is not None
        if labels is not None:
            lab = labels_on_ct_grid(labels, ct)
            if lab.max(initial=0) > _MAX_LABEL or lab.min(initial=0) < 0:
                raise ValueError("label values must be in 0..32767 for the overlay")
            packed |= lab.astype(np.int32) << 16
        img = sitk.GetImageFromArray(packed)
        del packed
        img.SetSpacing(tuple(float(s) for s in ct.spacing))
        img.SetOrigin(tuple(float(o) for o in ct.origin))
        img.SetDirection(tuple(float(d) for d in ct.direction.reshape(-1)))
        self._image = img
        f = sitk.ResampleImageFilter()
        f.SetInterpolator(sitk.sitkNearestNeighbor)
        f.SetDefaultPixelValue(0)
        f.SetOutputPixelType(sitk.sitkInt32)
        # One small plane per frame: thread start-up costs more than it saves, above all
        # on a loaded machine (measured: 1 thread 8 ms vs default 13-17 ms per 320x240 plane).
        f.SetNumberOfThreads(1)
        self._filter = f

    def sample(self, pixel_to_lps: np.ndarray, shape: Tuple[int, int]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(HU float32 [rows, cols] with OUTSIDE_HU outside the CT, labels int32 or None)."""
        m = np.asarray(pixel_to_lps, float)
        rows, cols = int(shape[0]), int(shape[1])
        cx, cy = m[:3, 0], m[:3, 1]
        sx, sy = float(np.linalg.norm(cx)), float(np.linalg.norm(cy))
        ux, uy = cx / sx, cy / sy
        # Orthogonalise the row axis: a tracked pose is rigid up to rounding, ITK wants exact.
        uy = uy - ux * (ux @ uy)
        uy /= np.linalg.norm(uy)
        direction = np.column_stack([ux, uy, np.cross(ux, uy)])
        f = self._filter
        f.SetSize((cols, rows, 1))
        f.SetOutputOrigin(tuple(float(v) for v in m[:3, 3]))
        f.SetOutputSpacing((sx, sy, 1.0))
        f.SetOutputDirection(tuple(float(v) for v in direction.reshape(-1)))
        image = f.Execute(self._image)       # keep it alive while its array view is in use
        out = sitk.GetArrayViewFromImage(image)[0]
        hu = (out & 0xFFFF).astype(np.float32) - 32768.0
        labels = (out >> 16).astype(np.int32) if self.has_labels else None
        del out, image
        return hu, labels
