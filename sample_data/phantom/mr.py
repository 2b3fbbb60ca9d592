"""A synthetic liver MR of the demo patient: hepatobiliary-phase T1, another breath-hold, one MR-only metastasis.

Contrast (gadoxetate, 20 min, fat-suppressed 3D T1 gradient echo): the liver
is bright (hepatocytes take the agent up), metastases, vessels, spleen and
muscle darker, bile in the gallbladder bright (the agent is excreted), fat,
air, lung and cortical bone dark. Intensities per tissue are ``TISSUE_MR``
(liver = 1), painted on the CT grid from the label map (body voxels split into
fat and muscle by their HU, bone into cortex and marrow, bowel into wall,
fluid and gas), then:

1. one extra small metastasis, ``MR_ONLY`` (8 mm, hypointense), painted only
   here: the CT, its labels and the sweeps do not contain it (CT-occult);
2. blurred by an MR point-spread function and pulled onto the MR grid through
   the true MR -> CT mapping (:mod:`.mr_motion`: the patient repositioned and
   the organs in another breath-hold position, with a small smooth deformation);
3. multiplied by a smooth receive-coil bias field (0.75-1.25, brighter
   anteriorly) and given Rician noise (``NOISE_SD`` of the liver signal), then
   scaled to scanner-like integers (liver ~ ``SCALE``).

:func:`make_mr` returns the volume (int16, LPS mm, axial ``MR_SPACING_MM`` grid
around the liver) and its truth (JSON-ready): the mapping, its best rigid fit
over the liver (what a rigid registration can reach) with the residual at each
lesion, every lesion and vessel landmark in MR coordinates, and the MR-only lesion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from registration.spatial.volume import LabelMap, Volume

from .mr_motion import MRMotion, make_motion

MR_SPACING_MM = (1.5, 1.5, 2.0)
MR_FOV_MM = (384.0, 312.0, 200.0)
SCALE = 1200.0
NOISE_SD = 0.03
BIAS_RANGE = 0.25
#: Intensity relative to the liver, hepatobiliary-phase fat-suppressed T1.
TISSUE_MR = {
    "air": 0.0, "fat": 0.16, "skin": 0.35, "muscle": 0.33, "bone_cortex": 0.05, "marrow": 0.28,
    "lung": 0.03, "liver": 1.0, "portal_vein": 0.22, "hepatic_vein": 0.22, "artery": 0.25, "ivc": 0.24,
    "gallbladder": 0.75, "bowel_wall": 0.40, "bowel_fluid": 0.12, "bowel_gas": 0.02, "kidney": 0.50,
    "spleen": 0.42, "pancreas": 0.55, "pancreatic_mass": 0.30, "heart": 0.28, "spinal_canal": 0.15,
    "metastasis": 0.30, "metastasis_rim": 0.42,
}
#: The MR-only metastasis: name, type, diameter (mm).
MR_ONLY = ("lesion_mr_1", "adenocarcinoma", 8.0)
#: Where it may go: inside the liver at least LIVER_MARGIN_MM from its surface, VESSEL_MM from vessels,
#: LESION_MM from every CT lesion (edge to edge), near the right lobe (the survey sweep).
LIVER_MARGIN_MM = 12.0
VESSEL_MM = 5.0
LESION_MM = 15.0


@dataclass
class MRCase:
    """The demo MR (int16 [k, j, i], LPS mm) and its truth (JSON-ready dict)."""
    mr: Volume
    truth: dict
    motion: MRMotion


def tissue_image(ct: Volume, labels: LabelMap) -> np.ndarray:
    """float32 [k, j, i] on the CT grid: the MR intensity of every voxel's tissue (liver = 1)."""
    t = TISSUE_MR
    hu = np.asarray(ct.array, np.float32)
    lab = labels.array
    out = np.zeros(lab.shape, np.float32)

    def put(name, value, extra=None):
        if name not in labels.names:
            return
        m = lab == labels.names[name]
        out[m if extra is None else (m & extra)] = value

    put("body", t["fat"])
    put("body", t["muscle"], hu > -30)
    put("bone", t["marrow"])
    put("bone", t["bone_cortex"], hu > 500)
    put("bowel", t["bowel_wall"])
    put("bowel", t["bowel_fluid"], hu < 40)
    put("bowel", t["bowel_gas"], hu < -400)
    put("kidney", t["kidney"])
    put("kidney", t["fat"], hu < -30)
    for name in ("lung", "liver", "portal_vein", "hepatic_vein", "artery", "ivc", "gallbladder", "spleen",
                 "pancreas", "pancreatic_mass", "heart", "spinal_canal"):
        put(name, t[name])
    for name, value in labels.names.items():
        if name.startswith("lesion_"):
            boxes = ndimage.find_objects((lab == value).astype(np.uint8))
            if not boxes or boxes[0] is None:
                continue
            box = tuple(slice(max(s.start - 2, 0), s.stop + 2) for s in boxes[0])
            m = lab[box] == value
            sub = out[box]
            sub[m] = t["metastasis"]
            # a brighter rim (outer 2.5 mm) as the CT's rim-enhancing lesions have
            inner = ndimage.binary_erosion(m, iterations=max(1, int(round(2.5 / float(ct.spacing[0])))))
            sub[m & ~inner] = t["metastasis_rim"]
    return out


