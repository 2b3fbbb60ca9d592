"""Slicer ``.seq.nrrd`` header: text to fields, and the header fields that carry geometry and time.

An NRRD header is the magic line ``NRRD000x``, then ``field: value`` lines
(field names are lower-cased here) and ``key:=value`` lines (custom
key/values, kept as written), up to a blank line after which the data
follow (attached data). Decoded here: the list axis's ``index values``
(timestamps in seconds; ``ms`` units divided by 1000) and the IJK->LPS matrix
(4x4, mm) from ``space directions`` / ``space origin`` (RAS files converted
to LPS). Every error is an InputError naming the file.
"""
from __future__ import annotations

import re
import urllib.parse
from typing import Dict, List

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.transforms import LPS_TO_RAS

_FIX = "save the sequence again from Slicer (Sequences module) or with write_seq_nrrd"


def _header(data: bytes, path: str):
    """(fields {name: value}, keyvalues {key: value}, data offset)."""
    if not data.startswith(b"NRRD000"):
        raise InputError("not an NRRD file (no NRRD000x magic line)", path=path, fix=_FIX)
    end, gap = data.find(b"\n\n"), 2
    crlf = data.find(b"\r\n\r\n")
    if crlf >= 0 and (end < 0 or crlf < end):
        end, gap = crlf, 4
    if end < 0:
        end = len(data)  # detached-header files may end without a blank line
    text = data[:end].decode("latin-1").replace("\r", "")
    fields: Dict[str, str] = {}
    kv: Dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n")[1:], start=2):
        if not line.strip() or line.startswith("#"):
            continue
        if ":=" in line:
            key, _, value = line.partition(":=")
            kv[key.strip()] = value.strip()
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            raise InputError(f"header line {lineno} is neither 'field: value' nor 'key:=value': "
                             f"'{line[:60]}'", path=path, fix=_FIX)
        fields[key.strip().lower()] = value.strip()
    return fields, kv, min(end + gap, len(data))


def _need(fields, key, path):
    if key not in fields:
        raise InputError(f"the NRRD header has no '{key}' field", path=path, fix=_FIX)
    return fields[key]


def _vectors(text: str, path: str) -> List[object]:
    """'(1,0,0) (0,1,0) none' -> [array, array, None]."""
    out: List[object] = []
    for tok in re.findall(r"\([^)]*\)|none", text):
        if tok == "none":
            out.append(None)
            continue
        try:
            out.append(np.array([float(v) for v in tok.strip("()").split(",")]))
        except ValueError:
            raise InputError(f"space vector {tok} is not numeric", path=path, fix=_FIX) from None
    return out


def _index_values(kv, fields, la, n, path, notes) -> np.ndarray:
    text = kv.get(f"axis {la} index values")
    if text is None:
        notes.append("no index values: frame index used as seconds")
        return np.arange(n, dtype=float)
    tokens = [urllib.parse.unquote(t) for t in text.split()]
    if len(tokens) != n:
        raise InputError(f"axis {la} index values has {len(tokens)} values for {n} items", path=path, fix=_FIX)
    try:
        t = np.array([float(v) for v in tokens])
    except ValueError:
        notes.append("text index values: frame index used as seconds")
        return np.arange(n, dtype=float)
    units = re.findall(r'"([^"]*)"', fields.get("units", ""))
    if len(units) > la and units[la].strip().lower() == "ms":
        t = t / 1000.0
    if not np.all(np.isfinite(t)):
        raise InputError(f"axis {la} index values are not finite", path=path, fix=_FIX)
    return t


def _ijk_to_lps(fields, space_axes, path):
    if "space directions" not in fields:
        return None
    vecs = [v for v in _vectors(fields["space directions"], path) if v is not None]
    origin = _vectors(fields.get("space origin", "(0,0,0)"), path)
    if len(vecs) < 2 or not origin or origin[0] is None:
        return None
    m = np.eye(4)
    for c, v in enumerate(vecs[:3]):
        m[:len(v[:3]), c] = v[:3]
    m[:len(origin[0][:3]), 3] = origin[0][:3]
    space = fields.get("space", "").lower()
    if space in ("right-anterior-superior", "ras"):
        m = LPS_TO_RAS @ m  # RAS -> LPS (diag(-1,-1,1) is its own inverse)
    return m
