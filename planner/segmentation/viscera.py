"""Organs a needle must not cross that the liver pipeline does not find: gallbladder, kidneys,
spleen and bowel (heuristics, classical and deterministic, on the ~2 mm working grid).

The planner treats gallbladder, bowel, kidney, spleen and pancreas as hard
constraints (DESIGN section 7); a plan made from automatic labels that lack
them could propose a path through them. Each organ here is found by what
tells it apart on a contrast-enhanced CT, in the canonical index order of
:mod:`.orient` (+i patient left, +j posterior, +k superior), on a smoothed
copy of the working grid (Gaussian, :data:`SMOOTH_MM`):

- ``kidney``: the renal cortex enhances above the liver in the portal and
  nephrographic phases (about 150-200 HU against a liver of 100-120):
  voxels :data:`KIDNEY_ABOVE_LIVER_HU` brighter than the liver, below bone,
  opened by :data:`KIDNEY_OPEN_MM` (the parenchyma is 10-15 mm thick; thin
  enhanced vessels go), in components of at least :data:`KIDNEY_MIN_ML`
  whose centre lies beside the spine (:data:`KIDNEY_LATERAL_MM` from its
  axis, within :data:`KIDNEY_AP_MM` of its front), then the renal sinus and
  medulla inside filled per slice and a :data:`KIDNEY_GROW_MM` rim of
  non-fat tissue added;
- ``spleen``: the left upper quadrant organ enhancing like the liver: tissue
  between the liver's floor (muscle + half the liver-muscle gap) and
  :data:`SPLEEN_ABOVE_LIVER_HU` above the liver, not the liver, opened by
  :data:`SPLEEN_OPEN_MM`, in a component of at least :data:`SPLEEN_MIN_ML`
  whose centre lies left of the spine by :data:`SPLEEN_LEFT_MM` and in the
  posterior half of the body;
- ``gallbladder``: bile, a fluid of :data:`FLUID_HU` (-20..35 HU), in a blob
  (:data:`GB_CORE_ML` of it 2.5 mm inside) below muscle HU, touching the liver, right of
  the spine's left edge, at least :data:`GB_MEDIAL_MM` medial to the liver's
  lateral edge and :data:`DEEP_MM` under the skin (the visceral surface, not
  the body wall), not mostly inside the liver (a cyst or a lesion is), plus
  its wall (:data:`GB_WALL_MM`);
- ``bowel``: fluid (:data:`FLUID_HU`) in contact with the bowel gas
  (air-fluid levels of the stomach, colon and small bowel) and the soft-tissue
  wall (:data:`BOWEL_WALL_MM`, denser than fat) around gas and fluid.

Every organ keeps out of the liver's region (the gallbladder may take the
liver region's fossa where the region's hole filling enclosed it), the
vessels, bone, lungs, heart and the spine. What this module does not find
(a collapsed bowel loop without gas, the pancreas) stays unlabelled: stated in
docs/clinical_evidence.md. Thresholds are heuristics (not from a source),
measured on the project's CTs (benchmarks/results/viscera.md).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .morphology import bbox, dilate_mm, erode_mm, fill_holes_2d, label_components

SMOOTH_MM = 1.5
KIDNEY_ABOVE_LIVER_HU = 30.0
KIDNEY_MAX_HU = 450.0
KIDNEY_OPEN_MM = 4.0
KIDNEY_MIN_ML = 15.0
KIDNEY_LATERAL_MM = (25.0, 130.0)
KIDNEY_AP_MM = 60.0
KIDNEY_GROW_MM = 3.0
SPLEEN_ABOVE_LIVER_HU = 60.0
SPLEEN_OPEN_MM = 5.0
SPLEEN_FLOOR_FRACTION = 0.3
SPLEEN_MIN_ML = 20.0
SPLEEN_LEFT_MM = 40.0
FLUID_HU = (-20.0, 35.0)
FLUID_BELOW_MUSCLE_HU = 12.0
DEEP_MM = 20.0                 # organ contents lie deeper than the body wall's muscles
GB_CORE_ML = (0.5, 150.0)   # of the opened blob
GB_OPEN_MM = 2.5
GB_TOUCH_MM = 4.0
GB_OUTSIDE_FRACTION = 0.25
GB_WALL_MM = 3.0
GB_MEDIAL_MM = 30.0
GB_SPLIT_MM = 5.0
GB_GAS_SHARE = 0.02        # share of the core under gas that makes it bowel (an air-fluid level)
#: Share of a gallbladder's core against the liver (it lies in its fossa); of the candidates the
#: one with the most voxels against it is the gallbladder. Measured (demo seeds 0 / 1,
#: crlm-1004): the gallbladder 0.30 / 0.34 / 0.30 (491 / - / 71 voxels); fluid loops beside the
#: liver 0.02-0.03 (184 voxels); a blob at crlm-1004's hilum 0.61 but 19 voxels.
GB_MIN_AGAINST = 0.1
GB_SPLIT_MIN_ML = 1.0
BOWEL_WALL_MM = 5.0
BOWEL_BEHIND_SPINE_MM = 20.0
BOWEL_BLOB_ML = 2.0
TISSUE_MIN_HU = -30.0          # denser than fat: wall, parenchyma
SKIN_AWAY_MM = 6.0             # organs lie inside the body wall

NAMES = ("gallbladder", "kidney", "spleen", "bowel")
_FACES = ndimage.generate_binary_structure(3, 1)


def _smooth(hu: np.ndarray, spacing) -> np.ndarray:
    img = sitk.GetImageFromArray(hu.astype(np.float32))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(img, SMOOTH_MM))


def _centroids(lab: np.ndarray, n: int) -> np.ndarray:
    """[n, 3] mean (k, j, i) of components 1..n."""
    idx = np.nonzero(lab)
    vals = lab[idx]
    counts = np.bincount(vals, minlength=n + 1)[1:].astype(float)
    out = np.zeros((n, 3))
    for a in range(3):
        out[:, a] = np.bincount(vals, weights=idx[a].astype(float), minlength=n + 1)[1:] / np.maximum(counts, 1)
    return out


def _keep(lab: np.ndarray, ids) -> np.ndarray:
    table = np.zeros(int(lab.max()) + 1, bool)
    table[[int(i) for i in ids]] = True
    return table[lab]


def _in_front(mask: np.ndarray, spine_axis, sp) -> np.ndarray:
    """The components of ``mask`` centred less than :data:`BOWEL_BEHIND_SPINE_MM` behind the
    front of the vertebral body on their slice (gas behind that is a lung recess)."""
    lab, sizes = label_components(mask)
    if not sizes.size:
        return mask.copy()
    c = _centroids(lab, sizes.size)
    _, cj = _spine_at(spine_axis, c[:, 0], mask.shape)
    return _keep(lab, np.nonzero(c[:, 1] <= cj + BOWEL_BEHIND_SPINE_MM / sp[1])[0] + 1)


def _spine_at(spine_axis, k: np.ndarray, shape) -> tuple:
    """(i centre, j front) of the spine at slices ``k`` (the body's centre when unknown)."""
    k = np.clip(np.rint(k).astype(int), 0, shape[0] - 1)
    if spine_axis is None:
        return np.full(k.shape, shape[2] / 2.0), np.full(k.shape, shape[1] / 2.0)
    return spine_axis[k, 0], spine_axis[k, 1]


def _kidneys(hs: np.ndarray, sp: np.ndarray, free: np.ndarray, spine_axis, liver_hu: float) -> np.ndarray:
    """Kidneys: enhanced cortex (``hs``, smoothed HU) beside the spine, in ``free`` voxels."""
    vox_ml = float(np.prod(sp)) / 1000.0
    bright = free & (hs >= liver_hu + KIDNEY_ABOVE_LIVER_HU) & (hs <= KIDNEY_MAX_HU)
    lab, sizes = label_components(erode_mm(bright, sp, KIDNEY_OPEN_MM))
    if not sizes.size:
        return np.zeros(hs.shape, bool)
    c = _centroids(lab, sizes.size)
    ci, cj = _spine_at(spine_axis, c[:, 0], hs.shape)
    lateral = np.abs(c[:, 2] - ci) * sp[0]
    ap = np.abs(c[:, 1] - cj) * sp[1]
    ok = (sizes * vox_ml >= KIDNEY_MIN_ML * 0.3) & (lateral >= KIDNEY_LATERAL_MM[0]) & \
         (lateral <= KIDNEY_LATERAL_MM[1]) & (ap <= KIDNEY_AP_MM)
    core = _keep(lab, np.nonzero(ok)[0] + 1)
    kid = dilate_mm(core, sp, KIDNEY_OPEN_MM + 1.0) & bright
    lab2, sizes2 = label_components(kid)
    kid = _keep(lab2, np.nonzero(sizes2 * vox_ml >= KIDNEY_MIN_ML)[0] + 1)
    kid = fill_holes_2d(kid) & free
    return kid | (dilate_mm(kid, sp, KIDNEY_GROW_MM) & free & (hs >= TISSUE_MIN_HU))


def _spleen(hs: np.ndarray, sp: np.ndarray, candidates: np.ndarray, free: np.ndarray, trunk: np.ndarray,
            spine_axis, liver_hu: float, muscle_hu: float) -> np.ndarray:
    """Spleen: liver-like tissue among ``candidates`` in the left, posterior upper abdomen (the
    largest such blob), kept within ``free``."""
    vox_ml = float(np.prod(sp)) / 1000.0
    rows = trunk.any(axis=2)
    first = np.argmax(rows, axis=1).astype(float)
    last = (rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)).astype(float)
    lo = muscle_hu + SPLEEN_FLOOR_FRACTION * max(0.0, liver_hu - muscle_hu)
    tissue = candidates & (hs >= lo) & (hs <= liver_hu + SPLEEN_ABOVE_LIVER_HU)
    lab, sizes = label_components(erode_mm(tissue, sp, SPLEEN_OPEN_MM))
    if not sizes.size:
        return np.zeros(hs.shape, bool)
    c = _centroids(lab, sizes.size)
    ci, _ = _spine_at(spine_axis, c[:, 0], hs.shape)
    k = np.clip(np.rint(c[:, 0]).astype(int), 0, hs.shape[0] - 1)
    post = (c[:, 1] - first[k]) / np.maximum(last[k] - first[k], 1.0)
    ok = (sizes * vox_ml >= SPLEEN_MIN_ML * 0.3) & ((c[:, 2] - ci) * sp[0] >= SPLEEN_LEFT_MM) & (post >= 0.4)
    if not ok.any():
        return np.zeros(hs.shape, bool)
    core = lab == int(np.argmax(np.where(ok, sizes, 0))) + 1
    spl = dilate_mm(core, sp, SPLEEN_OPEN_MM + 1.0) & tissue
    lab2, sizes2 = label_components(spl)
    if sizes2.size and sizes2[0] * vox_ml >= SPLEEN_MIN_ML:
        return fill_holes_2d(lab2 == 1) & free
    return np.zeros(hs.shape, bool)


