"""Lesions seen on the MR, carried into the CT plan with the MR -> CT error.

Input: the MR, the ``mr_to_ct`` of ``ctus align`` (4x4, MR LPS mm -> CT LPS
mm) and either clicks on the MR (``SEEDS.json``: ``{"lesions": [{"name",
"point": [x, y, z] MR LPS mm}]}``, each grown by
:func:`planner.anatomy.mr_lesion_grower.grow_mr_lesion`) or an MR label map
with ``lesion_*`` labels. Each lesion mask is carried onto the CT grid (every
CT voxel near it is mapped to the MR with ``inv(mr_to_ct)`` and takes the
mask's linearly interpolated value, >= 0.5 inside) and added to the CT label
map as its own label, over liver voxels only: the risk structures (vessels,
bile, bowel...) stay those of the CT. A lesion that falls on a CT lesion (half
its CT voxels or more) is the same lesion: it is not added twice, the CT
lesion is marked as seen on both.

Error: the lesion's CT position is only as good as the MR -> CT registration
there. Its RMS error at the lesion (:func:`registration.align.mr_ct_error.errors_at`,
a local re-registration around it; else the MR_TO_CT.json's largest estimate)
is added in quadrature to the ultrasound registration's TRE of the lesion
(:func:`with_mr_error`), so the hit probability (registration.align.uncertainty:
registration, tracking, needle, breathing and now MR-CT terms in quadrature)
includes it. Unknown -> no hit probability, never a small one.
"""
from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.transforms import apply, as_matrix, invert
from registration.spatial.volume import LabelMap, Volume

#: A carried MR lesion is the same as a CT lesion when it covers this fraction of its CT voxels.
SAME_LESION_FRACTION = 0.5
#: A row of MR_TO_CT.json within this distance (mm) of a lesion gives its error (when no local estimate).
NEAR_ROW_MM = 15.0
#: LabelMap.metadata key: the label names of the lesions seen on the MR only (views draw them apart).
MR_ONLY_KEY = "mr_only_lesions"


def mr_only_lesions(labels) -> frozenset:
    """The label names of ``labels`` (a LabelMap or None) that are lesions seen on the MR only."""
    if labels is None:
        return frozenset()
    return frozenset(n for n in labels.metadata.get(MR_ONLY_KEY, ()) if n in labels.names)


@dataclass
class MRLesion:
    """One MR lesion as planned on the CT (points LPS mm, errors mm RMS)."""
    name: str
    label_value: Optional[int]
    seen_on: List[str]
    centroid_mr: List[float]
    centroid_ct: List[float]
    diameter_mm: float
    mr_ct_error_mm: Optional[float]
    source: str                      # "click" or "labels"
    grown: Optional[dict] = None
    same_as_ct: Optional[str] = None

    def to_dict(self) -> dict:
        return {"name": self.name, "seen_on": list(self.seen_on), "centroid_mr": self.centroid_mr,
                "centroid_ct": self.centroid_ct, "diameter_mm": round(self.diameter_mm, 2),
                "mr_ct_error_mm": None if self.mr_ct_error_mm is None else round(self.mr_ct_error_mm, 3),
                "source": self.source, "grown": self.grown, "same_as_ct_lesion": self.same_as_ct}


@dataclass
class MRLesionImport:
    """The CT label map with the MR lesions added and what was done per lesion."""
    labels: LabelMap
    lesions: List[MRLesion] = field(default_factory=list)
    mr_to_ct: Optional[np.ndarray] = None
    mr_to_ct_verdict: Optional[str] = None


