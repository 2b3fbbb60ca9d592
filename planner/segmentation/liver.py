"""The liver without a click, on the working grid: its HU here, where it is, where it ends.

1. Intensities from the data (:func:`tissue_intensities`): the liver is the
   largest soft-tissue organ of the right upper quadrant, so the mode of the
   soft-tissue histogram of the body's right half, more than :data:`WALL_MM`
   under the skin and away from bone (wall and paraspinal muscles), is the
   liver's HU in this scan and phase; its spread is the half width at half
   maximum of that peak. Skeletal muscle, the tissue most often touching the
   liver, is the mode of the body wall shell. A click (LPS mm) replaces the
   liver's histogram by the HU around it.
2. Core: voxels within the liver's band (mode +- :data:`BAND_SD` spreads, at
   least :data:`BAND_MIN_HU`) and above the muscle floor (muscle +
   :data:`FLOOR_FRACTION` of the liver-muscle gap), inside the body, not bone,
   lung or gas; an opening by a ball of :data:`OPEN_MM` cuts the thin bridges
   through which organs of similar HU touch the liver (stomach, spleen, heart
   through the diaphragm, kidney, muscle); the component kept is the one at the
   click, else the one with most volume in the body's right half.
3. Shading: beam hardening and the streaks of arms lying beside the body
   darken whole bands of the liver by 20-40 HU, smoothly. The band is
   therefore re-centred on the core's own local mean (normalised Gaussian
   convolution, sigma :data:`LOCAL_SIGMA_MM`), computed once from the core so
   that it cannot drift into a neighbour, and the muscle floor still applies.
4. Bridges again: the grown mask is opened by :data:`REOPEN_MM` (smaller:
   streaks fragment the shaded parts) and only what holds the core is kept,
   regrown by that radius inside the mask.
5. Region: lesions (darker or brighter than the band) and vessels inside the
   liver belong to it: holes are filled in 3D and per axial slice, and a
   closing by :data:`CLOSE_MM` adds concavities narrower than twice that
   (subcapsular lesions, vessels at the surface), but only voxels denser than
   fat and lighter than bone.

6. Below the liver the IVC, often of the liver's HU, can continue the mask as
   a tube beside the spine: small axial islands against the spine are
   dropped (:func:`drop_paraspinal_islands`).

:mod:`planner.segmentation.liver_refine` redraws the capsule at full resolution;
:mod:`planner.segmentation.checks` decides whether what was found is a liver.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.ndimage import gaussian_filter1d

from .morphology import (bbox, close_mm, depth_mm, dilate_mm, erode_mm, fill_holes_2d, fill_holes_3d,
                         keep_components, label_components)

SOFT_HU = (20.0, 250.0)      # where a liver's mode can lie, any contrast phase
WALL_MM = 20.0
WALL_SHELL_MM = (5.0, 40.0)  # body wall shell for the muscle mode
BONE_AWAY_MM = 15.0
BAND_SD = 3.0
BAND_MIN_HU = 20.0
FLOOR_FRACTION = 0.2
OPEN_MM = 6.0
REOPEN_MM = 4.0
RIM_MM = 4.0
CLOSE_MM = 6.0
LOCAL_SIGMA_MM = 12.0
REGION_MIN_HU = -30.0        # a closing may add voxels denser than fat ...
REGION_MAX_HU = 400.0        # ... and lighter than bone
PARASPINAL_ISLAND_CM2 = 30.0
SPECK_CM2 = 2.0


@dataclass
class LiverIntensity:
    """HU of the liver (mode, spread) and of skeletal muscle in this scan, and their source."""
    mode_hu: float
    sd_hu: float
    muscle_hu: float
    source: str

    @property
    def half_width(self) -> float:
        return max(BAND_SD * self.sd_hu, BAND_MIN_HU)

    @property
    def floor_hu(self) -> float:
        """Nothing darker is liver parenchyma: muscle plus a fifth of the gap (heuristic)."""
        return self.muscle_hu + FLOOR_FRACTION * max(0.0, self.mode_hu - self.muscle_hu)

    @property
    def band(self) -> tuple:
        return max(self.mode_hu - self.half_width, self.floor_hu), self.mode_hu + self.half_width


def histogram_mode(values: np.ndarray, lo: float, hi: float) -> tuple:
    """(mode, spread) of HU values: smoothed 2 HU histogram peak in [lo, hi], HWHM / 1.1774."""
    edges = np.arange(lo - 40.0, hi + 41.0, 2.0)
    hist, _ = np.histogram(values, bins=edges)
    hs = gaussian_filter1d(hist.astype(float), 2.0)
    a, b = np.searchsorted(edges, lo), np.searchsorted(edges, hi)
    i0 = a + int(np.argmax(hs[a:b]))
    half = hs[i0] / 2.0
    left = i0
    while left > 0 and hs[left] > half:
        left -= 1
    right = i0
    while right < len(hs) - 1 and hs[right] > half:
        right += 1
    hwhm = 2.0 * min(i0 - left, right - i0)          # the narrower side: neighbours widen the other
    return float(edges[i0] + 1.0), max(hwhm / 1.1774, 4.0)


def right_half(mask: np.ndarray) -> np.ndarray:
    """Voxels on the patient's right of the body's midline, slice by slice (canonical: +i = left)."""
    cols = mask.any(axis=1)                                    # [k, i]
    idx = np.arange(mask.shape[2])
    n = cols.sum(axis=1)
    centre = np.where(n > 0, (cols * idx).sum(axis=1) / np.maximum(n, 1), mask.shape[2] / 2.0)
    return np.broadcast_to(idx[None, None, :] < centre[:, None, None], mask.shape)


def tissue_intensities(hu: np.ndarray, trunk: np.ndarray, bone: np.ndarray, spacing,
                       seed_kji: Optional[tuple] = None,
                       skin_depth: Optional[np.ndarray] = None) -> Optional[LiverIntensity]:
    """Liver and muscle HU on the working grid (None when there is no soft tissue to measure).

    ``skin_depth``: :func:`planner.segmentation.morphology.depth_mm` of the trunk, if known.
    """
    if skin_depth is None:
        skin_depth = depth_mm(trunk, spacing)
    shell = (skin_depth > WALL_SHELL_MM[0]) & (skin_depth <= WALL_SHELL_MM[1])
    wall = hu[shell & (hu > -20) & (hu < 150)]
    if wall.size < 500:
        return None
    muscle, _ = histogram_mode(wall, 0.0, 110.0)
    if seed_kji is not None:
        k, j, i = seed_kji
        r = [max(1, int(round(8.0 / s))) for s in spacing[::-1]]     # +- 8 mm around the click
        box = tuple(slice(max(0, c - rr), c + rr + 1) for c, rr in zip((k, j, i), r))
        vals = hu[box][trunk[box] & (hu[box] > SOFT_HU[0] - 40) & (hu[box] < SOFT_HU[1] + 40)]
        if vals.size >= 20:
            med = float(np.median(vals))
            mad = float(np.median(np.abs(vals - med))) * 1.4826
            return LiverIntensity(med, max(mad, 4.0), muscle, "around the click")
    inner = (skin_depth > WALL_MM) & ~dilate_mm(bone, spacing, BONE_AWAY_MM)
    region = inner & right_half(trunk) & (hu > SOFT_HU[0] - 40) & (hu < SOFT_HU[1] + 40)
    if region.sum() < 1000:
        return None
    mode, sd = histogram_mode(hu[region], *SOFT_HU)
    return LiverIntensity(mode, sd, muscle, "mode of right upper quadrant soft tissue")


def _component_at(lab: np.ndarray, seed_kji, spacing, radius_mm: float = 15.0) -> int:
    k, j, i = (int(c) for c in seed_kji)
    if all(0 <= c < n for c, n in zip((k, j, i), lab.shape)) and lab[k, j, i] > 0:
        return int(lab[k, j, i])
    r = [max(1, int(round(radius_mm / s))) for s in spacing[::-1]]
    box = tuple(slice(max(0, c - rr), max(0, c + rr + 1)) for c, rr in zip((k, j, i), r))
    vals = lab[box][lab[box] > 0]
    return int(np.bincount(vals).argmax()) if vals.size else 0


def _regrow(core: np.ndarray, within: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """The opening completed (core dilated by ``radius_mm`` inside ``within``), then at most
    :data:`RIM_MM` more: the thin edges the opening shaved off, not what lay behind a bridge."""
    part = dilate_mm(core, spacing, radius_mm) & within
    return dilate_mm(part, spacing, RIM_MM) & within


def _gauss(a: np.ndarray, spacing, sigma_mm: float) -> np.ndarray:
    img = sitk.GetImageFromArray(a.astype(np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, float(sigma_mm)))


def local_mean(core: np.ndarray, hu: np.ndarray, spacing, sigma_mm: float = LOCAL_SIGMA_MM) -> np.ndarray:
    """The core's HU smoothed and extrapolated around it (normalised convolution); NaN far away."""
    w = _gauss(core, spacing, sigma_mm)
    s = _gauss(np.where(core, hu, 0.0), spacing, sigma_mm)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w > 0.01, s / w, np.nan)


