"""Static calibration merged into a :class:`Sweep` (``sweep.calibration``).

Calibration is a PLUS device-set config XML (its ``<Transform From To
Matrix>`` elements) or a dict ``{name: 4x4}``; names are ``<From>To<To>``
with or without the ``Transform`` suffix, matrices map From coordinates to
To coordinates (PLUS units: mm, pixels for Image). Per-frame transforms of
the same name in the sweep win over calibration.
"""
from __future__ import annotations

import os

from registration.spatial.sweep import Sweep

from .plus_config import read_plus_config

_SUFFIX = "Transform"


def merge_calibration(sweep: Sweep, calibration) -> Sweep:
    """A new Sweep with the static transforms of ``calibration`` (config XML path or
    {name: 4x4}) added to its ``calibration``; ``sweep`` itself is unchanged.

    Raises InputError naming the missing transform (and the config file) when the
    sweep has images but still no chain from its pixels to Reference.
    """
    source = None
    if isinstance(calibration, dict):
        items = calibration
    else:
        source = os.fspath(calibration)
        items = read_plus_config(source)["transforms"]
    merged = sweep.with_calibration(
        {(name[:-len(_SUFFIX)] if name.endswith(_SUFFIX) else name): m for name, m in items.items()})
    if merged.has_images and not merged.chain:
        raise merged.no_chain_error(path=source or sweep.source)
    return merged
