"""Plan export: plan.json (+ schema check), Slicer markups, reference_to_ct.tfm, plan.pdf.

Every file is built in memory first and written atomically; nothing is
overwritten unless ``force``. Coordinates are CT LPS mm everywhere; the
markups say ``coordinateSystem: "LPS"`` so Slicer converts to RAS itself.

``validate`` is a small JSON-Schema (draft-07 subset) validator: the
``jsonschema`` package is not in the project's environment. It supports
type, enum, required, properties, additionalProperties, items, minItems,
maxItems, minimum, maximum, anyOf and local ``$ref`` (``#/$defs/...``) - the
keywords planner/export/plan_schema.json and the markups test use.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from registration.spatial.atomic_io import atomic_write_bytes
from registration.spatial.errors import InputError
from registration.spatial.transforms import write_tfm

SCHEMA_PATH = Path(__file__).with_name("plan_schema.json")
MARKUPS_SCHEMA_URL = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                      "Markups/Resources/Schema/markups-schema-v1.0.3.json#")
OUTPUT_NAMES = ("plan.json", "plan.mrk.json", "reference_to_ct.tfm", "plan.pdf")
#: The label map the plan was made with, kept in the plan folder so guidance (``ctus guide``),
#: PACS export (``ctus pacs send``) and a later review use exactly those labels.
PLAN_LABELS = "labels.nrrd"


def plan_labels_path(plan_dir, given=None) -> str:
    """``given`` if set, else the plan folder's own label map; InputError when neither exists."""
    if given:
        return os.fspath(given)
    path = Path(plan_dir) / PLAN_LABELS
    if not path.is_file():
        raise InputError("the plan folder holds no label map", path=path,
                         fix="pass --labels (and --label-names) with the labels the plan was made with, "
                             "or plan again with this version of ctus plan")
    return str(path)
_PHI_KEYS = ("patient_id", "patient_name", "patient_birth_date", "source", "study_date")


# --------------------------------------------------------------------------- schema
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _type_ok(value, t: str) -> bool:
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[t])