def find_viscera(hu: np.ndarray, spacing, *, trunk: np.ndarray, skin_depth: np.ndarray,
                 liver: np.ndarray, taken: np.ndarray, gas: np.ndarray, spine_axis,
                 liver_hu: float, muscle_hu: float) -> dict[str, np.ndarray]:
    """{name: bool working-grid mask} for :data:`NAMES` (empty masks where nothing was found).

    ``hu`` working-grid HU ``[k, j, i]`` (canonical order), ``spacing`` (i, j, k) mm;
    ``trunk`` the body; ``skin_depth`` mm under the skin; ``liver`` the liver's region;
    ``taken`` what is already another structure (bone, lung, vessels, heart, spine);
    ``gas`` the bowel gas; ``spine_axis`` [k, (i centre, j front)] or None;
    ``liver_hu`` / ``muscle_hu`` this scan's modes.
    """
    sp = np.asarray(spacing, float)
    vox_ml = float(np.prod(sp)) / 1000.0
    hs = _smooth(hu, sp)
    inside = trunk & (skin_depth > SKIN_AWAY_MM) & ~taken & ~gas
    free = inside & ~liver
    out = {n: np.zeros(hu.shape, bool) for n in NAMES}

    out["kidney"] = _kidneys(hs, sp, free, spine_axis, liver_hu)
    out["spleen"] = _spleen(hs, sp, free & ~out["kidney"], free, trunk, spine_axis, liver_hu, muscle_hu)

    # fluid blobs: the gallbladder (bile against the liver's visceral surface, no gas) or, deeper
    # than the wall and outside the liver, a fluid-filled bowel loop (or ascites): both hard
    fluid_hi = min(FLUID_HU[1], muscle_hu - FLUID_BELOW_MUSCLE_HU)
    fluid = inside & (hs >= FLUID_HU[0]) & (hs <= fluid_hi) & ~out["kidney"] & ~out["spleen"]
    # blobs are told apart by their cores (the fluid opened by GB_OPEN_MM): a gallbladder and a
    # fluid loop beside it, joined through the partial volume of their thin walls, part there
    core = erode_mm(fluid, sp, GB_OPEN_MM)
    lab, sizes = _split_at_necks(core, sp)
    fluid_bowel = np.zeros(hu.shape, bool)
    proved = np.zeros(hu.shape, bool)         # fluid loops against gas: certainly bowel
    reach = GB_OPEN_MM + 1.0
    if sizes.size:
        n = sizes.size
        c = _centroids(lab, n)
        ml = sizes * vox_ml

        def count(where):
            return np.bincount(lab[where].ravel(), minlength=n + 1)[1:]
        against = count(dilate_mm(liver, sp, GB_TOUCH_MM + reach))     # voxels against the liver
        # an air-fluid level covers the fluid's front: a voxel or two of gas in front of it is a
        # loop lying against it (demo seeds 0 and 1: the gallbladder 0.000 and 0.001)
        under_gas = count(_below_gas(gas, sp, reach + 1.0)) / sizes if gas.any() else np.zeros(n)
        with_gas = under_gas >= GB_GAS_SHARE
        in_core = count(erode_mm(liver, sp, 2.0 * GB_TOUCH_MM)) / sizes
        depth = np.bincount(lab.ravel(), weights=skin_depth.ravel(), minlength=n + 1)[1:] / sizes
        ci, cj = _spine_at(spine_axis, c[:, 0], hu.shape)
        right = c[:, 2] <= ci + 0.5 * SPLEEN_LEFT_MM / sp[0]
        k = np.clip(np.rint(c[:, 0]).astype(int), 0, hu.shape[0] - 1)
        # against the visceral surface: medial to the liver's lateral (right) edge on its slice
        has = liver.any(axis=1)                                             # [k, i]
        right_edge = np.where(has.any(axis=1), np.argmax(has, axis=1), 0)
        medial = (c[:, 2] - right_edge[k]) * sp[0] >= GB_MEDIAL_MM
        is_gb = (against >= GB_MIN_AGAINST * sizes) & ~with_gas & right & medial & (c[:, 1] <= cj) & \
            (in_core <= 1.0 - GB_OUTSIDE_FRACTION) & (depth >= DEEP_MM) & (ml >= GB_CORE_ML[0]) & (ml <= GB_CORE_ML[1])
        # one gallbladder: the candidate with the most voxels against the liver (GB_MIN_AGAINST)
        gb_ids = [int(np.argmax(np.where(is_gb, against, -1))) + 1] if is_gb.any() else []
        gb = dilate_mm(_keep(lab, gb_ids), sp, reach) & fluid
        # the bowel's fluid: the blobs grown back from every core, joined where their fluid
        # joins (a stomach's or a loop's contents are one blob), outside the gallbladder
        blobs, bsizes = label_components(dilate_mm(core, sp, reach) & fluid & ~gb)
        if bsizes.size:
            fluid_bowel, proved = _fluid_loops(blobs, bsizes, liver, gas, skin_depth, spine_axis, sp)
        if gb.any():
            gb = fill_holes_2d(gb)
            out["gallbladder"] = gb | (dilate_mm(gb, sp, GB_WALL_MM) & inside & ~liver & (hs >= TISSUE_MIN_HU))

    # bowel: the gas, the fluid loops (those against the gas: air-fluid levels) and their wall
    organs = out["kidney"] | out["spleen"] | out["gallbladder"]
    # a fluid blob mostly outside the liver keeps the part of it the liver region's hole filling took
    filled = _in_front(gas, spine_axis, sp) | (fluid_bowel & inside & ~organs)
    if filled.any():
        wall = dilate_mm(filled, sp, BOWEL_WALL_MM) & free & ~organs & (hs >= TISSUE_MIN_HU)
        out["bowel"] = (filled | wall) & ~gas
        # only bowel proved by its gas keeps what the liver region's hole filling took: a fluid
        # blob without gas at the hilum or in a fissure may be fat and liver partial-volumed
        out["bowel_in_liver"] = out["bowel"] & liver & dilate_mm(proved | gas, sp, BOWEL_WALL_MM)
    return out


