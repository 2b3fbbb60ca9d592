"""Which label outlines a view draws, and how strongly: targets, vessels, other organs.

An automatic segmentation brings some twenty structures; drawn all at once at
full strength their outlines bury the B-mode image and nobody can tell which
circle is ``lesion_1``. Fusion workstations draw the target and the vessels
near it, named, and leave the rest off (ultrasound) or faint (CT). Here every
label name falls in one of three kinds:

- ``target``: lesions (``lesion_*``), outlined and named next to their contour;
- ``vessel``: portal/hepatic veins, arteries, aorta, IVC (the risk structures a
  needle must avoid);
- ``organ``: everything else (liver, body, bone, bowel, ...).

:func:`outline_lut` turns a per-kind alpha into the RGBA lookup table the
outline drawing uses (alpha 0 = not drawn).
"""
from __future__ import annotations

from typing import Collection, Dict, Mapping, Tuple

import numpy as np

from .qimage import LESION_COLOUR, MR_ONLY_COLOUR, structure_colour

KINDS = ("target", "vessel", "organ")
_VESSEL_WORDS = ("vein", "artery", "arteries", "aorta", "vena", "ivc", "vessel")

# Alpha per kind (0..255). Ultrasound: organs off (the B-mode shows them); CT slices: faint.
US_ALPHA: Dict[str, int] = {"target": 255, "vessel": 230, "organ": 0}
CT_ALPHA: Dict[str, int] = {"target": 255, "vessel": 230, "organ": 110}


def structure_kind(name: str) -> str:
    """'target', 'vessel' or 'organ' for a label name (case-insensitive)."""
    n = name.lower()
    if n.startswith("lesion"):
        return "target"
    if any(w in n for w in _VESSEL_WORDS):
        return "vessel"
    return "organ"


def outline_lut(names: Mapping[str, int], max_value: int, alpha: Mapping[str, int],
                mr_only: Collection[str] = ()) -> np.ndarray:
    """uint8 [max_value + 1, 4]: the structure colour with the alpha of its kind.

    Value 0 is transparent. A non-zero value without a name is an ``organ``
    (shown as strongly as the organs are), so nothing named is silently dropped
    and nothing unnamed is drawn as a target. Names in ``mr_only`` (lesions seen
    on the MR only) get :data:`~gui.views.qimage.MR_ONLY_COLOUR`.
    """
    lut = np.zeros((max(int(max_value), 0) + 1, 4), np.uint8)
    named = {int(v): n for n, v in names.items()}
    for v in range(1, lut.shape[0]):
        name = named.get(v, f"label_{v}")
        lut[v, :3] = MR_ONLY_COLOUR if name in mr_only else structure_colour(name)
        lut[v, 3] = int(alpha.get(structure_kind(name) if v in named else "organ", 0))
    return lut


#: Legend entries (text, RGB, dotted) of the lesion outlines, shown when a lesion seen on the MR only is present.
LESION_LEGEND = (("lesion", LESION_COLOUR, False), ("seen on MR only", MR_ONLY_COLOUR, True))


def mr_only_values(names: Mapping[str, int], mr_only: Collection[str]) -> Tuple[int, ...]:
    """The label values of the ``mr_only`` names (drawn dotted)."""
    return tuple(int(v) for n, v in names.items() if n in mr_only)


_TARGETS_CACHE: Dict[tuple, Dict[int, str]] = {}


def target_values(names: Mapping[str, int]) -> Dict[int, str]:
    """{label value: name} of the targets (lesions); cached per name table (asked per slice)."""
    key = tuple(sorted((str(n), int(v)) for n, v in names.items()))
    hit = _TARGETS_CACHE.get(key)
    if hit is None:
        if len(_TARGETS_CACHE) > 32:
            _TARGETS_CACHE.clear()
        hit = _TARGETS_CACHE[key] = {int(v): n for n, v in names.items() if structure_kind(n) == "target"}
    return hit


def label_anchors(labels: np.ndarray, values: Mapping[int, str]) -> Dict[str, Tuple[float, float, float]]:
    """Where to write each target's name on a 2D label image ``[rows, cols]``.

    Returns ``{name: (col_right, row_centre, col_left)}`` in pixels of ``labels``
    for every value present: the name goes just right of the contour (or left
    of it when there is no room; the caller decides), vertically centred.
    """
    out: Dict[str, Tuple[float, float, float]] = {}
    if labels is None or not values:
        return out
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu" or lab.min(initial=0) < 0:
        lab = lab.astype(np.int64)
    counts = np.bincount(lab.ravel(), minlength=max(values) + 1)
    present = [v for v in values if v < len(counts) and counts[v] > 0]
    for v in present:
        rr, cc = np.nonzero(labels == v)
        out[values[int(v)]] = (float(cc.max()), float(rr.mean()), float(cc.min()))
    return out
