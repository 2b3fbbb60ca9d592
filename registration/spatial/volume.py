"""Images with geometry: :class:`Volume` and :class:`LabelMap`.

A Volume is a numpy array ``[k, j, i]`` (SimpleITK ``GetArrayFromImage``
order) with its geometry in ``(i, j, k)`` order: ``spacing`` (mm), ``origin``
(LPS mm of voxel (0, 0, 0)) and ``direction`` (3x3, columns are the i, j, k
axes in LPS). It is validated at construction: if it exists, it is valid.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk

from .errors import InputError

_ORTHO_TOL = 1e-4      # direction^T direction = I within this
SAME_GRID_TOL = 1e-3   # same_grid: mm for spacing and origin, unitless for the direction


def _as_vec3(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{name} must be 3 finite numbers, got {value!r}")
    return arr


class Volume:
    """A 3D image in LPS mm.

    Parameters
    ----------
    array : ndarray ``[k, j, i]``
    spacing : (3,) mm, ``(i, j, k)`` order, all > 0
    origin : (3,) LPS mm of voxel (0, 0, 0)
    direction : (3, 3) orthonormal, columns = i, j, k axis directions in LPS
    metadata : free-form dict (source file, series description, ...)
    """

    __slots__ = ("array", "spacing", "origin", "direction", "metadata")

    def __init__(self, array: np.ndarray, spacing=(1.0, 1.0, 1.0),
                 origin=(0.0, 0.0, 0.0), direction=None,
                 metadata: Optional[dict] = None):
        array = np.asarray(array)
        if array.ndim != 3:
            raise InputError(f"a Volume needs a 3D array [k, j, i], got shape {array.shape}")
        if 0 in array.shape:
            raise InputError(f"a Volume cannot be empty, got shape {array.shape}")
        spacing = _as_vec3(spacing, "spacing")
        if np.any(spacing <= 0):
            raise InputError(f"spacing must be positive, got {tuple(spacing)}")
        origin = _as_vec3(origin, "origin")
        if direction is None:
            direction = np.eye(3)
        direction = np.asarray(direction, dtype=float).reshape(3, 3)
        if not np.all(np.isfinite(direction)) or not np.allclose(
                direction.T @ direction, np.eye(3), atol=_ORTHO_TOL):
            raise InputError("direction must be an orthonormal 3x3 matrix "
                             f"(columns = i, j, k axes), got {direction.tolist()}")
        self.array = array
        self.spacing = spacing
        self.origin = origin
        self.direction = direction
        self.metadata = dict(metadata or {})

    # geometry -------------------------------------------------------------
    @property
    def shape_ijk(self) -> Tuple[int, int, int]:
        k, j, i = self.array.shape
        return (i, j, k)

    @property
    def ijk_to_lps(self) -> np.ndarray:
        """4x4: continuous voxel index (i, j, k) -> LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction * self.spacing[None, :]
        m[:3, 3] = self.origin
        return m

    @property
    def lps_to_ijk(self) -> np.ndarray:
        """4x4: LPS mm -> continuous voxel index (i, j, k)."""
        m = np.eye(4)
        r = (self.direction * self.spacing[None, :])
        m[:3, :3] = np.linalg.inv(r)
        m[:3, 3] = -m[:3, :3] @ self.origin
        return m

    def index_to_lps(self, ijk) -> np.ndarray:
        """(..., 3) voxel indices (i, j, k) -> (..., 3) LPS mm."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction * self.spacing[None, :]).T + self.origin

    def lps_to_index(self, points) -> np.ndarray:
        """(..., 3) LPS mm -> (..., 3) continuous voxel indices (i, j, k)."""
        p = np.asarray(points, dtype=float) - self.origin
        return p @ np.linalg.inv(self.direction * self.spacing[None, :]).T

    def bounds_lps(self) -> Tuple[np.ndarray, np.ndarray]:
        """Axis-aligned LPS box (min, max) around the voxel centres."""
        n = np.array(self.shape_ijk) - 1
        corners = np.array([[a, b, c] for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])])
        pts = self.index_to_lps(corners)
        return pts.min(axis=0), pts.max(axis=0)

    def same_grid(self, other: "Volume", tol: float = SAME_GRID_TOL) -> bool:
        """Same shape, and spacing, origin (mm) and direction equal within ``tol``."""
        return (self.array.shape == other.array.shape
                and np.allclose(self.spacing, other.spacing, atol=tol)
                and np.allclose(self.origin, other.origin, atol=tol)
                and np.allclose(self.direction, other.direction, atol=tol))

    def orientation_letters(self) -> str:
        """Three letters naming where +i, +j, +k point (DICOM convention), e.g. 'LPS'.

        A standard axial CT (rows towards P, columns towards L, slices towards S)
        gives 'LPS'; ITK/Slicer call the same 'RAI' (the side each axis comes *from*).
        """
        return orientation_letters(self.direction)

    # SimpleITK bridge ----------------------------------------------------
    def to_sitk(self) -> sitk.Image:
        """The array as a SimpleITK image with this geometry (LPS, like ITK)."""
        img = sitk.GetImageFromArray(self.array)
        img.SetSpacing(tuple(float(s) for s in self.spacing))
        img.SetOrigin(tuple(float(o) for o in self.origin))
        img.SetDirection(tuple(float(d) for d in self.direction.reshape(-1)))
        return img

    @classmethod
    def from_sitk(cls, image: sitk.Image, metadata: Optional[dict] = None) -> "Volume":
        """A Volume from a 3D scalar SimpleITK image (InputError otherwise)."""
        if image.GetDimension() != 3:
            raise InputError(f"expected a 3D image, got {image.GetDimension()}D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError("expected a scalar image, got "
                             f"{image.GetNumberOfComponentsPerPixel()} components per voxel")
        return cls(sitk.GetArrayFromImage(image), image.GetSpacing(), image.GetOrigin(),
                   np.array(image.GetDirection()).reshape(3, 3), metadata)

    def with_array(self, array: np.ndarray, **metadata) -> "Volume":
        """Same geometry, new voxel values."""
        md = dict(self.metadata)
        md.update(metadata)
        return Volume(array, self.spacing, self.origin, self.direction, md)

    def __repr__(self) -> str:
        return (f"Volume(shape_ijk={self.shape_ijk}, spacing={tuple(np.round(self.spacing, 4))}, "
                f"origin={tuple(np.round(self.origin, 3))}, {self.orientation_letters()}, "
                f"dtype={self.array.dtype})")


def orientation_letters(direction) -> str:
    """Three letters naming where the +i, +j, +k columns of ``direction`` point (e.g. 'LPS')."""
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    pos = ("L", "P", "S")
    neg = ("R", "A", "I")
    out = []
    for col in direction.T:
        a = int(np.argmax(np.abs(col)))
        out.append(pos[a] if col[a] > 0 else neg[a])
    return "".join(out)


class LabelMap(Volume):
    """An integer Volume with a name <-> value table.

    ``names`` maps structure name -> label value (0 is background and never
    named). Unknown names are kept as they are.
    """

    __slots__ = ("names",)

    def __init__(self, array, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                 direction=None, names: Optional[Mapping[str, int]] = None,
                 metadata: Optional[dict] = None):
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.integer):
            if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
                array = array.astype(np.int32)
            else:
                raise InputError(f"a label map needs integer voxels, got {array.dtype}")
        super().__init__(array, spacing, origin, direction, metadata)
        self.names: Dict[str, int] = {}
        for name, value in (names or {}).items():
            value = int(value)
            if value == 0:
                raise InputError(f"label '{name}' has value 0, which is background")
            self.names[str(name)] = value

    @classmethod
    def from_volume(cls, vol: Volume, names: Optional[Mapping[str, int]] = None) -> "LabelMap":
        return cls(vol.array, vol.spacing, vol.origin, vol.direction, names, vol.metadata)

    @classmethod
    def from_sitk(cls, image: sitk.Image, metadata: Optional[dict] = None,
                  names: Optional[Mapping[str, int]] = None) -> "LabelMap":
        return cls.from_volume(Volume.from_sitk(image, metadata), names)

    def value_of(self, name: str) -> int:
        """Label value of structure ``name`` (InputError listing the names if unknown)."""
        try:
            return self.names[name]
        except KeyError:
            raise InputError(f"structure '{name}' is not in the label map "
                             f"(names: {', '.join(sorted(self.names)) or 'none'})") from None

    def mask(self, name: str) -> np.ndarray:
        """bool ``[k, j, i]`` of the voxels of structure ``name``."""
        return self.array == self.value_of(name)

    def present_values(self) -> np.ndarray:
        """Sorted non-zero label values that occur in the array."""
        v = np.unique(self.array)
        return v[v != 0]

    def lesion_names(self) -> Iterable[str]:
        """Names starting with 'lesion', sorted."""
        return sorted(n for n in self.names if n.startswith("lesion"))

    def with_array(self, array: np.ndarray, **metadata) -> "LabelMap":
        md = dict(self.metadata)
        md.update(metadata)
        return LabelMap(array, self.spacing, self.origin, self.direction, self.names, md)

    def __repr__(self) -> str:
        return super().__repr__().replace("Volume(", "LabelMap(", 1)[:-1] + f", names={self.names})"
