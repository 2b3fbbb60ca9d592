"""The reconstruction's output grid and where each pixel lands in it (PLUS's conventions).

* The output grid is axis-aligned in the **Reference** frame (mm).
* ``origin`` is the position of voxel index (0, 0, 0) -- the *centre* of that
  voxel (VTK image data and MetaImage/NRRD/ITK all define the origin as the
  first voxel's centre, so no half-voxel shift appears anywhere).
* ``extent`` is PLUS's ``OutputExtent`` ``i0 i1 j0 j1 k0 k1``: inclusive index
  bounds, so the size along i is ``i1 - i0 + 1``; voxel (i, j, k) lies at
  ``origin + (i, j, k) * spacing``.
* Without origin/extent (PLUS's ``SetOutputExtentFromFrameList``):
  :func:`extent_from_frames`.
* A pixel (x = column, y = row of the stored frame) goes to the continuous
  voxel index ``((image_to_reference @ [x, y, 0, 1]) - origin) / spacing`` and
  is inserted at ``floor(index + 0.5)`` if that lies in the extent
  (:func:`index_coefficients`, :func:`voxel_indices`).

Flat voxel indices address a numpy ``[k, j, i]`` array; spacing is (i, j, k) mm.
"""
from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

NEAREST_VOXEL_OFFSET = 0.5   # floor(index + 0.5): the nearest voxel (PLUS's rounding)


class OutputGrid(NamedTuple):
    """The reconstruction's output grid, axis-aligned in the Reference frame."""
    extent: Tuple[int, ...]          # PLUS OutputExtent i0 i1 j0 j1 k0 k1 (inclusive)
    dims: Tuple[int, int, int]       # (ni, nj, nk) voxels
    grid_origin: np.ndarray          # Reference mm of the centre of the first stored voxel
    spacing: np.ndarray              # (i, j, k) mm

    @property
    def n_voxels(self) -> int:
        return self.dims[0] * self.dims[1] * self.dims[2]

    @property
    def vshape(self) -> Tuple[int, int, int]:
        """numpy shape ``[k, j, i]``."""
        return self.dims[2], self.dims[1], self.dims[0]


def extent_from_frames(image_to_reference: np.ndarray, valid: np.ndarray, image_shape,
                       spacing, clip_rectangle=None, pixel_mask=None
                       ) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Automatic output box: (origin (3,) mm = centre of voxel 0, extent i0 i1 j0 j1 k0 k1).

    PLUS's rule: the clip-rectangle (or whole-image) corners of every valid frame.
    Without a clip rectangle but with a ``pixel_mask`` (a detected fan), the outline
    pixels of the mask are used instead, so the box hugs the fan rather than the
    blank corners of the image (PLUS has no such mask; give a clip rectangle for
    PLUS's exact box).
    """
    rows, cols = image_shape
    mats = image_to_reference[np.asarray(valid, bool)]
    spacing = np.asarray(spacing, float)
    if clip_rectangle is None and pixel_mask is not None and np.asarray(pixel_mask).any():
        m = np.asarray(pixel_mask, bool)
        inner = np.zeros_like(m)
        inner[1:-1, 1:-1] = (m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:])
        ys, xs = np.nonzero(m & ~inner)        # the extremes of an affine map lie on the outline
        outline = np.stack([xs, ys, np.zeros_like(xs), np.ones_like(xs)], axis=-1).astype(float)
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for mat in mats:
            p = outline @ mat[:3].T
            lo, hi = np.minimum(lo, p.min(axis=0)), np.maximum(hi, p.max(axis=0))
        n = np.ceil((hi - lo) / spacing).astype(int)
        return lo, (0, int(n[0]), 0, int(n[1]), 0, int(n[2]))
    min_x, max_x, min_y, max_y = 0.0, float(cols - 1), 0.0, float(rows - 1)
    if clip_rectangle is not None and clip_rectangle[2] > 0 and clip_rectangle[3] > 0:
        min_x = max(min_x, float(clip_rectangle[0]))
        max_x = min(max_x, float(clip_rectangle[0]) + float(clip_rectangle[2]))
        min_y = max(min_y, float(clip_rectangle[1]))
        max_y = min(max_y, float(clip_rectangle[1]) + float(clip_rectangle[3]))
    corners = np.array([[min_x, min_y, 0, 1], [min_x, max_y, 0, 1],
                        [max_x, min_y, 0, 1], [max_x, max_y, 0, 1]], float)
    pts = np.einsum("nij,cj->nci", mats, corners)[..., :3].reshape(-1, 3)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    n = np.ceil((hi - lo) / spacing).astype(int)
    return lo, (0, int(n[0]), 0, int(n[1]), 0, int(n[2]))


def index_coefficients(image_to_reference: np.ndarray, origin, spacing) -> np.ndarray:
    """3x3 rows (i, j, k): ``index + 0.5 = c[:, 0] * x + (c[:, 1] * y + c[:, 2])``.

    ``origin`` is the centre of the first stored voxel (mm), ``spacing`` (3,) mm;
    x = column, y = row of the frame. The 0.5 of the nearest-voxel rounding is
    folded into c[:, 2], so ``int(value)`` for value >= 0 is PLUS's
    ``floor(index + 0.5)``.
    """
    m = np.asarray(image_to_reference, float)
    origin = np.asarray(origin, float)
    spacing = np.asarray(spacing, float)
    c = np.empty((3, 3))
    c[:, 0] = m[:3, 0] / spacing
    c[:, 1] = m[:3, 1] / spacing
    c[:, 2] = (m[:3, 3] - origin) / spacing + NEAREST_VOXEL_OFFSET
    return c


def voxel_indices(coef: np.ndarray, image_shape, dims_ijk, pixel_mask=None,
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest voxels of a frame's pixels: (flat indices into ``[k, j, i]``, pixel selector).

    The selector is a bool ``[rows*cols]`` of the pixels that are in
    ``pixel_mask`` and land inside the grid; ``flat`` lists their voxels in
    raster order (row by row). Per axis the value is
    ``c0 * x + (c1 * y + c2)`` in float64, evaluated as a column term plus a
    row term, so a plain loop with the same expression gives identical voxels.
    """
    rows, cols = image_shape
    ni, nj, nk = dims_ijk
    x = np.arange(cols, dtype=np.float64)
    y = np.arange(rows, dtype=np.float64)
    sel = None if pixel_mask is None else np.asarray(pixel_mask, bool).reshape(-1)
    idx = []
    for a, n in enumerate((ni, nj, nk)):
        v = ((coef[a, 0] * x)[None, :] + (coef[a, 1] * y + coef[a, 2])[:, None]).reshape(-1)
        lo, hi = v.min(), v.max()
        if lo < 0 or hi >= n:   # some pixels fall outside: test them (skipped when all inside)
            ok = (v >= 0) & (v < n)
            sel = ok if sel is None else (sel & ok)
        idx.append(v)
    if sel is None:
        ii, jj, kk = (v.astype(np.int64) for v in idx)
        sel = np.ones(rows * cols, bool)
    else:
        ii, jj, kk = (v[sel].astype(np.int64) for v in idx)
    # Values are >= 0 here, so truncation is floor(index + 0.5).
    return (kk * nj + jj) * ni + ii, sel