def read_seeds(path):
    """SEEDS.json -> ({name: MR LPS point}, {name: polarity}) (an item's optional "polarity":
    "dark" (default), "bright" or "auto": :func:`~planner.anatomy.mr_lesion_grower.grow_mr_lesion`)."""
    try:
        data = json.loads(open(path, encoding="utf-8").read())
    except FileNotFoundError:
        raise InputError("file not found", path=path, fix="check the --mr-lesions path") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc.__class__.__name__})", path=path, fix="write the seeds as JSON") from None
    items = data.get("lesions") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise InputError('no "lesions" list', path=path,
                         fix='write {"lesions": [{"name": "lesion_mr_1", "point": [x, y, z]}]} (MR LPS mm)')
    out, polarity = {}, {}
    for n, item in enumerate(items):
        try:
            p = np.asarray(item["point"], float).reshape(3)
        except (KeyError, TypeError, ValueError):
            raise InputError(f'lesion {n} needs "point": [x, y, z] (MR LPS mm)', path=path) from None
        if not np.all(np.isfinite(p)):
            raise InputError(f"lesion {n}: the point is not finite", path=path)
        name = str(item.get("name", f"lesion_mr_{n + 1}"))
        out[name] = p
        if item.get("polarity") in ("dark", "bright", "auto"):
            polarity[name] = item["polarity"]
    return out, polarity


