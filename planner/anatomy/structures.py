"""Risk anatomy for planning: masks per risk class and distance maps in mm.

Everything lives on the CT grid: arrays ``[k, j, i]``, geometry ``(i, j, k)``,
LPS mm. Structures come from the named label map (DESIGN section 6 names, and
the common TotalSegmentator-style names such as ``rib_left_7``); risk classes
the label map does not provide (body, bone, lung, bowel gas) are derived from
the CT by the rules of :mod:`.derived` and marked ``derived`` so the report
can say so. Large vessels (>= 3 mm) are decided by local thickness
(:func:`.derived.large_vessels`).

Distance maps are Euclidean distances in mm from each voxel centre to the
nearest voxel centre of the class (0 inside), computed with
``distance_transform_edt(..., sampling=spacing[::-1])`` because the arrays are
``[k, j, i]`` while ``spacing`` is ``(i, j, k)``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from registration.spatial.distance_map import distance_transform_edt
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

from .derived import (
    BONE_HU,
    BODY_HU,
    GAS_HU,
    LARGE_VESSEL_DIAMETER_MM,
    LUNG_MIN_ML,
    MIN_BONE_ML,
    body_from_ct,
    bone_from_ct,
    bounding_box,
    fill_per_slice,
    gas_inside_body,
    large_vessels,
    split_gas,
)

#: Hard-constraint classes: a needle must not cross them (DESIGN section 7).
#: spleen and pancreas are added: puncturing them is never intended here.
HARD_CLASSES = ("bone", "lung", "gallbladder", "bowel", "kidney", "heart", "spleen", "pancreas")
VESSEL_CLASS = "vessel"
#: Labelled soft-tissue classes: a bright voxel inside one is contrast, not bone.
SOFT_TISSUE_CLASSES = (VESSEL_CLASS, "liver", "kidney", "spleen", "heart", "gallbladder", "pancreas")
#: Distance (mm) reported where none was computed (class absent, or outside the
#: box that holds the body and every structure): farther than any margin.
FAR_MM = 1e4

# name patterns -> risk class; first match wins. Standard names first.
_NAME_RULES = [
    (r"^body$", "body"),
    (r"^liver$", "liver"),
    (r"^lesion", "lesion"),
    (r"^(portal_vein|hepatic_vein|artery|aorta|ivc|inferior_vena_cava|superior_vena_cava"
     r"|portal_vein_and_splenic_vein|pulmonary_vein|iliac_(artery|vena).*|.*_artery.*"
     r"|.*_vein.*|brachiocephalic_.*|vessel.*|liver_vessel|hepatic_vessel)$", VESSEL_CLASS),
    # the spinal canal and cord lie inside the spine: a needle never goes there (bone class: hard)
    (r"^(bone|rib.*|vertebra.*|sternum|costal_cartilages?|scapula.*|clavicula.*|humerus.*"
     r"|sacrum|hip.*|femur.*|skull|spine|spinal_canal|spinal_cord)$", "bone"),
    (r"^(lung.*|trachea)$", "lung"),
    (r"^gallbladder$", "gallbladder"),
    (r"^(bowel|bowel_gas|small_bowel|colon|duodenum|stomach|esophagus)$", "bowel"),
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
    nearest large-vessel voxel (``FAR_MM`` where absent or far outside the body);
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
        """Voxel size (mm) in array order ``[k, j, i]``."""
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
        """{class: {volume_ml, derived, sources}} for plan.json, classes sorted by name."""
        vox_ml = float(np.prod(self.ct.spacing)) / 1000.0
        return {cls: {"volume_ml": round(float(np.count_nonzero(m)) * vox_ml, 2),   # 9x faster than sum
                      "derived": bool(self.derived.get(cls, False)),
                      "sources": list(self.sources.get(cls, []))}
                for cls, m in sorted(self.masks.items())}


def distance_map_mm(mask: np.ndarray, spacing_ijk, *, box=None, missing_mm: float = FAR_MM) -> np.ndarray:
    """float32 distance (mm) from each voxel centre to the nearest True voxel centre.

    ``box`` (tuple of slices ``[k, j, i]``) restricts the computation to a crop
    that contains every True voxel and every voxel the caller will query;
    voxels outside it get ``missing_mm``.
    """
    out = np.full(mask.shape, missing_mm, dtype=np.float32)
    if not mask.any():
        return out
    box = box or (slice(None),) * 3
    out[box] = distance_transform_edt(~mask[box], sampling=np.asarray(spacing_ijk, float)[::-1])
    return out


@dataclass
class _Classes:
    """Risk classes being assembled: mask, the names or rules it came from, derived or not."""
    masks: Dict[str, np.ndarray] = field(default_factory=dict)
    sources: Dict[str, List[str]] = field(default_factory=dict)
    derived: Dict[str, bool] = field(default_factory=dict)

    def add(self, cls: str, mask: np.ndarray, source: str) -> None:
        """OR ``mask`` into ``cls`` and record where it came from."""
        self.masks[cls] = self.masks[cls] | mask if cls in self.masks else mask
        self.sources.setdefault(cls, []).append(source)


def build_anatomy(ct: Volume, labels: LabelMap, *, derive: bool = True,
                  bone_hu: float = BONE_HU, gas_hu: float = GAS_HU,
                  labels_path=None, extra_masks: Optional[Dict[str, np.ndarray]] = None,
                  masks_ready: Optional[Callable[[Dict[str, np.ndarray]], None]] = None) -> Anatomy:
    """Masks per risk class + distance maps (mm) for a CT and a label map on its grid.

    ``derive``: add bone, lung and bowel gas from CT intensities (HU thresholds
    ``bone_hu``, ``gas_hu``). ``extra_masks`` ({class: bool array on the grid})
    are OR-ed into the classes; an extra ``vessel_large`` replaces the
    local-thickness estimate (used when planning on a resampled grid, see
    :func:`planner.paths.planning_grid.planning_grid`). ``masks_ready(masks)`` is
    called once body, bone, lung and gas are final (before the large vessels and the
    distance maps: the planning starts the acoustic block map there). Raises InputError
    when the grids differ or there is no liver label.
    """
    if not ct.same_grid(labels):
        raise InputError("the label map is not on the CT grid "
                         f"({labels!r} vs {ct!r})", path=labels_path,
                         fix="resample the label map onto the CT (nearest neighbour, physical space)")
    classes = _classes_from_labels(labels, extra_masks)
    if "liver" not in classes.masks:
        raise InputError("the label map has no liver label (or it is empty)", path=labels_path,
                         fix="name the liver 'liver' in the label names (e.g. {\"liver\": 5})")
    body = _add_body(ct, labels, classes)
    if derive:
        _derive_bone(ct, body, classes, bone_hu)
        _derive_gas(ct, body, classes, gas_hu)
    if masks_ready is not None:
        masks_ready(dict(classes.masks))
    notes = _add_large_vessels(classes, ct.spacing, extra_masks, body)
    notes += [f"no {cls} in the label map or CT: not checked" for cls in HARD_CLASSES if cls not in classes.masks]
    return Anatomy(ct=ct, labels=labels, masks=classes.masks, distance_mm=_distance_maps(classes.masks, ct.spacing),
                   derived=classes.derived, sources=classes.sources, notes=notes)


def _classes_from_labels(labels: LabelMap, extra_masks: Optional[Dict[str, np.ndarray]]) -> _Classes:
    """Risk classes of the named labels (lesions are targets, not risks), plus the extra masks."""
    classes = _Classes()
    for name, value in labels.names.items():
        cls = risk_class_of(name)
        if cls is None or cls == "lesion":
            continue
        m = labels.array == value
        if not m.any():
            continue
        classes.add(cls, m, name)
        classes.derived[cls] = False
    for cls, m in (extra_masks or {}).items():
        if cls == "vessel_large":
            continue
        classes.add(cls, m, "pooled from the full-resolution labels")
        classes.derived.setdefault(cls, False)
    return classes


def _add_body(ct: Volume, labels: LabelMap, classes: _Classes) -> np.ndarray:
    """The body: everything inside the skin. A "body" label may hold only the tissue no
    other label claims, so every labelled voxel is added and the slices are filled."""
    if "body" in classes.masks:
        base = classes.masks["body"]
    else:
        base = body_from_ct(ct)
        classes.derived["body"] = True
        classes.sources["body"] = [f"CT HU > {BODY_HU:g}, filled"]
    body = fill_per_slice(base | (labels.array > 0))
    classes.masks["body"] = body
    return body


def _derive_bone(ct: Volume, body: np.ndarray, classes: _Classes, bone_hu: float) -> None:
    """Bone from the CT when no label provides it."""
    if "bone" in classes.masks:
        return
    labelled_soft = np.zeros(body.shape, bool)
    for cls in SOFT_TISSUE_CLASSES:
        if cls in classes.masks:
            labelled_soft |= classes.masks[cls]
    classes.masks["bone"] = bone_from_ct(ct, body, labelled_soft, bone_hu)
    classes.derived["bone"] = True
    classes.sources["bone"] = [f"CT HU > {bone_hu:g}, components >= {MIN_BONE_ML:g} ml"]


def _derive_gas(ct: Volume, body: np.ndarray, classes: _Classes, gas_hu: float) -> None:
    """Lung and bowel gas from the CT. Gas is an absolute barrier (needle and sound):
    it is added even when the classes are labelled."""
    lung, bowel_gas = split_gas(gas_inside_body(ct, body, gas_hu), ct.spacing)
    for cls, m, rule in (("lung", lung, f"top/bottom slice or > {LUNG_MIN_ML:g} ml"),
                         ("bowel", bowel_gas, "small components")):
        if not m.any():
            continue
        if cls not in classes.masks:
            classes.derived[cls] = True
        classes.add(cls, m, f"CT HU < {gas_hu:g} ({rule})")


def _add_large_vessels(classes: _Classes, spacing_ijk, extra_masks, body: np.ndarray) -> List[str]:
    """The ``vessel_large`` class (the 5 mm margin applies to it); returns notes."""
    if extra_masks is not None and "vessel_large" in extra_masks:
        big = extra_masks["vessel_large"]
        classes.masks["vessel_large"] = big
        classes.masks[VESSEL_CLASS] = classes.masks.get(VESSEL_CLASS, np.zeros_like(body)) | big
        classes.derived["vessel_large"] = False
        classes.sources["vessel_large"] = ["decided at full resolution, pooled onto the planning grid"]
    elif VESSEL_CLASS in classes.masks:
        classes.masks["vessel_large"] = large_vessels(classes.masks[VESSEL_CLASS], spacing_ijk)
        classes.derived["vessel_large"] = False
        classes.sources["vessel_large"] = [f"vessel voxels where a {LARGE_VESSEL_DIAMETER_MM:g} mm ball fits"]
    else:
        return ["no vessel labels: vessel clearance cannot be checked"]
    return []


def _distance_maps(masks: Dict[str, np.ndarray], spacing_ijk) -> Dict[str, np.ndarray]:
    """One distance map for the union of the hard classes and one for large vessels.

    Per-class clearances of chosen paths come from KD-trees
    (:meth:`Anatomy.class_distance_mm`). The EDT is the dominant cost, so it is
    computed only inside the box holding the body and every structure.
    """
    hard = np.zeros(masks["body"].shape, bool)
    for cls in HARD_CLASSES:
        if cls in masks:
            hard |= masks[cls]
    box = bounding_box(masks["body"] | hard | masks.get("vessel_large", hard), (1, 1, 1))
    dist = {"hard": distance_map_mm(hard, spacing_ijk, box=box)}
    if "vessel_large" in masks:
        dist["vessel_large"] = distance_map_mm(masks["vessel_large"], spacing_ijk, box=box)
    return dist
