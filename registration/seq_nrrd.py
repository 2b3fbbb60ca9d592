"""Slicer volume sequences (``.seq.nrrd``) of 2D ultrasound frames: read and write.

Format (Slicer Sequences module, "Volume sequence file format"): an NRRD
whose axes are three spatial (``domain``) axes plus one axis of kind ``list``
(the sequence items). Slicer writes the list axis last (``kinds: domain domain
domain list``, current versions) or first (``kinds: list domain domain
domain``, older versions): the reader finds it by its kind. Custom fields:

* ``axis <A> index type:=numeric|text`` and ``axis <A> index values:=v0 v1 ...``
  (one value per item; numeric values are the timestamps, in seconds unless
  ``units`` of the list axis says ``ms``);
* ``axis <A> item <I> <Name>:=<value>``: per-item attributes. We store the
  PLUS per-frame fields here with PLUS names: ``<From>To<To>Transform`` (16
  numbers row-major), ``..TransformStatus`` (OK|INVALID), ``ImageStatus``;
  other names are kept in ``metadata['frame_fields']``;
* ``<From>To<To>Transform:=16 numbers`` (not per item): static calibration.

Supported: ``type`` uchar (8-bit), one component or ``RGB-color`` /
``vector`` of 3 (converted to grey with a note); ``encoding`` raw, gzip,
bzip2; attached data or one detached ``data file``; the third spatial axis
must have size 1 (2D frames). Frames come out ``uint8 [n, rows, cols]`` with
i = column, j = row. The IJK->space geometry of the file (``space
directions``, ``space origin``; RAS converted to LPS) is kept in
``metadata['ijk_to_lps']``; our writer stores the Image frame in pixel units
(identity directions), as PLUS does. Not supported: Slicer's transform
sequences (``.seq.mrb``) - tracking must come as per-item attributes.
"""
from __future__ import annotations

import bz2
import gzip
import os
import re
import urllib.parse
import zlib
from typing import Dict, List

import numpy as np

from .errors import InputError
from .sweep import Sweep, split_transform_name
from .transforms import LPS_TO_RAS, atomic_write_bytes, format_matrix

_ITEM = re.compile(r"axis (\d+) item (\d+) (.+)")
_UCHAR = {"uchar", "unsigned char", "uint8", "uint8_t"}
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


def _decode(blob: bytes, encoding: str, path: str, expected: int) -> bytes:
    try:
        if encoding == "raw":
            raw = blob
        elif encoding in ("gzip", "gz"):
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = d.decompress(blob, expected + 1)
        elif encoding in ("bzip2", "bz2"):
            raw = bz2.decompress(blob)
        else:
            raise InputError(f"NRRD encoding '{encoding}' is not supported (raw, gzip, bzip2)",
                             path=path, fix=_FIX)
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise InputError(f"compressed data is corrupt ({exc})", path=path, fix=_FIX) from None
    if len(raw) != expected:
        raise InputError(f"data holds {len(raw)} bytes but sizes need {expected} (truncated file?)",
                         path=path, fix=_FIX)
    return raw


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


