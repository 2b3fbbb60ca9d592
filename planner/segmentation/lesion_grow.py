"""A liver lesion grown from one click on the CT: mask, size, attenuation and contrast.

:func:`grow_lesion` takes the CT (and optionally the arterial phase on the same
grid), a click in CT LPS mm inside the lesion and a liver mask on the CT grid,
and returns a :class:`LesionSegmentation`. The steps, all inside a box of
half-size ``max_diameter_mm / 2 + 10 mm`` around the click:

1. The click is checked (:mod:`.lesion_seed`): inside the CT, not air or bone,
   inside (or at most 5 mm outside) the liver hull, and different from the
   liver in at least one phase. The phase with the larger contrast-to-noise is
   used; the sign of the contrast gives the kind: ``hypo`` (darker than the
   liver, e.g. colorectal metastases in the portal phase) or ``hyper``
   (brighter, e.g. neuroendocrine metastases in the arterial phase).
2. Core: the phase smoothed by a 1 mm Gaussian, thresholded half-way between
   the liver and the click's level and bounded on the far side (by half the
   contrast, at least 15 HU beyond the click: a dark lesion does not run into
   fat or the gallbladder, a bright one into the aorta), inside the liver hull
   and the size-limit ball; the 26-connected component of the click.
3. Leaks cut: the core eroded by half its thickness near the click
   (1-4 mm), the part nearest the click kept, and dilated back inside the
   core: an opening that also drops what the erosion disconnected (a vessel
   touching a bright lesion, the partial-volume layer along the capsule).
4. Edge: the boundary is moved to the half-level of the outermost step of the
   radial profile (:mod:`.lesion_edge`: the rim of a rim-enhancing metastasis
   is kept), inside the liver hull grown by 3 mm (a subcapsular lesion stays
   whole) and the size-limit ball; holes filled; the click's component.
5. Measures: :func:`registration.spatial.lesions.lesion_table` (the project's one
   lesion measure: maximum and equivalent diameter, volume, mean HU), and the
   contrast against the median of the liver 3-10 mm around the lesion. A
   lesion more than 25 % of whose border is well beyond it, away from the
   liver (darker than a dark lesion or brighter than a bright one by its
   contrast, at least 30 HU), gets a warning: it is probably the blurred edge
   of the gallbladder, a fissure, a vessel or bone, not a lesion (on the demo
   a subcapsular lesion touching the capsule has 13 %).

The 80 mm default size limit, the 1 mm smoothing, the 3 mm margin and the
leak-cutting radii are heuristics of this project (the largest metastases
usually biopsied are well below 80 mm). A lesion that reaches the size limit
is returned with a warning: it has probably leaked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.lesions import lesion_table
from registration.spatial.volume import LabelMap, Volume

from .lesion_edge import fit_edge, radial_profile, signed_distance_mm
from .lesion_seed import (SeedBox, check_contrast, check_in_liver, check_tissue, liver_hull,
                          phase_contrasts, seed_box)
from .morphology import depth_mm, dilate_mm, distance_to_mm, erode_mm, fill_holes_3d

MAX_DIAMETER_MM = 80.0
BOX_MARGIN_MM = 10.0
SMOOTHING_MM = 1.0
LIVER_MARGIN_MM = 3.0
FAR_SIDE_MIN_HU = 15.0
SURROUND_MM = (3.0, 10.0)
BORDER_FRACTION = 0.25
BORDER_MIN_HU = 30.0
THICK_SLICE_RATIO = 2.0
REFINE_SMOOTHING_MM = 0.6
REFINE_MIN_STEP_HU = 10.0
THICK_SLICE_DISTANCE_MM = 1000.0
RIM_SECTORS = 8
MIN_SECTOR_VOXELS = 4
RIM_SECTOR_FRACTION = 0.75
_FULL = np.ones((3, 3, 3), bool)


@dataclass
class LesionSegmentation:
    """One grown lesion. ``mask``: bool ``[k, j, i]`` on the CT grid; ``diameter_mm``: maximum
    (Feret) diameter; ``equivalent_diameter_mm``: of the sphere of equal volume; HU values
    in ``phase`` (``"ct"`` or ``"arterial"``); ``contrast_hu`` = mean HU minus the
    surrounding liver's median (``liver_hu``); ``kind`` ``"hypo"`` or ``"hyper"``;
    ``rim``: a rim step was found and kept; ``seed_lps``/``centroid_lps`` LPS mm."""
    name: str
    seed_lps: Tuple[float, float, float]
    mask: np.ndarray
    diameter_mm: float
    equivalent_diameter_mm: float
    volume_ml: float
    mean_hu: float
    contrast_hu: float
    liver_hu: float
    kind: str
    phase: str
    rim: bool
    centroid_lps: Tuple[float, float, float]
    warnings: List[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready description (no mask), numbers rounded for reading."""
        return dict(name=self.name, seed_lps=[round(v, 2) for v in self.seed_lps],
                    centroid_lps=[round(v, 2) for v in self.centroid_lps],
                    diameter_mm=round(self.diameter_mm, 1),
                    equivalent_diameter_mm=round(self.equivalent_diameter_mm, 1),
                    volume_ml=round(self.volume_ml, 3), mean_hu=round(self.mean_hu, 1),
                    contrast_hu=round(self.contrast_hu, 1), liver_hu=round(self.liver_hu, 1),
                    kind=self.kind, phase=self.phase, rim=self.rim, warnings=list(self.warnings))


