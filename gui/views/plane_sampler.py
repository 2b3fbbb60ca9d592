"""CT and labels sampled on an image plane: the overlay's and the fused CT view's reslicer.

Per US frame the overlay needs the CT (HU) and the label value under every
overlay pixel: both nearest-neighbour, the fast path (a CT image and a label
image, one SimpleITK filter each, built once and reused; together they cost
what one packed HU+label sample did, with 3 instead of 4 bytes per voxel). The
fused CT view asks for the CT with linear interpolation (a CT with 5 mm slices
resliced nearest-neighbour in an oblique plane is a staircase); SimpleITK's
linear interpolation costs about 4x nearest, so only that view pays it.
Filters run single-threaded (one small plane per frame: thread start-up costs
more than it saves on a loaded machine). Outside the CT the HU value is
``OUTSIDE_HU`` (-32768, never a real HU) and the label 0.

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
_INTERP = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor}


def labels_on_ct_grid(labels: LabelMap, ct: Volume) -> np.ndarray:
    """Label array on the CT grid ``[k, j, i]`` (nearest neighbour by physical position)."""
    if labels.same_grid(ct):
        return labels.array
    img = labels.to_sitk()
    out = sitk.Resample(img, ct.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0, img.GetPixelID())
    return sitk.GetArrayFromImage(out)


def _filter(interpolator, default: float, pixel_type) -> sitk.ResampleImageFilter:
    f = sitk.ResampleImageFilter()
    f.SetInterpolator(interpolator)
    f.SetDefaultPixelValue(default)
    f.SetOutputPixelType(pixel_type)
    f.SetNumberOfThreads(1)
    return f


class PlaneSampler:
    """Holds the CT (and labels on the CT grid) as SimpleITK images; :meth:`sample` returns
    (HU, labels) on a plane."""

    def __init__(self, ct: Volume, labels: Optional[LabelMap] = None):
        self.has_labels = labels is not None
        self._ct = ct.to_sitk()
        self._labels = None
        if labels is not None:
            lab = labels_on_ct_grid(labels, ct)
            if lab.max(initial=0) > _MAX_LABEL or lab.min(initial=0) < 0:
                raise ValueError("label values must be in 0..32767 for the overlay")
            img = sitk.GetImageFromArray(lab.astype(np.uint8 if lab.max(initial=0) < 256 else np.int16))
            img.CopyInformation(self._ct)
            self._labels = img
        self._ct_filters = {name: _filter(i, float(OUTSIDE_HU), sitk.sitkFloat32) for name, i in _INTERP.items()}
        self._lab_filter = _filter(sitk.sitkNearestNeighbor, 0.0, sitk.sitkInt32)

    @staticmethod
    def _grid(f: sitk.ResampleImageFilter, pixel_to_lps: np.ndarray, shape: Tuple[int, int]) -> None:
        m = np.asarray(pixel_to_lps, float)
        rows, cols = int(shape[0]), int(shape[1])
        cx, cy = m[:3, 0], m[:3, 1]
        sx, sy = float(np.linalg.norm(cx)), float(np.linalg.norm(cy))
        ux, uy = cx / sx, cy / sy
        # Orthogonalise the row axis: a tracked pose is rigid up to rounding, ITK wants exact.
        uy = uy - ux * (ux @ uy)
        uy /= np.linalg.norm(uy)
        direction = np.column_stack([ux, uy, np.cross(ux, uy)])
        f.SetSize((cols, rows, 1))
        f.SetOutputOrigin(tuple(float(v) for v in m[:3, 3]))
        f.SetOutputSpacing((sx, sy, 1.0))
        f.SetOutputDirection(tuple(float(v) for v in direction.reshape(-1)))

    def sample_ct(self, pixel_to_lps: np.ndarray, shape: Tuple[int, int],
                  interpolation: str = "nearest") -> np.ndarray:
        """HU float32 [rows, cols], OUTSIDE_HU outside the CT; ``interpolation`` 'nearest' or 'linear'."""
        if interpolation not in _INTERP:
            raise ValueError(f"interpolation must be one of {tuple(_INTERP)}, not {interpolation!r}")
        f = self._ct_filters[interpolation]
        self._grid(f, pixel_to_lps, shape)
        return sitk.GetArrayFromImage(f.Execute(self._ct))[0]

    def sample_labels(self, pixel_to_lps: np.ndarray, shape: Tuple[int, int]) -> Optional[np.ndarray]:
        """Label values int32 [rows, cols] (0 outside), or None without labels."""
        if self._labels is None:
            return None
        self._grid(self._lab_filter, pixel_to_lps, shape)
        return sitk.GetArrayFromImage(self._lab_filter.Execute(self._labels))[0]

    def sample(self, pixel_to_lps: np.ndarray, shape: Tuple[int, int]) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """(HU float32 [rows, cols] nearest, OUTSIDE_HU outside the CT; labels int32 or None)."""
        return self.sample_ct(pixel_to_lps, shape), self.sample_labels(pixel_to_lps, shape)
