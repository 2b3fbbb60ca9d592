"""Risk anatomy for planning: masks per risk class and distance maps in mm.

Everything lives on the CT grid: arrays ``[k, j, i]``, geometry ``(i, j, k)``,
LPS mm. Structures come from the named label map (DESIGN section 6 names, and
the common TotalSegmentator-style names such as ``rib_left_7``); risk classes
the label map does not provide are derived from the CT and marked
``derived`` so the report can say so:

- body: HU > -500, holes filled per axial slice, largest component;
- bone: HU > 250 inside the body, components >= 0.5 ml (the skeleton; small
  bright specks such as calcifications or contrast are dropped), excluding
  voxels labelled as vessels or organs;
- gas: HU < -400 inside the body; a component touching the top or bottom
  slice or larger than 100 ml is called lung, the rest bowel gas.

Distance maps are Euclidean distances in mm from each voxel centre to the
nearest voxel centre of the class (0 inside), computed with
``distance_transform_edt(..., sampling=spacing[::-1])`` because the arrays are
``[k, j, i]`` while ``spacing`` is ``(i, j, k)``.

Vessels count as "large" (>= 3 mm diameter) where a ball of radius 1.5 mm
fits inside the vessel (morphological opening by a ball, done with two
distance transforms): that is the local-thickness definition of diameter.
Voxel centres overestimate the fitting radius by up to one voxel, which errs
on the safe side (coarse CTs treat all vessels as large).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

#: Hard-constraint classes: a needle must not cross them (DESIGN section 7).
#: spleen and pancreas are added: puncturing them is never intended here.
HARD_CLASSES = ("bone", "lung", "gallbladder", "bowel", "kidney", "heart", "spleen", "pancreas")
VESSEL_CLASS = "vessel"
LARGE_VESSEL_DIAMETER_MM = 3.0

# name patterns -> risk class; first match wins. Standard names first.
_NAME_RULES = [
    (r"^body$", "body"),
    (r"^liver$", "liver"),
    (r"^lesion", "lesion"),
    (r"^(portal_vein|hepatic_vein|artery|aorta|inferior_vena_cava|superior_vena_cava"
     r"|portal_vein_and_splenic_vein|pulmonary_vein|iliac_(artery|vena).*|.*_artery.*"
     r"|.*_vein.*|brachiocephalic_.*|vessel.*)$", VESSEL_CLASS),
    (r"^(bone|rib.*|vertebra.*|sternum|costal_cartilages?|scapula.*|clavicula.*|humerus.*"
     r"|sacrum|hip.*|femur.*|skull|spine)$", "bone"),
    (r"^(lung.*|trachea)$", "lung"),
    (r"^gallbladder$", "gallbladder"),
    (r"^(bowel|small_bowel|colon|duodenum|stomach|esophagus)$", "bowel"),
    (r"^(kidney.*)$", "kidney"),
    (r"^(heart|atrial_appendage.*)$", "heart"),
    (r"^spleen$", "spleen"),
    (r"^(pancreas|pancreatic_mass)$", "pancreas"),
]


def risk_class_of(name: str) -> Optional[str]:
    """Risk class of a structure name, or None (kept and shown, not a risk)."""
    n = name.strip().lower()
    for pattern, cls in _NAME_RULES:
        if re.match(pattern, n):
            return cls
    return None


@dataclass
class Anatomy:
    """Masks and distance maps on the CT grid (arrays ``[k, j, i]``).

    ``masks[cls]`` bool arrays; ``distance_mm["hard"]`` float32 mm to the
    nearest voxel of any hard class, ``distance_mm["vessel_large"]`` to the
    nearest large-vessel voxel (1e4 where absent or far outside the body);
    ``derived[cls]`` True when the class was derived from CT intensities;
    ``sources[cls]`` the label names (or the CT rule) it came from.
    """
    ct: Volume
    labels: LabelMap
    masks: Dict[str, np.ndarray]
    distance_mm: Dict[str, np.ndarray]
    derived: Dict[str, bool]
    sources: Dict[str, List[str]]
    notes: List[str] = field(default_factory=list)
    _trees: dict = field(default_factory=dict, repr=False)

    @property
    def spacing_kji(self) -> np.ndarray:
        return self.ct.spacing[::-1]

    @property
    def half_voxel_diagonal_mm(self) -> float:
        """Largest distance from a point to the centre of the voxel containing it."""
        return float(0.5 * np.linalg.norm(self.ct.spacing))

    def class_distance_mm(self, cls: str, points_lps) -> Optional[np.ndarray]:
        """Distance (mm) from LPS points to the nearest voxel centre of a class (None if absent)."""
        if cls not in self.masks or not self.masks[cls].any():
            return None
        tree = self._trees.get(cls)
        if tree is None:
            from scipy.spatial import cKDTree
            kji = np.argwhere(self.masks[cls])
            tree = self._trees[cls] = cKDTree(self.ct.index_to_lps(kji[:, ::-1].astype(float)))
        return tree.query(np.asarray(points_lps, float))[0]

    def summary(self) -> dict:
        vox_ml = float(np.prod(self.ct.spacing)) / 1000.0
        return {cls: {"volume_ml": round(float(m.sum()) * vox_ml, 2),
                      "derived": bool(self.derived.get(cls, False)),
                      "sources": list(self.sources.get(cls, []))}
                for cls, m in sorted(self.masks.items())}


def distance_map_mm(mask: np.ndarray, spacing_ijk, *, box=None, missing_mm: float = 1e4) -> np.ndarray:
    """float32 distance (mm) from each voxel centre to the nearest True voxel centre.

    ``box`` (tuple of slices ``[k, j, i]``) restricts the computation to a crop
    that contains every True voxel and every voxel the caller will query;
    voxels outside it get ``missing_mm``.
    """
    out = np.full(mask.shape, missing_mm, dtype=np.float32)
    if not mask.any():
        return out
    box = box or (slice(None),) * 3
    out[box] = ndimage.distance_transform_edt(~mask[box], sampling=np.asarray(spacing_ijk, float)[::-1])
    return out


def bounding_box(mask: np.ndarray, margin_vox=(0, 0, 0)) -> tuple:
    """Slices ``[k, j, i]`` around the True voxels, grown by ``margin_vox`` (k, j, i)."""
    idx = np.nonzero(mask.any(axis=(1, 2)))[0], np.nonzero(mask.any(axis=(0, 2)))[0], \
        np.nonzero(mask.any(axis=(0, 1)))[0]
    return tuple(slice(max(0, int(a[0]) - m), min(n, int(a[-1]) + 1 + m))
                 for a, m, n in zip(idx, margin_vox, mask.shape))


def body_from_ct(ct: Volume, threshold_hu: float = -500.0) -> np.ndarray:
    """Body mask ``[k, j, i]``: HU > threshold, holes filled per axial slice, largest component."""
    a = ct.array > threshold_hu
    # The CT bed and the air in bowel/lung are holes or appendages: fill per slice
    # (a 3D fill leaks through the open top and bottom slices).
    filled = np.stack([ndimage.binary_fill_holes(s) for s in a])
    lab, n = ndimage.label(filled)
    if n == 0:
        return filled
    sizes = ndimage.sum_labels(filled, lab, index=np.arange(1, n + 1))
    return lab == (int(np.argmax(sizes)) + 1)


def _components_at_least(mask: np.ndarray, min_voxels: int) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum_labels(mask, lab, index=np.arange(1, n + 1))
    keep = np.zeros(n + 1, bool)
    keep[1:] = sizes >= min_voxels
    return keep[lab]


def split_gas(gas: np.ndarray, spacing_ijk) -> tuple:
    """Gas mask -> (lung, bowel_gas): lung touches the top/bottom slice or is > 100 ml."""
    vox_ml = float(np.prod(spacing_ijk)) / 1000.0
    lab, n = ndimage.label(gas)
    lung = np.zeros_like(gas)
    if n == 0:
        return lung, gas.copy()
    sizes = ndimage.sum_labels(gas, lab, index=np.arange(1, n + 1)) * vox_ml
    edge = set(np.unique(lab[0])) | set(np.unique(lab[-1]))
    is_lung = np.zeros(n + 1, bool)
    for c in range(1, n + 1):
        is_lung[c] = c in edge or sizes[c - 1] > 100.0
    lung = is_lung[lab]
    return lung, gas & ~lung


def large_vessels(vessel: np.ndarray, spacing_ijk, min_diameter_mm: float = LARGE_VESSEL_DIAMETER_MM
                  ) -> np.ndarray:
    """Vessel voxels where a ball of diameter ``min_diameter_mm`` fits (opening by a ball)."""
    if not vessel.any():
        return vessel.copy()
    box = bounding_box(vessel, (2, 2, 2))
    out = np.zeros_like(vessel)
    out[box] = _large_vessels_crop(vessel[box], spacing_ijk, min_diameter_mm)
    return out


def _large_vessels_crop(vessel, spacing_ijk, min_diameter_mm):
    samp = np.asarray(spacing_ijk, float)[::-1]
    r = 0.5 * min_diameter_mm
    depth = ndimage.distance_transform_edt(vessel, sampling=samp)
    # EDT to the nearest background centre overestimates the radius by up to
    # a voxel; we keep the overestimate on purpose (conservative: a vessel is
    # called small only when even the overestimate is below r). At 2 mm voxels
    # every vessel therefore counts as large.
    centres = depth >= r
    if not centres.any():
        return np.zeros_like(vessel)
    to_centre = ndimage.distance_transform_edt(~centres, sampling=samp)
    return vessel & (to_centre <= r + 0.5 * float(np.max(spacing_ijk)))


def build_anatomy(ct: Volume, labels: LabelMap, *, derive: bool = True,
                  bone_hu: float = 250.0, gas_hu: float = -400.0,
                  labels_path=None, extra_masks: Optional[Dict[str, np.ndarray]] = None) -> Anatomy:
    """Masks per risk class + distance maps (mm) for a CT and a label map on its grid.

    ``extra_masks`` ({class: bool array on the grid}) are OR-ed into the
    classes; an extra ``vessel_large`` replaces the local-thickness estimate
    (used when planning on a resampled grid, see planner.case.case_plan.planning_grid).
    Raises InputError when the grids differ or there is no liver label.
    """
    if not ct.same_grid(labels):
        raise InputError("the label map is not on the CT grid "
                         f"({labels!r} vs {ct!r})", path=labels_path,
                         fix="resample the label map onto the CT (nearest neighbour, physical space)")
    arr = labels.array
    masks: Dict[str, np.ndarray] = {}
    sources: Dict[str, List[str]] = {}
    derived: Dict[str, bool] = {}
    for name, value in labels.names.items():
        cls = risk_class_of(name)
        if cls is None or cls == "lesion":
            continue
        m = arr == value
        if not m.any():
            continue
        masks[cls] = masks[cls] | m if cls in masks else m
        sources.setdefault(cls, []).append(name)
        derived[cls] = False
    for cls, m in (extra_masks or {}).items():
        if cls == "vessel_large":
            continue
        masks[cls] = masks[cls] | m if cls in masks else m
        derived.setdefault(cls, False)
        sources.setdefault(cls, []).append("pooled from the full-resolution labels")
    if "liver" not in masks:
        raise InputError("the label map has no liver label (or it is empty)", path=labels_path,
                         fix="name the liver 'liver' in the label names (e.g. {\"liver\": 5})")
    notes: List[str] = []
    hu = ct.array
    # The body is everything inside the skin: a "body" label may hold only the
    # tissue no other label claims, so add every labelled voxel and fill.
    if "body" in masks:
        base = masks["body"]
    else:
        base = body_from_ct(ct)
        derived["body"] = True
        sources["body"] = ["CT HU > -500, filled"]
    body = np.stack([ndimage.binary_fill_holes(s) for s in (base | (arr > 0))])
    masks["body"] = body
    labelled_soft = np.zeros(arr.shape, bool)
    for cls in (VESSEL_CLASS, "liver", "kidney", "spleen", "heart", "gallbladder", "pancreas"):
        if cls in masks:
            labelled_soft |= masks[cls]
    if derive and "bone" not in masks:
        min_vox = max(1, int(round(500.0 / float(np.prod(ct.spacing)))))
        bone = _components_at_least((hu > bone_hu) & body & ~labelled_soft, min_vox)
        masks["bone"] = bone
        derived["bone"] = True
        sources["bone"] = [f"CT HU > {bone_hu:g}, components >= 0.5 ml"]
    if derive:
        # Partial-volume voxels at the skin read as "gas": look for gas only
        # 2 voxels (in-plane) inside the body surface.
        inner = ndimage.binary_erosion(body, structure=np.ones((1, 3, 3), bool), iterations=2)
        gas = (hu < gas_hu) & inner
        lung_d, bowel_gas = split_gas(gas, ct.spacing)
        # Gas is an absolute barrier (needle and sound): add it even when labels exist.
        for cls, m, rule in (("lung", lung_d, "top/bottom slice or > 100 ml"),
                             ("bowel", bowel_gas, "small components")):
            if not m.any():
                continue
            if cls in masks:
                masks[cls] = masks[cls] | m
                sources[cls].append(f"CT HU < {gas_hu:g} ({rule})")
            else:
                masks[cls] = m
                derived[cls] = True
                sources[cls] = [f"CT HU < {gas_hu:g} ({rule})"]
    if extra_masks is not None and "vessel_large" in extra_masks:
        masks["vessel_large"] = extra_masks["vessel_large"]
        masks[VESSEL_CLASS] = masks.get(VESSEL_CLASS, np.zeros_like(body)) | masks["vessel_large"]
        derived["vessel_large"] = False
        sources["vessel_large"] = ["decided at full resolution, pooled onto the planning grid"]
    elif VESSEL_CLASS in masks:
        masks["vessel_large"] = large_vessels(masks[VESSEL_CLASS], ct.spacing)
        derived["vessel_large"] = False
        sources["vessel_large"] = [f"vessel voxels where a {LARGE_VESSEL_DIAMETER_MM:g} mm ball fits"]
    else:
        notes.append("no vessel labels: vessel clearance cannot be checked")
    for cls in HARD_CLASSES:
        if cls not in masks:
            notes.append(f"no {cls} in the label map or CT: not checked")
    # One distance map for the union of the hard classes and one for large
    # vessels (per-class clearances of chosen paths come from KD-trees): the
    # EDT is the dominant cost, so compute it only inside the box holding the
    # body and every structure.
    hard = np.zeros(arr.shape, bool)
    for cls in HARD_CLASSES:
        if cls in masks:
            hard |= masks[cls]
    box = bounding_box(body | hard | masks.get("vessel_large", hard), (1, 1, 1))
    dist = {"hard": distance_map_mm(hard, ct.spacing, box=box)}
    if "vessel_large" in masks:
        dist["vessel_large"] = distance_map_mm(masks["vessel_large"], ct.spacing, box=box)
    return Anatomy(ct=ct, labels=labels, masks=masks, distance_mm=dist, derived=derived,
                   sources=sources, notes=notes)


def lesion_masks(labels: LabelMap) -> Dict[str, np.ndarray]:
    """{lesion name: bool mask} for every non-empty ``lesion*`` label."""
    out = {}
    for name in labels.lesion_names():
        m = labels.array == labels.names[name]
        if m.any():
            out[name] = m
    return out


def lesion_geometry(mask: np.ndarray, volume: Volume) -> dict:
    """Centroid (LPS mm), volume (ml) and equivalent-sphere diameter (mm) of a mask."""
    kji = np.argwhere(mask)
    centroid_ijk = kji[:, ::-1].mean(axis=0)
    vol_ml = kji.shape[0] * float(np.prod(volume.spacing)) / 1000.0
    diameter = float((6.0 * vol_ml * 1000.0 / np.pi) ** (1.0 / 3.0))
    return {"centroid_ct": volume.index_to_lps(centroid_ijk).tolist(),
            "volume_ml": vol_ml, "diameter_mm": diameter}
