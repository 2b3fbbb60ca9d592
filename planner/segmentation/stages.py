"""The steps of :func:`planner.segmentation.pipeline.segment_anatomy`, on one shared state.

Each step reads what earlier ones found and adds its masks to :class:`State`;
all arrays are in the canonical index order of :mod:`.orient` (``*_w`` on
the working grid, the rest on the CT grid).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from registration.spatial.volume import Volume

from .body import segment_body
from .cartilage import cartilage_on_ct, costal_cartilage
from .bone import ABOVE_VESSEL_HU, CORTEX_HU, HULL_INSET_MM, LOW_CORTEX_HU, cortex_seeds, segment_bone, skeleton_only
from .spine import spine_outline
from .checks import check_enhancement, check_field_of_view, check_liver
from .gas import RIB_NEAR_MM, air_components, bowel_gas
from .great_vessels import BRIDGED, PLACED_IN_GROOVE, SEEN_BRIGHT, great_vessels
from .grid import WorkGrid
from .heart import heart_block, heart_blood, heart_outline
from .liver import drop_paraspinal_islands, find_liver, liver_region, local_mean, tissue_intensities
from .liver_refine import refine_liver, smooth_hu
from .lungs import lung_labels, lung_region
from .morphology import bbox, depth_mm, dilate_mm, erode_mm
from .vessel_split import split_vessels
from .vessels import HILUM_MM, follow_portal_system, liver_vessels, refine_tube

SKIN_AWAY_MM = 4.0       # the liver keeps off the skin (partial volume of the body wall)
AWAY_FROM_MM = 2.0       # ... and off bone and air
PORTAL_FRONT_MM = 5.0
BONE_RIM_LIVER_SD = 1.0
SPINE_ZONE_MM = 15.0
OUTER_DEPTH_FRACTION = 0.5   # the body's outer half (of its deepest point's depth per slice): ribs reach it
PREVERTEBRAL_MM = (45.0, 30.0)


@dataclass
class State:
    ct: Volume
    grid: WorkGrid
    path: object
    warnings: List[str]
    seed_lps: Optional[np.ndarray] = None
    masks: Dict[str, np.ndarray] = field(default_factory=dict)
    measures: Dict[str, float] = field(default_factory=dict)
    inten: object = None
    liver_region: Optional[np.ndarray] = None
    vessel_method: str = ""
    spine_axis: Optional[np.ndarray] = None
    box: Optional[tuple] = None           # CT crop around the liver and its hilum
    hs: Optional[np.ndarray] = None       # smoothed HU on that crop

    @property
    def spacing(self):
        return self.ct.spacing


def body_and_cortex(st: State) -> None:
    g = st.grid
    trunk, patient = segment_body(g, path=st.path)
    st.warnings += check_field_of_view(trunk)
    seeds, lumen = cortex_seeds(st.ct.array, patient, st.spacing)
    st.masks.update(trunk=trunk, patient=patient, cortex=seeds, lumen=lumen)
    st.masks["trunk_w"] = g.mask_from_ct(trunk)
    st.masks["cortex_w"] = g.mask_from_ct(seeds, fraction=0.15)
    st.masks["hull_w"], st.spine_axis = spine_outline(g.hu, st.masks["cortex_w"], st.masks["trunk_w"],
                                                      g.spacing)


def intensities_and_great_vessels(st: State) -> None:
    g, m = st.grid, st.masks
    seed_kji = None if st.seed_lps is None else tuple(g.lps_to_kji(st.seed_lps))
    m["skin_depth_w"] = depth_mm(m["trunk_w"], g.spacing)
    inten = tissue_intensities(g.hu, m["trunk_w"], m["cortex_w"] | m["hull_w"], g.spacing, seed_kji,
                               m["skin_depth_w"])
    if inten is None:
        check_liver(None, m["trunk_w"], np.zeros_like(m["trunk_w"]), g.spacing, st.path)
    st.inten = inten
    aorta_w, ivc_w, aorta_hu, ivc_kinds = great_vessels(g.hu, m["cortex_w"], m["hull_w"], st.spine_axis,
                                             m["trunk_w"], inten.mode_hu, g.spacing, inten.muscle_hu)
    st.measures.update(liver_hu=float(inten.mode_hu), liver_sd_hu=round(float(inten.sd_hu), 1),
                       muscle_hu=float(inten.muscle_hu))
    if aorta_hu is not None:
        st.measures["aorta_hu"] = round(float(aorta_hu), 1)
    check_enhancement(inten.mode_hu, inten.muscle_hu, aorta_hu, st.path)
    m["aorta"] = refine_tube(g, aorta_w, inten.mode_hu, None)
    m["ivc"] = _ivc_on_ct(g, ivc_w, ivc_kinds, inten.mode_hu, m["aorta"])
    m["aorta_w"], m["ivc_w"] = aorta_w, ivc_w
    if not m["aorta"].any():
        st.warnings.append("aorta not found (no enhanced round tube beside the spine)")
    if not m["ivc"].any():
        st.warnings.append("IVC not found: it is neither brighter than the liver in this phase nor "
                           "surrounded by fat (or not in view); it may lie inside the liver label")
    elif (ivc_kinds == PLACED_IN_GROOVE).any():
        mm = float((ivc_kinds > 0).sum()) * float(g.spacing[2])
        st.warnings.append(f"IVC not seen (the liver's HU, no fat around it): placed from anatomy in the "
                           f"groove behind the liver over {mm:.0f} mm, not drawn from its wall: check it")
    elif (ivc_kinds == BRIDGED).any():
        mm = float((ivc_kinds == BRIDGED).sum()) * float(g.spacing[2])
        st.warnings.append(f"IVC: its course over {mm:.0f} mm where nothing separates it from the liver "
                           "is interpolated between where it is seen: check it")


def _ivc_on_ct(g: WorkGrid, ivc_w: np.ndarray, kinds: np.ndarray, liver_hu: float,
               aorta: np.ndarray) -> np.ndarray:
    """The IVC on the CT grid: redrawn at its half-maximum edge on the slices where it is
    brighter than the liver, the working-grid lumen (fat-bounded or interpolated) elsewhere."""
    bright_k = (kinds == SEEN_BRIGHT)[:, None, None]
    out = refine_tube(g, ivc_w & bright_k, liver_hu, None, exclude=aorta) \
        if (ivc_w & bright_k).any() else np.zeros(g.ct.array.shape, bool)
    rest = ivc_w & ~bright_k
    box = g.ct_box(rest, max(g.spacing))
    if box is not None:
        out[box] |= g.mask_to_ct(rest, box) & ~aorta[box]
    return out


def bone_and_air(st: State) -> None:
    g, m = st.grid, st.masks
    hull = g.zone_to_ct(m["hull_w"])
    vessels = m["aorta"] | m["ivc"] | m["lumen"]
    # with the enhanced blood's HU known, fainter cortex (thin ribs, old bone) can seed too
    blood = st.measures.get("aorta_hu", CORTEX_HU)
    low = max(LOW_CORTEX_HU, blood + ABOVE_VESSEL_HU)
    seeds = m["cortex"]
    if low < CORTEX_HU:
        extra, lumen = cortex_seeds(st.ct.array, m["patient"] & ~vessels, st.spacing, low)
        seeds = seeds | extra
        vessels |= lumen
    hull_core = g.zone_to_ct(erode_mm(m["hull_w"], g.spacing, HULL_INSET_MM))
    m["bone"] = segment_bone(st.ct.array, m["patient"], seeds, hull, vessels, st.spacing, hull_core=hull_core,
                             organ_band=(st.inten.mode_hu - BONE_RIM_LIVER_SD * st.inten.sd_hu,
                                         st.inten.mode_hu + BONE_RIM_LIVER_SD * st.inten.sd_hu))
    spine_zone = g.zone_to_ct(_grow_in_plane(m["hull_w"], g.spacing, SPINE_ZONE_MM))
    depth_w = m["skin_depth_w"]
    outer = g.zone_to_ct((depth_w > 0) & (depth_w <= OUTER_DEPTH_FRACTION * depth_w.max(axis=(1, 2), keepdims=True)))
    m["bone"], m["dense_content"] = skeleton_only(m["bone"], st.ct.array, spine_zone, outer, st.spacing)
    m["bone_w"] = g.mask_from_ct(m["bone"], fraction=0.3)
    near_bone = g.zone_to_ct(dilate_mm(m["bone_w"], g.spacing, RIB_NEAR_MM))
    lab, comps = air_components(st.ct.array, m["trunk"], near_bone, st.spacing)
    lung_ids = lung_labels(lab, comps, st.spacing)
    m["lung"] = lung_region(lab, lung_ids, st.spacing) & ~m["bone"]
    m["bowel_gas"] = bowel_gas(lab, comps, lung_ids)
    m["air_w"] = g.mask_from_ct(lab > 0, fraction=0.3) | g.mask_from_ct(m["lung"], fraction=0.3)
    m["lung_w"] = g.mask_from_ct(m["lung"], fraction=0.3)


def liver_step(st: State) -> None:
    g, m, inten = st.grid, st.masks, st.inten
    sp = g.spacing
    blocked = dilate_mm(m["bone_w"] | m["air_w"], sp, AWAY_FROM_MM) | m["aorta_w"]
    m["heart_blood_w"] = heart_blood(g.hu, m["trunk_w"], m["lung_w"], inten.mode_hu, sp)
    blocked |= heart_block(m["heart_blood_w"], sp)
    allowed = (m["skin_depth_w"] > SKIN_AWAY_MM) & ~blocked
    seed_kji = None if st.seed_lps is None else tuple(g.lps_to_kji(st.seed_lps))
    par = find_liver(g.hu, inten, allowed, m["trunk_w"], sp, seed_kji)
    st.warnings += check_liver(par, m["trunk_w"], m["lung_w"], sp, st.path)
    region_w = liver_region(par, g.hu, sp) & ~m["air_w"]
    mean_w = local_mean(par, g.hu, sp)
    m["liver_mean_w"], m["liver_w"] = mean_w, region_w
    # one smoothed crop for the capsule and the vessels (the liver, its hilum and a voxel more)
    m["zone_w"] = dilate_mm(region_w, sp, HILUM_MM)
    st.box = g.ct_box(m["zone_w"], max(sp) + 2.0)
    st.hs = smooth_hu(st.ct.array[st.box], st.spacing)
    liver_ct = refine_liver(g, region_w, par, mean_w, inten, st.box, st.hs)
    liver_ct &= ~(m["bone"] | m["lung"] | m["bowel_gas"] | m["aorta"] | m["ivc"])
    spine_zone = g.zone_to_ct(_grow_in_plane(m["hull_w"], g.spacing, SPINE_ZONE_MM) | _prevertebral(st))
    liver_ct = drop_paraspinal_islands(liver_ct, spine_zone, st.spacing)
    st.liver_region = liver_ct
    st.measures["liver_ml"] = round(float(liver_ct.sum()) * float(np.prod(st.spacing)) / 1000.0, 1)


def cartilage_step(st: State) -> None:
    """Costal cartilage (:mod:`.cartilage`) added to the bone, once the liver is known."""
    g, m = st.grid, st.masks
    excluded_w = m["liver_w"] | m["air_w"] | m["aorta_w"] | m["ivc_w"] | m["hull_w"]
    cart_w = costal_cartilage(g.hu, m["skin_depth_w"], m["bone_w"], excluded_w, st.inten.muscle_hu, g.spacing,
                              gas_w=g.mask_from_ct(m["bowel_gas"], fraction=0.3))
    if not cart_w.any():
        return
    zone = g.zone_to_ct(dilate_mm(cart_w, g.spacing, max(g.spacing)))
    box = bbox(zone)
    excluded = st.liver_region | m["lung"] | m["bowel_gas"] | m["aorta"] | m["ivc"] | ~m["trunk"]
    cart = np.zeros(zone.shape, bool)
    cart[box] = cartilage_on_ct(zone[box], smooth_hu(st.ct.array[box], st.spacing), excluded[box],
                                st.inten.muscle_hu)
    m["bone"] = m["bone"] | cart
    m["bone_w"] = m["bone_w"] | cart_w
    st.measures["cartilage_ml"] = round(float(cart.sum()) * float(np.prod(st.spacing)) / 1000.0, 1)


def heart_step(st: State) -> None:
    """The heart (:mod:`.heart`) as a structure of its own, around the chambers the liver
    step kept the liver away from; drawn on the working grid, kept off the other structures."""
    g, m = st.grid, st.masks
    m["heart"] = np.zeros(st.ct.array.shape, bool)
    allowed_w = ~(m["liver_w"] | m["air_w"] | m["lung_w"] | m["bone_w"] | m["aorta_w"] | m["hull_w"])
    heart_w = heart_outline(m["heart_blood_w"], g.hu, m["trunk_w"], allowed_w, g.spacing)
    m["heart_w"] = heart_w
    box = g.ct_box(heart_w, max(g.spacing))
    if box is None:
        return
    taken = st.liver_region | m["lung"] | m["bone"] | m["bowel_gas"] | m["aorta"] | ~m["trunk"]
    m["heart"][box] = g.mask_to_ct(heart_w, box) & ~taken[box]
    st.measures["heart_ml"] = round(float(m["heart"].sum()) * float(np.prod(st.spacing)) / 1000.0, 1)


def vessel_step(st: State, arterial: Optional[Volume]) -> None:
    g, m, inten = st.grid, st.masks, st.inten
    sp = st.spacing
    box, hs = st.box, st.hs
    mean = g.values_to_ct(np.where(np.isfinite(m["liver_mean_w"]), m["liver_mean_w"],
                                   inten.mode_hu), inten.mode_hu, box)
    liver_c = st.liver_region[box]
    zone = g.zone_to_ct(m["zone_w"])[box]
    blocked = m["bone"][box] | m["aorta"][box] | m["lung"][box] | m["bowel_gas"][box] | m["heart"][box]
    ves = np.zeros(st.ct.array.shape, bool)
    ves[box] = liver_vessels(hs, liver_c, zone, mean, inten.sd_hu, blocked, sp)
    if m["ivc"][box].any():                  # the vessels lie in the box: no full-grid distance map
        ves[box] &= ~dilate_mm(m["ivc"][box], sp, 1.0)
    # nothing above the liver's highest slice is a liver vessel (the hepatic veins join the IVC
    # below the dome; above it lie the IVC's end and the heart)
    ves[int(np.nonzero(st.liver_region.any(axis=(1, 2)))[0][-1]) + 1:] = False
    # the portal system outside the liver, on the working grid
    thr_out = inten.mode_hu + max(2.5 * inten.sd_hu, 25.0)
    start_w = g.mask_from_ct(ves & ~st.liver_region, fraction=0.3)
    block_w = dilate_mm(m["bone_w"] | m["aorta_w"] | m["ivc_w"] | m["air_w"] | m["heart_w"], g.spacing, 2.0) | \
        erode_mm(m["liver_w"], g.spacing, 2.0) | ~_in_front_of_spine(st)
    # the portal system runs below the liver's dome: what continues above it is the IVC
    # entering the heart, not a portal vein
    top = np.nonzero(m["liver_w"].any(axis=(1, 2)))[0]
    if top.size:
        block_w[top[-1]:] = True
    outside_w = follow_portal_system(g.hu, start_w, thr_out, block_w, g.spacing) & ~m["liver_w"]
    outside = refine_tube(g, outside_w, inten.mode_hu, None,
                          exclude=m["bone"] | m["aorta"] | m["ivc"] | st.liver_region)
    art = None
    if arterial is not None:
        art = smooth_hu(_on_grid(arterial, st.ct)[box], sp)
    split = split_vessels(ves[box], liver_c, m["ivc"][box], sp, art)
    st.vessel_method = split.method
    for name, part in (("portal_vein", split.portal), ("hepatic_vein", split.hepatic),
                       ("liver_vessel", split.undetermined)):
        full = np.zeros(st.ct.array.shape, bool)
        full[box] = part
        m[name] = full
    # outside the liver, followed from the hilum in front of the spine: the portal system
    m["portal_vein"] |= outside
    if m["liver_vessel"].any() and (split.portal.any() or split.hepatic.any()):
        share = 100.0 * float(split.undetermined.sum()) / float(max(1, ves[box].sum()))
        st.warnings.append(f"{share:.0f} % of the liver's vessels reached from neither root "
                           f"({split.method}): labelled liver_vessel")
    elif m["liver_vessel"].any():
        st.warnings.append(f"portal and hepatic veins not told apart ({split.method}): "
                           "labelled liver_vessel")


def _grow_in_plane(mask: np.ndarray, spacing, radius_mm: float) -> np.ndarray:
    """Each axial slice's mask grown by ``radius_mm`` within the slice."""
    steps = max(1, int(round(radius_mm / float(min(spacing[:2])))))
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_dilation(mask, st, iterations=steps)


