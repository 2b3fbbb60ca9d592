"""Reslicing a volume on an arbitrary oblique plane (the overlay's core).

A plane is described by ``pixel_to_lps``: a 4x4 mapping the plane's pixel
index ``(x = column, y = row, 0)`` to LPS mm. Its first two columns are the
row and column steps in mm (so they carry the pixel spacing, exactly like
PLUS's ``image_to_probe``); they must be orthogonal. An ultrasound frame's
``image_to_ct`` is therefore directly a ``pixel_to_lps``.

Output arrays are ``[rows, cols]`` (numpy order), ``float32``.

SimpleITK does the interpolation: the volume is converted to an
``sitk.Image`` once per :class:`Reslicer`, and each plane is a 1-slice output
grid whose origin/direction/spacing come from ``pixel_to_lps``, resampled
with the identity transform (both grids are in LPS, so no resampling-direction
inversion is involved).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from .errors import InputError, check_choice
from .volume import Volume

_INTERPOLATORS = {
    "linear": sitk.sitkLinear,
    "nearest": sitk.sitkNearestNeighbor,
    "bspline": sitk.sitkBSpline,
}
_PARALLEL_TOL = 1e-9      # |y - (x.y) x| below this: the two plane axes are parallel
_SHEAR_TOL = 1e-3         # |cos| between row and column axes above this: not orthogonal


@dataclass(frozen=True)
class PlaneImage:
    """A resliced plane: the image and where its pixels lie in LPS mm."""
    image: np.ndarray          # float32 [rows, cols]
    pixel_to_lps: np.ndarray   # 4x4: (column, row, 0) -> LPS mm

    @property
    def spacing(self) -> Tuple[float, float]:
        """(column step, row step) in mm."""
        return (float(np.linalg.norm(self.pixel_to_lps[:3, 0])),
                float(np.linalg.norm(self.pixel_to_lps[:3, 1])))

    @property
    def normal(self) -> np.ndarray:
        n = np.cross(self.pixel_to_lps[:3, 0], self.pixel_to_lps[:3, 1])
        return n / np.linalg.norm(n)


def plane_pixel_to_lps(center_lps: Sequence[float], x_axis: Sequence[float],
                       y_axis: Sequence[float], size: Tuple[int, int],
                       spacing: Tuple[float, float]) -> np.ndarray:
    """Build ``pixel_to_lps`` for a plane centred on ``center_lps``.

    ``x_axis``/``y_axis`` are the LPS directions of increasing column/row
    (orthogonalised here, x kept); ``size`` = (cols, rows); ``spacing`` =
    (column step, row step) mm. The plane centre lies at pixel
    ((cols-1)/2, (rows-1)/2).
    """
    x = np.asarray(x_axis, float)
    x = x / np.linalg.norm(x)
    y = np.asarray(y_axis, float)
    y = y - x * (x @ y)
    ny = np.linalg.norm(y)
    if ny < _PARALLEL_TOL:
        raise InputError("plane axes are parallel; give two different directions")
    y = y / ny
    cols, rows = size
    sx, sy = spacing
    m = np.eye(4)
    m[:3, 0] = x * sx
    m[:3, 1] = y * sy
    m[:3, 2] = np.cross(x, y)
    m[:3, 3] = np.asarray(center_lps, float) - m[:3, 0] * (cols - 1) / 2.0 - m[:3, 1] * (rows - 1) / 2.0
    return m


class Reslicer:
    """Holds a volume as an ``sitk.Image`` once and reslices planes from it fast."""

    def __init__(self, volume: Volume, *, default: Optional[float] = None,
                 interpolator: str = "linear"):
        self.volume = volume
        self._image = volume.to_sitk()
        self.default = float(volume.array.min()) if default is None else float(default)
        self.set_interpolator(interpolator)

    def set_interpolator(self, name: str) -> None:
        """'linear', 'nearest' or 'bspline' (InputError otherwise)."""
        self._interp = check_choice(name, _INTERPOLATORS, "interpolator")

    def reslice(self, pixel_to_lps: np.ndarray, shape: Tuple[int, int]) -> PlaneImage:
        """Sample the volume on the plane; ``shape`` = (rows, cols). Outside -> ``default``."""
        m = np.asarray(pixel_to_lps, dtype=float)
        rows, cols = int(shape[0]), int(shape[1])
        if rows <= 0 or cols <= 0:
            raise InputError(f"plane shape must be positive, got {shape}")
        cx, cy = m[:3, 0], m[:3, 1]
        sx, sy = np.linalg.norm(cx), np.linalg.norm(cy)
        if sx <= 0 or sy <= 0 or not np.all(np.isfinite(m)):
            raise InputError("plane pixel_to_lps has a zero or non-finite axis")
        ux, uy = cx / sx, cy / sy
        if abs(ux @ uy) > _SHEAR_TOL:
            raise InputError("plane pixel_to_lps has sheared axes (row and column not orthogonal)")
        uz = np.cross(ux, uy)
        direction = np.column_stack([ux, uy, uz])
        out = sitk.Resample(
            self._image, (cols, rows, 1), sitk.Transform(), self._interp,
            tuple(float(v) for v in m[:3, 3]), (float(sx), float(sy), 1.0),
            tuple(float(v) for v in direction.reshape(-1)), self.default, sitk.sitkFloat32)
        img = sitk.GetArrayViewFromImage(out)[0].copy()
        return PlaneImage(img, m.copy())


def reslice_plane(volume: Volume, pixel_to_lps: np.ndarray, shape: Tuple[int, int], *,
                  interpolator: str = "linear", default: Optional[float] = None) -> PlaneImage:
    """One-off reslice (converts the volume each call: use :class:`Reslicer` in loops)."""
    return Reslicer(volume, default=default, interpolator=interpolator).reslice(pixel_to_lps, shape)
