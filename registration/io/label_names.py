"""Structure names of a label map: names files, the sidecar path, naming a LabelMap.

A names table is ``{name: value}`` with integer values > 0 (the label value
of the structure in the integer array ``[k, j, i]``). Sources:

- ``*.json``: ``{"liver": 5, "lesion_1": 7}`` (DESIGN section 6 names;
  unknown names kept). Strict: every value must occur in the image.
- ``*.txt`` (e.g. TotalSegmentator's ``label_names.txt``): lines
  ``<value> <name>``. This is a model's whole dictionary, so names whose
  value is absent from this image are left out (listed in
  ``metadata['absent_names']``).
- the sidecar ``<stem>.names.json`` beside a label image
  (:func:`sidecar_names_path`).

Values present in the image but not named are kept as ``label_<v>`` with a
warning in ``metadata['warnings']``.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, Mapping, Tuple

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

_FIX_NAMES = "pass --label-names NAMES.json mapping names to values, e.g. {\"liver\": 1}"
_BINCOUNT_MAX_VALUE = 1 << 20   # below this a bincount table is small; above it np.unique
_CHUNK = 1 << 20                # voxels per bincount call in _value_counts


# --------------------------------------------------------------------------- names files
def _check_names(raw, path) -> Dict[str, int]:
    if not isinstance(raw, Mapping):
        raise InputError(f"names must be an object {{name: value}}, got {type(raw).__name__}",
                         path=path, fix=_FIX_NAMES)
    names: Dict[str, int] = {}
    seen: Dict[int, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
            raise InputError(f"'{name}' has value {value!r}; label values must be integers > 0",
                             path=path, fix="give each structure a positive integer label value")
        value = int(value)
        if value in seen:
            raise InputError(f"'{seen[value]}' and '{name}' share label value {value}", path=path,
                             fix="give each structure its own value")
        names[str(name)] = seen[value] = value
    return names


def read_names_file(path) -> Tuple[Dict[str, int], bool]:
    """Read a names JSON or ``<value> <name>`` text table -> ({name: value}, strict)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError("names file not found", path=path, fix=_FIX_NAMES)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the names file ({exc})", path=path, fix=_FIX_NAMES) from None
    if path.lower().endswith(".txt"):
        raw = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"^(\d+)[\s,:=]+(\S.*)$", line)
            if not m:
                raise InputError(f"line {n} is not '<value> <name>': {line[:60]!r}", path=path,
                                 fix="write one '<value> <name>' per line")
            raw[m.group(2).strip()] = int(m.group(1))
        return _check_names(raw, path), False
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path=path,
                         fix=_FIX_NAMES) from None
    return _check_names(raw, path), True


def names_json_text(names: Mapping[str, int], path) -> str:
    """{name: value} checked and as JSON text sorted by value (``path`` names the file in errors)."""
    names = _check_names(dict(names), path)
    ordered = dict(sorted(names.items(), key=lambda kv: kv[1]))
    return json.dumps(ordered, indent=2) + "\n"


def save_names_json(names: Mapping[str, int], path) -> None:
    """Write {name: value} as JSON, atomically (sorted by value)."""
    from registration.spatial.atomic_io import atomic_write_text
    atomic_write_text(path, names_json_text(names, path))


def sidecar_names_path(path) -> str:
    """``labels.nii.gz`` -> ``labels.names.json`` (beside the image)."""
    path = os.fspath(path)
    low = path.lower()
    for suffix in (".seg.nrrd", ".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd"):
        if low.endswith(suffix):
            return path[: -len(suffix)] + ".names.json"
    return os.path.splitext(path)[0] + ".names.json"


def _value_counts(arr: np.ndarray) -> Dict[int, int]:
    """{value: voxel count} of a non-negative integer array (bincount when values are small)."""
    if arr.size == 0:
        return {}
    top = int(arr.max())
    if np.can_cast(arr.dtype, np.intp) and top < _BINCOUNT_MAX_VALUE:
        # O(n), no sort; in chunks of 1 M voxels: bincount casts its input to intp, and a cast of
        # the whole map (250 MB for 512x512x119) cost 3x the counting (issue 16)
        flat = arr.reshape(-1)
        counts = np.zeros(top + 1, np.int64)
        for start in range(0, flat.size, _CHUNK):
            counts += np.bincount(flat[start:start + _CHUNK], minlength=counts.size)
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    values, counts = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _present_values(arr: np.ndarray) -> set:
    """Non-zero values present in a non-negative integer label array."""
    return {v for v in _value_counts(arr) if v != 0}


def _apply_names(lm: LabelMap, names: Dict[str, int], strict: bool, path, source) -> LabelMap:
    present = _present_values(lm.array)
    absent = {n: v for n, v in names.items() if v not in present}
    if strict and absent:
        n, v = next(iter(absent.items()))
        raise InputError(f"name '{n}' has value {v}, which does not occur in {source}"
                         + (f" (nor {len(absent) - 1} other name(s))" if len(absent) > 1 else "")
                         + f"; values present: {sorted(present)[:20]}", path=path,
                         fix="correct the value in the names file or remove the name")
    kept = {n: v for n, v in names.items() if v in present}
    warnings = list(lm.metadata.get("warnings", []))
    unnamed = sorted(present - set(kept.values()))
    for v in unnamed:
        kept[f"label_{v}"] = v
    if unnamed and names:
        warnings.append(f"values without a name kept as label_<v>: {unnamed[:20]}")
    md = dict(lm.metadata, warnings=warnings)
    if absent and not strict:
        md["absent_names"] = absent
    return LabelMap(lm.array, lm.spacing, lm.origin, lm.direction, kept, md)