def choose_mr_only_site(labels: LabelMap, lesion_truth, right_lobe_ct, rng) -> np.ndarray:
    """CT LPS centre of the MR-only metastasis (see the constants for the rules)."""
    sp = np.asarray(labels.spacing)
    box = ndimage.find_objects(labels.mask("liver").astype(np.uint8))[0]
    box = tuple(slice(max(b.start - 4, 0), b.stop + 4) for b in box)
    step = np.maximum(np.round(2.5 / sp).astype(int), 1)
    sub = tuple(slice(b.start, b.stop, st) for b, st in zip(box, step[::-1]))
    lab = labels.array[sub]
    liver = lab == labels.names["liver"]
    vessels = np.isin(lab, [labels.names[n] for n in ("portal_vein", "hepatic_vein", "artery", "ivc")
                            if n in labels.names])
    sp_c = (sp * step)[::-1]
    inside = ndimage.distance_transform_edt(liver, sampling=sp_c)
    from_vessel = ndimage.distance_transform_edt(~vessels, sampling=sp_c)
    r = MR_ONLY[2] / 2
    ok = (inside >= LIVER_MARGIN_MM) & (from_vessel >= VESSEL_MM + r)
    k, j, i = np.nonzero(ok)
    ijk = np.stack([box[2].start + i * step[0], box[1].start + j * step[1], box[0].start + k * step[2]], axis=1)
    pts = labels.index_to_lps(ijk.astype(float))
    for les in lesion_truth:
        d = np.linalg.norm(pts - np.asarray(les["centroid_lps"]), axis=1)
        pts = pts[d >= LESION_MM + r + les["diameter_mm"] / 2]
    if len(pts) == 0:
        raise RuntimeError("no place for the MR-only metastasis in the liver")
    d = np.linalg.norm(pts - np.asarray(right_lobe_ct), axis=1)
    near = pts[np.argsort(d)[:50]]
    return near[int(rng.integers(len(near)))]


def _paint_sphere(image: np.ndarray, vol: Volume, centre, diameter_mm: float, value: float) -> None:
    r = diameter_mm / 2
    lo = np.floor(vol.lps_to_index(np.asarray(centre) - r - 2)).astype(int)
    hi = np.ceil(vol.lps_to_index(np.asarray(centre) + r + 2)).astype(int) + 1
    lo, hi = np.maximum(lo, 0), np.minimum(hi, vol.shape_ijk)
    k, j, i = np.mgrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    p = vol.index_to_lps(np.stack([i, j, k], -1).reshape(-1, 3).astype(float))
    d = np.linalg.norm(p - np.asarray(centre), axis=1).reshape(k.shape)
    f = 1.0 / (1.0 + np.exp(-(r - d) / 0.4))
    box = image[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    box[...] = box * (1 - f) + f * value


def _mr_grid(motion: MRMotion, liver_centre_ct) -> Volume:
    """Axial MR grid (MR LPS): the whole abdominal cross-section (centred on the body's axis, x = 0,
    y = 10 mm on the CT) at the liver's height, as the MR sees them."""
    centre = motion.ct_to_mr(np.array([0.0, 10.0, float(liver_centre_ct[2])]))
    sp = np.asarray(MR_SPACING_MM)
    n = np.round(np.asarray(MR_FOV_MM) / sp).astype(int)
    origin = centre - (n - 1) / 2 * sp
    return Volume(np.zeros(n[::-1], np.float32), sp, origin, np.eye(3))


def _bias_field(grid: Volume, rng) -> np.ndarray:
    """Smooth multiplicative field: brighter anteriorly (surface coil), a low-order random part."""
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, s) for s in grid.array.shape], indexing="ij")
    c = rng.uniform(-1, 1, 4)
    f = -0.6 * j + 0.25 * (c[0] * i + c[1] * k + c[2] * i * k + c[3] * (i * i - k * k))
    f = f / max(float(np.abs(f).max()), 1e-6)
    return (1.0 + BIAS_RANGE * f).astype(np.float32)


