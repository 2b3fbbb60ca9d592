"""Put a CT into the anatomical index order the segmentation reasons in, and back.

The anatomy rules say "right", "posterior", "superior". They are written once
for arrays whose index axes point, as nearly as the direction allows, to
patient left (+i), posterior (+j) and superior (+k): the DICOM LPS order of a
standard axial CT. Any other storage order (flipped rows, feet-first slice
order, a sagittal stack) is brought to it by permuting and flipping the array
axes exactly (no interpolation), and the labels are brought back by the
inverse permutation and flips, so the result lies voxel for voxel on the
CT's own grid.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from registration.spatial.volume import Volume


@dataclass(frozen=True)
class Reorientation:
    """Axis permutation and flips from the CT's ``[k, j, i]`` array to the canonical one."""
    perm_kji: tuple         # canonical axis a takes original array axis perm_kji[a]
    flip_kji: tuple         # canonical axis a is reversed

    def array_to_canonical(self, a: np.ndarray) -> np.ndarray:
        out = np.transpose(a, self.perm_kji)
        for axis, f in enumerate(self.flip_kji):
            if f:
                out = np.flip(out, axis)
        return np.ascontiguousarray(out)

    def array_from_canonical(self, a: np.ndarray) -> np.ndarray:
        out = a
        for axis, f in enumerate(self.flip_kji):
            if f:
                out = np.flip(out, axis)
        return np.ascontiguousarray(np.transpose(out, np.argsort(self.perm_kji)))


def canonical(ct: Volume) -> tuple:
    """(canonical Volume, Reorientation): the same voxels with i -> L, j -> P, k -> S."""
    d = np.asarray(ct.direction, float)
    # which original geometric axis (i=0, j=1, k=2) points most along L, P, S
    axis_for = []
    for lps in range(3):
        order = np.argsort(-np.abs(d[lps]))
        axis_for.append(next(int(a) for a in order if int(a) not in axis_for))
    signs = [np.sign(d[lps, axis_for[lps]]) or 1.0 for lps in range(3)]
    # array axes are reversed geometric axes: array axis of geometric axis g is 2 - g
    perm_kji = tuple(2 - axis_for[2 - a] for a in range(3))
    flip_kji = tuple(bool(signs[2 - a] < 0) for a in range(3))
    reo = Reorientation(perm_kji, flip_kji)
    arr = reo.array_to_canonical(ct.array)
    spacing = np.array([ct.spacing[g] for g in axis_for])
    direction = np.column_stack([d[:, g] * s for g, s in zip(axis_for, signs)])
    # origin: LPS of the canonical voxel (0, 0, 0) = original index with flipped axes at their far end
    n_ijk = np.array(ct.shape_ijk) - 1
    first = np.zeros(3)
    for lps, g in enumerate(axis_for):
        if signs[lps] < 0:
            first[g] = n_ijk[g]
    origin = ct.index_to_lps(first)
    return Volume(arr, spacing, origin, direction, dict(ct.metadata)), reo
