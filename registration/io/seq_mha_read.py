"""PLUS sequence metafiles (``.mha``, ``.igs.mha``, ``.seq.mha``, ``.mhd`` + ``.raw``).

Format (DESIGN.md section 5): a MetaImage header with ``DimSize = cols rows
frames`` and ``Kinds = domain domain list``, per-frame fields
``Seq_Frame<N>_<Name> = value`` (``<From>To<To>Transform`` = 16 numbers
row-major, ``..TransformStatus`` = OK|INVALID, ``..Timestamp`` in seconds,
``..ImageStatus``, others kept as text), then ``ElementDataFile = LOCAL`` as
the last header line followed by the pixels (x fastest, then y, then frame),
or the name of a data file beside the header. ``CompressedData = True`` means
one zlib stream of all frames.

What the reader does with it:

* frames become ``uint8 [n, rows, cols]`` in MF orientation. If
  ``UltrasoundImageOrientation`` is UF the columns are flipped, MN the rows,
  UN both; the transposed codes FM, FU, NM, NU are transposed first (like
  PLUS, which converts pixels into MF when it reads a file; the transforms in
  the file are taken as they are, because PLUS defines calibration and
  per-frame transforms for the MF image). A third letter (MFA, MFD: volume
  slice direction) is ignored for 2D frames. XX or no orientation: taken as
  MF, with a note.
* RGB frames (``ElementNumberOfChannels = 3``) become grey (ITU-R 601 luma,
  rounded) with a note in ``metadata['notes']``.
* ``ImageStatus = INVALID`` excludes the frame (``Sweep.image_valid``), as
  does a transform status other than OK.
* ``ImageToCroppedImage`` means the stored pixels are a crop of the calibrated
  Image frame (PLUS stores ``ImageToCroppedImage`` = translation by minus the
  crop origin). The sweep's pixel frame is then ``CroppedImage`` and
  ``image_to_reference`` maps the stored pixels:
  ``image_to_reference @ inv(image_to_cropped_image)``.
* Header-level fields named ``<From>To<To>Transform`` (16 numbers) are static
  calibration (our writer stores ``Sweep.calibration`` this way).
* A frame with no fields at all (a gap in the numbering, as in PLUS's own
  Prostate10_video) gets an interpolated timestamp and is excluded
  (image status INVALID), with a note.
* ``DimSize = 0 0 N`` (tracker only): ``frames`` is ``[N, 0, 0]``, no fan mask.

``ElementSpacing`` is usually a dummy ``1 1 1``: the pixel spacing comes from
``ImageToProbe`` (per frame or from the PLUS config passed as ``calibration``).

Header text to fields: :mod:`.seq_mha_header`; pixels and orientation:
:mod:`.seq_mha_pixels`; the writer: :mod:`.seq_mha_write`.
"""
from __future__ import annotations

import os
from typing import Dict, List, Tuple

import numpy as np

from registration.spatial.errors import InputError, read_bytes
from registration.spatial.fan_mask import detect_fan_mask_of_images
from registration.spatial.frames import is_transform_name
from registration.spatial.sweep import Sweep

from .seq_mha_header import _FIX_HEADER, _floats, _ints, _parse_matrices, _split_header, _status
from .seq_mha_pixels import _frames, _orient
from .sweep_calibration import merge_calibration

_MAX_TRACKER_FRAMES = 10_000_000   # a tracker-only header claiming more frames is damaged
_SUFFIX = "Transform"


# --------------------------------------------------------------------------- reader
def read_sequence(path, calibration=None) -> Sweep:
    """Read a PLUS sequence metafile into a :class:`Sweep`.

    ``calibration``: a PLUS device-set config XML path or a dict ``{name: 4x4}``
    (e.g. ``{'ImageToProbe': m}``), merged into ``sweep.calibration``. When
    given, the sweep must then have a chain from its pixels to Reference, or an
    InputError names the missing transform. Sets ``sweep.fan_mask`` (detected
    from the frames) unless there are no images.
    """
    path = os.fspath(path)
    data = read_bytes(path, "cannot read the sequence file")
    fields, frame_fields, data_file, offset = _split_header(data, path)
    cols, rows, n = _dimensions(fields, frame_fields, path)
    notes: List[str] = []
    frames = _frames(data, offset, fields, data_file, path, n, rows, cols, notes)
    frames = _orient(frames, fields, path, notes)
    seen = _frames_with_fields(frame_fields, n, notes)
    timestamps = _timestamps(frame_fields.pop("Timestamp", {}), n, path, notes)
    image_valid = _status(frame_fields.pop("ImageStatus", {}), n, np.ones(n, bool)) & seen
    transforms, statuses = _per_frame_transforms(frame_fields, n, path)
    calib = _static_transforms(fields, path)
    metadata = {
        "format": "plus-sequence-metafile",
        "header": fields,
        "orientation_in_file": fields.get("UltrasoundImageOrientation"),
        "element_spacing": fields.get("ElementSpacing"),
        "frame_fields": {k: [v.get(i) for i in range(n)] for k, v in frame_fields.items()},
        "notes": notes,
    }
    all_names = set(transforms) | set(calib)
    image_frame = "CroppedImage" if "ImageToCroppedImage" in all_names else "Image"
    sweep = Sweep(frames, timestamps, transforms, statuses, calib, None, metadata, path, image_valid=image_valid,
                  image_frame=image_frame)
    if calibration is not None:
        sweep = merge_calibration(sweep, calibration)
    fan_mask = detect_fan_mask_of_images(sweep.frames)
    return sweep if fan_mask is None else sweep.with_fan_mask(fan_mask)


