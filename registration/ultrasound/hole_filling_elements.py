"""PLUS hole-filling elements: their settings, the default list, and reading them from PLUS.

A ``GAUSSIAN`` element (:class:`GaussianElement`, computed by
:mod:`registration.ultrasound.gaussian_hole_filling`) or a ``STICK`` element
(:class:`StickElement`, computed by :mod:`registration.ultrasound.stick_hole_filling`)
is one entry of PLUS's ordered ``<HoleFillingElement>`` list; the first
element that fills a hole gives it its value (:func:`registration.ultrasound.hole_filling.apply_elements`).

Sizes, sigmas and stick lengths are in voxels (PLUS convention, not mm).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Tuple

from registration.spatial.errors import InputError

# A STICK element without these settings uses the values of the PLUS SpinePhantom configs
# (PLUS itself requires StickLengthLimit; its NumberOfSticksToUse defaults to 1).
DEFAULT_STICK_LENGTH_LIMIT_VOXELS = 9
DEFAULT_STICKS_TO_USE = 1
MIN_GAUSSIAN_SIZE_VOXELS = 3             # the smallest odd window with a neighbour each side


@dataclass(frozen=True)
class GaussianElement:
    """One PLUS ``HoleFillingElement Type="GAUSSIAN"``: window ``size`` (odd, voxels),
    ``stdev`` (voxels), fill only if known/size^3 > ``min_ratio``."""
    size: int
    stdev: float
    min_ratio: float

    def __post_init__(self):
        if self.size < MIN_GAUSSIAN_SIZE_VOXELS or self.size % 2 == 0:
            raise InputError(f"hole-filling kernel size must be odd and >= 3, got {self.size}")
        if not self.stdev > 0:
            raise InputError(f"hole-filling kernel stdev must be > 0, got {self.stdev}")
        if not 0 <= self.min_ratio < 1:
            raise InputError(f"hole-filling MinimumKnownVoxelsRatio must be in [0, 1), got {self.min_ratio}")


@dataclass(frozen=True)
class StickElement:
    """One PLUS ``HoleFillingElement Type="STICK"`` (see :func:`fill_holes_sticks`)."""
    stick_length_limit: int = DEFAULT_STICK_LENGTH_LIMIT_VOXELS
    sticks_to_use: int = DEFAULT_STICKS_TO_USE


# Growing kernel, bounded to 3 passes, so a hole is filled only from data at most 3 voxels
# away. Freehand data are thin slices with gaps, so the known fraction of a window is often
# below one half (slices every third voxel: 1/3); PLUS's strict 0.50001 would then fill only
# one-voxel gaps. These ratios fill gaps of up to ~4 voxels between slices and grow the edge
# of a dense region by at most 1-3 voxels (fraction outside a flat face of solid data:
# (r - d + 1) / s at distance d).
DEFAULT_ELEMENTS: Tuple[GaussianElement, ...] = (
    GaussianElement(3, 0.6667, 0.25),
    GaussianElement(5, 1.0, 0.15),
    GaussianElement(7, 1.3333, 0.1),
)


def elements_from_plus(items: Iterable[dict]) -> Tuple[list, List[str]]:
    """Convert PLUS ``<HoleFillingElement>`` attribute dicts.

    Returns (elements, notes). GAUSSIAN and GAUSSIAN_ACCUMULATION are used as
    GAUSSIAN (the accumulation weighting is not applied), STICK as STICK; other
    types (NEAREST_NEIGHBOR, DISTANCE_WEIGHT_INVERSE) are not implemented and
    are reported in ``notes`` so the caller can say so.
    """
    out: list = []
    notes: List[str] = []
    for item in items:
        kind = str(item.get("Type", "")).upper()
        if kind in ("GAUSSIAN", "GAUSSIAN_ACCUMULATION"):
            try:
                out.append(GaussianElement(int(float(item["Size"])), float(item["Stdev"]),
                                           float(item["MinimumKnownVoxelsRatio"])))
            except (KeyError, ValueError) as exc:
                raise InputError(f"HoleFillingElement {item} lacks a numeric {exc}",
                                 fix="give Size, Stdev and MinimumKnownVoxelsRatio") from None
        elif kind == "STICK":
            try:
                out.append(StickElement(
                    int(float(item.get("StickLengthLimit", DEFAULT_STICK_LENGTH_LIMIT_VOXELS))),
                    int(float(item.get("NumberOfSticksToUse", DEFAULT_STICKS_TO_USE)))))
            except ValueError:
                raise InputError(f"HoleFillingElement {item} has a non-numeric stick setting",
                                 fix="give StickLengthLimit and NumberOfSticksToUse as integers") from None
        else:
            notes.append(f"hole-filling element {kind or '?'} is not implemented; "
                         "the default growing Gaussian kernels are used instead")
    return out, notes