def _carry(mask: np.ndarray, box, mr: Volume, ct_to_mr: np.ndarray, ct: LabelMap) -> np.ndarray:
    """bool [k, j, i] on the CT grid: ``mask`` (over ``box`` of the MR grid) mapped onto the CT."""
    k, j, i = np.nonzero(mask)
    ijk = np.stack([i + box[2].start, j + box[1].start, k + box[0].start], axis=1).astype(float)
    pts_ct = apply(invert(ct_to_mr), mr.index_to_lps(ijk))
    cijk = ct.lps_to_index(pts_ct)
    lo = np.maximum(np.floor(cijk.min(axis=0) - 2).astype(int), 0)
    hi = np.minimum(np.ceil(cijk.max(axis=0) + 3).astype(int), np.asarray(ct.shape_ijk))
    out = np.zeros(ct.array.shape, bool)
    if np.any(hi <= lo):
        return out
    kk, jj, ii = np.meshgrid(np.arange(lo[2], hi[2]), np.arange(lo[1], hi[1]), np.arange(lo[0], hi[0]), indexing="ij")
    c = np.stack([ii.ravel(), jj.ravel(), kk.ravel()], axis=1).astype(float)
    m = mr.lps_to_index(apply(ct_to_mr, ct.index_to_lps(c))) - np.array([box[2].start, box[1].start, box[0].start])
    v = ndimage.map_coordinates(mask.astype(np.float32), [m[:, 2], m[:, 1], m[:, 0]], order=1, mode="constant")
    out[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = (v >= 0.5).reshape(kk.shape)
    return out


def _masks_from_labels(mr_labels: LabelMap):
    """{name: (mask box, box)} of the lesion_* labels of an MR label map."""
    out = {}
    for name in mr_labels.lesion_names():
        m = mr_labels.array == mr_labels.names[name]
        objs = ndimage.find_objects(m.astype(np.uint8))
        if objs and objs[0] is not None:
            out[name] = (m[objs[0]], objs[0])
    return out


# long: grow or read each lesion, carry it, dedupe against the CT's lesions, then the error terms
def import_mr_lesions(mr: Volume, mr_to_ct, ct: Volume, ct_labels: LabelMap, *,
                      seeds: Optional[Dict[str, np.ndarray]] = None, polarity: Optional[Dict[str, str]] = None,
                      mr_labels: Optional[LabelMap] = None,
                      mr_to_ct_doc: Optional[dict] = None, local_error: bool = True) -> MRLesionImport:
    """Add the MR lesions (clicks ``seeds`` {name: MR LPS point}, each grown with its ``polarity``
    (default dark), or ``mr_labels``) to ``ct_labels`` (see the module docstring)."""
    from .mr_lesion_grower import grow_mr_lesion

    m = as_matrix(mr_to_ct, name="mr_to_ct")
    ct_to_mr = invert(m)
    found = {}
    if seeds:
        for name, p in seeds.items():
            g = grow_mr_lesion(mr, p, polarity=(polarity or {}).get(name, "dark"))
            found[name] = (g.mask, g.box, "click", g.to_dict())
    if mr_labels is not None:
        for name, (mask, box) in _masks_from_labels(mr_labels).items():
            found.setdefault(name, (mask, box, "labels", None))
    if not found:
        raise InputError("no MR lesion given", fix="pass clicks (SEEDS.json) or an MR label map with lesion_* labels")
    arr = ct_labels.array.copy()
    names = dict(ct_labels.names)
    liver = names.get("liver")
    ct_lesions = {n: v for n, v in names.items() if n.startswith("lesion")}
    lesions: List[MRLesion] = []
    for name, (mask, box, source, grown) in found.items():
        on_ct = _carry(mask, box, mr, ct_to_mr, ct_labels)
        if not on_ct.any():
            raise InputError(f"MR lesion {name} falls outside the CT under mr_to_ct",
                             fix="check the MR -> CT registration (ctus align) and the click")
        k, j, i = np.nonzero(mask)
        c_mr = mr.index_to_lps(np.stack([i + box[2].start, j + box[1].start, k + box[0].start], 1).mean(0))
        diameter = float((6.0 * mask.sum() * float(np.prod(mr.spacing)) / np.pi) ** (1 / 3))
        same = None
        for ct_name, v in ct_lesions.items():
            ct_mask = ct_labels.array == v
            if ct_mask.any() and (on_ct & ct_mask).sum() >= SAME_LESION_FRACTION * min(ct_mask.sum(), on_ct.sum()):
                same = ct_name
                break
        lesion = MRLesion(name, None, ["CT", "MR"] if same else ["MR"], c_mr.round(3).tolist(),
                          apply(m, c_mr).round(3).tolist(), diameter, None, source, grown, same)
        if same is None:
            label_name = name if name not in names else f"mr_{name}"
            if not label_name.startswith("lesion"):
                label_name = f"lesion_{label_name}"
            value = int(max(names.values(), default=0)) + 1
            names[label_name] = value
            writable = (arr == liver) if liver is not None else (arr == 0) | on_ct
            arr[on_ct & writable] = value
            lesion.name, lesion.label_value = label_name, value
        lesions.append(lesion)
    metadata = dict(ct_labels.metadata)
    metadata[MR_ONLY_KEY] = sorted(set(metadata.get(MR_ONLY_KEY, ()))
                                   | {les.name for les in lesions if les.seen_on == ["MR"]})
    labels = LabelMap(arr, ct_labels.spacing, ct_labels.origin, ct_labels.direction, names, metadata=metadata)
    out = MRLesionImport(labels, lesions, m, None if mr_to_ct_doc is None else mr_to_ct_doc.get("verdict"))
    _error_terms(out, ct, mr, ct_labels, mr_to_ct_doc, local_error)
    return out


def _error_terms(imp: MRLesionImport, ct: Volume, mr: Volume, ct_labels: LabelMap, doc: Optional[dict],
                 local_error: bool) -> None:
    """Each lesion's MR -> CT error: local estimate, else a near row of MR_TO_CT.json, else its largest."""
    points = {les.name: np.asarray(les.centroid_ct) for les in imp.lesions}
    local = {}
    if local_error:
        from registration.align.mr_ct_error import errors_at
        local = errors_at(ct, mr, imp.mr_to_ct, points, ct_labels)
    rows = (doc or {}).get("targets") or []
    for les in imp.lesions:
        err = local.get(les.name)
        if err is None:
            near = [r.get("tre_mm") for r in rows if r.get("point_ct") is not None and r.get("tre_mm") is not None
                    and np.linalg.norm(np.asarray(r["point_ct"]) - points[les.name]) <= NEAR_ROW_MM]
            err = max(near) if near else (doc or {}).get("tre_mm")
        if imp.mr_to_ct_verdict == "poor":
            err = None       # the MR -> CT registration does not trust itself: no error to plan with
        les.mr_ct_error_mm = None if err is None else float(err)


def with_mr_error(registration: Optional[dict], imp: MRLesionImport) -> Optional[dict]:
    """The RESULT dict with a target row per MR lesion added to the CT, its registration TRE
    including the MR -> CT error where it applies (None when a term is unknown). None stays None
    (no registration: no hit probability).

    * A CT -> US registration (``ctus register --ct``): the lesion's CT position carries the
      MR -> CT error: US TRE (its row, else its overall estimate) and MR -> CT in quadrature.
    * An MR -> US registration chained to the CT (``ctus register --mr --mr-to-ct``, with the
      same ``mr_to_ct``): the MR -> CT transform cancels on the way back to the patient
      (``inv(mr_to_ct @ reference_to_mr) @ mr_to_ct @ p_mr``), so the MR-US registration's own
      error applies; a different ``mr_to_ct`` adds their disagreement at the lesion."""
    if registration is None:
        return None
    from registration.align.result_document import parse_result

    doc = copy.deepcopy(registration)
    chained = doc.get("fixed_modality") == "MR"
    own = doc.get("uncertainty") if chained and isinstance(doc.get("uncertainty"), dict) else doc
    record = parse_result({"targets": own.get("targets"), "verdict": own.get("verdict", doc.get("verdict"))},
                          doc.get("source"), need_matrix=False)
    rows = [r for r in (doc.get("targets") or []) if isinstance(r, dict)]
    for les in imp.lesions:
        base = record.tre_at(les.name) if record.target(les.name) is not None else record.overall_tre_mm()
        if chained:
            used = np.asarray((doc.get("mr_to_ct") or {}).get("matrix", imp.mr_to_ct), float)
            p_mr = np.asarray(les.centroid_mr, float)
            extra = float(np.linalg.norm(apply(used, p_mr) - apply(imp.mr_to_ct, p_mr)))
            term, how = extra, "MR -> US registration (the MR -> CT transform cancels), and the two MR -> CT transforms' disagreement"
        else:
            term, how = les.mr_ct_error_mm, "ultrasound registration and MR -> CT"
        tre = None if base is None or term is None else math.hypot(base, term)
        rows = [r for r in rows if r.get("name") != les.name]
        rows.append({"name": les.name, "point_ct": les.centroid_ct, "tre_registration_mm": tre,
                     "why": [f"{how}: {_mm(base)} and {_mm(term)} in quadrature"]})
    doc["targets"] = rows
    if not chained and isinstance(doc.get("uncertainty"), dict):
        doc["uncertainty"] = dict(doc["uncertainty"], targets=rows)
    return doc


def _mm(v) -> str:
    return "unknown" if v is None else f"{v:.2f} mm"


def annotate_plan(plan: dict, imp: MRLesionImport) -> None:
    """Mark the plan's lesions seen on the MR (``seen_on``, ``mr``) and record the MR import."""
    by_name = {les.name: les for les in imp.lesions}
    by_ct = {les.same_as_ct: les for les in imp.lesions if les.same_as_ct}
    for row in plan.get("lesions", []):
        les = by_name.get(row.get("name")) or by_ct.get(row.get("name"))
        if les is None:
            row.setdefault("seen_on", ["CT"])
            continue
        row["seen_on"] = list(les.seen_on)
        row["mr"] = les.to_dict()
    plan["mr"] = {"mr_to_ct": None if imp.mr_to_ct is None else np.asarray(imp.mr_to_ct).round(6).tolist(),
                  "mr_to_ct_verdict": imp.mr_to_ct_verdict, "lesions": [les.to_dict() for les in imp.lesions],
                  "note": "lesions seen on MR are placed on the CT by mr_to_ct; their hit probability includes "
                          "the MR -> CT error (mr_ct_error_mm) in quadrature"}


def read_mr_to_ct_doc(path) -> dict:
    """MR_TO_CT.json (``ctus align``) as a dict with ``mr_to_ct`` checked."""
    if not os.path.isfile(path):
        raise InputError("file not found", path=path, fix="give the MR_TO_CT.json written by 'ctus align'")
    try:
        doc = json.loads(open(path, encoding="utf-8").read())
    except (ValueError, UnicodeDecodeError):
        raise InputError("not valid JSON", path=path, fix="give the MR_TO_CT.json written by 'ctus align'") from None
    if not isinstance(doc, dict) or "mr_to_ct" not in doc:
        raise InputError('no "mr_to_ct"', path=path, fix="give the MR_TO_CT.json written by 'ctus align'")
    doc["mr_to_ct"] = as_matrix(doc["mr_to_ct"], name='"mr_to_ct"', path=path).tolist()
    return doc
