"""Enhanced vessels of the liver and its hilum, and the lumen of the aorta and IVC, at full resolution.

Liver vessels: in the portal-venous phase the portal and hepatic veins are
30-80 HU brighter than the parenchyma around them, so a vessel voxel is one
whose lightly smoothed HU exceeds the liver's *local* mean (the same shading
-corrected mean the liver was found with) by :data:`ABOVE_LIVER_SD` liver
spreads, at least :data:`ABOVE_LIVER_MIN_HU`: a threshold relative to the
liver's own HU, whatever the scanner, dose or phase. They are looked for
inside the liver and within :data:`HILUM_MM` of it (the porta hepatis and the
vessels entering it), below :data:`MAX_VESSEL_HU` (no bone), and kept as
components of at least :data:`MIN_VESSEL_MM3` (a 3 mm vessel 3 mm long;
smaller specks are noise) that lie at least :data:`INSIDE_FRACTION` inside
the liver (a vessel tree entering at the hilum does; an enhanced kidney or
bowel wall touching the liver does not), then grown at most
:data:`EDGE_STEPS` voxels out to the half-maximum edge (halfway between the
liver's mean and the threshold: the threshold marks a lumen's middle, its
wall is where the blurred step is half way). Outside the liver the portal
system is followed further (:func:`follow_portal_system`).

Aorta and IVC: the working-grid tracks of :mod:`planner.segmentation.great_vessels`
are redrawn on the CT grid: within :data:`TUBE_MARGIN_MM` of the track, voxels
brighter than halfway between the lumen's median HU and the liver's HU
(the half-maximum edge of a blurred step), connected to the track.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from .grid import WorkGrid
from .morphology import dilate_mm, fill_holes_2d, label_components

ABOVE_LIVER_SD = 2.5
ABOVE_LIVER_MIN_HU = 25.0
MAX_VESSEL_HU = 600.0
HILUM_MM = 15.0
MIN_VESSEL_MM3 = 20.0
TUBE_MARGIN_MM = 3.0
PORTAL_REACH_MM = 120.0
BLOB_RADIUS_MM = 14.0
EDGE_STEPS = 2
INSIDE_FRACTION = 0.25


def vessel_threshold(local_mean: np.ndarray, sd_hu: float) -> np.ndarray:
    return local_mean + max(ABOVE_LIVER_SD * sd_hu, ABOVE_LIVER_MIN_HU)


def liver_vessels(hs: np.ndarray, liver: np.ndarray, zone: np.ndarray, local_mean: np.ndarray,
                  sd_hu: float, blocked: np.ndarray, spacing) -> np.ndarray:
    """Vessel voxels of the liver and its hilum on a crop (all arrays the crop's shape).

    ``zone``: where to look, the liver and :data:`HILUM_MM` around it.
    """
    threshold = vessel_threshold(local_mean, sd_hu)
    cand = (hs >= threshold) & (hs <= MAX_VESSEL_HU) & zone & ~blocked
    lab, sizes = label_components(cand, full_connectivity=True)
    if sizes.size == 0:
        return cand
    min_vox = MIN_VESSEL_MM3 / float(np.prod(spacing))
    inside = np.bincount(lab[liver].ravel(), minlength=sizes.size + 1)[1:]
    keep = np.zeros(sizes.size + 1, bool)
    keep[1:] = (sizes >= min_vox) & (inside >= INSIDE_FRACTION * sizes)
    core = keep[lab]
    # out to the vessel's half-maximum edge: the threshold marks the lumen's middle
    low = (hs >= 0.5 * (threshold + local_mean)) & (hs <= MAX_VESSEL_HU) & zone & ~blocked
    return ndimage.binary_dilation(core, iterations=EDGE_STEPS, mask=low) | core


def follow_portal_system(hs: np.ndarray, start: np.ndarray, threshold_hu: float,
                         blocked: np.ndarray, spacing) -> np.ndarray:
    """Enhanced tubes connected to ``start`` outside the liver, up to :data:`PORTAL_REACH_MM`.

    The portal vein leaves the hilum towards the confluence, the splenic and
    the superior mesenteric veins. Blobs thicker than a vessel (a ball of
    :data:`BLOB_RADIUS_MM` fits: kidney, spleen, bowel with contrast) are not
    entered. Geodesic growth, one voxel per step.
    """
    cand = (hs >= threshold_hu) & (hs <= MAX_VESSEL_HU) & ~blocked
    depth = ndimage.distance_transform_edt(cand, sampling=np.asarray(spacing, float)[::-1])
    blob = depth >= BLOB_RADIUS_MM
    if blob.any():
        blob = dilate_mm(blob, spacing, BLOB_RADIUS_MM + 2.0)
    cand &= ~blob
    steps = int(round(PORTAL_REACH_MM / float(np.mean(spacing))))
    grown = ndimage.binary_dilation(start & cand, np.ones((3, 3, 3), bool), iterations=steps,
                                    mask=cand)
    return grown


def refine_tube(grid: WorkGrid, track_w: np.ndarray, liver_hu: float, hs_full: Optional[np.ndarray],
                exclude: Optional[np.ndarray] = None) -> np.ndarray:
    """A working-grid tube lumen on the CT grid (bool ``[k, j, i]``), half-maximum edge."""
    ct = grid.ct
    out = np.zeros(ct.array.shape, bool)
    if not track_w.any():
        return out
    zone_w = dilate_mm(track_w, grid.spacing, TUBE_MARGIN_MM + max(grid.spacing))
    box = grid.ct_box(zone_w, 1.0)
    core = grid.mask_to_ct(track_w, box)
    zone = grid.mask_to_ct(zone_w, box)
    h = (hs_full if hs_full is not None else ct.array)[box]
    lumen_hu = float(np.median(h[core])) if core.any() else liver_hu
    edge = 0.5 * (lumen_hu + liver_hu)
    m = zone & (h >= edge) & (h <= MAX_VESSEL_HU)
    if exclude is not None:
        m &= ~exclude[box]
    lab, _ = label_components(m)
    ids = np.unique(lab[core & m])
    out[box] = fill_holes_2d(np.isin(lab, ids[ids > 0]))      # noise leaves specks in a lumen
    return out
