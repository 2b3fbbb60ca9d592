"""Write a :class:`Sweep` as a Slicer ``.seq.nrrd`` (volume sequence of 2D frames), atomically.

Layout (current Slicer, list axis last): ``sizes cols rows 1 n``, ``kinds
domain domain domain list``, pixel-unit identity geometry in LPS, gzip or raw
``unsigned char`` data; timestamps in seconds as ``axis 3 index values``;
PLUS per-frame fields as ``axis 3 item <I> <Name>:=`` (transforms 16 numbers
row-major); static calibration as ``<Name>Transform:=``. Read back by
:func:`registration.io.seq_nrrd.read_seq_nrrd`.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from registration.spatial.atomic_io import atomic_write_bytes
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import format_matrix

from .seq_mha_write import ZLIB_LEVEL


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
        pixels = gzip.compress(pixels, compresslevel=ZLIB_LEVEL)
    atomic_write_bytes(path, ("\n".join(lines) + "\n\n").encode("latin-1") + pixels)