def grow_lesion(ct: Volume, seed_lps: Sequence[float], liver: np.ndarray, *, name: str = "lesion",
                arterial: Optional[Volume] = None, bone: Optional[np.ndarray] = None,
                max_diameter_mm: float = MAX_DIAMETER_MM) -> LesionSegmentation:
    """Grow the lesion under the click ``seed_lps`` (CT LPS mm); see the module docstring.

    ``liver`` and ``bone``: bool ``[k, j, i]`` masks on the CT grid; ``arterial``: the
    arterial phase on the CT grid (resample it first). Raises InputError for a click
    outside the CT, in air or bone, outside the liver or without contrast.
    """
    seed_lps = tuple(float(v) for v in seed_lps)
    _check_inputs(ct, liver, arterial, bone, max_diameter_mm, name)
    box = seed_box(ct, seed_lps, max_diameter_mm / 2.0 + BOX_MARGIN_MM, name)
    sl, sp = box.slices, box.spacing
    phases = {"ct": ct.array[sl]}
    if arterial is not None:
        phases["arterial"] = arterial.array[sl]
    check_tissue(phases["ct"], box, name, seed_lps, None if bone is None else bone[sl])
    liver_box = liver[sl].astype(bool)
    hull = liver_hull(liver_box, sp)
    outside_mm, warning = check_in_liver(hull, box, name, seed_lps)
    warnings = [warning] if warning else []
    whole = {"ct": ct.array} if arterial is None else {"ct": ct.array, "arterial": arterial.array}
    best = phase_contrasts(whole, liver.astype(bool, copy=False), box)[0]
    check_contrast(best, box, name, seed_lps)
    hu = phases[best.phase].astype(np.float32)
    limit = box.seed_mm <= max_diameter_mm / 2.0
    grow_zone = (dilate_mm(hull, sp, outside_mm + 1.0) if outside_mm > 0 else hull) & limit
    core = _core(hu, best, box, grow_zone)
    if core is None:
        raise InputError(f"lesion '{name}': nothing at the click is on the lesion side of the half-way "
                         f"level ({best.liver_hu + 0.5 * best.contrast_hu:.0f} HU, {best.phase})",
                         fix="click in the middle of the lesion")
    core = _cut_leaks(core, box)
    esp = edge_spacing(sp)                  # thick slices: the edge within each slice
    signed = signed_distance_mm(core, esp)
    core_radius_mm = float((3.0 * core.sum() * np.prod(sp) / (4.0 * np.pi)) ** (1.0 / 3.0))
    edge = fit_edge(*radial_profile(hu, signed, hull), best.seed_hu, best.liver_hu,
                    core_radius_mm=core_radius_mm, all_round=_all_round(hu, signed, hull, core, sp))
    zone = dilate_mm(hull, sp, max(LIVER_MARGIN_MM, outside_mm + 1.0)) & limit
    final = _refined((signed <= edge.edge_mm) & zone, hu, signed - edge.edge_mm, edge, sp) & zone
    final = _seed_component(fill_holes_3d(final), box, reach_mm=2.0)
    if final is None:                       # the edge moved inward past the click: keep the core
        final = core
    elif edge.rim and esp[2] != sp[2]:     # a rim on thick slices: the end slices from its size
        final = _rim_end_slices(final, zone, sp)
    if np.any(final & (box.seed_mm > max_diameter_mm / 2.0 - 1.5 * sp.max())):
        warnings.append(f"{name}: the region reached the {max_diameter_mm:.0f} mm size limit; it has "
                        "probably leaked into neighbouring tissue: check it or draw it by hand")
    result = _measured(ct, box, final, hu, hull & ~final, best.phase, name, seed_lps,
                       "hypo" if best.contrast_hu < 0 else "hyper", edge.rim, warnings)
    border = _beyond_fraction(final, hu, result)
    if border > BORDER_FRACTION:
        result.warnings.append(f"{name}: {100 * border:.0f} % of its border is much "
                               f"{'darker' if result.kind == 'hypo' else 'brighter'} than the lesion (fluid, fat, "
                               "gas, vessel or bone): it may be the partial-volume edge of a neighbouring "
                               "structure rather than a lesion; check it")
    return result


