"""Echo envelope along the beams: the simulator's acoustic model.

Inputs are per polar sample, each [n_beams, n_samples] (beam x depth, samples
``probe.sample_mm`` apart along the beam): HU, tissue class index (see
:mod:`sample_data.simulator.tissue_classes`) and the LPS mm position in the CT. Per
sample:

* interface reflection R = ((Z2-Z1)/(Z2+Z1))^2 along the beam (Z in MRayl;
  for unnamed soft tissue Z follows HU), weighted by the incidence cos^2
  (angle between the in-plane Z gradient and the beam);
* transmission: cumulative product of (1 - R), and a FULL shadow after the
  first bone or gas sample;
* attenuation exp(-2 alpha f z / 8.686) with alpha (dB/cm/MHz) per class,
  minus the TGC (``tgc_alpha`` dB/cm/MHz);
* Rayleigh speckle from the scatterer field fixed in CT space
  (:mod:`sample_data.simulator.speckle_field`) scaled by sqrt(backscatter) per class,
  plus the coherent specular echoes, blurred by a Gaussian PSF (sigma axial
  0.4 mm, lateral 0.9 mm at 3.5 MHz, scaled by 3.5/f);
* a haze of the local mean echo (side lobes, reverberation), electronic noise
  before the TGC and a noise floor after it (the only draw from ``rng``).

The envelope is linear, 1 = liver speckle at the face.
"""
from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from .probe import ConvexProbe
from .simulator_settings import SimulatorSettings
from .speckle_field import _hash_complex
from .tissue_classes import _ALPHA, _AMP, _Z, CLASS


def beam_spacing_mm(probe: ConvexProbe) -> np.ndarray:
    """Lateral distance (mm) between neighbouring beams at each sample depth, float32 [n_samples]."""
    p = probe
    return ((p.radius_mm + p.sample_depths_mm)
            * (2 * p.half_angle_rad / (p.n_beams - 1))).astype(np.float32)


def tgc_gain_db(probe: ConvexProbe, frequency_mhz: float, tgc_alpha: float) -> np.ndarray:
    """TGC gain (dB) at each sample depth, float32 [n_samples]: two-way ``tgc_alpha`` dB/cm/MHz."""
    return (2.0 * frequency_mhz * tgc_alpha
            * probe.sample_depths_mm / 10.0).astype(np.float32)