def _prevertebral(st: State) -> np.ndarray:
    """Working-grid box in front of each vertebral body where the IVC and aorta run:
    within :data:`PREVERTEBRAL_MM` (lateral, anterior) of the body's centre and front."""
    shape = st.grid.hu.shape
    out = np.zeros(shape, bool)
    if st.spine_axis is None:
        return out
    lat, ant = PREVERTEBRAL_MM
    sp = st.grid.spacing
    jj = np.arange(shape[1])[None, :, None]
    ii = np.arange(shape[2])[None, None, :]
    ci = st.spine_axis[:, 0][:, None, None]
    front = st.spine_axis[:, 1][:, None, None]
    return (np.abs(ii - ci) * sp[0] <= lat) & (jj >= front - ant / sp[1]) & (jj <= front + 5.0 / sp[1])


def _in_front_of_spine(st: State) -> np.ndarray:
    """Working-grid voxels anterior to the vertebral bodies by :data:`PORTAL_FRONT_MM`: the
    portal, splenic and mesenteric veins run there; the kidneys lie beside the spine."""
    shape = st.grid.hu.shape
    if st.spine_axis is None:
        return np.ones(shape, bool)
    limit = st.spine_axis[:, 1] - PORTAL_FRONT_MM / st.grid.spacing[1]
    return np.broadcast_to((np.arange(shape[1])[None, :] < limit[:, None])[:, :, None], shape)


def _on_grid(vol: Volume, ref: Volume) -> np.ndarray:
    """``vol``'s HU on ``ref``'s grid by physical position (linear; -1000 outside)."""
    if vol.same_grid(ref):
        return vol.array.astype(np.float32)
    img = vol.to_sitk()
    dst = sitk.Image([int(s) for s in ref.shape_ijk], sitk.sitkUInt8)
    dst.SetSpacing(tuple(map(float, ref.spacing)))
    dst.SetOrigin(tuple(map(float, ref.origin)))
    dst.SetDirection(tuple(map(float, ref.direction.reshape(-1))))
    out = sitk.Resample(sitk.Cast(img, sitk.sitkFloat32), dst, sitk.Transform(), sitk.sitkLinear, -1000.0)
    return sitk.GetArrayFromImage(out)
