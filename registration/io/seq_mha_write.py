"""Write a :class:`Sweep` as a PLUS sequence metafile (``.mha`` with the pixels, or ``.mhd`` + ``.raw``).

Frames are written as stored (MF orientation, ``uint8``), ``DimSize = cols
rows frames``, x fastest; per-frame transforms as ``Seq_Frame<N>_<Name>Transform``
(16 numbers row-major) with ``..TransformStatus``, ``..Timestamp`` (seconds)
and ``..ImageStatus``; static calibration as header fields ``<Name>Transform``.
Files are written atomically (never half-written).
"""
from __future__ import annotations

import os
import zlib
from typing import List, Optional

import numpy as np

from registration.spatial.atomic_io import atomic_write_bytes, atomic_write_files, bytes_writer
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import format_matrix

_STANDARD_FRAME_FIELDS = {"Timestamp", "ImageStatus"}
ZLIB_LEVEL = 6         # zlib's own default trade-off of size and time
_MIN_INDEX_DIGITS = 4  # Seq_Frame0000_: PLUS pads frame numbers to at least 4 digits


def header_lines(sweep: Sweep, compressed_size: Optional[int] = None) -> List[str]:
    """Header lines (without ElementDataFile) that :func:`write_sequence` writes for ``sweep``."""
    n, rows, cols = sweep.frames.shape
    lines = [
        "ObjectType = Image", "NDims = 3", "AnatomicalOrientation = RAI", "BinaryData = True",
        "BinaryDataByteOrderMSB = False", "CenterOfRotation = 0 0 0",
        f"CompressedData = {'True' if compressed_size is not None else 'False'}",
    ]
    if compressed_size is not None:
        lines.append(f"CompressedDataSize = {compressed_size}")
    lines += [
        f"DimSize = {cols} {rows} {n}", "ElementNumberOfChannels = 1", "ElementSpacing = 1 1 1",
        "ElementType = MET_UCHAR", "Kinds = domain domain list", "Offset = 0 0 0",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        f"UltrasoundImageOrientation = {'MF' if rows * cols else 'XX'}",
        f"UltrasoundImageType = {'BRIGHTNESS' if rows * cols else 'XX'}",
    ]
    for name, m in sorted(sweep.calibration.items()):
        lines.append(f"{name}Transform = {format_matrix(m)}")
    extra = {}
    for name, values in sweep.metadata.get("frame_fields", {}).items():
        if (len(values) == n and name not in _STANDARD_FRAME_FIELDS
                and name[:-len("Transform")] not in sweep.transforms
                and not (name.endswith("TransformStatus") and name[:-len("TransformStatus")] in sweep.transforms)):
            extra[name] = values
    image_ok = sweep.image_valid if sweep.image_valid is not None else np.ones(n, bool)
    identity = format_matrix(np.eye(4))
    texts = {name: [format_matrix(m) if np.all(np.isfinite(m)) else identity for m in mats]
             for name, mats in sweep.transforms.items()}
    width = max(_MIN_INDEX_DIGITS, len(str(max(n - 1, 0))))
    for i in range(n):
        prefix = f"Seq_Frame{i:0{width}d}_"
        for name in sorted(sweep.transforms):
            lines.append(f"{prefix}{name}Transform = {texts[name][i]}")
            lines.append(f"{prefix}{name}TransformStatus = "
                         f"{'OK' if sweep.statuses[name][i] else 'INVALID'}")
        for name, values in extra.items():
            if values[i] is not None:
                value = str(values[i])
                if "\n" in value or "\r" in value:
                    raise InputError(f"per-frame field {name} of frame {i} contains a line break",
                                     path=sweep.source, fix="remove line breaks from metadata values")
                lines.append(f"{prefix}{name} = {value}")
        lines.append(f"{prefix}Timestamp = {float(sweep.timestamps[i])!r}")
        lines.append(f"{prefix}ImageStatus = {'OK' if image_ok[i] else 'INVALID'}")
    return lines


def write_sequence(sweep: Sweep, path, *, compress: bool = False) -> None:
    """Write ``sweep`` as a PLUS sequence metafile (atomic: never half-written).

    ``.mha`` (any of .mha/.igs.mha/.seq.mha): header + pixels in one file.
    ``.mhd``: header, with the pixels in ``<stem>.raw`` (``.zraw`` when
    compressed) beside it. Frames are written as stored (MF orientation),
    ``DimSize = cols rows frames``; static calibration as header fields
    ``<Name>Transform``; invalid matrices that are not finite as identity with
    status INVALID. SimpleITK opens the result as a cols x rows x frames image.
    """
    path = os.fspath(path)
    frames = np.asarray(sweep.frames)
    if frames.dtype != np.uint8:
        raise InputError(f"frames are {frames.dtype}, a PLUS sequence needs uint8", path=path,
                         fix="convert the frames to uint8 before writing")
    pixels = np.ascontiguousarray(frames).tobytes()
    compressed_size = None
    if compress:
        pixels = zlib.compress(pixels, ZLIB_LEVEL)
        compressed_size = len(pixels)
    lines = header_lines(sweep, compressed_size)
    lower = path.lower()
    if lower.endswith(".mhd"):
        raw_name = os.path.basename(path)[:-4] + (".zraw" if compress else ".raw")
        lines.append(f"ElementDataFile = {raw_name}")
        # the data file first: a header is never left pointing at a missing or older .raw
        atomic_write_files([
            (os.path.join(os.path.dirname(os.path.abspath(path)), raw_name), ".tmp", bytes_writer(pixels)),
            (path, ".tmp", bytes_writer(("\n".join(lines) + "\n").encode("latin-1")))])
    elif lower.endswith(".mha"):
        lines.append("ElementDataFile = LOCAL")
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("latin-1") + pixels)
    else:
        raise InputError("a PLUS sequence file name must end in .mha or .mhd", path=path,
                         fix="use e.g. sweep.igs.mha")