def validate(instance, schema: dict, root: Optional[dict] = None, where: str = "$") -> List[str]:
    """Errors of ``instance`` against ``schema`` (empty list = valid)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return [f"{where}: unsupported $ref {ref}"]
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        return validate(instance, target, root, where)
    errors: List[str] = []
    if "anyOf" in schema:
        if all(validate(instance, s, root, where) for s in schema["anyOf"]):
            errors.append(f"{where}: matches none of anyOf")
    t = schema.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_type_ok(instance, x) for x in types):
            return errors + [f"{where}: expected {t}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{where}: {instance!r} not in {schema['enum']}")
    if _type_ok(instance, "number"):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{where}: {instance} < minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{where}: {instance} > maximum {schema['maximum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{where}: missing required '{key}'")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                errors += validate(value, props[key], root, f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unexpected property '{key}'")
            elif isinstance(extra, dict):
                errors += validate(value, extra, root, f"{where}.{key}")
    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            errors.append(f"{where}: {len(instance)} items < {schema['minItems']}")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            errors.append(f"{where}: {len(instance)} items > {schema['maxItems']}")
        if isinstance(schema.get("items"), dict):
            for n, item in enumerate(instance):
                errors += validate(item, schema["items"], root, f"{where}[{n}]")
    return errors


def load_schema() -> dict:
    """The plan.json schema (planner/export/plan_schema.json)."""
    with open(SCHEMA_PATH, "r", encoding="utf-8") as f:
        return json.load(f)


def validate_plan(plan: dict) -> None:
    """Raise ValueError listing schema violations (a planner bug, not bad input)."""
    errors = validate(plan, load_schema())
    if errors:
        raise ValueError("plan does not match planner/export/plan_schema.json: " + "; ".join(errors[:10]))


# --------------------------------------------------------------------------- content
def case_summary(ct_metadata: dict, *, include_patient_id: bool) -> dict:
    """Case and data summary; de-identified (no patient id, no source path) unless asked."""
    keep = {k: v for k, v in ct_metadata.items()
            if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    if not include_patient_id:
        keep = {k: v for k, v in keep.items() if k not in _PHI_KEYS}
    keep["deidentified"] = not include_patient_id
    return keep


#: Line colours (RGB 0-1): US green, CT orange, an unsafe least-risk path red.
LINE_COLOURS = {"us": [0.2, 0.8, 0.2], "ct": [1.0, 0.6, 0.0], "unsafe": [0.9, 0.05, 0.05]}


def _line_colour(tr: dict) -> list:
    return LINE_COLOURS["unsafe" if tr.get("safe", True) is False else ("us" if tr["guidance"] == "us" else "ct")]


def markups(plan: dict) -> dict:
    """Slicer markups (schema v1.0.3, LPS mm): a Fiducial list of targets, one Line per trajectory."""
    targets = {"type": "Fiducial", "name": "targets", "coordinateSystem": "LPS", "coordinateUnits": "mm",
               "locked": True, "labelFormat": "%N-%d", "controlPoints": []}
    lines = []
    for n, lesion in enumerate(plan["lesions"], 1):
        targets["controlPoints"].append({
            "id": str(n), "label": lesion["name"], "description": lesion["recommendation"]["guidance"],
            "position": [float(v) for v in lesion["target_ct"]], "positionStatus": "defined"})
        for m, tr in enumerate(lesion["trajectories"], 1):
            unsafe = tr.get("safe", True) is False
            name = f"{lesion['name']}_{tr['guidance']}_{m}" + ("_UNSAFE" if unsafe else "")
            lines.append({
                "type": "Line", "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm",
                "locked": True, "fixedNumberOfControlPoints": True,
                "controlPoints": [
                    {"id": "1", "label": f"{name}-entry", "position": [float(v) for v in tr["entry_ct"]],
                     "description": ("UNSAFE least-risk path: " + "; ".join(v["text"] for v in tr["violations"])
                                     if unsafe else f"{tr['guidance']} path, meets the plan's hard rules"),
                     "positionStatus": "defined"},
                    {"id": "2", "label": f"{name}-target", "position": [float(v) for v in tr["target_ct"]],
                     "positionStatus": "defined"}],
                "display": {"color": _line_colour(tr)}})
    return {"@schema": MARKUPS_SCHEMA_URL, "markups": [targets] + lines}


def _existing(out_dir: Path, names) -> List[Path]:
    return [out_dir / n for n in names if (out_dir / n).exists()]


def prepare_pdf_in_background() -> threading.Thread:
    """Start importing the PDF report's modules and fonts in a daemon thread (they load while the
    caller plans; :func:`write_outputs` then finds them ready). Returns the thread."""
    from .report_pdf import prepare
    thread = threading.Thread(target=_quietly, args=(prepare,), name="pdf-imports", daemon=True)
    thread.start()
    return thread


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:   # noqa: BLE001 - the PDF step imports the same modules and reports the error
        pass


def write_outputs(result, out_dir, *, force: bool = False, include_patient_id: bool = False,
                  ct_metadata: Optional[dict] = None, reference_to_ct: Optional[np.ndarray] = None,
                  pdf: bool = True, sweep=None, labels=None, pdf_workers: int = 1) -> Dict[str, str]:
    """Write plan.json, plan.mrk.json, reference_to_ct.tfm (when registered), plan.pdf, and the
    label map the plan used (``labels.nrrd`` + ``labels.names.json``, when ``labels`` is given).

    ``pdf_workers`` 2 renders the PDF's pages in two processes (the command line; see
    :mod:`.report_split`). Returns {name: path}. Raises InputError if an output exists and not ``force``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", path=out_dir, fix="give --out a folder")
    names = ["plan.json", "plan.mrk.json"] + (["reference_to_ct.tfm"] if reference_to_ct is not None else []) \
        + (["plan.pdf"] if pdf else []) + ([PLAN_LABELS] if labels is not None else [])
    clash = _existing(out_dir, names)
    if clash and not force:
        raise InputError("already exists", path=clash[0],
                         fix="pass --force to overwrite or choose another --out folder")
    plan = dict(result.plan)
    plan["case"] = case_summary(ct_metadata or {}, include_patient_id=include_patient_id)
    if reference_to_ct is not None and not plan.get("registration"):
        plan["registration"] = {"reference_to_ct": np.asarray(reference_to_ct, float).round(6).tolist(),
                                "metrics": {}}
    validate_plan(plan)
    # build everything before writing anything: no half-written plan folder
    blobs = {"plan.json": json.dumps(plan, indent=1).encode("utf-8"),
             "plan.mrk.json": json.dumps(markups(plan), indent=1).encode("utf-8")}
    if pdf:
        from .report_pdf import render_pdf
        blobs["plan.pdf"] = render_pdf(plan, result.anatomy, result.lesion_masks, sweep=sweep,
                                       reference_to_ct=reference_to_ct, workers=pdf_workers)
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for name, data in blobs.items():
        atomic_write_bytes(out_dir / name, data)
        written[name] = str(out_dir / name)
    if reference_to_ct is not None:
        write_tfm(out_dir / "reference_to_ct.tfm", np.asarray(reference_to_ct, float))
        written["reference_to_ct.tfm"] = str(out_dir / "reference_to_ct.tfm")
    if labels is not None:
        from registration.io.labelmap_io import write_labels
        written["labels.names.json"] = write_labels(labels, out_dir / PLAN_LABELS)
        written[PLAN_LABELS] = str(out_dir / PLAN_LABELS)
    return written


__all__ = ["validate", "validate_plan", "load_schema", "markups", "write_outputs", "case_summary",
           "plan_labels_path", "PLAN_LABELS"]
