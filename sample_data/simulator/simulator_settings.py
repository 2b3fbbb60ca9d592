"""Knobs of the simulator's image formation (mm, dB, grey levels).

The defaults were tuned so that homogeneous liver matches a real in-vivo
convex sweep (``python -m sample_data.case.realism``: grey mean/SNR, speckle grain
FWHM, fall-off with depth). dB levels are relative to the liver echo at the
face unless stated; PSF sizes are at 3.5 MHz and scale with 3.5 / f.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple


@dataclass
class SimulatorSettings:
    """Knobs of the image formation (tuned against the real liver sweep, see realism.py)."""

    speckle_cell_mm: float = 0.3
    psf_axial_mm: float = 0.4          # at 3.5 MHz; scales with 3.5 / f (0.3 -> grain too fine vs real)
    psf_lateral_mm: float = 0.9
    specular_gain: float = 30.0        # specular amplitude per unit |r| relative to liver speckle
    incidence_power: float = 2.0
    tgc_alpha: float = 0.38            # dB/cm/MHz the TGC compensates
    dynamic_range_db: float = 70.0
    liver_grey: float = 64.0           # grey of liver speckle at the face (before attenuation)
    noise_db: float = -62.0            # electronic noise floor re liver echo at the face
    floor_db: float = -23.0            # noise after the TGC, re liver echo at the face
    clutter_db: float = -9.0           # side-lobe/reverberation haze re the local mean echo
    clutter_mm: float = 10.0           # size of the neighbourhood the haze comes from
    smoothing_mm: Tuple[float, float] = (0.2, 0.45)  # post-log speckle reduction (axial, lateral)
    extra: dict = field(default_factory=dict)
