"""Registration accuracy a lesion needs for fusion-guided biopsy.

The needle tip misses by the total targeting error: registration, tracking,
needle and breathing terms added in quadrature (DESIGN section 7,
:func:`registration.align.uncertainty.total_error_mm`). With an isotropic
Gaussian error of rms ``T`` (sigma = T / sqrt 3 per axis) the tip lands inside a
spherical lesion of radius R with probability
:func:`registration.align.uncertainty.hit_probability` (the one home of that
formula). This module inverts the two: the largest total error that still gives
the required hit probability (0.69 R for 90 %), and from it the largest
registration TRE once the other terms are taken out. When the other terms alone
already exceed the total budget no registration is good enough: ``None``.
Distances in mm.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Optional

from registration.align.uncertainty import (BREATHING_MM, NEEDLE_MM, TRACKING_MM, hit_probability,
                                            total_error_mm)

HIT_PROBABILITY_REQUIRED = 0.90


def max_total_error_mm(radius_mm: float, p_required: float = HIT_PROBABILITY_REQUIRED) -> float:
    """Largest total rms error (mm) with hit_probability(radius, error) >= p_required.

    hit_probability falls monotonically with the error, so bisection on
    [0, radius / 0.1] (p there is ~1e-3) to 1e-9 relative; the result scales
    with the radius (0.693 R at 90 %, DESIGN section 7: 0.69 R).
    """
    if not radius_mm > 0:
        raise ValueError(f"radius_mm must be > 0, got {radius_mm}")
    if not 0.0 < p_required < 1.0:
        raise ValueError(f"p_required must be in (0, 1), got {p_required}")
    lo, hi = 0.0, radius_mm / 0.1
    while hit_probability(radius_mm, hi) >= p_required:   # defensive: widen if ever needed
        hi *= 2.0
    while hi - lo > 1e-9 * radius_mm:
        mid = 0.5 * (lo + hi)
        if hit_probability(radius_mm, mid) >= p_required:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class FusionNeed:
    """What registration accuracy a lesion of ``radius_mm`` needs (mm, rms)."""
    radius_mm: float
    p_required: float
    total_allowed_mm: float          # largest total targeting error
    other_terms_mm: float            # tracking, needle, breathing in quadrature
    registration_allowed_mm: Optional[float]   # None: not reachable even with a perfect registration
    explanation: str

    def as_dict(self) -> dict:
        d = asdict(self)
        for k in ("radius_mm", "total_allowed_mm", "other_terms_mm", "registration_allowed_mm"):
            if d[k] is not None:
                d[k] = round(d[k], 2)
        return d


def fusion_need(radius_mm: float, *, p_required: float = HIT_PROBABILITY_REQUIRED,
                tracking_mm: float = TRACKING_MM, needle_mm: float = NEEDLE_MM,
                breathing_mm: float = BREATHING_MM) -> FusionNeed:
    """Registration TRE budget for a lesion of radius R (mm) at the required hit probability."""
    total = max_total_error_mm(radius_mm, p_required)
    others = total_error_mm(0.0, tracking_mm=tracking_mm, needle_mm=needle_mm, breathing_mm=breathing_mm)
    reg = math.sqrt(total ** 2 - others ** 2) if total > others else None
    pct = f"{100 * p_required:.0f} %"
    if reg is None:
        text = (f"a {2 * radius_mm:.0f} mm lesion needs a total targeting error <= {total:.1f} mm rms for a "
                f"{pct} hit probability, but tracking, needle and breathing alone give {others:.1f} mm: "
                "no registration is accurate enough")
    else:
        text = (f"a {2 * radius_mm:.0f} mm lesion needs a registration TRE <= {reg:.1f} mm rms for a {pct} hit "
                f"probability (total <= {total:.1f} mm with {others:.1f} mm from tracking, needle and breathing)")
    return FusionNeed(radius_mm=float(radius_mm), p_required=float(p_required), total_allowed_mm=total,
                      other_terms_mm=others, registration_allowed_mm=reg, explanation=text)


def required_registration_tre_mm(radius_mm: float, **kwargs) -> Optional[float]:
    """Largest registration TRE (mm rms) for the required hit probability; None if unreachable."""
    return fusion_need(radius_mm, **kwargs).registration_allowed_mm


#: What US-CT fusion reaches in patients, the figure a lesion's need is compared with when
#: there is no registration yet: 5.7 +/- 4.3 mm (mean +/- SD of the error, automatic
#: registration; RCT, DESIGN section 1). fusion_need works in rms, and the rms of an error
#: with that mean and SD is sqrt(mean^2 + SD^2) = 7.1 mm.
CLINICAL_TRE_MEAN_MM = 5.7
CLINICAL_TRE_SD_MM = 4.3
CLINICAL_TRE_RMS_MM = math.hypot(CLINICAL_TRE_MEAN_MM, CLINICAL_TRE_SD_MM)
EXPECTED_TRE_SOURCE = (
    f"clinical US-CT fusion error {CLINICAL_TRE_MEAN_MM:g} +/- {CLINICAL_TRE_SD_MM:g} mm (automatic, RCT, "
    f"DESIGN section 1) = {CLINICAL_TRE_RMS_MM:.1f} mm rms; used instead of the LC2 benchmark (median 0.5 mm, "
    "p90 2.3 mm static, 10.4 / 13.0 mm with breathing, benchmarks/results/registration.md) because that "
    "benchmark runs on the synthetic demo case, whose ultrasound is simulated from the CT itself, and does not "
    "predict a real patient")


def fusion_reachable(need: FusionNeed, expected_tre_mm: float = CLINICAL_TRE_RMS_MM) -> bool:
    """True when the registration a lesion needs is no better than what fusion reaches in patients."""
    return need.registration_allowed_mm is not None and need.registration_allowed_mm >= expected_tre_mm