def edge_spacing(spacing) -> np.ndarray:
    """The spacing (i, j, k) mm with which the edge is placed: the CT's own, except on thick
    slices (slice spacing over twice the pixel size, e.g. 5 mm slices of 0.8 mm pixels), where
    the slice axis is given ``THICK_SLICE_DISTANCE_MM``: the radial profile and the edge then
    work within each slice, and the lesion's extent across slices is the core's (the half-way
    threshold: a slice cutting the lesion is taken where more than half of it lies inside,
    which is where its partial-volume value passes the half-way level). Across a 5 mm slice
    the profile would mix a 5 mm partial-volume step with the in-plane edge and read it as
    a rim or a blur several mm wide."""
    sp = np.asarray(spacing, float).copy()
    if sp[2] > THICK_SLICE_RATIO * max(sp[0], sp[1]):
        sp[2] = THICK_SLICE_DISTANCE_MM
    return sp


def _check_inputs(ct, liver, arterial, bone, max_diameter_mm, name) -> None:
    if liver is None or np.shape(liver) != ct.array.shape:
        raise InputError(f"lesion '{name}': the liver mask must be on the CT grid "
                         f"({ct.array.shape} [k, j, i])", fix="resample the liver mask onto the CT first")
    if bone is not None and np.shape(bone) != ct.array.shape:
        raise InputError(f"lesion '{name}': the bone mask is not on the CT grid",
                         fix="resample the bone mask onto the CT first")
    if arterial is not None and not arterial.same_grid(ct):
        raise InputError(f"lesion '{name}': the arterial CT is not on the CT grid",
                         fix="resample the arterial phase onto the CT by physical position first")
    if not 5.0 <= max_diameter_mm <= 300.0:
        raise InputError(f"size limit {max_diameter_mm} mm is out of range", fix="give 5-300 mm")


def _core(hu: np.ndarray, best, box: SeedBox, zone: np.ndarray) -> Optional[np.ndarray]:
    """Half-way threshold of the smoothed phase, far side bounded, the click's component."""
    smooth = ndimage.gaussian_filter(hu, SMOOTHING_MM / box.spacing[::-1])
    c = best.contrast_hu
    level = best.liver_hu + 0.5 * c
    far = best.seed_hu + np.sign(c) * max(0.5 * abs(c), FAR_SIDE_MIN_HU)
    if c < 0:
        cand = (smooth < level) & (smooth > far)
    else:
        cand = (smooth > level) & (smooth < far)
    return _seed_component(cand & zone, box, reach_mm=2.0)


