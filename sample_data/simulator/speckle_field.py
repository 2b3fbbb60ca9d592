"""The simulator's scatterer field: fixed in CT space, Rayleigh speckle.

Each cell of a regular grid in CT LPS mm (cell size ``speckle_cell_mm``, the
caller computes the int64 cell indices) gets a complex Gaussian amplitude
with unit variance, picked from a fixed table by a hash of the cell and the
seed, so the nearby frames of a sweep that see the same cell share their
speckle. The table comes from its own generator (seed 20240611) at import:
it consumes nothing from the simulator's noise generator.
"""
from __future__ import annotations

import numpy as np


def _hash_complex(cells: np.ndarray, seed: int) -> np.ndarray:
    """[m, 3] int64 cell indices -> [m] complex64 unit-variance Gaussian, fixed per cell."""
    c = cells.astype(np.uint64)
    h = (c[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (c[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)) \
        ^ (c[:, 2] * np.uint64(0x165667B19E3779F9)) ^ np.uint64(seed * 0x27D4EB2F165667C5 & (2**64 - 1))
    # splitmix64 finaliser: decorrelates neighbouring cells.
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return _GAUSS_TABLE[(h & np.uint64(_TABLE_MASK)).astype(np.intp)]


_TABLE_MASK = (1 << 20) - 1
_RE_IM = np.random.default_rng(20240611).standard_normal((2, _TABLE_MASK + 1)) / np.sqrt(2.0)
_GAUSS_TABLE = (_RE_IM[0] + 1j * _RE_IM[1]).astype(np.complex64)
del _RE_IM
