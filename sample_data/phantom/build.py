"""The synthetic pancreatic-cancer patient: two-phase contrast CT, label map, truth.

``make_phantom(seed)`` paints tissue codes on an axial LPS grid (supine
patient; x to the patient's Left, y Posterior, z Superior: the liver is at
negative x), places six liver metastases with known truth, then turns codes
into Hounsfield units for the late-arterial (45 s) and portal-venous (70 s)
phases, blurs by a CT point-spread function (~0.5 mm) and adds correlated
Gaussian noise (~12 HU SD). Same seed -> identical arrays.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
from scipy import ndimage

from registration.spatial.lesions import measure_lesion
from registration.spatial.volume import LabelMap, Volume

from . import anatomy as A
from . import body, organs, vessels
from .lesions import DEEP_MM, SPECS, Lesion, couinaud_segment, rasterise, skin_access

VERSION = 1
FOV_MM = (352.0, 304.0, 201.0)   # x (R-L), y (A-P), z (I-S)
NOISE_SD_HU = 12.0
PHASES = {"arterial": {"delay_s": 45, "description": "Pancreas protocol - late arterial 45s"},
          "portal": {"delay_s": 70, "description": "Pancreas protocol - portal venous 70s"}}

# HU per tissue code: (late arterial, portal venous)
HU = {
    A.AIR: (-1000, -1000), A.SKIN: (35, 40), A.FAT: (-105, -100), A.MUSCLE: (52, 58),
    A.VISCERAL_FAT: (-95, -95), A.CORTICAL: (850, 850), A.CANCELLOUS: (240, 240),
    A.CARTILAGE: (130, 135), A.DISC: (85, 90), A.CSF: (8, 8), A.CORD: (35, 38),
    A.LUNG: (-855, -850), A.DIAPHRAGM: (55, 60), A.HEART_WALL: (110, 115),
    A.HEART_BLOOD: (290, 165), A.LIVER: (80, 115), A.PORTAL: (150, 190),
    A.HEPATIC_VEIN: (80, 165), A.ARTERY: (300, 160), A.AORTA: (330, 165), A.IVC: (95, 145),
    A.GB_BILE: (8, 10), A.GB_WALL: (60, 75), A.KIDNEY_CORTEX: (200, 175),
    A.KIDNEY_MEDULLA: (85, 165), A.SINUS_FAT: (-80, -80), A.SPLEEN: (130, 120),
    A.PANCREAS: (130, 100), A.PANC_MASS: (45, 60), A.GUT_WALL: (95, 90),
    A.GUT_FLUID: (12, 15), A.GUT_GAS: (-1000, -1000), A.FECES: (-40, -40),
}
# lesion HU: core and rim (rim = outer 2.5 mm; peripheral enhancement of larger adenocarcinoma mets)
LESION_HU = {
    "lesion_1": {"core": (58, 52), "rim": (92, 98)},
    "lesion_2": {"core": (60, 55), "rim": (88, 95)},
    "lesion_3": {"core": (62, 58), "rim": (62, 58)},
    "lesion_4": {"core": (64, 60), "rim": (64, 60)},
    "lesion_5": {"core": (155, 100), "rim": (155, 100)},   # NET: hyper, portal washout
    "lesion_6": {"core": (165, 126), "rim": (165, 126)},   # NET: hyper, iso/slightly hyper
}

# label values (DESIGN section 6 names; ivc and spinal_canal are extra, kept)
LABELS = {"body": 1, "liver": 2, "portal_vein": 3, "hepatic_vein": 4, "artery": 5, "bone": 6,
          "lung": 7, "gallbladder": 8, "bowel": 9, "kidney": 10, "spleen": 11, "pancreas": 12,
          "pancreatic_mass": 13, "heart": 14, "ivc": 15, "spinal_canal": 16}
LESION_VALUE0 = 20
TISSUE_TO_LABEL = {
    A.SKIN: "body", A.FAT: "body", A.MUSCLE: "body", A.VISCERAL_FAT: "body", A.DIAPHRAGM: "body",
    A.CORTICAL: "bone", A.CANCELLOUS: "bone", A.CARTILAGE: "bone", A.DISC: "bone",
    A.CSF: "spinal_canal", A.CORD: "spinal_canal", A.LUNG: "lung", A.HEART_WALL: "heart",
    A.HEART_BLOOD: "heart", A.LIVER: "liver", A.PORTAL: "portal_vein",
    A.HEPATIC_VEIN: "hepatic_vein", A.ARTERY: "artery", A.AORTA: "artery", A.IVC: "ivc",
    A.GB_BILE: "gallbladder", A.GB_WALL: "gallbladder", A.KIDNEY_CORTEX: "kidney",
    A.KIDNEY_MEDULLA: "kidney", A.SINUS_FAT: "kidney", A.SPLEEN: "spleen",
    A.PANCREAS: "pancreas", A.PANC_MASS: "pancreatic_mass", A.GUT_WALL: "bowel",
    A.GUT_FLUID: "bowel", A.GUT_GAS: "bowel", A.FECES: "bowel",
}
BONE_CODES = [A.CORTICAL, A.CANCELLOUS, A.CARTILAGE, A.DISC]
VESSEL_CODES = [A.PORTAL, A.HEPATIC_VEIN, A.ARTERY]


@dataclass
class Phantom:
    """CT of both phases (int16 HU, LPS, axial), label map and ground truth."""

    ct_arterial: Volume
    ct_portal: Volume
    labels: LabelMap
    truth: dict
    timings_s: Dict[str, float] = field(default_factory=dict)


def _lut(mapping, index):
    lut = np.zeros(A.N_TISSUES, np.float32)
    for code, v in mapping.items():
        lut[code] = v[index] if isinstance(v, tuple) else v
    return lut


def _fits(grid, tissue, c, r, note):
    """Geometric checks of a candidate centre: inside the liver (or touching its
    capsule for 'subcapsular'), few vessel voxels (small vessels inside a
    metastasis are replaced by tumour; big ones are avoided)."""
    b = grid.box(c - r - 3, c + r + 3)
    if b is None:
        return False
    sl, co = b
    d = np.sqrt(sum((a - float(v)) ** 2 for a, v in zip(co, c)))
    sub = tissue[sl]
    core = sub[d <= r + 1.0]
    shell = sub[d <= r + 2.5]
    if core.size == 0:
        return False
    liver_frac = np.isin(core, [A.LIVER] + VESSEL_CODES).mean()
    vessel_frac = np.isin(core, VESSEL_CODES).mean()
    touches = (~np.isin(shell, [A.LIVER] + VESSEL_CODES)).any()
    if vessel_frac > 0.06:
        return False
    if note == "subcapsular":
        return liver_frac >= 0.85 and touches
    return liver_frac >= 0.999 and not touches


def _deepest(grid, tissue, r, placed):
    """The liver point (6 mm lattice, upper posterior liver) whose best skin
    window (no bone, lung or gas on the straight path) is longest."""
    lat = np.stack(np.meshgrid(np.arange(-95.0, 1.0, 6.0), np.arange(-20.0, 61.0, 6.0),
                               np.arange(15.0, 81.0, 6.0), indexing="ij"), -1).reshape(-1, 3)
    ijk = np.rint(grid.lps_to_index(lat)).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(grid.shape[::-1])), 1)
    lat, ijk = lat[inside], ijk[inside]
    pts = lat[tissue[ijk[:, 2], ijk[:, 1], ijk[:, 0]] == A.LIVER]
    scored = []
    for c in pts:
        if any(np.linalg.norm(c - o.centre) < r + o.diameter_mm / 2 + 6 for o in placed):
            continue
        if _fits(grid, tissue, c, r, "deep"):
            acc = skin_access(grid, tissue, c, BONE_CODES, [A.LUNG], [A.GUT_GAS], 150,
                              step=2.0, max_mm=200.0)
            scored.append((acc["best_window_mm"], tuple(c)))
    # the coarse ranking (150 rays) is noisy: verify the top 15 with 2000 rays, keep the deepest
    verified = [(skin_access(grid, tissue, np.array(c), BONE_CODES, [A.LUNG], [A.GUT_GAS],
                             2000)["best_window_mm"], c) for _, c in sorted(scored, reverse=True)[:15]]
    if not verified:
        return None
    best, c = max(verified)
    return np.array(c) if best > DEEP_MM + 4 else None


BEHIND_RIB_MIN_WINDOW_MM = 75.0


def _place_lesions(grid, tissue, rng) -> List[Lesion]:
    """Search near each target (seeded) for a centre that passes the geometric
    checks and makes the lesion's note true; the 'deep' lesion is searched
    systematically. If no candidate makes the note true, the first geometric
    candidate is used and the note is NOT recorded (truth never claims what
    is false)."""
    placed: List[Lesion] = []
    for name, kind, diam, target, note in SPECS:
        r = diam / 2
        coeffs = rng.uniform(-0.08, 0.08, 7)
        chosen, fallback = None, None
        if note == "deep":
            chosen = _deepest(grid, tissue, r, placed)
        attempts = 1200 if note == "behind_rib" else 400   # rib-hidden spots are rare: look wider
        for attempt in range(0 if chosen is not None else attempts):
            spread = 3.0 + 0.06 * attempt
            c = np.asarray(target, float) + (rng.normal(0, spread, 3) if attempt else 0.0)
            if any(np.linalg.norm(c - o.centre) < r + o.diameter_mm / 2 + 6 for o in placed):
                continue
            if not _fits(grid, tissue, c, r, note):
                continue
            if fallback is None:
                fallback = c
            if note == "behind_rib":
                # cheap screen with 300 rays, then the real check with 2000
                quick = skin_access(grid, tissue, c, BONE_CODES, [], [], 300, max_mm=120.0)
                if not quick["nearest_crosses_bone"]:
                    continue
                acc = skin_access(grid, tissue, c, BONE_CODES, [], [], 2000, max_mm=120.0)
                if not acc["nearest_crosses_bone"]:
                    continue
                # and no straight window free of bone, lung and gas within 75 mm: the ribs
                # (and the lung recess above them) hide it from the probe, which a nearby
                # intercostal window would not
                win = skin_access(grid, tissue, c, BONE_CODES, [A.LUNG], [A.GUT_GAS], 2000, max_mm=120.0)
                if win["best_window_mm"] < BEHIND_RIB_MIN_WINDOW_MM:
                    continue
            elif note == "deep":
                break
            chosen = c
            break
        notes = [note] if note else []
        if chosen is None:
            if fallback is None:
                raise RuntimeError(f"could not place {name} inside the liver near {target}")
            chosen, notes = fallback, []
        les = Lesion(name, kind, diam, chosen, coeffs, notes)
        rasterise(grid, les)
        placed.append(les)
    return placed


def make_phantom(seed: int = 0, spacing=(0.8, 0.8, 1.5),
                 progress: Optional[Callable[[str, float], None]] = None) -> Phantom:
    """Build the demo patient. ``spacing`` (x, y, z) mm; the field of view is fixed
    (352 x 304 x 201 mm), so the voxel count follows the spacing."""
    t0 = time.perf_counter()
    timings: Dict[str, float] = {}

    def step(name):
        nonlocal t0
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        t0 = now
        if progress:
            progress(name, sum(timings.values()))

    spacing = tuple(float(s) for s in spacing)
    size = [int(round(f / s)) for f, s in zip(FOV_MM, spacing)]
    grid = A.Grid.centred(size, spacing)
    rng = np.random.default_rng(seed)
    noise = A.smooth_noise(grid, rng, 40.0)
    tissue = np.zeros(grid.shape, np.uint8)
    fields = body.build_body(grid, tissue, noise)
    body.build_spine(grid, tissue)
    organs.build_liver(grid, tissue, fields, noise)
    organs.build_spleen(grid, tissue, fields, noise)
    organs.build_kidneys(grid, tissue, noise)
    organs.build_gut(grid, tissue, rng)
    organs.build_pancreas(grid, tissue, noise)
    organs.build_gallbladder(grid, tissue)
    body.build_ribs(grid, tissue, fields)
    del fields
    step("anatomy")
    tree = vessels.build_vessels(grid, tissue, rng)
    step("vessels")
    lesions = _place_lesions(grid, tissue, rng)
    step("lesions")

    # label map
    lab_lut = np.zeros(A.N_TISSUES, np.uint8)
    for code, name in TISSUE_TO_LABEL.items():
        lab_lut[code] = LABELS[name]
    labels = lab_lut[tissue]
    names = dict(LABELS)
    for n, les in enumerate(lesions, start=1):
        value = LESION_VALUE0 + n
        names[les.name] = value
        sub = labels[les.sl]
        inside = (les.fraction >= 0.5) & np.isin(tissue[les.sl], [A.LIVER] + VESSEL_CODES)
        sub[inside] = value
    geom = dict(spacing=grid.spacing, origin=grid.origin)
    label_map = LabelMap(labels, names=names, metadata={"description": "ctus demo labels"}, **geom)
    step("labels")

    cts = {}
    for index, phase in enumerate(("arterial", "portal")):
        hu = _lut(HU, index)[tissue]
        for les in lesions:
            sl = les.sl
            spec = LESION_HU[les.name]
            _, co = _box_coords(grid, sl)
            d, rad = les.radius_field(co)
            les_hu = np.where(d > rad - 2.5, spec["rim"][index], spec["core"][index])
            f = les.fraction * np.isin(tissue[sl], [A.LIVER] + VESSEL_CODES)
            hu[sl] = hu[sl] * (1 - f) + f * les_hu
        hu = ndimage.gaussian_filter(hu, (0.33, 0.6, 0.6))
        n = rng.standard_normal(grid.shape, dtype=np.float32)
        n = ndimage.gaussian_filter(n, (0.3, 0.6, 0.6))
        n *= NOISE_SD_HU / float(n.std())
        hu += n
        arr = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
        md = {"phase": phase, "delay_s": PHASES[phase]["delay_s"],
              "series_description": PHASES[phase]["description"]}
        cts[phase] = Volume(arr, metadata=md, **geom)
        step(f"hu_{phase}")

    truth = _truth(seed, grid, label_map, lesions, tree, tissue)
    step("truth")
    return Phantom(cts["arterial"], cts["portal"], label_map, truth, timings)


def _box_coords(grid, sl):
    x = grid.axis(0)[sl[2]][None, None, :]
    y = grid.axis(1)[sl[1]][None, :, None]
    z = grid.axis(2)[sl[0]][:, None, None]
    return sl, (x, y, z)


def _truth(seed, grid, labels: LabelMap, lesions, tree, tissue) -> dict:
    les_truth = []
    for les in lesions:
        value = labels.names[les.name]
        # the lesion as labelled (not as painted): what every reader of labels.nrrd measures
        m = measure_lesion(labels.array[les.sl] == value, labels,
                           offset_ijk=(les.sl[2].start, les.sl[1].start, les.sl[0].start))
        acc = skin_access(grid, tissue, les.centre, BONE_CODES, [A.LUNG], [A.GUT_GAS], 2000)
        les_truth.append({
            "name": les.name, "label_value": value, "type": les.kind,
            "diameter_mm": les.diameter_mm,
            "diameter_measured_mm": round(m.equivalent_diameter_mm, 2),     # equivalent sphere
            "volume_ml": round(m.volume_ml, 4),
            "centroid_lps": [round(float(v), 3) for v in m.centroid_lps],
            "centre_nominal_lps": [round(float(v), 3) for v in les.centre],
            "segment": couinaud_segment(les.centre), "notes": list(les.notes),
            "hu": {"arterial": LESION_HU[les.name]["core"][0],
                   "portal": LESION_HU[les.name]["core"][1]},
            "contrast_to_liver_hu": {"arterial": LESION_HU[les.name]["core"][0] - HU[A.LIVER][0],
                                     "portal": LESION_HU[les.name]["core"][1] - HU[A.LIVER][1]},
            "rim_enhancement": LESION_HU[les.name]["rim"] != LESION_HU[les.name]["core"],
            "nearest_skin_mm": round(acc["nearest_skin_mm"], 1),
            "nearest_skin_crosses_bone": acc["nearest_crosses_bone"],
            "best_window_mm": round(acc["best_window_mm"], 1),
        })
    return {
        "version": VERSION, "seed": int(seed), "frame": "CT (LPS mm)",
        "patient": {"position": "HFS (supine)", "orientation": "LPS: +x patient left, "
                    "+y posterior, +z superior; liver at negative x"},
        "grid": {"size_ijk": list(labels.shape_ijk), "spacing_mm": list(grid.spacing),
                 "origin_lps": [round(v, 4) for v in grid.origin]},
        "phases": PHASES, "noise_sd_hu": NOISE_SD_HU,
        # nominal HU before blur and noise, per phase (what each tissue was painted with)
        "hu_reference": {name: {"arterial": HU[code][0], "portal": HU[code][1]}
                         for name, code in (("liver", A.LIVER), ("portal_vein", A.PORTAL),
                                            ("hepatic_vein", A.HEPATIC_VEIN), ("aorta", A.AORTA),
                                            ("artery", A.ARTERY), ("ivc", A.IVC), ("spleen", A.SPLEEN),
                                            ("pancreas", A.PANCREAS), ("pancreatic_mass", A.PANC_MASS),
                                            ("kidney_cortex", A.KIDNEY_CORTEX), ("fat", A.FAT),
                                            ("muscle", A.MUSCLE), ("lung", A.LUNG),
                                            ("gallbladder", A.GB_BILE))},
        "structures": dict(labels.names),
        "lesions": les_truth,
        "landmarks": tree.landmarks,
        "primary": {"type": "pancreatic adenocarcinoma", "site": "pancreatic head",
                    "centre_lps": list(organs.MASS_CENTRE),
                    "diameter_mm": round(2 * float(np.mean(organs.MASS_SEMI)), 1)},
    }
