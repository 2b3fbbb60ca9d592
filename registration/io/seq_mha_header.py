"""PLUS sequence metafile header (``.mha``, ``.igs.mha``, ``.seq.mha``, ``.mhd``): text to fields.

The header is MetaImage ``Key = Value`` lines up to ``ElementDataFile``
(``LOCAL``: the pixels follow in the same file; otherwise the name of a data
file beside the header). Per-frame fields are ``Seq_Frame<N>_<Name> = value``:
``<From>To<To>Transform`` = 16 numbers row-major (a 4x4 matrix),
``..TransformStatus`` = OK|INVALID, ``..Timestamp`` in seconds,
``..ImageStatus``. Here the header is split into header-level fields and
per-frame fields ``{name: {frame index: text}}``, and those texts are decoded
into arrays indexed by frame (matrices ``[n, 4, 4]``, NaN where absent).
Every error is an InputError naming the file and the field.
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

import numpy as np

from registration.spatial.errors import InputError, check_choice

_EDF = re.compile(rb"(?m)^[ \t]*ElementDataFile[ \t]*=[ \t]*([^\r\n]*)(\r?\n|\Z)")
_FRAME = re.compile(r"Seq_Frame(\d+)_(.+)")
_FIX_HEADER = "check the header against the PLUS sequence metafile format or export the sequence again"
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}   # MetaImage spellings, lower-case


# --------------------------------------------------------------------------- header
def _split_header(data: bytes, path: str):
    """(fields {key: value}, frame_fields {name: {index: value}}, data_file, data_offset)."""
    m = _EDF.search(data)
    if m is None:
        raise InputError("no ElementDataFile line (the header must end with 'ElementDataFile = "
                         "LOCAL' or the name of the data file)", path=path, fix=_FIX_HEADER)
    header = data[:m.start()].decode("latin-1")
    fields: Dict[str, str] = {}
    frame_fields: Dict[str, Dict[int, str]] = {}
    for lineno, line in enumerate(header.splitlines(), start=1):
        if not line.strip():
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise InputError(f"header line {lineno} is not 'Key = Value': '{line.strip()[:60]}'",
                             path=path, fix=_FIX_HEADER)
        key, value = key.strip(), value.strip()
        fm = _FRAME.fullmatch(key)
        if fm:
            frame_fields.setdefault(fm.group(2), {})[int(fm.group(1))] = value
        else:
            fields[key] = value  # duplicated keys occur in real files (Kinds): last wins
    return fields, frame_fields, m.group(1).decode("latin-1").strip(), m.end()


def _ints(fields: Dict[str, str], key: str, count: int, path: str, default=None) -> List[int]:
    if key not in fields:
        if default is not None:
            return list(default)
        raise InputError(f"the header has no {key}", path=path, fix=_FIX_HEADER)
    parts = fields[key].split()
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"{key} = '{fields[key][:60]}' is not {count} whole numbers",
                         path=path, fix=_FIX_HEADER) from None
    if len(values) != count or any(v < 0 for v in values):
        raise InputError(f"{key} = '{fields[key][:60]}' must be {count} non-negative whole numbers",
                         path=path, fix=_FIX_HEADER)
    return values


def _is_true(fields, key, path, default=False) -> bool:
    value = fields.get(key)
    if value is None:
        return default
    return check_choice(value.lower(), _BOOLEANS, key, path=path, fix=_FIX_HEADER)


def _parse_matrices(values: Dict[int, str], n: int, name: str, path: str):
    """{index: '16 numbers'} -> ([n,4,4] NaN where absent, bool [n] present)."""
    mats = np.full((n, 4, 4), np.nan)
    present = np.zeros(n, bool)
    if not values:
        return mats, present
    idx = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
    tokens = [v.split() for v in values.values()]
    for i, tok in zip(idx, tokens):
        if len(tok) != 16:
            raise InputError(f"Seq_Frame{i:04d}_{name} has {len(tok)} numbers, not 16", path=path,
                             fix="write each transform as 16 numbers, row-major")
    try:
        flat = np.array([t for tok in tokens for t in tok], dtype=float)
    except ValueError:
        for i, tok in zip(idx, tokens):
            try:
                [float(t) for t in tok]
            except ValueError:
                raise InputError(f"Seq_Frame{i:04d}_{name} is not numeric: "
                                 f"'{' '.join(tok)[:60]}'", path=path,
                                 fix="write each transform as 16 numbers, row-major") from None
        raise
    mats[idx] = flat.reshape(-1, 4, 4)
    present[idx] = True
    return mats, present


def _status(values: Dict[int, str], n: int, default: np.ndarray) -> np.ndarray:
    out = default.copy()
    for i, v in values.items():
        out[i] = v.strip().upper() == "OK"
    return out


def _floats(values: Dict[int, str], n: int, name: str, path: str) -> Tuple[np.ndarray, np.ndarray]:
    out = np.full(n, np.nan)
    present = np.zeros(n, bool)
    for i, v in values.items():
        try:
            out[i] = float(v)
        except ValueError:
            raise InputError(f"Seq_Frame{i:04d}_{name} = '{v[:40]}' is not a number", path=path,
                             fix=f"write {name} in seconds as a number") from None
        present[i] = True
    if not np.all(np.isfinite(out[present])):
        raise InputError(f"{name} contains a non-finite value", path=path,
                         fix=f"write {name} in seconds as a finite number")
    return out, present
