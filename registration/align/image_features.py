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


#: Liver focus on a hepatobiliary-phase MR: brighter than this (normalised) is liver-like ...
LIVER_LEVEL = 0.65
#: ... closed over this (mm: vessels and lesions inside), grown by FOCUS_GROW_MM (capsule, diaphragm).
LIVER_CLOSE_MM = 6.0
FOCUS_GROW_MM = 8.0
#: Outside the focus the features fade to a blur of this width (mm): no structure, no hard edge.
FOCUS_BLUR_MM = 8.0


def liver_focus_mask(volume: Volume) -> np.ndarray:
    """bool [k, j, i]: the liver of a hepatobiliary-phase MR (the largest bright organ: above
    ``LIVER_LEVEL`` of the normalised range, closed over ``LIVER_CLOSE_MM``, holes filled, grown by
    ``FOCUS_GROW_MM``). A heuristic for that contrast only: on T2 or another phase the liver is
    not the brightest organ, so the caller asks for it (``focus="liver"``)."""
    from registration.io.mr_intensity import normalise
    step = max(1, int(round(3.0 / float(np.min(volume.spacing)))))       # work on a ~3 mm grid
    sp = np.asarray(volume.spacing, float)[::-1] * step
    norm = ndimage.gaussian_filter(normalise(volume).array[::step, ::step, ::step], 0.7)
    bright = ndimage.binary_opening(norm > LIVER_LEVEL)
    lab, n = ndimage.label(bright)
    if n == 0:
        raise InputError("no liver-bright region in the MR (focus 'liver' needs a hepatobiliary phase)",
                         fix="register without the liver focus")
    sizes = ndimage.sum_labels(bright, lab, index=np.arange(1, n + 1))
    liver = lab == 1 + int(np.argmax(sizes))
    near = ndimage.distance_transform_edt(~liver, sampling=sp) <= LIVER_CLOSE_MM        # dilation ...
    closed = ndimage.distance_transform_edt(near, sampling=sp) > LIVER_CLOSE_MM          # ... then erosion
    for k in range(closed.shape[0]):
        closed[k] = ndimage.binary_fill_holes(closed[k])
    small = ndimage.distance_transform_edt(~closed, sampling=sp) <= FOCUS_GROW_MM
    full = np.repeat(np.repeat(np.repeat(small, step, 0), step, 1), step, 2)
    return full[:volume.array.shape[0], :volume.array.shape[1], :volume.array.shape[2]]


def focus_features(fixed: Volume, mask: np.ndarray) -> Volume:
    """``fixed`` (an LC2 intensity volume) with its structure kept inside ``mask`` only: outside
    it fades (over a blur of ``FOCUS_BLUR_MM``) to its own blur, so patches there have nothing to
    explain and do not pull the pose (e.g. the body wall and ribs, which do not follow the liver
    between two breath-holds)."""
    sig = FOCUS_BLUR_MM / np.asarray(fixed.spacing, float)[::-1]
    a = np.asarray(fixed.array, np.float32)
    w = ndimage.gaussian_filter(mask.astype(np.float32), sig / 2)
    out = w * a + (1.0 - w) * ndimage.gaussian_filter(a, sig)
    return fixed.with_array(out.astype(np.float32), lc2_focus="liver")
