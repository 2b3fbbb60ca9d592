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

Header parsing, time and geometry: :mod:`.seq_nrrd_header`; the writer:
:mod:`.seq_nrrd_write` (:func:`write_seq_nrrd` is re-exported here).
"""
from __future__ import annotations

import bz2
import os
import re
import zlib
from typing import Dict, List, NamedTuple

import numpy as np

from registration.spatial.errors import InputError, check_choice, read_bytes
from registration.spatial.fan_mask import detect_fan_mask_of_images
from registration.spatial.frames import is_transform_name
from registration.spatial.sweep import Sweep

from .seq_mha_pixels import rgb_to_grey
from .seq_nrrd_header import _FIX, _header, _ijk_to_lps, _index_values, _need

_ITEM = re.compile(r"axis (\d+) item (\d+) (.+)")
_UCHAR = ("uchar", "unsigned char", "uint8", "uint8_t")
_ENCODINGS = ("raw", "gzip", "gz", "bzip2", "bz2")
_COLOUR_KINDS = ("rgb-color", "vector", "3-vector")
_CHANNELS = (1, 3)                 # grey, or RGB converted to grey
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's window setting for a gzip wrapper
_SUFFIX = "Transform"


class _Layout(NamedTuple):
    """Which NRRD axis is what: sizes and kinds per axis (NRRD order, axis 0 fastest)."""
    dim: int
    sizes: List[int]
    list_axis: int
    space_axes: List[int]       # 2 or 3 spatial axes (i = column, j = row, [k of size 1])
    colour_axes: List[int]      # [] or one axis of 3 components
    channels: int


def _decode(blob: bytes, encoding: str, path: str, expected: int) -> bytes:
    encoding = check_choice(encoding, _ENCODINGS, "NRRD encoding", path=path, fix=_FIX)
    try:
        if encoding == "raw":
            raw = blob
        elif encoding in ("gzip", "gz"):
            d = zlib.decompressobj(_GZIP_WBITS)
            raw = d.decompress(blob, expected + 1)
        else:
            raw = bz2.decompress(blob)
    except (zlib.error, OSError, EOFError, ValueError) as exc:
        raise InputError(f"compressed data is corrupt ({exc})", path=path, fix=_FIX) from None
    if len(raw) != expected:
        raise InputError(f"data holds {len(raw)} bytes but sizes need {expected} (truncated file?)",
                         path=path, fix=_FIX)
    return raw


def read_seq_nrrd(path) -> Sweep:
    """Read a Slicer ``.seq.nrrd`` of 2D frames into a :class:`Sweep` (see module docstring)."""
    path = os.fspath(path)
    data = read_bytes(path, "cannot read the sequence file")
    fields, kv, offset = _header(data, path)
    layout = _layout(fields, path)
    n = layout.sizes[layout.list_axis]
    raw = _decode(_data_blob(data, offset, fields, path), _need(fields, "encoding", path).lower(), path,
                  int(np.prod(layout.sizes)))
    notes: List[str] = []
    frames = _frames(raw, layout, notes)
    timestamps = _index_values(kv, fields, layout.list_axis, n, path, notes)
    items, calib = _items_and_calibration(kv, layout.list_axis, n, path)
    transforms, statuses = _per_item_transforms(items, layout.list_axis, n, path)
    image_valid = np.ones(n, bool)
    for i, v in items.pop("ImageStatus", {}).items():
        image_valid[i] = v.strip().upper() == "OK"
    metadata = {
        "format": "slicer-seq-nrrd", "header": fields, "keyvalues": kv, "list_axis": layout.list_axis,
        "ijk_to_lps": _ijk_to_lps(fields, layout.space_axes, path),
        "frame_fields": {k: [v.get(i) for i in range(n)] for k, v in items.items()},
        "notes": notes,
    }
    sweep = Sweep(frames, timestamps, transforms, statuses, calib, None, metadata, path,
                  image_valid=image_valid,
                  image_frame="CroppedImage" if "ImageToCroppedImage" in transforms else "Image")
    fan_mask = detect_fan_mask_of_images(frames)
    return sweep if fan_mask is None else sweep.with_fan_mask(fan_mask)


def _layout(fields: Dict[str, str], path: str) -> _Layout:
    """The axes of the file, checked: one list axis, 2 or 3 spatial axes (the third of size 1),
    at most one colour axis of 1 or 3 components, 8-bit unsigned samples."""
    try:
        dim = int(_need(fields, "dimension", path))
        sizes = [int(v) for v in _need(fields, "sizes", path).split()]
    except InputError:
        raise                      # a missing field: _need's own message
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
    comp_axes = [a for a, k in enumerate(kinds) if k.lower() in _COLOUR_KINDS]
    space_axes = [a for a in range(dim) if a != la and a not in comp_axes]
    check_choice(_need(fields, "type", path).lower(), _UCHAR, "type", path=path, fix="export 8-bit frames")
    if len(space_axes) not in (2, 3) or len(comp_axes) > 1:
        raise InputError(f"kinds '{' '.join(kinds)}': expected 2 or 3 spatial axes, a list axis and at "
                         "most one colour axis", path=path, fix=_FIX)
    if len(space_axes) == 3 and sizes[space_axes[2]] != 1:
        raise InputError(f"frames are 3D ({sizes[space_axes[2]]} slices): only 2D frames are supported",
                         path=path, fix="save a sequence of 2D ultrasound frames")
    channels = sizes[comp_axes[0]] if comp_axes else 1
    check_choice(channels, _CHANNELS, "number of components per pixel", path=path, fix=_FIX)
    return _Layout(dim, sizes, la, space_axes, comp_axes, channels)


def _data_blob(data: bytes, offset: int, fields: Dict[str, str], path: str) -> bytes:
    """The (possibly compressed) data: attached after the header, or one detached data file."""
    if "data file" not in fields and "datafile" not in fields:
        return data[offset:]
    name = fields.get("data file", fields.get("datafile"))
    if name.upper().startswith("LIST") or "%" in name:
        raise InputError("a list of data files is not supported", path=path, fix=_FIX)
    return read_bytes(os.path.join(os.path.dirname(os.path.abspath(path)), name),
                      f"cannot read the data file {name}", path=path, fix="keep the data file beside the header")


def _frames(raw: bytes, layout: _Layout, notes: List[str]) -> np.ndarray:
    """uint8 [n, rows, cols] (i = column, j = row) from the decoded samples; RGB -> grey."""
    dim = layout.dim
    # NRRD: axis 0 is fastest -> numpy shape is sizes reversed.
    arr = np.frombuffer(raw, np.uint8).reshape(layout.sizes[::-1])
    rev = lambda a: dim - 1 - a  # noqa: E731  (numpy axis of NRRD axis a)
    space = layout.space_axes
    order = [rev(layout.list_axis), rev(space[1]), rev(space[0])]
    if len(space) == 3:
        order.append(rev(space[2]))
    if layout.colour_axes:
        order.append(rev(layout.colour_axes[0]))
    arr = np.transpose(arr, order)
    if len(space) == 3:
        arr = arr[:, :, :, 0, ...]
    if layout.channels == 3:
        arr = rgb_to_grey(arr, notes)
    return np.ascontiguousarray(arr)


def _items_and_calibration(kv: Dict[str, str], la: int, n: int, path: str):
    """({name: {item: text}} of ``axis <la> item <i> <name>:=``, static {name: 4x4})."""
    items: Dict[str, Dict[int, str]] = {}
    calib: Dict[str, np.ndarray] = {}
    for key, value in kv.items():
        m = _ITEM.fullmatch(key)
        if m and int(m.group(1)) == la:
            i = int(m.group(2))
            if i >= n:
                raise InputError(f"'{key}' refers to item {i} but there are {n} items", path=path, fix=_FIX)
            items.setdefault(m.group(3), {})[i] = value
        elif key.endswith(_SUFFIX) and is_transform_name(key):
            calib[key[:-len(_SUFFIX)]] = _matrix(value, key, path)
    return items, calib


def _per_item_transforms(items: Dict[str, Dict[int, str]], la: int, n: int, path: str):
    """({name: [n, 4, 4] NaN where absent}, {name: bool [n]}); used items are removed."""
    transforms, statuses = {}, {}
    for name in [k for k in items if k.endswith(_SUFFIX) and is_transform_name(k)]:
        mats = np.full((n, 4, 4), np.nan)
        present = np.zeros(n, bool)
        for i, v in items.pop(name).items():
            mats[i] = _matrix(v, f"axis {la} item {i} {name}", path)
            present[i] = True
        st = present.copy()
        for i, v in items.pop(name + "Status", {}).items():
            st[i] = present[i] and v.strip().upper() == "OK"
        transforms[name[:-len(_SUFFIX)]] = mats
        statuses[name[:-len(_SUFFIX)]] = st
    return transforms, statuses


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