def make_mr(ct: Volume, labels: LabelMap, truth: dict, right_lobe_ct, seed: int = 0) -> MRCase:
    """The demo MR and its truth (see the module docstring). ``truth``: the phantom's truth
    (lesions, landmarks); ``right_lobe_ct``: where the MR-only lesion is placed near. Its own
    random stream (seed, "mr"), so the CT part of the case does not change with it."""
    rng = np.random.default_rng([int(seed), 0x4D52])
    liver_pts = _liver_points(labels)
    liver_centre = liver_pts.mean(axis=0)
    motion = make_motion(labels, rng, liver_centre)
    site = choose_mr_only_site(labels, truth["lesions"], right_lobe_ct, rng)
    image = tissue_image(ct, labels)
    _paint_sphere(image, ct, site, MR_ONLY[2], TISSUE_MR["metastasis"])
    image = ndimage.gaussian_filter(image, sigma=0.5 * np.asarray(MR_SPACING_MM)[::-1] / np.asarray(ct.spacing)[::-1])
    grid = _mr_grid(motion, liver_centre)
    signal = _pull(image, ct, grid, motion)
    signal *= _bias_field(grid, rng)
    n1 = rng.standard_normal(signal.shape, dtype=np.float32) * NOISE_SD
    n2 = rng.standard_normal(signal.shape, dtype=np.float32) * NOISE_SD
    mag = np.sqrt((signal + n1) ** 2 + n2 ** 2)
    arr = np.clip(np.rint(mag * SCALE), 0, 32767).astype(np.int16)
    mr = grid.with_array(arr, modality="MR", series_description="t1_vibe_fs_tra HBP 20min (synthetic)")
    return MRCase(mr, _truth(motion, labels, truth, site, liver_pts), motion)


def _liver_points(labels: LabelMap, every: int = 53) -> np.ndarray:
    k, j, i = np.nonzero(labels.mask("liver"))
    return labels.index_to_lps(np.stack([i, j, k], axis=1)[::every].astype(float))


def _pull(image: np.ndarray, ct: Volume, grid: Volume, motion: MRMotion) -> np.ndarray:
    """``image`` (CT grid) sampled at mr_to_ct of every MR voxel, slab by slab (memory)."""
    nk, nj, ni = grid.array.shape
    out = np.zeros((nk, nj, ni), np.float32)
    jj, ii = np.mgrid[0:nj, 0:ni]
    for k in range(nk):
        idx = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], axis=1).astype(float)
        x_ct = motion.mr_to_ct(grid.index_to_lps(idx))
        c = ct.lps_to_index(x_ct)
        out[k] = ndimage.map_coordinates(image, [c[:, 2], c[:, 1], c[:, 0]], order=1, mode="constant",
                                         cval=0.0).reshape(nj, ni)
    return out


def _truth(motion: MRMotion, labels: LabelMap, truth: dict, site, liver_pts_ct) -> dict:
    """The MR part of truth.json."""
    liver_mr = motion.ct_to_mr(liver_pts_ct)
    rigid = motion.rigid_fit(liver_mr)          # best rigid mr_to_ct over the liver

    def rigid_residual(p_ct):
        p_mr = motion.ct_to_mr(np.asarray(p_ct, float))
        return float(np.linalg.norm((rigid[:3, :3] @ p_mr + rigid[:3, 3]) - np.asarray(p_ct, float)))

    lesions = [{"name": les["name"], "centroid_ct": les["centroid_lps"],
                "centroid_mr": [round(float(v), 3) for v in motion.ct_to_mr(np.asarray(les["centroid_lps"], float))],
                "diameter_mm": les["diameter_mm"], "type": les["type"],
                "rigid_fit_residual_mm": round(rigid_residual(les["centroid_lps"]), 3)}
               for les in truth["lesions"]]
    landmarks = {name: [round(float(v), 3) for v in motion.ct_to_mr(np.asarray(p, float))]
                 for name, p in truth.get("landmarks", {}).items()}
    name, kind, diam = MR_ONLY
    only = {"name": name, "type": kind, "diameter_mm": diam, "centroid_ct": [round(float(v), 3) for v in site],
            "centroid_mr": [round(float(v), 3) for v in motion.ct_to_mr(site)],
            "rigid_fit_residual_mm": round(rigid_residual(site), 3),
            "notes": ["seen only on MR: not in the CT, its labels or the sweeps"]}
    return {"frame": "MR (LPS mm of the MR scanner)", "contrast": "T1 fat-suppressed gradient echo, "
            "hepatobiliary phase 20 min after gadoxetate (synthetic)", "spacing_mm": list(MR_SPACING_MM),
            "tissue_intensity_rel_liver": TISSUE_MR, "noise_sd_rel_liver": NOISE_SD, "bias_range": BIAS_RANGE,
            "scale": SCALE, "motion": motion.to_truth(),
            "mr_to_ct_rigid_liver": rigid.tolist(),
            "note": "mr_to_ct_rigid_liver is the best rigid MR -> CT fit over the liver (least squares); "
                    "per-point truth is centroid_mr <-> centroid_ct (the mapping is not rigid)",
            "lesions": lesions, "landmarks_mr": landmarks, "mr_only_lesion": only}