def read_seq_nrrd(path) -> Sweep:
    """Read a Slicer ``.seq.nrrd`` of 2D frames into a :class:`Sweep` (see module docstring)."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"cannot read the sequence file ({exc.strerror})", path=path,
                         fix="check the path") from None
    fields, kv, offset = _header(data, path)
    try:
        dim = int(_need(fields, "dimension", path))
        sizes = [int(v) for v in _need(fields, "sizes", path).split()]
    except ValueError:
        raise InputError("dimension/sizes are not whole numbers", path=path, fix=_FIX) from None
    kinds = _need(fields, "kinds", path).split()
    if len(sizes) != dim or len(kinds) != dim or any(s < 1 for s in sizes):
        raise InputError(f"dimension {dim}, sizes {sizes} and kinds {kinds} disagree", path=path, fix=_FIX)
    list_axes = [a for a, k in enumerate(kinds) if k.lower() == "list"]
    if len(list_axes) != 1:
        raise InputError(f"kinds '{' '.join(kinds)}' must have exactly one 'list' axis (the frames)",
                         path=path, fix=_FIX)
    la = list_axes[0]
    comp_axes = [a for a, k in enumerate(kinds) if k.lower() in ("rgb-color", "vector", "3-vector")]
    space_axes = [a for a in range(dim) if a != la and a not in comp_axes]
    if _need(fields, "type", path).lower() not in _UCHAR:
        raise InputError(f"type '{fields['type']}' is not supported (ultrasound frames are uchar)",
                         path=path, fix="export 8-bit frames")
    if len(space_axes) not in (2, 3) or len(comp_axes) > 1:
        raise InputError(f"kinds '{' '.join(kinds)}': expected 2 or 3 spatial axes, a list axis and at "
                         "most one colour axis", path=path, fix=_FIX)
    if len(space_axes) == 3 and sizes[space_axes[2]] != 1:
        raise InputError(f"frames are 3D ({sizes[space_axes[2]]} slices): only 2D frames are supported",
                         path=path, fix="save a sequence of 2D ultrasound frames")
    channels = sizes[comp_axes[0]] if comp_axes else 1
    if channels not in (1, 3):
        raise InputError(f"{channels} components per pixel are not supported (1 or 3)", path=path, fix=_FIX)
    n = sizes[la]
    expected = int(np.prod(sizes))
    if "data file" in fields or "datafile" in fields:
        name = fields.get("data file", fields.get("datafile"))
        if name.upper().startswith("LIST") or "%" in name:
            raise InputError("a list of data files is not supported", path=path, fix=_FIX)
        try:
            with open(os.path.join(os.path.dirname(os.path.abspath(path)), name), "rb") as f:
                blob = f.read()
        except OSError as exc:
            raise InputError(f"cannot read the data file {name} ({exc.strerror})", path=path,
                             fix="keep the data file beside the header") from None
    else:
        blob = data[offset:]
    raw = _decode(blob, _need(fields, "encoding", path).lower(), path, expected)
    # NRRD: axis 0 is fastest -> numpy shape is sizes reversed.
    arr = np.frombuffer(raw, np.uint8).reshape(sizes[::-1])
    rev = lambda a: dim - 1 - a  # noqa: E731  (numpy axis of NRRD axis a)
    order = [rev(la), rev(space_axes[1]), rev(space_axes[0])]
    if len(space_axes) == 3:
        order.append(rev(space_axes[2]))
    if comp_axes:
        order.append(rev(comp_axes[0]))
    arr = np.transpose(arr, order)
    if len(space_axes) == 3:
        arr = arr[:, :, :, 0, ...]
    notes: List[str] = []
    if channels == 3:
        grey = arr.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        arr = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        notes.append("RGB frames converted to grey (0.299 R + 0.587 G + 0.114 B)")
    frames = np.ascontiguousarray(arr)

    timestamps = _index_values(kv, fields, la, n, path, notes)
    items: Dict[str, Dict[int, str]] = {}
    calib: Dict[str, np.ndarray] = {}
    for key, value in kv.items():
        m = _ITEM.fullmatch(key)
        if m and int(m.group(1)) == la:
            i = int(m.group(2))
            if i >= n:
                raise InputError(f"'{key}' refers to item {i} but there are {n} items", path=path, fix=_FIX)
            items.setdefault(m.group(3), {})[i] = value
        elif key.endswith("Transform") and _is_transform_name(key):
            calib[key[:-len("Transform")]] = _matrix(value, key, path)
    transforms, statuses = {}, {}
    for name in [k for k in items if k.endswith("Transform") and _is_transform_name(k)]:
        mats = np.full((n, 4, 4), np.nan)
        present = np.zeros(n, bool)
        for i, v in items.pop(name).items():
            mats[i] = _matrix(v, f"axis {la} item {i} {name}", path)
            present[i] = True
        st = present.copy()
        for i, v in items.pop(name + "Status", {}).items():
            st[i] = present[i] and v.strip().upper() == "OK"
        transforms[name[:-len("Transform")]] = mats
        statuses[name[:-len("Transform")]] = st
    image_valid = np.ones(n, bool)
    for i, v in items.pop("ImageStatus", {}).items():
        image_valid[i] = v.strip().upper() == "OK"
    metadata = {
        "format": "slicer-seq-nrrd", "header": fields, "keyvalues": kv, "list_axis": la,
        "ijk_to_lps": _ijk_to_lps(fields, space_axes, path),
        "frame_fields": {k: [v.get(i) for i in range(n)] for k, v in items.items()},
        "notes": notes,
    }
    sweep = Sweep(frames, timestamps, transforms, statuses, calib, None, metadata, path,
                  image_valid=image_valid,
                  image_frame="CroppedImage" if "ImageToCroppedImage" in transforms else "Image")
    if sweep.has_images and frames.shape[1] > 1 and frames.shape[2] > 1:
        from .fan_mask import detect_fan_mask
        sweep.fan_mask = detect_fan_mask(frames)
    return sweep


def _is_transform_name(name: str) -> bool:
    try:
        split_transform_name(name)
        return True
    except InputError:
        return False


def _matrix(text: str, what: str, path: str) -> np.ndarray:
    parts = text.split()
    try:
        values = np.array([float(p) for p in parts])
    except ValueError:
        raise InputError(f"{what} is not numeric: '{text[:60]}'", path=path,
                         fix="write 16 numbers, row-major") from None
    if values.size != 16:
        raise InputError(f"{what} has {values.size} numbers, not 16", path=path,
                         fix="write 16 numbers, row-major")
    return values.reshape(4, 4)


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


def write_seq_nrrd(sweep: Sweep, path, *, compress: bool = True) -> None:
    """Write ``sweep`` as a Slicer ``.seq.nrrd`` (atomic), list axis last (current Slicer layout).

    Frames: sizes ``cols rows 1 n``, pixel-unit identity geometry in LPS;
    timestamps as ``axis 3 index values`` (seconds); per-frame transforms,
    statuses, image status and extra frame fields as ``axis 3 item I Name:=``;
    calibration as ``<Name>Transform:=``.
    """
    path = os.fspath(path)
    frames = np.asarray(sweep.frames)
    n, rows, cols = frames.shape
    if frames.dtype != np.uint8:
        raise InputError(f"frames are {frames.dtype}, a .seq.nrrd sweep needs uint8", path=path,
                         fix="convert the frames to uint8 before writing")
    if rows * cols == 0 or n == 0:
        raise InputError("a .seq.nrrd needs at least one image frame", path=path,
                         fix="write tracker-only sweeps as a PLUS .mha")
    lines = [
        "NRRD0004", "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html", "type: unsigned char", "dimension: 4",
        "space: left-posterior-superior", f"sizes: {cols} {rows} 1 {n}",
        "space directions: (1,0,0) (0,1,0) (0,0,1) none", "kinds: domain domain domain list",
        'labels: "" "" "" "time"', 'units: "" "" "" "s"', "endian: little",
        f"encoding: {'gzip' if compress else 'raw'}", "space origin: (0,0,0)",
        "DataNodeClassName:=vtkMRMLScalarVolumeNode", "axis 3 index type:=numeric",
        "axis 3 index values:=" + " ".join(repr(float(t)) for t in sweep.timestamps),
    ]
    for name, m in sorted(sweep.calibration.items()):
        lines.append(f"{name}Transform:={format_matrix(m)}")
    image_ok = sweep.image_valid if sweep.image_valid is not None else np.ones(n, bool)
    identity = format_matrix(np.eye(4))
    extra = {k: v for k, v in sweep.metadata.get("frame_fields", {}).items() if len(v) == n}
    for i in range(n):
        for name in sorted(sweep.transforms):
            m = sweep.transforms[name][i]
            lines.append(f"axis 3 item {i} {name}Transform:="
                         f"{format_matrix(m) if np.all(np.isfinite(m)) else identity}")
            lines.append(f"axis 3 item {i} {name}TransformStatus:="
                         f"{'OK' if sweep.statuses[name][i] else 'INVALID'}")
        lines.append(f"axis 3 item {i} ImageStatus:={'OK' if image_ok[i] else 'INVALID'}")
        for name, values in extra.items():
            if values[i] is not None:
                value = str(values[i])
                if "\n" in value or "\r" in value or ":=" in name:
                    raise InputError(f"frame field {name} of frame {i} cannot be stored in NRRD",
                                     path=path, fix="remove line breaks from metadata")
                lines.append(f"axis 3 item {i} {name}:={value}")
    pixels = np.ascontiguousarray(frames).tobytes()
    if compress:
        pixels = gzip.compress(pixels, compresslevel=6)
    atomic_write_bytes(path, ("\n".join(lines) + "\n\n").encode("latin-1") + pixels)
