"""Static calibration merged into a :class:`Sweep` (``sweep.calibration``).

Calibration is a PLUS device-set config XML (its ``<Transform From To
Matrix>`` elements) or a dict ``{name: 4x4}``; names are ``<From>To<To>``
with or without the ``Transform`` suffix, matrices map From coordinates to
To coordinates (PLUS units: mm, pixels for Image). Per-frame transforms of
the same name in the sweep win over calibration.
"""
from __future__ import annotations

import os

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep


def merge_calibration(sweep: Sweep, calibration) -> None:
    """Add static transforms (config XML path or {name: 4x4}) to ``sweep.calibration``.

    Raises InputError naming the missing transform when the sweep has images
    but still no chain from its pixels to Reference.
    """
    source = None
    if isinstance(calibration, dict):
        items = calibration
    else:
        from .plus_config import read_plus_config
        source = os.fspath(calibration)
        items = read_plus_config(source)["transforms"]
    for name, m in items.items():
        base = name[:-len("Transform")] if name.endswith("Transform") else name
        sweep.calibration[base] = np.asarray(m, dtype=float)
        if base in sweep.transforms:
            sweep.metadata.setdefault("notes", []).append(
                f"{base} is both per frame in the file and in the calibration: the per-frame "
                "values are used")
    sweep.__post_init__()  # validate the new matrices, reset caches
    if sweep.has_images:
        _, _, chain = sweep._derive()
        if not chain:
            have = sorted(set(sweep.transforms) | set(sweep.calibration))
            missing = "ImageToProbe" if "ImageToProbe" not in have else \
                f"a chain from {sweep.image_frame} to {sweep.reference_frame}"
            raise InputError(
                f"no {missing} transform for the sequence {os.path.basename(sweep.source or '')} "
                f"(transforms known: {', '.join(have)})", path=source or sweep.source,
                fix="pass --calibration with the PLUS device-set config that defines "
                    "<Transform From=\"Image\" To=\"Probe\" .../> for this probe")