def _split_at_necks(core: np.ndarray, sp: np.ndarray) -> tuple:
    """(labels, sizes) of the fluid cores, a core cut where it narrows: the cores of a deeper
    opening (:data:`GB_SPLIT_MM`) of at least :data:`GB_SPLIT_MIN_ML` are markers, and a core
    holding two or more is split among them by nearest marker. A gallbladder and a fluid-filled
    duodenum or colon loop against it join through a neck on a ~2.4 mm grid (their walls are
    thinner than a voxel); each is wider than that neck."""
    lab, sizes = label_components(core)
    markers, msizes = label_components(erode_mm(core, sp, GB_SPLIT_MM - GB_OPEN_MM))
    big = np.concatenate([[False], msizes * float(np.prod(sp)) / 1000.0 >= GB_SPLIT_MIN_ML])
    markers = np.where(big[markers], markers, 0)
    if np.count_nonzero(big) < 2:
        return lab, sizes
    m_blob = np.zeros(markers.max() + 1, np.int64)
    m_blob[markers[markers > 0]] = lab[markers > 0]
    idx = ndimage.distance_transform_edt(markers == 0, sampling=sp[::-1], return_distances=False,
                                         return_indices=True)
    near = markers[tuple(idx)]
    # a core's voxels go to its nearest marker in the same core; a core without one stays whole
    own = (m_blob[near] == lab) & (lab > 0)
    key = np.where(own, near + lab.max() + 1, lab)
    _, new = np.unique(key, return_inverse=True)
    new = new.reshape(lab.shape).astype(np.int32)          # 0 stays 0: the background sorts first
    return new, np.bincount(new.ravel())[1:]


