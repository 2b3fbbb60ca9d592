"""The constraints of a needle path, hard and soft, and the codes of their violations.

Lengths and clearances in mm, angles in deg. Which rule is hard follows the
review in docs/clinical_evidence.md section 4: a rule stays hard when the harm
of breaking it is documented and it is avoidable in practice (no bone, lung,
gallbladder, bowel, kidney, heart, spleen, pancreas; no crossing of a vessel
>= 3 mm; one capsule crossing; the needle's usable length; no grazing of the
capsule; no entry on the side the patient lies on). Numbers no guideline states
as absolute are *soft*: the 5 mm vessel margin, the 10 mm of normal liver
before the lesion and the 60 deg capsule angle rank paths (a cost) and are
reported as cautions, they do not reject a path.

Every rejection has a stable code (a key of ``REJECT_TEXT``), every soft
shortfall one of ``SOFT_TEXT``: plans count them by code and tests assert on
codes; the words are for people.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from registration.spatial.errors import InputError

#: Outer diameters (mm) of common biopsy needle gauges (Stubs gauge).
GAUGE_OD_MM = {"14G": 2.11, "16G": 1.65, "17G": 1.47, "18G": 1.27, "19G": 1.07,
               "20G": 0.91, "21G": 0.82, "22G": 0.72}
#: Usable lengths (mm) of the needle systems the planner offers: coaxial biopsy
#: systems of 15 and 20 cm (docs/clinical_evidence.md section 4).
NEEDLE_LENGTHS_MM = (150.0, 200.0)
#: Gantry tilt a CT scanner can reach at most (deg; docs/clinical_evidence.md 4.1).
MAX_GANTRY_TILT_LIMIT_DEG = 30.0
#: Patient positions -> the unit vector (LPS) pointing to the table: entries on that side are
#: impossible (the patient lies on it). 'left_decubitus' = left side down.
TABLE_SIDE = {"supine": (0.0, 1.0, 0.0), "prone": (0.0, -1.0, 0.0),
              "left_decubitus": (1.0, 0.0, 0.0), "right_decubitus": (-1.0, 0.0, 0.0)}


@dataclass
class Constraints:
    """Needle-path constraints (lengths in mm, angles in deg); see the module docstring.

    Hard: ``max_length_mm`` (usable needle length), ``vessel_floor_mm`` (the needle
    surface stays this far from a vessel >= 3 mm outside the target lesion; inside it
    it must only not cross one), ``grazing_angle_deg`` (capsule crossed at more than
    this from its normal), ``patient_position`` (no entry on the table side: needle
    direction . table side > ``max_table_side_component``). Soft (cost + caution):
    ``vessel_margin_mm``, ``min_liver_mm``, ``max_capsule_angle_deg``. CT guidance:
    ``max_gantry_tilt_deg`` (a scanner setting); steeper paths are double oblique.
    """
    max_length_mm: float = 150.0
    vessel_margin_mm: float = 5.0
    vessel_floor_mm: float = 2.0
    min_liver_mm: float = 10.0
    max_capsule_angle_deg: float = 60.0
    grazing_angle_deg: float = 80.0
    needle_gauge: str = "18G"             # a key of GAUGE_OD_MM
    step_mm: float = 0.5
    patient_position: str = "supine"      # a key of TABLE_SIDE
    max_table_side_component: float = 0.5
    max_gantry_tilt_deg: float = 15.0
    extra_margin_mm: float = 0.0          # added clearance when planning on a resampled grid

    def __post_init__(self):
        if self.needle_gauge not in GAUGE_OD_MM:
            raise InputError(f"needle gauge {self.needle_gauge!r} is not one of {', '.join(GAUGE_OD_MM)}",
                             fix="choose one of the listed gauges")
        if self.patient_position not in TABLE_SIDE:
            raise InputError(f"patient position {self.patient_position!r} is not one of {', '.join(TABLE_SIDE)}",
                             fix="choose one of the listed positions")
        if not 0.0 <= self.max_gantry_tilt_deg <= MAX_GANTRY_TILT_LIMIT_DEG:
            raise InputError(f"gantry tilt {self.max_gantry_tilt_deg:g} deg is outside [0, "
                             f"{MAX_GANTRY_TILT_LIMIT_DEG:g}] deg", fix="give the tilt the scanner can reach")
        if not 0.0 <= self.vessel_floor_mm <= self.vessel_margin_mm:
            raise InputError(f"vessel floor {self.vessel_floor_mm:g} mm must lie in [0, vessel margin "
                             f"{self.vessel_margin_mm:g} mm]", fix="lower the floor or raise the margin")

    @property
    def needle_radius_mm(self) -> float:
        """Half the outer diameter of the needle (mm)."""
        return 0.5 * GAUGE_OD_MM[self.needle_gauge]

    @property
    def table_side(self) -> np.ndarray:
        """Unit vector (LPS) towards the table for the patient position."""
        return np.asarray(TABLE_SIDE[self.patient_position], float)


#: Hard rules: why a candidate path is rejected (stable code -> words shown to people).
REJECT_TEXT = {
    "leaves_ct_volume": "leaves ct volume",            # reaches the edge of the CT before the skin
    "entry_on_table_side": "entry on the table side",  # the patient lies on that side
    "too_long": "too long for the needle",             # no skin exit within max_length_mm
    "hard_structure": "hard structure",                # bone, lung, gallbladder, bowel, kidney, ... touched
    "vessel": "vessel",                                # a vessel >= 3 mm crossed or within the floor
    "capsule_crossings": "capsule crossings",          # not exactly one liver capsule crossing
    "grazing_capsule": "grazing capsule angle",        # crosses the capsule almost tangentially
}
REJECT_REASONS = tuple(REJECT_TEXT)

#: Soft rules: shortfalls that cost but do not reject (stable code -> words).
SOFT_TEXT = {
    "vessel_margin": "closer than the vessel margin",
    "liver_traverse": "short normal-liver traverse",
    "capsule_angle": "oblique capsule puncture",
}
SOFT_REASONS = tuple(SOFT_TEXT)
