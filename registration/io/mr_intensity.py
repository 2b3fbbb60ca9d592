"""MR intensities without Hounsfield units: foreground, robust normalisation, N4 bias field, CT-or-MR.

An MR value has no physical unit: the same tissue reads 300 on one scanner and
1800 on another, and a smooth receive-coil bias field scales it across the
image by 20-40 %. Everything that compares MR intensities (LC2 features, the
MR-CT mutual information, the MR lesion grower) therefore works on the MR
normalised here:

* :func:`foreground_mask`: the patient (voxels above an Otsu threshold of the
  log intensity, the largest component, holes filled per slice): what percentiles
  are taken over, so the air around the patient does not set the scale;
* :func:`robust_range` / :func:`normalise`: the ``lo_pct``-``hi_pct`` percentiles
  of the foreground mapped to 0..1 (clipped to ``[0, clip_hi]``); robust to a
  few very bright voxels (vessels on a contrast phase, fat, artefacts);
* :func:`n4_bias_correct`: SimpleITK's N4 on a shrunk copy, the bias field
  applied at full resolution (optional: LC2 fits each patch linearly and is
  hardly affected by a smooth bias; MI over the whole liver and the region grower are);
* :func:`modality_evidence`: whether a volume is a CT or an MR, from the DICOM
  Modality, else from its values (a CT in HU has air near -1000 and fat near -100;
  an MR has no negative values), so an MR given as a CT is refused, and the reverse.

Units: intensities unitless (MR) or HU (CT); arrays ``[k, j, i]``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from registration.spatial.volume import Volume

#: Foreground percentiles mapped to 0 and 1 by :func:`normalise`.
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.5
#: Values above the high percentile are kept up to this (normalised) level, then clipped.
CLIP_HIGH = 1.5
#: Voxels sampled at most for percentiles and thresholds (a 256^3 MR has 17 M).
MAX_SAMPLES = 400_000
#: The foreground for percentiles is found on a strided copy of at most this many voxels.
MASK_VOXELS = 1_500_000
#: N4 runs on the image shrunk by this factor per axis (the bias field is smooth).
N4_SHRINK = 4
N4_ITERATIONS = (50, 40, 30)
#: CT evidence: a fraction of voxels below AIR_HU (air, outside the field of view) ...
AIR_HU = -500.0
AIR_FRACTION = 0.01
#: ... or of fat (FAT_HU window) with no value below NEGATIVE_FLOOR (MR intensities are >= 0).
FAT_HU = (-150.0, -50.0)
FAT_FRACTION = 0.02
#: A CT saved without its -1024 intercept: most body voxels in this stored range (soft tissue + 1024).
RAW_CT_SOFT_TISSUE = (900.0, 1200.0)
RAW_CT_FRACTION = 0.35


def _sample(array: np.ndarray, mask: Optional[np.ndarray] = None, n: int = MAX_SAMPLES) -> np.ndarray:
    """Up to ``n`` values of ``array`` (inside ``mask``), evenly strided (deterministic)."""
    values = array[mask] if mask is not None else array.reshape(-1)
    if values.size > n:
        values = values[:: int(np.ceil(values.size / n))]
    return values.astype(np.float64)


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[1:] + edges[:-1])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def foreground_mask(volume: Volume) -> np.ndarray:
    """bool ``[k, j, i]``: the patient (not the air around it).

    Otsu threshold of ``log(1 + v - min)`` over a sample, largest connected component,
    holes filled slice by slice (lungs and bowel gas are inside the patient)."""
    a = np.asarray(volume.array, np.float32)
    shifted = np.log1p(np.maximum(a - float(a.min()), 0.0))
    values = _sample(shifted)
    if np.ptp(values) <= 0:
        return np.ones(a.shape, bool)
    mask = shifted > _otsu(values)
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
        mask = lab == (1 + int(np.argmax(sizes)))
    for k in range(mask.shape[0]):
        mask[k] = ndimage.binary_fill_holes(mask[k])
    return mask if mask.any() else np.ones(a.shape, bool)


def robust_range(volume: Volume, mask: Optional[np.ndarray] = None, *, lo_pct: float = LOW_PERCENTILE,
                 hi_pct: float = HIGH_PERCENTILE) -> Tuple[float, float]:
    """(low, high) percentiles of the foreground intensities (``mask`` or :func:`foreground_mask`).

    Without a mask the foreground is found on every ``step``-th voxel per axis (at most
    ``MASK_VOXELS`` of them): percentiles of a smooth population do not need every voxel, and
    a 256^3 MR is then normalised in a fraction of a second."""
    if mask is None:
        step = max(1, int(np.ceil((volume.array.size / MASK_VOXELS) ** (1.0 / 3.0))))
        sub = volume.array[::step, ::step, ::step]
        small = Volume(sub, volume.spacing * step, volume.origin, volume.direction)
        m = foreground_mask(small)
        values = _sample(np.asarray(sub), m if m.any() else None)
    else:
        m = np.asarray(mask, bool)
        values = _sample(np.asarray(volume.array), m if m.any() else None)
    lo, hi = np.percentile(values, [lo_pct, hi_pct])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def normalise(volume: Volume, mask: Optional[np.ndarray] = None, *, lo_pct: float = LOW_PERCENTILE,
              hi_pct: float = HIGH_PERCENTILE, clip_hi: float = CLIP_HIGH) -> Volume:
    """float32 Volume: the foreground's ``lo_pct`` percentile -> 0, ``hi_pct`` -> 1, clipped to
    ``[0, clip_hi]``. ``metadata['intensity_range']`` holds the two raw values."""
    lo, hi = robust_range(volume, mask, lo_pct=lo_pct, hi_pct=hi_pct)
    arr = (np.asarray(volume.array, np.float32) - np.float32(lo)) / np.float32(hi - lo)
    np.clip(arr, 0.0, clip_hi, out=arr)
    return volume.with_array(arr, intensity_range=[lo, hi], normalised=True)


def n4_bias_correct(volume: Volume, mask: Optional[np.ndarray] = None, *, shrink: int = N4_SHRINK,
                    iterations=N4_ITERATIONS) -> Tuple[Volume, np.ndarray]:
    """(corrected Volume float32, bias field float32 ``[k, j, i]``, mean 1 over the mask).

    N4 (Tustison 2010, SimpleITK's ``N4BiasFieldCorrectionImageFilter``) fits a smooth
    multiplicative field on the image shrunk by ``shrink``; the field is evaluated at full
    resolution (``GetLogBiasFieldAsImage``) and divided out."""
    m = foreground_mask(volume) if mask is None else np.asarray(mask, bool)
    a = np.asarray(volume.array, np.float32)
    offset = float(a.min())
    img = volume.with_array(a - offset + 1.0).to_sitk()
    img = sitk.Cast(img, sitk.sitkFloat32)
    mask_img = sitk.GetImageFromArray(m.astype(np.uint8))
    mask_img.CopyInformation(img)
    factor = [int(max(1, min(shrink, s // 8))) for s in img.GetSize()]
    small = sitk.Shrink(img, factor)
    small_mask = sitk.Shrink(mask_img, factor)
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.Execute(small, small_mask)
    log_bias = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img)).astype(np.float32)
    bias = np.exp(log_bias)
    bias /= float(np.mean(bias[m])) if m.any() else float(np.mean(bias))
    corrected = ((a - offset + 1.0) / bias + offset - 1.0).astype(np.float32)
    return volume.with_array(corrected, bias_corrected="N4"), bias


def modality_evidence(volume: Volume) -> Tuple[str, str]:
    """``("CT" | "MR" | "unknown", reason)`` for a loaded volume.

    The DICOM Modality decides when present (``metadata['modality']`` from a DICOM series);
    otherwise the values: air (< -500, >= 1 % of the voxels) or fat (-150..-50 HU, >= 2 %)
    means HU, so a CT; no negative value at all and not a CT stored without its intercept
    (>= 35 % of the foreground at 900-1200, i.e. soft tissue + 1024) means an MR."""
    md = volume.metadata or {}
    modality = str(md.get("modality") or "").upper()
    if md.get("format") == "dicom" and modality in ("MR", "CT"):
        return modality, f"DICOM Modality {modality}"
    values = _sample(np.asarray(volume.array))
    if values.size == 0:
        return "unknown", "empty image"
    lo, hi = float(values.min()), float(values.max())
    air = float(np.mean(values < AIR_HU))
    fat = float(np.mean((values >= FAT_HU[0]) & (values <= FAT_HU[1])))
    if air >= AIR_FRACTION or (lo < 0 and fat >= FAT_FRACTION and hi > 100):
        return "CT", (f"values look like Hounsfield units ({100 * air:.0f} % below {AIR_HU:.0f}, "
                      f"{100 * fat:.0f} % at fat's -150..-50)")
    if lo >= 0:
        threshold = float(np.expm1(_otsu(np.log1p(values)))) if np.ptp(values) > 0 else lo - 1.0
        fg = values[values > threshold]
        raw = float(np.mean((fg >= RAW_CT_SOFT_TISSUE[0]) & (fg <= RAW_CT_SOFT_TISSUE[1]))) if fg.size else 0.0
        if raw >= RAW_CT_FRACTION and hi <= 4095:
            return "CT", (f"no negative values, but {100 * raw:.0f} % of the patient at 900-1200: a CT "
                          "stored without its -1024 HU intercept")
        return "MR", (f"no negative values (range {lo:g}..{hi:g}) and no air at -1000: not Hounsfield "
                      "units, an MR-like intensity image")
    return "unknown", f"values {lo:g}..{hi:g} are neither clearly HU nor MR"
