"""Lesion clicks from the command line or a seeds file, checked against the CT before any long work.

A seeds file (DESIGN section 6) is JSON ``{"lesions": [{"name": "lesion_1",
"point": [x, y, z]}]}`` with points in CT LPS mm, one click inside each lesion.
On the command line a click is ``NAME=X,Y,Z`` (LPS mm). Names are kept as given;
the planner plans the structures named ``lesion_*``, so other names get a warning.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .lesion_seed import check_tissue, seed_box

_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_FIX_FILE = 'write {"lesions": [{"name": "lesion_1", "point": [x, y, z]}]} with points in CT LPS mm'


@dataclass(frozen=True)
class LesionSeed:
    """One click: ``name``, ``point_lps`` (3 floats, CT LPS mm) and where it came from
    (``source``: the seeds file's path, or ``"--lesion"``)."""
    name: str
    point_lps: tuple
    source: str

    @property
    def path(self) -> Optional[str]:
        """The file to name in an error message (None for a command-line click)."""
        return None if self.source == "--lesion" else self.source

    def warning(self) -> Optional[str]:
        if not self.name.startswith("lesion_"):
            return (f"'{self.name}' does not start with 'lesion_': ctus plan plans only the structures "
                    "named lesion_*")
        return None


def _check_name(name, where: str, path) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{where}: name {name!r} is not a plain name (letters, digits, _ . -)", path=path,
                         fix="name lesions lesion_1, lesion_2, ...")
    return name


def _point(value, where: str, path) -> tuple:
    try:
        vals = [float(v) for v in value]
    except (TypeError, ValueError):
        vals = []
    if len(vals) != 3 or not all(math.isfinite(v) for v in vals) or isinstance(value, (str, bytes)):
        raise InputError(f"{where}: point {value!r} is not three numbers", path=path,
                         fix="give the point as [x, y, z] in CT LPS mm")
    return tuple(vals)


def read_seeds(path) -> List[LesionSeed]:
    """The clicks of a seeds file (InputError naming the file for anything unusable)."""
    path = str(path)
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError("seeds file not found", path=path, fix="check the --lesions path") from None
    except IsADirectoryError:
        raise InputError("is a folder, not a seeds file", path=path, fix=_FIX_FILE) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not readable JSON ({exc})", path=path, fix=_FIX_FILE) from None
    if not isinstance(data, dict) or not isinstance(data.get("lesions"), list):
        raise InputError('has no "lesions" list', path=path, fix=_FIX_FILE)
    seeds = []
    for n, entry in enumerate(data["lesions"]):
        where = f"lesions[{n}]"
        if not isinstance(entry, dict) or "name" not in entry or "point" not in entry:
            raise InputError(f'{where} needs "name" and "point"', path=path, fix=_FIX_FILE)
        seeds.append(LesionSeed(_check_name(entry["name"], where, path), _point(entry["point"], where, path),
                                path))
    if not seeds:
        raise InputError('"lesions" is empty', path=path, fix=_FIX_FILE)
    return seeds


def parse_lesion_arg(text: str) -> LesionSeed:
    """``NAME=X,Y,Z`` (CT LPS mm) -> a LesionSeed from ``--lesion``."""
    name, sep, coords = str(text).partition("=")
    if not sep:
        raise InputError(f"--lesion {text!r} is not NAME=X,Y,Z", fix="write --lesion lesion_1=x,y,z (LPS mm)")
    _check_name(name.strip(), f"--lesion {text!r}", None)
    return LesionSeed(name.strip(), _point(coords.replace(";", ",").split(","), f"--lesion {text!r}", None),
                      "--lesion")


def duplicate_names(seeds: Sequence[LesionSeed]) -> List[str]:
    names = [s.name for s in seeds]
    return sorted({n for n in names if names.count(n) > 1})


def check_seeds_on_ct(ct: Volume, seeds: Sequence[LesionSeed]) -> None:
    """Every click inside the CT, not in air and not in bone (by HU), before the long work."""
    for seed in seeds:
        try:
            box = seed_box(ct, seed.point_lps, 5.0, seed.name)
            check_tissue(np.asarray(ct.array[box.slices]), box, seed.name, seed.point_lps, None)
        except InputError as exc:
            raise InputError(str(exc), path=seed.path) from None