def _below_gas(gas: np.ndarray, sp: np.ndarray, reach_mm: float) -> np.ndarray:
    """Voxels with gas at most ``reach_mm`` in front of them (anterior, -j, on their row): a
    fluid level under gas, as in a bowel loop of a supine patient. A gallbladder may lie against a
    gas-filled loop at its side or below; its bile has no gas above it in its own lumen."""
    out = gas.copy()
    for d in range(1, int(np.ceil(reach_mm / sp[1])) + 1):
        out[:, d:, :] |= gas[:, :-d, :]
    return out


def _fluid_loops(blobs, sizes, liver, gas, skin_depth, spine_axis, sp) -> tuple:
    """The fluid blobs that are bowel (or ascites): >= :data:`BOWEL_BLOB_ML`, <= 25 % inside the
    liver, centred in front of the spine's back, and deeper than the body wall or against gas;
    and, second, those of them against gas."""
    n = sizes.size
    c = _centroids(blobs, n)
    _, cj = _spine_at(spine_axis, c[:, 0], blobs.shape)
    # in front of the spine's back (the kidneys' level at most); behind it lie the lungs'
    # posterior recesses, pleural fluid and the back muscles
    front = c[:, 1] <= cj + BOWEL_BEHIND_SPINE_MM / sp[1]
    in_liver = np.bincount(blobs[liver].ravel(), minlength=n + 1)[1:] / sizes
    depth = np.bincount(blobs.ravel(), weights=skin_depth.ravel(), minlength=n + 1)[1:] / sizes
    with_gas = np.zeros(n, bool)
    if gas.any():
        with_gas = np.bincount(blobs[ndimage.binary_dilation(gas, _FACES)].ravel(), minlength=n + 1)[1:] > 0
    ok = front & (in_liver <= GB_OUTSIDE_FRACTION) & (sizes * float(np.prod(sp)) / 1000.0 >= BOWEL_BLOB_ML) & \
        ((depth >= DEEP_MM) | with_gas)
    return _keep(blobs, np.nonzero(ok)[0] + 1), _keep(blobs, np.nonzero(ok & with_gas)[0] + 1)