def _refined(mask: np.ndarray, hu: np.ndarray, from_edge_mm: np.ndarray, edge, spacing) -> np.ndarray:
    """The mask with the voxels within one pixel of the fitted edge decided one by one: in when
    their own value (smoothed by ``REFINE_SMOOTHING_MM`` within the slice) is on the lesion's
    side of the half-level of the outermost step (fitted outer level and liver).

    A caliper-like edge at one distance from the core takes or leaves a whole ring of voxels,
    and the core's 1 mm smoothing pulls the half-level contour inward at a convex edge; each
    voxel's own partial-volume value says whether more than half of it is lesion. Skipped when
    the outer step is under ``REFINE_MIN_STEP_HU`` and for a rim, whose fitted level (a narrow
    step) overshoots the measured one: its half-level cut the rim away (insertion benchmark)."""
    step = edge.rim_hu - edge.liver_hu
    if edge.rim or abs(step) < REFINE_MIN_STEP_HU:
        return mask
    sp = np.asarray(spacing, float)
    band = np.abs(from_edge_mm) <= float(max(sp[0], sp[1]))
    sigma = REFINE_SMOOTHING_MM / sp[::-1]
    sigma[0] = 0.0
    value = ndimage.gaussian_filter(hu, sigma)
    lesion_side = (value - (edge.liver_hu + 0.5 * step)) * np.sign(step) > 0
    return (mask & ~band) | (band & lesion_side)


def _all_round(hu: np.ndarray, signed: np.ndarray, region: np.ndarray, core: np.ndarray, spacing):
    """A test for :func:`fit_edge`: whether a rim between ``d_inner`` and ``d_outer`` mm from the
    core lies beyond the liver level all round the core: of the ``RIM_SECTORS`` in-plane sectors
    round the core's centre holding at least ``MIN_SECTOR_VOXELS`` voxels of the rim band (at least
    half of them must), at least ``RIM_SECTOR_FRACTION`` have their median beyond the liver on the
    rim's side. A vessel or a bright bump of the liver beside a small plain lesion raises the
    radial profile's medians on one side only (found on the insertion benchmark on real CT: 7 mm
    lesions touching a vessel grown 3-12 times too large). Sector count and fraction are
    heuristics of this project."""
    sp = np.asarray(spacing, float)
    centre = np.array([c.mean() for c in np.nonzero(core)])
    kji = np.indices(core.shape, dtype=np.float32)
    angle = np.arctan2((kji[1] - centre[1]) * sp[1], (kji[2] - centre[2]) * sp[0])
    sector = np.floor((angle + np.pi) / (2 * np.pi) * RIM_SECTORS).astype(int) % RIM_SECTORS

    def test(d_inner: float, d_outer: float, liver_hu: float, sign: float) -> bool:
        band = region & (signed >= d_inner) & (signed <= d_outer)
        devs = [sign * (float(np.median(hu[band & (sector == s)])) - liver_hu) for s in range(RIM_SECTORS)
                if np.count_nonzero(band & (sector == s)) >= MIN_SECTOR_VOXELS]
        return len(devs) >= RIM_SECTORS // 2 and np.mean(np.array(devs) > 0) >= RIM_SECTOR_FRACTION
    return test


def _rim_end_slices(mask: np.ndarray, zone: np.ndarray, spacing) -> np.ndarray:
    """The mask with the slice beyond each end (thick slices, a rim accepted) given the in-plane
    section of a round lesion there: the largest section's voxels deeper in it than
    ``R - sqrt(R^2 - dz^2)`` (``R`` its equivalent radius, ``dz`` the distance between the slices).

    Why: in a thick slice cutting a rim-enhancing lesion's end, the bright rim and the dark core
    average to about the liver's level (on the insertion benchmark on real CT the median of such
    slices lay within 1 HU of the liver), so the contrast cannot say where the lesion ends along
    the slice axis and the core's half-way threshold stops one slice short at each end (half the
    volume of an 18 mm lesion on 5 mm slices). The extent there is taken from the lesion's own
    in-plane size, assuming a roughly round lesion (a choice of this project)."""
    sp = np.asarray(spacing, float)
    areas = mask.sum(axis=(1, 2))
    ks = np.flatnonzero(areas)
    k0 = int(np.argmax(areas))
    radius = float(np.sqrt(areas[k0] * sp[0] * sp[1] / np.pi))
    depth = ndimage.distance_transform_edt(mask[k0], sampling=(sp[1], sp[0]))
    out = mask.copy()
    for k in (ks.min() - 1, ks.max() + 1):
        dz = abs(k - k0) * sp[2]
        if not 0 <= k < mask.shape[0] or dz >= radius:
            continue
        out[k] |= (depth > radius - np.sqrt(radius ** 2 - dz ** 2)) & zone[k]
    return out


