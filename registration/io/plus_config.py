"""PLUS device-set configuration XML: calibration transforms and reconstruction settings.

A PLUS config (``<PlusConfiguration>``) holds the static transforms of a setup
in ``<CoordinateDefinitions><Transform From="Image" To="Probe" Matrix="16
numbers, row-major"/>`` (``Image`` is in pixels, so ``ImageToProbe`` carries
the pixel spacing in mm/px) and the volume reconstruction settings PLUS used
in ``<VolumeReconstruction .../>`` (spacing and origin in mm of the Reference
frame, extent in voxels ``[i0 i1 j0 j1 k0 k1]``, clip rectangle in pixels
``(column, row)``, fan angles in degrees, fan origin in pixels, fan depth in
pixels).

:func:`read_plus_config` parses both into plain Python values; nothing here
depends on a Sweep.
"""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from typing import Dict

import numpy as np

from registration.spatial.errors import InputError, check_choice
from registration.spatial.frames import FrameGraph, split_transform_name
from registration.spatial.transforms import parse_matrix_text

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")

# VolumeReconstruction attributes and their types: "floats" (space-separated numbers),
# "ints", "float", "int", "str" (upper-cased keyword), "onoff" (bool).
_RECON_TYPES = {
    "OutputSpacing": "floats", "OutputOrigin": "floats", "OutputExtent": "ints",
    "ClipRectangleOrigin": "ints", "ClipRectangleSize": "ints",
    "FanAngles": "floats", "FanAnglesDeg": "floats", "FanOrigin": "floats",
    "FanOriginPixel": "floats", "FanDepth": "float", "FanRadiusStartPixel": "float",
    "FanRadiusStopPixel": "float", "FanAnglesAutoDetectBrightnessThreshold": "float",
    "FanAnglesAutoDetectFilterRadiusPixel": "int",
    "Compounding": "onoff", "FillHoles": "onoff", "EnableFanAnglesAutoDetect": "onoff",
    "Interpolation": "str", "Calculation": "str", "CompoundingMode": "str",
    "Optimization": "str", "NumberOfThreads": "int", "ImageCoordinateFrame": "name",
    "ReferenceCoordinateFrame": "name", "SkipInterval": "int",
    "PixelRejectionThreshold": "float",
}
# Spellings PLUS accepts for an "onoff" attribute (compared upper-case).
_ON_OFF = {"ON": True, "TRUE": True, "1": True, "YES": True,
           "OFF": False, "FALSE": False, "0": False, "NO": False}


def _typed(name: str, text: str, path):
    kind = _RECON_TYPES.get(name, "raw")
    value = text.strip()
    try:
        if kind == "floats":
            return [float(v) for v in value.split()]
        if kind == "ints":
            return [int(round(float(v))) for v in value.split()]
        if kind == "float":
            return float(value)
        if kind == "int":
            return int(round(float(value)))
    except ValueError:
        raise InputError(f"VolumeReconstruction attribute {name}='{value[:60]}' is not numeric",
                         path=path, fix=f"write {name} as numbers separated by spaces") from None
    if kind == "onoff":
        return check_choice(value.upper(), _ON_OFF, f"VolumeReconstruction attribute {name}",
                            path=path, fix=f"set {name}=\"ON\" or \"OFF\"")
    if kind == "str":
        return value.upper()
    return value


def read_plus_config(path) -> dict:
    """Parse a PLUS device-set config (or calibration result) XML.

    Returns ``{'transforms': {'ImageToProbe': 4x4, ...}, 'transform_info':
    {'ImageToProbe': {'Error': 1.68, 'Date': '022312_110631', ...}},
    'reconstruction': {attr: typed value, ..., 'HoleFilling': [{...}]} or {},
    'image_to_reference_chain': ['Image', 'Probe', ...] or [], 'path': str}``.

    Every ``<Transform From= To= Matrix=/>`` anywhere in the file is read (PLUS
    puts them in ``CoordinateDefinitions``; calibration results put them in
    ``CalibrationResults``). Matrices are 16 numbers, row-major.
    """
    path = os.fspath(path)
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise InputError("file not found", path=path,
                         fix="pass the PLUS device-set config XML that holds the calibration") from None
    except ET.ParseError as exc:
        raise InputError(f"not valid XML ({exc})", path=path,
                         fix="pass a PLUS device-set config XML (<PlusConfiguration>)") from None
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path=path) from None
    transforms: Dict[str, np.ndarray] = {}
    info: Dict[str, dict] = {}
    for el in root.iter("Transform"):
        a, b, text = el.get("From"), el.get("To"), el.get("Matrix")
        if not a or not b or text is None:
            # <Transform> elements without From/To/Matrix are other PLUS settings: skip.
            continue
        name = f"{a}To{b}"
        transforms[name] = parse_matrix_text(text, name=f"Transform {a}->{b} Matrix", path=path)
        extra = {}
        for key, value in el.attrib.items():
            if key in ("From", "To", "Matrix"):
                continue
            # Error="1.68" is a number; Date="022312_110631" must stay text (float() accepts '_').
            extra[key] = float(value) if _NUMBER.fullmatch(value.strip()) else value
        info[name] = extra
    recon: dict = {}
    el = root.find(".//VolumeReconstruction")
    if el is not None:
        recon = {k: _typed(k, v, path) for k, v in el.attrib.items()}
        holes = [dict(h.attrib) for h in el.iter("HoleFillingElement")]
        if holes:
            recon["HoleFilling"] = holes
    result = {"transforms": transforms, "transform_info": info, "reconstruction": recon,
              "path": path}
    result["image_to_reference_chain"] = _chain(transforms, recon)
    return result


def _chain(transforms: Dict[str, np.ndarray], recon: dict) -> list:
    """Frames from Image to Reference that the static transforms alone cover, if any.

    Usually empty: the Probe->Reference part is tracked per frame in the sequence.
    """
    g = FrameGraph()
    for name, m in transforms.items():
        a, b = split_transform_name(name)
        if a != b:
            g.set(a, b, m)
    image = recon.get("ImageCoordinateFrame", "Image")
    ref = recon.get("ReferenceCoordinateFrame", "Reference")
    if image in g.frames and ref in g.frames and g.has(image, ref):
        return g.path(image, ref)
    return []


def require_transform(config: dict, name: str) -> np.ndarray:
    """The 4x4 ``name`` (e.g. 'ImageToProbe') from a parsed config, or an InputError that says so."""
    if name in config["transforms"]:
        return config["transforms"][name].copy()
    have = ", ".join(sorted(config["transforms"])) or "none"
    a, b = split_transform_name(name)
    raise InputError(
        f"no {name} transform in CoordinateDefinitions (found: {have})", path=config.get("path"),
        fix=f"pass --calibration with the PLUS config that has <Transform From=\"{a}\" To=\"{b}\" "
            f"Matrix=\"...\"/>")
