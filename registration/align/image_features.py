"""LC2 features per modality: what the fixed image (CT or MR) offers the ultrasound to be explained by.

LC2 (:mod:`.lc2`) fits the US of each patch as a linear mix of two channels of
the fixed image, ``p`` (intensity) and ``g`` (gradient magnitude); it is
invariant to each channel's offset and scale. The channels per modality:

* **CT** (Wein 2008): ``p`` = HU in a soft-tissue window (-100..300), ``g`` = the
  gradient magnitude of the HU clipped to -300..700, so bone and air edges do not
  swamp the soft-tissue interfaces that echo (:func:`registration.align.lc2.ct_feature_arrays`).
* **MR** (Fuerst et al. 2014, LC2 for MR-US in neurosurgery; Wein 2013 for the
  abdomen): ``p`` = the MR intensity normalised to its foreground's 1-99.5 %
  percentiles (:func:`registration.io.mr_intensity.normalise`; no window: MR has no
  units, so there is nothing to window by), ``g`` = its gradient magnitude. On a
  hepatobiliary-phase T1 the liver is bright and vessels and metastases dark:
  vessel lumens are anechoic on B-mode, so ``p`` explains the dark-vessel
  pattern and ``g`` the echogenic walls, capsule and diaphragm. Why these two
  and not a simulated reflection or an inverted intensity: docs/mri.md.

One implementation computes the channels for both (:mod:`.lc2_cost`, and its
compiled and cached variants): it takes an intensity volume and applies the
CT window and clip. :func:`lc2_intensity_volume` hands it the MR mapped
linearly so that the normalised range 0..1 lands on the window (-100..300):
then ``p`` is exactly the clipped normalised MR and ``g`` its gradient
magnitude (times 400, a scale LC2 ignores), with no second code path to keep
in step. :func:`feature_arrays` computes the same channels directly (the
definition the mapping is tested against).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage

from registration.io.mr_intensity import CLIP_HIGH, robust_range
from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .lc2 import SOFT_TISSUE_WINDOW_HU, ct_feature_arrays

MODALITIES = ("CT", "MR")


def _window() -> Tuple[float, float]:
    return float(SOFT_TISSUE_WINDOW_HU[0]), float(SOFT_TISSUE_WINDOW_HU[1])


def check_modality(modality: str) -> str:
    m = str(modality).upper()
    if m not in MODALITIES:
        raise InputError(f"unknown modality '{modality}'", fix="use CT or MR")
    return m


def lc2_intensity_volume(volume: Volume, modality: str) -> Volume:
    """The volume the LC2 pipeline takes as its fixed image, for ``modality``.

    CT: the volume itself (HU). MR: float32, the normalised MR (foreground 1 % -> 0,
    99.5 % -> 1, clipped at 1.5) mapped linearly onto the CT soft-tissue window
    (0 -> -100, 1 -> 300), so the pipeline's window yields ``p`` = normalised MR clipped
    to [0, 1] and its gradient clip (-300..700) leaves the MR's gradient whole.
    ``metadata['lc2_features']`` names the channels."""
    m = check_modality(modality)
    if m == "CT":
        return volume
    r_lo, r_hi = robust_range(volume)
    lo, hi = _window()
    # One pass, in place: lo + (hi - lo) * clip((v - r_lo) / (r_hi - r_lo), 0, CLIP_HIGH). The gradient
    # clip (-300..700) does not cut that range (-100..500): tests/test_mri_features.py checks it
    # against feature_arrays of normalise().
    arr = np.asarray(volume.array, np.float32) - np.float32(r_lo)
    arr *= np.float32((hi - lo) / (r_hi - r_lo))
    np.clip(arr, 0.0, (hi - lo) * CLIP_HIGH, out=arr)
    arr += np.float32(lo)
    return volume.with_array(arr, intensity_range=[r_lo, r_hi], normalised=True, modality="MR",
                             lc2_features="MR: normalised intensity (p) and its gradient magnitude (g)")


def feature_arrays(array: np.ndarray, spacing_kji: Sequence[float], modality: str, *,
                   smooth_mm: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """(p, g) float32 ``[k, j, i]`` for ``modality`` from raw intensities (HU for a CT; an MR
    array already normalised to 0..1). ``smooth_mm``: Gaussian before the gradient (mm)."""
    m = check_modality(modality)
    if m == "CT":
        return ct_feature_arrays(array, spacing_kji, smooth_mm=smooth_mm)
    a = np.asarray(array, np.float32)
    p = np.clip(a, 0.0, 1.0).astype(np.float32)
    sp = np.asarray(spacing_kji, float)
    c = ndimage.gaussian_filter(a, sigma=smooth_mm / sp) if smooth_mm > 0 else a
    grads = np.gradient(c.astype(np.float32), *sp)
    g = np.sqrt(sum(gr * gr for gr in grads)).astype(np.float32)
    return p, g