def viscera_step(st) -> None:
    """Add the masks of :data:`NAMES` to a :class:`planner.segmentation.stages.State` (CT grid,
    canonical order), after the liver, heart and vessels: drawn on the working grid (cropped to
    the trunk below the liver's top slice: no abdominal organ lies above the dome), brought to
    the CT grid smoothly and kept off every structure found before (the gallbladder may lie in
    the liver region's fossa)."""
    g, m = st.grid, st.masks
    vox_ml = float(np.prod(st.spacing)) / 1000.0
    vessel_names = [n for n in ("portal_vein", "hepatic_vein", "liver_vessel", "aorta", "ivc") if n in m]
    liver_w = g.mask_from_ct(st.liver_region, fraction=0.5)
    zone = m["trunk_w"].copy()
    ks = np.nonzero(liver_w.any(axis=(1, 2)))[0]
    if ks.size:
        zone[ks[-1] + 1:] = False
    box = bbox(zone, (0, 1, 1))
    found = {n: np.zeros(g.hu.shape, bool) for n in NAMES + ("bowel_in_liver",)}
    if box is not None:
        vessels = np.zeros(st.ct.array.shape, bool)
        for name in vessel_names:
            vessels |= m[name]
        taken_w = m["bone_w"] | m["lung_w"] | m["aorta_w"] | m["ivc_w"] | m["hull_w"] | \
            g.mask_from_ct(vessels, fraction=0.5)
        if "heart_w" in m:
            taken_w |= m["heart_w"]
        axis = None if st.spine_axis is None else \
            np.asarray(st.spine_axis, float)[box[0]] - np.array([box[2].start, box[1].start], float)
        part = find_viscera(g.hu[box], g.spacing, trunk=m["trunk_w"][box], skin_depth=m["skin_depth_w"][box],
                            liver=liver_w[box], taken=taken_w[box],
                            gas=g.mask_from_ct(m["bowel_gas"], fraction=0.3)[box], spine_axis=axis,
                            liver_hu=float(st.inten.mode_hu), muscle_hu=float(st.inten.muscle_hu))
        for name in part:
            found[name][box] = part[name]
    claimed = np.zeros(st.ct.array.shape, bool)
    for name in NAMES:
        full = np.zeros(st.ct.array.shape, bool)
        cbox = g.ct_box(found[name], max(g.spacing))
        if cbox is not None:
            blocked = m["bone"][cbox] | m["lung"][cbox] | m["bowel_gas"][cbox] | ~m["trunk"][cbox] | claimed[cbox]
            for other in vessel_names + (["heart"] if "heart" in m else []):
                blocked |= m[other][cbox]
            ct_mask = g.mask_to_ct(found[name], cbox)
            if name == "bowel" and found["bowel_in_liver"].any():   # its fluid may lie in the liver region
                blocked |= st.liver_region[cbox] & ~g.mask_to_ct(found["bowel_in_liver"], cbox)
            elif name != "gallbladder":
                blocked |= st.liver_region[cbox]
            full[cbox] = ct_mask & ~blocked
        if name == "bowel" and "dense_content" in m:     # oral contrast taken out of the bone
            full |= m["dense_content"] & ~(claimed | st.liver_region | m["bone"] | m["lung"])
            for other in vessel_names + (["heart"] if "heart" in m else []):
                full &= ~m[other]
        m[name] = full
        claimed |= full
        st.measures[f"{name}_ml"] = round(float(full.sum()) * vox_ml, 1)