def _beyond_fraction(final: np.ndarray, hu: np.ndarray, lesion: "LesionSegmentation") -> float:
    """Fraction of the voxels just outside the lesion that lie well beyond it, away from the
    liver (darker than a dark lesion, brighter than a bright one, by the contrast and at least
    30 HU): a real lesion is surrounded by liver, the blurred edge of the gallbladder, a
    fissure or a vessel is not."""
    shell = ndimage.binary_dilation(final, _FULL) & ~final
    if not shell.any():
        return 0.0
    margin = max(abs(lesion.contrast_hu), BORDER_MIN_HU)
    values = hu[shell]
    if lesion.kind == "hypo":
        return float(np.mean(values < lesion.mean_hu - margin))
    return float(np.mean(values > lesion.mean_hu + margin))


def _seed_component(mask: np.ndarray, box: SeedBox, reach_mm: float = 0.0) -> Optional[np.ndarray]:
    """The 26-connected component of ``mask`` holding the click, or the one nearest to it
    within ``reach_mm``; None when there is none."""
    lab, n = ndimage.label(mask, _FULL)
    if n == 0:
        return None
    cid = lab[box.seed]
    if cid == 0:
        near = (lab > 0) & (box.seed_mm <= reach_mm)
        if not near.any():
            return None
        cid = lab[near][np.argmin(box.seed_mm[near])]
    return lab == cid


def _cut_leaks(core: np.ndarray, box: SeedBox) -> np.ndarray:
    """Open the core by half its thickness near the click (1-4 mm), keeping only the part
    the erosion leaves connected to (or nearest) the click."""
    depth = depth_mm(core, box.spacing)
    near = box.seed_mm <= 5.0
    radius = float(np.clip(0.5 * depth[near].max(), 1.0, 4.0))
    eroded = erode_mm(core, box.spacing, radius, pad=False)
    kept = _seed_component(eroded, box, reach_mm=float(box.seed_mm.max()))
    if kept is None:
        return core
    return dilate_mm(kept, box.spacing, radius) & core


def _measured(ct: Volume, box: SeedBox, final: np.ndarray, hu: np.ndarray, liver_around: np.ndarray,
              phase: str, name: str, seed_lps, kind: str, rim: bool, warnings: list) -> LesionSegmentation:
    origin = ct.index_to_lps(box.offset_ijk)
    # lesion_table lists labels named lesion_*: the crop's one label is named so whatever ``name`` is
    crop = LabelMap(final.astype(np.uint8), ct.spacing, origin, ct.direction, {"lesion_1": 1})
    row = lesion_table(crop, Volume(hu, ct.spacing, origin, ct.direction))[0]
    d_out = distance_to_mm(final, box.spacing)
    around = liver_around & (d_out >= SURROUND_MM[0]) & (d_out <= SURROUND_MM[1])
    liver_hu = float(np.median(hu[around])) if around.any() else float(np.median(hu[liver_around]))
    mask = np.zeros(ct.array.shape, bool)
    mask[box.slices] = final
    return LesionSegmentation(
        name=name, seed_lps=seed_lps, mask=mask, diameter_mm=float(row["max_diameter_mm"]),
        equivalent_diameter_mm=float(row["equivalent_diameter_mm"]), volume_ml=float(row["volume_ml"]),
        mean_hu=float(row["mean_hu"]), contrast_hu=float(row["mean_hu"]) - liver_hu, liver_hu=liver_hu,
        kind=kind, phase=phase, rim=rim, centroid_lps=tuple(float(v) for v in row["centroid_lps"]),
        warnings=warnings)