def find_liver(hu: np.ndarray, inten: LiverIntensity, allowed: np.ndarray, trunk: np.ndarray,
               spacing, seed_kji: Optional[tuple] = None) -> Optional[np.ndarray]:
    """The liver parenchyma on the working grid (no hole filling yet), or None."""
    lo, hi = inten.band
    cand = (hu >= lo) & (hu <= hi) & allowed
    lab, sizes = label_components(erode_mm(cand, spacing, OPEN_MM))
    if sizes.size == 0:
        return None
    if seed_kji is not None:
        pick = _component_at(lab, seed_kji, spacing)
    else:
        in_right = np.bincount(lab[right_half(trunk)].ravel(), minlength=sizes.size + 1)[1:]
        pick = int(np.argmax(in_right)) + 1
    if pick <= 0:
        return None
    seed_core = lab == pick
    core = _regrow(seed_core, cand, spacing, OPEN_MM)
    # shading-tolerant band around the core's local mean, never below the muscle floor
    m = local_mean(core, hu, spacing)
    half = inten.half_width
    with np.errstate(invalid="ignore"):
        grown = (np.abs(hu - m) <= half) & (hu >= inten.floor_hu) & allowed
    lab, _ = label_components(grown | core)
    grown = keep_components(lab, np.unique(lab[core]))
    lab, _ = label_components(erode_mm(grown, spacing, REOPEN_MM))
    keep = keep_components(lab, np.unique(lab[seed_core]))
    return _regrow(keep, grown, spacing, REOPEN_MM)


