"""Tracked-ultrasound sweep files: open any supported format, summarise, and the CLI.

:func:`load_sweep` opens a sweep by its extension: a PLUS sequence metafile
(``.mha``, ``.igs.mha``, ``.seq.mha``, ``.mhd`` + ``.raw``; read by
:mod:`.seq_mha_read`, format and reader behaviour described there) or a
Slicer volume sequence (``.seq.nrrd``; :mod:`.seq_nrrd`). Frames are
``uint8 [n, rows, cols]`` in MF orientation, timestamps in seconds,
transforms ``[n, 4, 4]`` From->To. :func:`summary_row` is one line of facts
about a sweep; ``python -m registration.io.sequence_io FILE...`` prints them.

The PLUS reader and writer, the header and pixel decoding and the
calibration merge live in their own modules; their public names are
re-exported here (``from registration.io.sequence_io import read_sequence``
keeps working).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep

from .seq_mha_read import read_sequence
from .sweep_calibration import merge_calibration


def load_sweep(path, calibration=None) -> Sweep:
    """Open any supported sweep file by extension: .mha/.mhd (PLUS) or .seq.nrrd (Slicer)."""
    p = os.fspath(path)
    lower = p.lower()
    if lower.endswith(".seq.nrrd") or lower.endswith(".nrrd"):
        from .seq_nrrd import read_seq_nrrd
        sweep = read_seq_nrrd(p)
        return sweep if calibration is None else merge_calibration(sweep, calibration)
    if lower.endswith(".mha") or lower.endswith(".mhd"):
        return read_sequence(p, calibration=calibration)
    raise InputError("unknown sweep file type", path=p,
                     fix="use a PLUS sequence (.mha, .igs.mha, .seq.mha, .mhd) or a Slicer .seq.nrrd")


# --------------------------------------------------------------------------- summary
def summary_row(sweep: Sweep) -> dict:
    """One line of facts about a sweep, for tables and logs."""
    chain, valid = sweep.chain, sweep.valid
    invalid = {name: int((~st).sum()) for name, st in sorted(sweep.statuses.items())}
    image_bad = 0 if sweep.image_valid is None else int((~sweep.image_valid).sum())
    return {
        "file": os.path.basename(sweep.source or ""),
        "frames": len(sweep),
        "size": f"{sweep.frames.shape[2]}x{sweep.frames.shape[1]}",
        "transforms": ", ".join(f"{k}({v} invalid)" if v else k for k, v in invalid.items()) or "-",
        "image_invalid": image_bad,
        "chain": "->".join(chain) if chain else "-",
        "valid_for_chain": int(valid.sum()) if chain else 0,
        "pixel_spacing_mm": sweep.pixel_spacing,
        "duration_s": round(float(np.ptp(sweep.timestamps)), 3) if len(sweep) else 0.0,
        "notes": "; ".join(sweep.metadata.get("notes", [])),
    }


def main(argv=None) -> int:
    """``python -m registration.io.sequence_io FILE... [--calibration CONFIG.xml]``: print a summary."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m registration.io.sequence_io",
                                     description="summarise tracked ultrasound sequence files")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--calibration", help="PLUS device-set config XML with ImageToProbe")
    args = parser.parse_args(argv)
    status = 0
    for f in args.files:
        try:
            row = summary_row(load_sweep(f, calibration=args.calibration))
        except InputError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            status = 2
            continue
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    return status


if __name__ == "__main__":
    sys.exit(main())