def _dimensions(fields: Dict[str, str], frame_fields, path: str) -> Tuple[int, int, int]:
    """(cols, rows, frames) from NDims/DimSize, checked against the per-frame fields."""
    if fields.get("NDims", "3").strip() != "3":
        raise InputError(f"NDims = '{fields['NDims'][:20]}' but a sequence needs 3 (cols rows frames)",
                         path=path, fix=_FIX_HEADER)
    cols, rows, n = _ints(fields, "DimSize", 3, path)
    if frame_fields:
        top = max(max(v) for v in frame_fields.values())
        if top >= n:
            raise InputError(f"per-frame fields go up to Seq_Frame{top:04d} but DimSize has {n} "
                             "frames", path=path, fix=_FIX_HEADER)
        if top + 1 < n and rows * cols == 0:
            raise InputError(f"DimSize claims {n} frames but per-frame fields stop at frame {top}",
                             path=path, fix=_FIX_HEADER)
    elif rows * cols == 0 and n > 0:
        raise InputError(f"DimSize = {cols} {rows} {n}: no pixels and no per-frame fields", path=path,
                         fix=_FIX_HEADER)
    if rows * cols == 0 and n > _MAX_TRACKER_FRAMES:
        raise InputError(f"DimSize claims {n} frames", path=path, fix=_FIX_HEADER)
    return cols, rows, n


def _frames_with_fields(frame_fields, n: int, notes: List[str]) -> np.ndarray:
    """bool [n]: frames that have at least one per-frame field (the others are gaps)."""
    seen = np.zeros(n, bool)
    for values in frame_fields.values():
        seen[list(values)] = True
    if n and not seen.all():
        notes.append(f"{int((~seen).sum())} frame(s) have no per-frame fields "
                     f"(e.g. frame {int(np.argmin(seen))}): timestamp interpolated, frame excluded")
    return seen


def _timestamps(values: Dict[int, str], n: int, path: str, notes: List[str]) -> np.ndarray:
    """Seconds [n]; missing ones interpolated (1 s apart around a single known one), or the
    frame index when the file has none."""
    timestamps, have_t = _floats(values, n, "Timestamp", path)
    if n and not have_t.all():
        if have_t.any():
            t_idx = np.flatnonzero(have_t)
            timestamps = np.interp(np.arange(n), t_idx, timestamps[t_idx])
            if have_t.sum() == 1:
                timestamps = timestamps + (np.arange(n) - t_idx[0])  # 1 s apart around the one known
        else:
            timestamps = np.arange(n, dtype=float)
            notes.append("no timestamps in the file: frame index used as seconds")
    return timestamps


def _per_frame_transforms(frame_fields, n: int, path: str):
    """({name: [n, 4, 4]}, {name: bool [n]}) from Seq_Frame..._<From>To<To>Transform(Status);
    the fields used are removed from ``frame_fields`` (the rest stay as text)."""
    transforms: Dict[str, np.ndarray] = {}
    statuses: Dict[str, np.ndarray] = {}
    for name in [k for k in frame_fields if k.endswith(_SUFFIX)]:
        if not is_transform_name(name):
            continue  # a field that merely ends in "Transform": keep as text
        mats, present = _parse_matrices(frame_fields.pop(name), n, name, path)
        base = name[:-len(_SUFFIX)]
        transforms[base] = mats
        statuses[base] = _status(frame_fields.pop(name + "Status", {}), n, present) & present
    return transforms, statuses


def _static_transforms(fields: Dict[str, str], path: str) -> Dict[str, np.ndarray]:
    """Header-level ``<From>To<To>Transform = 16 numbers``: static calibration {name: 4x4}."""
    calib: Dict[str, np.ndarray] = {}
    for key in [k for k in fields if k.endswith(_SUFFIX)]:
        if not is_transform_name(key):
            continue   # a field named just "Transform", or one that merely ends in it
        mats, _ = _parse_matrices({0: fields[key]}, 1, key, path)
        calib[key[:-len(_SUFFIX)]] = mats[0]
    return calib