def drop_paraspinal_islands(liver: np.ndarray, spine_zone: np.ndarray, spacing) -> np.ndarray:
    """Axial islands of the liver mask lying against the spine and smaller than
    :data:`PARASPINAL_ISLAND_CM2` removed, and specks under :data:`SPECK_CM2`
    that are not the largest cross-section of their slice.

    Below the liver the IVC (and the duodenum beside it) often has the liver's
    HU in the portal phase and continues the liver mask down as a tube
    beside the vertebrae; on such slices it is a small separate island next
    to the spine, while the liver's own cross-sections lie lateral or are
    large. ``spine_zone``: the vertebrae's outline grown by a few cm and the
    prevertebral space (bool, same grid).
    """
    box = bbox(liver)
    if box is None:
        return liver
    st = np.zeros((3, 3, 3), bool)
    st[1] = np.ones((3, 3), bool)
    lab, n = ndimage.label(liver[box], st)
    area = np.bincount(lab.ravel(), minlength=n + 1) * float(spacing[0] * spacing[1]) / 100.0
    near = np.bincount(lab[spine_zone[box]].ravel(), minlength=n + 1) > 0
    drop = near & (area < PARASPINAL_ISLAND_CM2)
    # and specks: islands under SPECK_CM2 that are not their slice's largest
    first_k = np.array([sl[0].start for sl in ndimage.find_objects(lab)], int)
    largest = np.zeros(lab.shape[0])
    np.maximum.at(largest, first_k, area[1:])
    drop[1:] |= (area[1:] < SPECK_CM2) & (area[1:] < largest[first_k])
    drop[0] = False
    out = liver.copy()
    out[box] = liver[box] & ~drop[lab]
    return out


def liver_region(mask: np.ndarray, hu: np.ndarray, spacing) -> np.ndarray:
    """Lesions and vessels inside the liver added: 3D and axial hole filling, a tissue-only closing."""
    region = fill_holes_2d(fill_holes_3d(mask))
    tissue = (hu >= REGION_MIN_HU) & (hu <= REGION_MAX_HU)
    region = close_mm(region, spacing, CLOSE_MM) & (tissue | region)
    return fill_holes_2d(fill_holes_3d(region))
