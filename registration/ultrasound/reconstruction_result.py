"""The result of a volume reconstruction: the volume, its hit counts and how it was made.

The volume lies on a grid axis-aligned in the sweep's **Reference** frame (mm),
identity direction, origin = centre of the first stored voxel (see
:mod:`registration.ultrasound.reconstruction`). Arrays are numpy ``[k, j, i]``; timings
are in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

from registration.spatial.volume import Volume


@dataclass
class ReconstructionResult:
    """A reconstructed volume and how it was made.

    ``volume``: values in the Reference frame (uint8 for uint8 frames unless
    ``output_dtype`` says otherwise), 0 where nothing was inserted or filled.
    ``weights``: uint32 ``[k, j, i]`` number of pixels inserted per voxel
    (PLUS's accumulation buffer / 256, without its cap). ``filled``: bool
    ``[k, j, i]``, voxels set by hole filling. ``timings`` in seconds.
    """
    volume: Volume
    weights: np.ndarray
    filled: np.ndarray
    n_frames_used: int
    n_frames_invalid: int
    n_frames_total: int
    n_pixels_inserted: int
    output_extent: Tuple[int, int, int, int, int, int]
    compounding: str
    timings: Dict[str, float] = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def hit_fraction(self) -> float:
        """Fraction of grid voxels that received at least one pixel."""
        return float(np.count_nonzero(self.weights)) / self.weights.size

    @property
    def filled_fraction(self) -> float:
        """Fraction of grid voxels that hold data after hole filling (inserted + filled)."""
        return float(np.count_nonzero(self.weights) + np.count_nonzero(self.filled)) / self.weights.size

    def summary(self) -> dict:
        """Plain facts for the CLI and logs: frames, grid (mm), fractions, timings (s), notes."""
        v = self.volume
        return {
            "frames_used": self.n_frames_used, "frames_invalid": self.n_frames_invalid,
            "frames_total": self.n_frames_total, "size_ijk": list(v.shape_ijk),
            "spacing_mm": [float(s) for s in v.spacing], "origin_mm": [float(o) for o in v.origin],
            "output_extent": list(self.output_extent), "compounding": self.compounding,
            "hit_fraction": self.hit_fraction, "filled_fraction": self.filled_fraction,
            "pixels_inserted": self.n_pixels_inserted,
            "timings_s": dict(self.timings), "notes": list(self.notes),
        }