def release_lesions(anatomy, lesions) -> list[str]:
    """Give back to the liver the fluid labels (gallbladder, bowel) that a clicked lesion touches.

    A hypodense lesion of fluid HU at the liver's surface can pass for a fluid blob; once the
    user has clicked it, the blob's voxels inside the liver region that are connected to the grown
    lesion are relabelled ``liver`` (the lesion wins its own voxels when the labels are composed),
    so that the lesion is not walled in by a structure it is part of. What lies outside the liver
    region keeps its label. Changes ``anatomy.labels`` in place; returns warnings (sentences).
    """
    from scipy import ndimage as ndi
    lab, names = anatomy.labels.array, anatomy.names
    out: list[str] = []
    if "liver" not in names or not lesions:
        return out
    for name in ("gallbladder", "bowel"):
        if name not in names:
            continue
        mask = lab == names[name]
        comps, n = ndi.label(mask)
        if n == 0:
            continue
        for les in lesions:
            touched = np.unique(comps[ndi.binary_dilation(les.mask) & mask])
            touched = touched[touched > 0]
            if not touched.size:
                continue
            give = np.isin(comps, touched) & anatomy.liver_region
            if give.any():
                lab[give] = names["liver"]
                vox_ml = float(np.prod(anatomy.labels.spacing)) / 1000.0
                out.append(f"{name} voxels touching {les.name} inside the liver region ({give.sum() * vox_ml:.1f} ml) "
                           f"relabelled liver: taken for part of the lesion, check them")
    return out
