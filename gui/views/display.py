"""CT and labels on an LPS-aligned display grid, and the three radiological slices.

The display array is ``[z, y, x]`` with x towards patient Left, y towards
Posterior, z towards Superior (identity direction, LPS mm). A volume whose
direction is a signed axis permutation (every ordinary CT) is only
transposed/flipped, never interpolated; an oblique one is resampled (linear
for intensities, nearest for labels) onto an LPS box around it.

Slices follow the radiological convention:

- axial: rows = anterior (top) -> posterior, cols = patient right (left of screen) -> left
- coronal: rows = superior (top) -> inferior, cols = patient right -> left
- sagittal: rows = superior (top) -> inferior, cols = anterior (left of screen) -> posterior

Each slice comes with ``pixel_to_lps`` (4x4) mapping (col, row, 0, 1) to LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from planner.anatomy.mr_lesions import mr_only_lesions
from registration.spatial.volume import LabelMap, Volume

VIEWS = ("axial", "coronal", "sagittal")
# Display axis (0 = x/L, 1 = y/P, 2 = z/S) that each view slices through.
NORMAL_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}


def _signed_permutation(direction: np.ndarray, tol: float = 1e-3) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """For each LPS axis a: (volume index axis, sign), or None if the direction is oblique."""
    d = np.asarray(direction, float)
    idx = np.argmax(np.abs(d), axis=1)          # row a (LPS axis) -> column (index axis)
    if sorted(idx.tolist()) != [0, 1, 2]:
        return None
    vals = d[np.arange(3), idx]
    if np.any(np.abs(np.abs(vals) - 1.0) > tol):
        return None
    return idx, np.sign(vals)


@dataclass
class DisplayGrid:
    """An LPS-aligned grid: ``shape_zyx``, ``spacing`` (x, y, z) mm, ``origin`` LPS of [0,0,0]."""
    shape_zyx: Tuple[int, int, int]
    spacing: np.ndarray
    origin: np.ndarray

    def index_to_lps(self, xyz) -> np.ndarray:
        return np.asarray(xyz, float) * self.spacing + self.origin

    def lps_to_index(self, lps) -> np.ndarray:
        return (np.asarray(lps, float) - self.origin) / self.spacing

    @property
    def size_xyz(self) -> Tuple[int, int, int]:
        z, y, x = self.shape_zyx
        return (x, y, z)

    def clamp_index(self, xyz) -> np.ndarray:
        n = np.array(self.size_xyz) - 1
        return np.clip(np.rint(np.asarray(xyz, float)).astype(int), 0, n)


def to_display(volume: Volume, *, nearest: bool = False, default: float = 0.0) -> Tuple[np.ndarray, DisplayGrid]:
    """Volume -> (array [z, y, x], grid). No interpolation for signed-permutation directions."""
    perm = _signed_permutation(volume.direction)
    n_ijk = np.array(volume.shape_ijk)
    if perm is not None:
        idx, sign = perm
        # numpy axis of index axis m is 2 - m; display order is (S, P, L) = LPS axes (2, 1, 0).
        arr = np.transpose(volume.array, (2 - idx[2], 2 - idx[1], 2 - idx[0]))
        flips = tuple(ax for ax, a in enumerate((2, 1, 0)) if sign[a] < 0)
        if flips:
            arr = np.flip(arr, axis=flips)
        corner = np.where(sign[np.argsort(idx)] < 0, n_ijk - 1, 0)   # index-axis order
        origin = volume.index_to_lps(corner)
        spacing = volume.spacing[idx]
        return np.ascontiguousarray(arr), DisplayGrid(arr.shape, spacing, origin)
    lo, hi = volume.bounds_lps()
    # Keep roughly the volume's own resolution along each LPS axis.
    spacing = np.array([volume.spacing[int(np.argmax(np.abs(volume.direction[a])))] for a in range(3)])
    size = np.maximum(1, np.floor((hi - lo) / spacing + 1e-6).astype(int) + 1)
    grid = DisplayGrid((int(size[2]), int(size[1]), int(size[0])), spacing, lo)
    return resample_to_grid(volume, grid, nearest=nearest, default=default), grid


def resample_to_grid(volume: Volume, grid: DisplayGrid, *, nearest: bool = False,
                     default: float = 0.0) -> np.ndarray:
    """Resample a Volume by physical (LPS) position onto ``grid`` -> array [z, y, x]."""
    ref = sitk.Image([int(s) for s in grid.size_xyz], sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(s) for s in grid.spacing))
    ref.SetOrigin(tuple(float(o) for o in grid.origin))
    ref.SetDirection((1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    img = volume.to_sitk()
    interp = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    out = sitk.Resample(img, ref, sitk.Transform(), interp, float(default), img.GetPixelID())
    return sitk.GetArrayFromImage(out)


class DisplayVolume:
    """CT (and optional labels) ready for the three slice views."""

    def __init__(self, ct: Volume, labels: Optional[LabelMap] = None):
        default = float(np.min(ct.array)) if ct.array.size else 0.0
        self.ct = ct
        self.array, self.grid = to_display(ct, default=default)
        self.labels_array: Optional[np.ndarray] = None
        self.label_names: dict = {}
        self.mr_only: frozenset = frozenset()      # lesion names seen on the MR only (drawn apart)
        if labels is not None:
            self.set_labels(labels)

    def labels_on_grid(self, labels: LabelMap) -> np.ndarray:
        """The label map on this display grid ``[z, y, x]`` (no side effects: safe in a worker)."""
        if labels.same_grid(self.ct):
            arr, _ = to_display(labels, nearest=True)
        else:
            # Labels may sit on another grid (different direction): resample by physical space.
            arr = resample_to_grid(labels, self.grid, nearest=True, default=0)
        return np.ascontiguousarray(arr)

    def set_labels(self, labels: Optional[LabelMap], array: Optional[np.ndarray] = None) -> None:
        """Show ``labels``; ``array`` = a precomputed :meth:`labels_on_grid` result."""
        if labels is None:
            self.labels_array, self.label_names, self.mr_only = None, {}, frozenset()
            return
        self.labels_array = self.labels_on_grid(labels) if array is None else array
        self.label_names = dict(labels.names)
        self.mr_only = mr_only_lesions(labels)

    @property
    def max_label(self) -> int:
        if self.labels_array is None or self.labels_array.size == 0:
            return 0
        return int(self.labels_array.max())

    def n_slices(self, view: str) -> int:
        return int(self.grid.size_xyz[NORMAL_AXIS[view]])

    def slice_index(self, view: str, lps) -> int:
        xyz = self.grid.clamp_index(self.grid.lps_to_index(lps))
        return int(xyz[NORMAL_AXIS[view]])

    def slice(self, view: str, index: int, labels: bool = False) -> np.ndarray:
        """2D [rows, cols] in radiological orientation (see module docstring)."""
        a = self.labels_array if labels else self.array
        if a is None:
            return None
        index = int(np.clip(index, 0, self.n_slices(view) - 1))
        if view == "axial":
            return a[index]
        if view == "coronal":
            return a[::-1, index, :]
        if view == "sagittal":
            return a[::-1, :, index]
        raise ValueError(view)

    def pixel_spacing(self, view: str) -> Tuple[float, float]:
        """(col, row) mm of the slice pixels."""
        sx, sy, sz = self.grid.spacing
        return {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}[view]

    def pixel_to_lps(self, view: str, index: int) -> np.ndarray:
        """4x4: (col, row, 0, 1) of slice ``index`` -> LPS mm."""
        nz = self.grid.shape_zyx[0]
        # Columns of m map (col, row, 0, 1) to display index (x, y, z, 1).
        m = np.zeros((4, 4))
        m[3, 3] = 1.0
        if view == "axial":
            m[0, 0], m[1, 1], m[2, 3] = 1, 1, index
        elif view == "coronal":
            m[0, 0], m[2, 1], m[2, 3], m[1, 3] = 1, -1, nz - 1, index
        elif view == "sagittal":
            m[1, 0], m[2, 1], m[2, 3], m[0, 3] = 1, -1, nz - 1, index
        else:
            raise ValueError(view)
        index_to_lps = np.diag(list(self.grid.spacing) + [1.0])
        index_to_lps[:3, 3] = self.grid.origin
        return index_to_lps @ m

    def lps_to_pixel(self, view: str, lps) -> Tuple[float, float]:
        """LPS mm -> continuous (col, row) in that view's slice image."""
        x, y, z = self.grid.lps_to_index(lps)
        nz = self.grid.shape_zyx[0]
        if view == "axial":
            return float(x), float(y)
        if view == "coronal":
            return float(x), float(nz - 1 - z)
        if view == "sagittal":
            return float(y), float(nz - 1 - z)
        raise ValueError(view)

    def center_lps(self) -> np.ndarray:
        n = np.array(self.grid.size_xyz) - 1
        return self.grid.index_to_lps(n / 2.0)
