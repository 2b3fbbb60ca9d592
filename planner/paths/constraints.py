"""The hard constraints of a needle path (DESIGN section 7) and the codes of their violations.

Lengths and clearances in mm, angles in deg. Every rejection of a candidate
path has a stable code (a key of ``REJECT_TEXT``): plans count rejections by
code and tests assert on codes; the words are for people.
"""
from __future__ import annotations

from dataclasses import dataclass

from registration.spatial.errors import InputError

#: Outer diameters (mm) of common biopsy needle gauges (Stubs gauge).
GAUGE_OD_MM = {"14G": 2.11, "16G": 1.65, "17G": 1.47, "18G": 1.27, "19G": 1.07,
               "20G": 0.91, "21G": 0.82, "22G": 0.72}


@dataclass
class Constraints:
    """The hard constraints of DESIGN section 7 (lengths in mm, angles in deg)."""
    max_length_mm: float = 150.0
    vessel_margin_mm: float = 5.0
    min_liver_mm: float = 10.0
    max_capsule_angle_deg: float = 60.0
    needle_gauge: str = "18G"             # a key of GAUGE_OD_MM
    step_mm: float = 0.5
    patient_position: str = "supine"     # 'supine' forbids entries on the back
    max_posterior_component: float = 0.5  # d . P above this = entry on the back
    extra_margin_mm: float = 0.0          # added clearance when planning on a resampled grid

    def __post_init__(self):
        if self.needle_gauge not in GAUGE_OD_MM:
            raise InputError(f"needle gauge {self.needle_gauge!r} is not one of {', '.join(GAUGE_OD_MM)}",
                             fix="choose one of the listed gauges")

    @property
    def needle_radius_mm(self) -> float:
        """Half the outer diameter of the needle (mm)."""
        return 0.5 * GAUGE_OD_MM[self.needle_gauge]


#: Why a candidate path is rejected: stable code -> the words shown to people (plan texts, GUI).
REJECT_TEXT = {
    "leaves_ct_volume": "leaves ct volume",            # reaches the edge of the CT before the skin
    "entry_on_back": "entry on back",                  # supine patient: no entry from behind
    "too_long": "too long",                            # no skin exit within max_length_mm
    "hard_structure_or_vessel": "hard structure or vessel",   # clearance below needle radius + margins
    "liver_traverse": "liver traverse",                # less than min_liver_mm of normal liver
    "capsule_crossings": "capsule crossings",          # not exactly one liver capsule crossing
    "capsule_angle": "capsule angle",                  # crosses the capsule too obliquely
}
REJECT_REASONS = tuple(REJECT_TEXT)
