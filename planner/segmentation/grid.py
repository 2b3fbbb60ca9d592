"""A coarser working grid for the organ-scale steps, and the way back to the CT grid.

Finding the liver needs context tens of millimetres wide (openings, hole
filling, component analysis); doing that on a 0.7 mm grid of 512x512x300
voxels costs minutes, so those steps run on a grid of whole blocks of CT
voxels, about :data:`WORK_SPACING_MM` on a side (an integer number of voxels
per axis, so going down is a block average: a box anti-aliasing filter that
also averages the noise, at the cost of one pass over the CT). Masks go down
as the fraction of each block they cover, and back up by linear
interpolation of that fraction at 0.5 (a smooth boundary, not staircase blocks).
Geometry is SimpleITK's: arrays ``[k, j, i]``, spacing ``(i, j, k)`` mm, LPS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk

from registration.spatial.volume import Volume

WORK_SPACING_MM = 2.2


def _geometry_image(size_ijk, spacing, origin, direction) -> sitk.Image:
    ref = sitk.Image([int(s) for s in size_ijk], sitk.sitkUInt8)
    ref.SetSpacing(tuple(float(s) for s in spacing))
    ref.SetOrigin(tuple(float(o) for o in origin))
    ref.SetDirection(tuple(float(d) for d in np.asarray(direction).reshape(-1)))
    return ref


def block_mean(a: np.ndarray, factors_kji) -> np.ndarray:
    """float32 mean over blocks of ``factors_kji`` voxels (edges padded by replication)."""
    f = [int(x) for x in factors_kji]
    if f == [1, 1, 1]:
        return a.astype(np.float32)
    pad = [(0, (-n) % b) for n, b in zip(a.shape, f)]
    if any(p[1] for p in pad):
        a = np.pad(a, pad, mode="edge")
    nk, nj, ni = (n // b for n, b in zip(a.shape, f))
    out = np.zeros((nk, nj, ni), np.float32)
    # sum plane by plane of the block: bounded memory, no float copy of the whole CT
    for dk in range(f[0]):
        for dj in range(f[1]):
            for di in range(f[2]):
                out += a[dk::f[0], dj::f[1], di::f[2]]
    out /= float(np.prod(f))
    return out


@dataclass
class WorkGrid:
    """HU on the working grid (float32 ``[k, j, i]``), its block factors and the CT it came from."""
    hu: np.ndarray
    factors: tuple               # CT voxels per working voxel, (k, j, i)
    spacing: np.ndarray          # (i, j, k) mm of the working grid
    origin: np.ndarray
    direction: np.ndarray
    ct: Volume

    def _ref(self) -> sitk.Image:
        k, j, i = self.hu.shape
        return _geometry_image((i, j, k), self.spacing, self.origin, self.direction)

    def _ct_ref(self) -> sitk.Image:
        return _geometry_image(self.ct.shape_ijk, self.ct.spacing, self.ct.origin, self.ct.direction)

    def ct_box(self, mask: np.ndarray, margin_mm: float = 0.0) -> Optional[tuple]:
        """Slices ``[k, j, i]`` of the CT grid covering a working-grid mask's blocks plus a margin."""
        idx = [np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != ax))) for ax in range(3)]
        if any(i.size == 0 for i in idx):
            return None
        sp_kji = np.asarray(self.ct.spacing, float)[::-1]
        out = []
        for ax, (i, f, n) in enumerate(zip(idx, self.factors, self.ct.array.shape)):
            m = int(np.ceil(margin_mm / sp_kji[ax]))
            out.append(slice(max(0, int(i[0]) * f - m), min(n, (int(i[-1]) + 1) * f + m)))
        return tuple(out)

    def values_to_ct(self, values: np.ndarray, outside: float = 0.0,
                     box: Optional[tuple] = None) -> np.ndarray:
        """Working-grid values on the CT grid, or on its crop ``box`` (linear interpolation, float32).

        The working grid is padded by one block (edge values) first: the CT's
        outermost voxel centres lie half a block beyond the outermost block
        centres, where a linear interpolator would otherwise return ``outside``.
        """
        img = sitk.GetImageFromArray(np.pad(values.astype(np.float32, copy=False), 1, mode="edge"))
        img.SetSpacing(tuple(float(x) for x in self.spacing))
        img.SetOrigin(tuple(float(x) for x in self.origin - self.direction @ self.spacing))
        img.SetDirection(tuple(float(d) for d in self.direction.reshape(-1)))
        ref = self._ct_ref()
        if box is not None:
            start = [int(b.start) for b in box[::-1]]                      # (i, j, k)
            size = [int(b.stop - b.start) for b in box[::-1]]
            ref = _geometry_image(size, self.ct.spacing, self.ct.index_to_lps(np.array(start, float)),
                                  self.ct.direction)
        return sitk.GetArrayFromImage(sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear,
                                                    float(outside)))

    def mask_to_ct(self, mask: np.ndarray, box: Optional[tuple] = None) -> np.ndarray:
        """A working-grid mask on the CT grid or its crop (linear interpolation, >= 0.5): smooth edges."""
        return self.values_to_ct(mask.astype(np.float32), box=box) >= 0.5

    def zone_to_ct(self, mask: np.ndarray) -> np.ndarray:
        """A working-grid mask on the whole CT grid, block by block (nearest): for zones that
        only restrict a full-resolution decision, where staircase edges do not matter."""
        out = mask
        for ax, f in enumerate(self.factors):
            if f > 1:
                out = np.repeat(out, f, axis=ax)
        return np.ascontiguousarray(out[tuple(slice(0, n) for n in self.ct.array.shape)])

    def mask_from_ct(self, mask: np.ndarray, fraction: float = 0.5) -> np.ndarray:
        """Working voxels whose block is at least ``fraction`` covered by the CT-grid mask.

        A small fraction keeps thin structures (cortex, vessel walls) on the coarse grid.
        """
        return block_mean(mask.view(np.uint8), self.factors) >= fraction

    def lps_to_kji(self, point_lps) -> np.ndarray:
        """Nearest working-grid voxel index ``[k, j, i]`` of an LPS point (may lie outside)."""
        r = np.asarray(self.direction) * np.asarray(self.spacing)[None, :]
        ijk = np.linalg.solve(r, np.asarray(point_lps, float) - self.origin)
        return np.rint(ijk[::-1]).astype(int)


def make_work_grid(ct: Volume, spacing_mm: float = WORK_SPACING_MM) -> WorkGrid:
    """The CT as block averages of about ``spacing_mm`` per axis (float32 HU)."""
    old = np.asarray(ct.spacing, float)                       # (i, j, k)
    f_ijk = np.maximum(1, np.round(spacing_mm / old)).astype(int)
    factors = tuple(int(x) for x in f_ijk[::-1])
    new = old * f_ijk
    origin = ct.origin + ct.direction @ (old * (f_ijk - 1) / 2.0)   # centre of the first block
    hu = block_mean(ct.array, factors)
    return WorkGrid(hu=hu, factors=factors, spacing=new, origin=origin,
                    direction=np.asarray(ct.direction, float), ct=ct)