def echo_envelope(hu, cls, pts, rng, *, probe: ConvexProbe, settings: SimulatorSettings,
                  frequency_mhz: float, seed: int, beam_mm: np.ndarray, tgc_db: np.ndarray) -> np.ndarray:
    """Echo envelope [n_beams, n_samples] after attenuation, shadowing, noise and TGC.

    ``beam_mm`` from :func:`beam_spacing_mm`, ``tgc_db`` from :func:`tgc_gain_db`;
    ``seed`` picks the scatterer field, ``rng`` draws the noise.
    """
    p, st = probe, settings
    f = frequency_mhz
    ds = p.sample_mm
    z = _Z[cls]
    # Unnamed soft tissue: Z follows HU (density proxy), so muscle/fascia planes reflect.
    z = np.where(cls == CLASS["soft"],
                 np.float32(1.60) + np.float32(0.0012) * np.clip(hu, -30, 100).astype(np.float32), z)
    # Interface reflection along the beam (sample s-1 -> s).
    refl = np.zeros_like(z)
    refl[:, 1:] = ((z[:, 1:] - z[:, :-1]) / (z[:, 1:] + z[:, :-1])) ** 2
    # Incidence weight cos^n, from the in-plane gradient of a smoothed Z, only where
    # there is an interface (a few % of the samples).
    bi, si = np.nonzero(refl > 1e-7)
    spec = np.zeros_like(z)
    if bi.size:
        zs = uniform_filter1d(uniform_filter1d(z, 5, axis=1), 3, axis=0)
        nb, ns = z.shape
        s0, s1 = np.maximum(si - 1, 0), np.minimum(si + 1, ns - 1)
        b0, b1 = np.maximum(bi - 1, 0), np.minimum(bi + 1, nb - 1)
        g_ax = (zs[bi, s1] - zs[bi, s0]) / ((s1 - s0) * ds)
        g_lat = (zs[b1, si] - zs[b0, si]) / ((b1 - b0) * beam_mm[si])
        cos2 = g_ax ** 2 / (g_ax ** 2 + g_lat ** 2 + 1e-12)
        spec[bi, si] = st.specular_gain * np.sqrt(refl[bi, si] * cos2 ** (st.incidence_power / 2.0))
    # Transmission: energy lost at earlier interfaces, then a full shadow after bone or gas
    # (starting 1 mm below it: the blocking surface itself still echoes).
    trans = np.ones_like(z)
    trans[:, 1:] = np.cumprod(1.0 - np.minimum(refl[:, :-1], 0.999), axis=1)
    blocked = np.maximum.accumulate((cls == CLASS["bone"]) | (cls == CLASS["gas"]), axis=1)
    lag = max(1, int(round(1.0 / ds)))
    trans[:, lag:][blocked[:, :-lag]] = 0.0
    # Two-way attenuation (dB, cumulative along the beam) minus the TGC, as one factor.
    att_db = np.cumsum(_ALPHA[cls], axis=1) * np.float32(2.0 * f * ds / 10.0)
    loss = np.exp((tgc_db[None, :] - att_db) * np.float32(np.log(10.0) / 20.0))
    # Complex echo: diffuse scatter (fixed field in the patient) + coherent specular echo.
    cells = np.floor(pts.reshape(-1, 3) * np.float32(1.0 / st.speckle_cell_mm)).astype(np.int64)
    scat = _hash_complex(cells, seed).reshape(z.shape)
    echo = scat * _AMP[cls] + spec
    scale = 3.5 / f
    sa = st.psf_axial_mm * scale / ds
    beam_mid = float(np.median(beam_mm))
    sl = st.psf_lateral_mm * scale / beam_mid
    re = gaussian_filter1d(gaussian_filter1d(echo.real, sa, axis=1, truncate=3.0), sl, axis=0, truncate=3.0)
    im = gaussian_filter1d(gaussian_filter1d(echo.imag, sa, axis=1, truncate=3.0), sl, axis=0, truncate=3.0)
    # Blurring a unit-variance field lowers its variance; restore liver speckle level 1.
    norm = np.float32(1.0 / np.sqrt(_psf_energy(sa) * _psf_energy(sl)))
    rx = np.hypot(re, im) * norm * trans
    if st.clutter_db > -90:
        # Side lobes and reverberation fill anechoic lumens with a haze of their surroundings.
        w_ax = max(1, int(round(st.clutter_mm / ds)))
        w_lat = max(1, int(round(st.clutter_mm / beam_mid)))
        haze = uniform_filter1d(uniform_filter1d(rx, w_ax, axis=1), w_lat, axis=0)
        rx += np.float32(10.0 ** (st.clutter_db / 20.0)) * haze
    # Electronic noise: Rayleigh amplitude (unit power) at the receiver, before the TGC.
    # Electronic noise before the TGC (grows with depth) plus a floor after it (what
    # fills real lumens and shadows with a few grey levels), Rayleigh distributed.
    u = rng.random(rx.shape, dtype=np.float32)
    level = (np.float32(10.0 ** (st.noise_db / 20.0))
             * np.exp(tgc_db * np.float32(np.log(10.0) / 20.0))
             + np.float32(10.0 ** (st.floor_db / 20.0)))
    return (rx * loss) + np.sqrt(-np.log1p(-u)) * level[None, :]


def _psf_energy(sigma: float) -> float:
    """Sum of squared weights of a sampled unit-sum Gaussian (variance kept by the blur)."""
    if sigma <= 0:
        return 1.0
    x = np.arange(-int(3 * sigma + 0.5), int(3 * sigma + 0.5) + 1)   # as gaussian_filter1d, truncate=3
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sum(w ** 2))
