"""A second, deliberately different ultrasound model: for testing that registration does not
depend on this project's own simulator (the product is judged on an independent one).

The demo simulator (:mod:`.echo_envelope`) takes backscatter, attenuation and impedance per
tissue class, a scatterer field fixed in the patient, specular echoes weighted by incidence, a
PSF, haze and noise. This model shares only the geometry (the same polar sampling of the CT
and scan conversion, so frame poses and truth are exact) and replaces the physics with the
intensity-based model of Wein et al. 2008 (Med Image Anal 12:577, section 2.2) as simple CT-to-US
simulators do:

* reflection from the CT itself: r = (dmu/dz)^2 / (2 mu)^2 along the beam, mu = HU + 1000
  (no impedance table, no incidence weighting), scaled by ``reflection_gain``;
* transmission exp(-cumulative reflection) and a full shadow after HU > 300 (bone) or
  HU < -400 (gas);
* scattering from the HU alone: a smooth mapping of soft-tissue HU to echogenicity
  (``scatter_of_hu``: fat and fluid dark, enhanced parenchyma brighter), with FRESH Rayleigh
  speckle drawn per frame (not fixed in the patient) and no PSF blur;
* uniform attenuation 0.5 dB/cm/MHz exactly compensated (no depth fall-off), a 55 dB log
  compression with liver near grey 100.

Labels are not used at all (only the geometric rule that the air under the probe face is
coupling gel). Numbers here are choices for a stress test, not measurements.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .simulator_settings import SimulatorSettings
from .tissue_classes import CLASS
from .us_simulator import UltrasoundSimulator

#: Reflection scale (mm): a liver / fat interface (160 HU, smoothed over ``AXIAL_SMOOTHING_MM``) gives
#: sqrt(r) ~ 0.04 / mm, so this makes it ~4 times the liver speckle's mean amplitude. Was 4e4 with
#: unsmoothed sample differences: CT noise then outshone the speckle everywhere.
REFLECTION_GAIN = 100.0
#: Gaussian sigma (mm) of the smoothing of the sampled CT along each beam (the pulse's extent).
AXIAL_SMOOTHING_MM = 0.75
#: Transmission loss per unit of cumulative reflection (mm): exp(-TRANSMISSION_LOSS * sum(r * ds)).
TRANSMISSION_LOSS = 50.0
#: Log-compression range (dB) and liver grey of this model.
DYNAMIC_RANGE_DB = 55.0
LIVER_GREY = 100.0


def scatter_of_hu(hu: np.ndarray) -> np.ndarray:
    """Mean backscatter amplitude (liver-like 60 HU ~ 1) from HU alone: a logistic ramp from
    water/fat (dark) to enhanced parenchyma, so contrast-filled vessels (~150 HU and above)
    come out a little brighter than liver: the opposite of real blood (anechoic), on purpose."""
    h = np.clip(hu.astype(np.float32), -200.0, 400.0)
    return (0.08 + 1.2 / (1.0 + np.exp(-(h - 30.0) / 15.0))).astype(np.float32)


class PlainPhysicsSimulator(UltrasoundSimulator):
    """:class:`UltrasoundSimulator` geometry with the model of this module's docstring."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("settings", SimulatorSettings(dynamic_range_db=DYNAMIC_RANGE_DB, liver_grey=LIVER_GREY,
                                                        smoothing_mm=(0.0, 0.0)))
        super().__init__(*args, **kwargs)

    def _envelope(self, hu, cls, pts, rng) -> np.ndarray:
        ds = self.probe.sample_mm
        # The air gap under the curved face is coupling gel (water), as on a patient: without it the
        # rays that start beside the skin were blocked and the fan narrowed to a wedge.
        hu = np.where(cls == CLASS["gel"], np.float32(0.0), hu)
        # The CT is smoothed along the beam (``AXIAL_SMOOTHING_MM``, the pulse length) before anything
        # is derived from it, as Wein et al. filter the CT: on a real CT's noise (10-20 HU per voxel) the
        # raw sample-to-sample differences made every sample a strong reflector and single noisy voxels
        # below -400 HU blocked whole beams (striped frames, 2026-12-05).
        hu_s = gaussian_filter1d(hu.astype(np.float32), AXIAL_SMOOTHING_MM / ds, axis=1, mode="nearest")
        mu = np.clip(hu_s, -1000.0, 3000.0) + np.float32(1000.0)
        dmu = np.zeros_like(mu)
        dmu[:, 1:] = (mu[:, 1:] - mu[:, :-1]) / np.float32(ds)             # 1/mm
        refl = dmu ** 2 / (np.float32(2.0) * np.maximum(mu, 1.0)) ** 2     # 1/mm^2
        trans = np.exp(-np.cumsum(refl, axis=1) * np.float32(ds * TRANSMISSION_LOSS))
        blocked = np.maximum.accumulate((hu_s > 300) | (hu_s < -400), axis=1)
        lag = max(1, int(round(1.0 / ds)))
        trans[:, lag:][blocked[:, :-lag]] = 0.0
        u = rng.random(mu.shape, dtype=np.float32)
        speckle = np.sqrt(-np.log1p(-u)) * np.float32(2.0 / np.sqrt(np.pi))   # Rayleigh, mean 1
        echo = scatter_of_hu(hu_s) * speckle + np.float32(REFLECTION_GAIN) * np.sqrt(refl)
        floor = np.float32(10.0 ** (-40.0 / 20.0)) * rng.random(mu.shape, dtype=np.float32)
        return echo * trans + floor
