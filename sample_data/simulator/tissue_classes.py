"""Tissue classes of the ultrasound simulator and how CT samples get one.

Each class has a backscatter intensity (relative to liver), an attenuation
alpha (dB/cm/MHz) and an acoustic impedance Z (MRayl). A sample's class comes
from its label name (liver, blood, lesion type, fat, ...) or, for unnamed /
``body`` voxels, from its CT value in HU (gas < -400, fat < -30, bone > 300).
Class indices are positions in :data:`CLASS_NAMES`; the per-class arrays
``_BS``, ``_ALPHA``, ``_Z``, ``_AMP`` are indexed by them.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from registration.spatial.volume import LabelMap

# Tissue classes: (backscatter intensity rel. to liver, alpha dB/cm/MHz, Z MRayl).
TISSUES: Dict[str, Tuple[float, float, float]] = {
    "gel": (0.0, 0.0, 1.52),            # air between the face and the skin = coupling gel
    "gas": (0.0, 0.0, 0.0004),
    "bone": (3.0, 10.0, 7.8),
    "cartilage": (0.15, 3.0, 1.75),     # costal cartilage: dark, attenuating, no full shadow
    "fat": (0.3, 0.63, 1.38),
    "soft": (0.45, 0.9, 1.66),          # unnamed soft tissue (muscle, connective)
    "muscle": (0.5, 1.0, 1.70),
    "liver": (1.0, 0.5, 1.65),
    "blood": (0.02, 0.15, 1.61),
    # Portal veins run in a fibrous (Glisson) sheath that makes their walls echogenic;
    # a lower lumen Z stands in for that wall reflection (hepatic veins have none).
    "portal_blood": (0.02, 0.15, 1.35),
    "bile": (0.01, 0.05, 1.52),
    "kidney": (0.7, 0.8, 1.64),
    "spleen": (1.1, 0.5, 1.65),
    "pancreas": (1.4, 0.6, 1.66),
    "pancreatic_mass": (0.35, 0.6, 1.64),
    "bowel": (0.9, 0.7, 1.62),
    "adenocarcinoma": (0.4, 0.6, 1.63),
    "net": (4.0, 0.5, 1.67),
}
CLASS_NAMES = list(TISSUES)
CLASS = {n: i for i, n in enumerate(CLASS_NAMES)}
_BS = np.array([TISSUES[n][0] for n in CLASS_NAMES], np.float32)
_ALPHA = np.array([TISSUES[n][1] for n in CLASS_NAMES], np.float32)
_Z = np.array([TISSUES[n][2] for n in CLASS_NAMES], np.float32)
_AMP = np.sqrt(_BS).astype(np.float32)
_UNNAMED = -1  # label -> class table marker: decide from HU

# Substrings of label names -> class; first match wins (order matters).
_NAME_RULES = (
    ("pancreatic_mass", "pancreatic_mass"), ("portal", "portal_blood"), ("hepatic_vein", "blood"),
    ("vein", "blood"), ("artery", "blood"), ("aorta", "blood"), ("ivc", "blood"),
    ("vena", "blood"), ("heart", "blood"), ("liver", "liver"), ("gallbladder", "bile"),
    ("bladder", "bile"), ("cyst", "bile"), ("kidney", "kidney"), ("spleen", "spleen"),
    ("pancrea", "pancreas"), ("lung", "gas"), ("trachea", "gas"), ("bowel", "bowel"),
    ("colon", "bowel"), ("duodenum", "bowel"), ("stomach", "bowel"), ("esophagus", "bowel"),
    ("cartilage", "soft"), ("bone", "bone"), ("rib", "bone"), ("vertebra", "bone"),
    ("sacrum", "bone"), ("sternum", "bone"), ("spine", "bone"), ("muscle", "muscle"),
    ("fat", "fat"),
)


def class_of_label_name(name: str, lesion_types: Optional[Dict[str, str]] = None) -> int:
    """Tissue class index for a label name; _UNNAMED (-1) for body/unknown (HU decides)."""
    low = name.lower()
    if low.startswith("lesion") or "metasta" in low:
        kind = (lesion_types or {}).get(name, "adenocarcinoma").lower()
        return CLASS["net" if kind == "net" else "adenocarcinoma"]
    for key, cls in _NAME_RULES:
        if key in low:
            return CLASS[cls]
    return _UNNAMED


def label_class_table(labels: LabelMap, lesion_types: Optional[Dict[str, str]] = None) -> np.ndarray:
    """int16 table label value -> class index (_UNNAMED where HU decides), covering every
    value in ``labels.array`` and in ``labels.names``."""
    lut = np.full(max(int(labels.array.max()), max(labels.names.values(), default=0)) + 1,
                  _UNNAMED, np.int16)
    for name, value in labels.names.items():
        lut[value] = class_of_label_name(name, lesion_types)
    return lut


def classify_samples(hu: np.ndarray, lab: np.ndarray, label_class: np.ndarray,
                     sample_mm: float) -> np.ndarray:
    """Class index per sample: from the label name, else from HU.

    ``hu``, ``lab``: samples along the last axis = depth (a beam, [n_beams, n_samples]
    or any [..., n]), ``sample_mm`` apart; ``label_class`` from :func:`label_class_table`.
    """
    cls = label_class[np.clip(lab, 0, label_class.size - 1)].astype(np.int16)
    by_hu = np.where(hu < -400, CLASS["gas"], np.where(hu < -30, CLASS["fat"], CLASS["soft"]))
    by_hu = np.where(hu > 300, CLASS["bone"], by_hu)
    # Unnamed voxels (incl. 'body': ribs, fat, muscle) by HU; gas wins over any label
    # (bowel gas, lung). Bone by HU does not override a named structure: an arterial-phase
    # aorta or a contrast-filled kidney can exceed 300 HU and must not cast a shadow.
    cls = np.where(cls == _UNNAMED, by_hu, cls)
    cls = np.where(hu < -400, CLASS["gas"], cls)
    # A bone label below 250 HU is cartilage (or marrow inside a cortex that shadows anyway).
    cls = np.where((cls == CLASS["bone"]) & (hu < 250), CLASS["cartilage"], cls)
    # Air before the first tissue sample of a beam is the gap under the curved face,
    # filled with gel in practice: it must not shadow the whole beam.
    # Tissue starts at the first 2 mm run without gas (a voxel staircase at the skin
    # must not count as gas behind tissue).
    gas = cls == CLASS["gas"]
    run = max(2, int(round(2.0 / sample_mm)))
    c = np.cumsum(~gas, axis=-1, dtype=np.int32)
    full = np.zeros_like(gas)
    full[..., run - 1:] = (c[..., run - 1:] - np.concatenate(
        [np.zeros_like(c[..., :1]), c[..., :-run]], axis=-1)) == run
    before_skin = ~np.maximum.accumulate(full, axis=-1)
    cls = np.where(before_skin & gas, CLASS["gel"], cls)
    return cls.astype(np.intp)
