"""One label map from the anatomy, imported structures and grown lesions.

Everything is on the CT grid (arrays ``[k, j, i]``). The layers are painted in
this order, later ones winning where they overlap:

1. the automatic ``body`` (:func:`planner.segmentation.pipeline.segment_anatomy`),
   the container of everything else: every voxel of the automatic anatomy,
   so an automatic structure replaced by a smaller imported one leaves body,
   not background, behind;
2. imported structures (e.g. TotalSegmentator's, mapped to the standard names),
   which replace same-named automatic ones: a model trained on thousands of
   CTs is preferred to the classical rules where both exist;
3. the other automatic structures the import does not have, where the import
   has nothing or has the organ that contains them (:data:`CONTAINED_IN`:
   liver vessels inside its liver, bowel gas inside its bowel); elsewhere
   the imported structure wins;
4. the lesions, in the order given, with values 21, 22, ... (DESIGN: one label
   per lesion; the anatomy keeps the values below 21).

Anatomy values below 21 are kept; other structures take the free values below
21 first, then values above the lesions. Overlaps between lesions are
reported (the later lesion wins there), and so is a lesion a later one
covers entirely (it cannot stay in the label map).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

LESION_FIRST_VALUE = 21
#: automatic structure -> imported organs it may be painted over (it lies inside them)
CONTAINED_IN = {"liver_vessel": ("liver",), "hepatic_vein": ("liver",), "portal_vein": ("liver",),
                "bowel_gas": ("bowel",)}


def _values(anatomy_names: Dict[str, int], other_names: Sequence[str], n_lesions: int) -> Dict[str, int]:
    out = {n: v for n, v in anatomy_names.items() if v < LESION_FIRST_VALUE}
    used = set(out.values())
    low = [v for v in range(1, LESION_FIRST_VALUE) if v not in used]
    high = LESION_FIRST_VALUE + n_lesions
    for name in list(anatomy_names) + list(other_names):
        if name in out:
            continue
        if low:
            out[name] = low.pop(0)
        else:
            out[name] = high
            high += 1
    return out


def compose_labels(anatomy: Optional[LabelMap], lesions: Sequence, *,
                   imported: Optional[LabelMap] = None, grid=None) -> Tuple[LabelMap, Dict[str, str], List[str]]:
    """(label map, {name: source}, warnings) with source ``"automatic"``, ``"imported"`` or ``"lesion"``.

    ``anatomy`` and ``imported`` are LabelMaps on the CT grid (either may be None);
    ``lesions`` are :class:`~planner.segmentation.lesion_grow.LesionSegmentation` objects
    (``name`` and a bool ``mask`` on the CT grid). ``grid`` (a Volume) gives the
    geometry when both label maps are None.
    """
    base = anatomy if anatomy is not None else imported if imported is not None else grid
    if base is None:
        raise InputError("nothing to compose: no anatomy, no imported structures and no grid",
                         fix="give the CT grid")
    shape = base.array.shape
    for lm in (anatomy, imported):
        if lm is not None and not lm.same_grid(base):
            raise InputError("the label maps to combine are not on one grid", fix="resample them onto the CT")
    lesion_names = [les.name for les in lesions]
    if len(set(lesion_names)) != len(lesion_names):
        raise InputError(f"lesion names repeat: {lesion_names}", fix="give every lesion its own name")
    taken = set(anatomy.names if anatomy is not None else ()) | set(imported.names if imported is not None else ())
    clash = sorted(set(lesion_names) & taken)
    if clash:
        raise InputError(f"lesion name(s) {clash} are already anatomy structure names",
                         fix="name lesions lesion_1, lesion_2, ...")
    anatomy_names = dict(anatomy.names) if anatomy is not None else {}
    imported_names = list(imported.names) if imported is not None else []
    values = _values(anatomy_names, [n for n in imported_names if n not in anatomy_names], len(lesions))
    top = max(list(values.values()) + [LESION_FIRST_VALUE + len(lesions)])
    out = np.zeros(shape, np.uint8 if top < 256 else np.uint16)
    sources: Dict[str, str] = {}
    auto = [n for n in anatomy_names if n not in imported_names]
    if "body" in auto:
        out[anatomy.array > 0] = values["body"]
        sources["body"] = "automatic"
    if imported is not None:
        lut = np.zeros(int(imported.array.max()) + 1 if imported.array.size else 1, out.dtype)
        for name, value in imported.names.items():
            lut[value] = values[name]
            sources[name] = "imported"
        painted = lut[imported.array]
        np.copyto(out, painted, where=painted > 0)
    for name in (n for n in auto if n != "body"):
        voxels = anatomy.array == anatomy.names[name]
        if imported is not None:
            containers = [imported.names[c] for c in CONTAINED_IN.get(name, ()) if c in imported.names]
            voxels &= (imported.array == 0) | np.isin(imported.array, containers)
        out[voxels] = values[name]
        sources[name] = "automatic"
    warnings: List[str] = []
    lesion_values: Dict[str, int] = {}
    for n, les in enumerate(lesions):
        if les.mask.shape != shape:
            raise InputError(f"lesion '{les.name}': its mask is not on the CT grid", fix="grow it on this CT")
        under = set(np.unique(out[les.mask]).tolist())
        warnings += [f"{les.name} overlaps {other}; {les.name} wins there"
                     for other, v in lesion_values.items() if v in under]
        lesion_values[les.name] = values[les.name] = LESION_FIRST_VALUE + n
        out[les.mask] = LESION_FIRST_VALUE + n
        sources[les.name] = "lesion"
    present = set(np.unique(out).tolist())
    warnings += [f"{name} lies entirely under later lesions and is left out of the label map (two clicks "
                 "in one lesion?)" for name, v in lesion_values.items() if v not in present]
    names = {n: v for n, v in sorted(values.items(), key=lambda kv: kv[1]) if v in present}
    md = {"warnings": warnings}
    return LabelMap(out, base.spacing, base.origin, base.direction, names, md), \
        {n: sources[n] for n in names}, warnings

