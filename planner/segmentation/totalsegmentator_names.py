"""TotalSegmentator's structure names mapped to the project's standard names.

A TotalSegmentator label map (read by :mod:`registration.io.totalsegmentator`)
names every rib, vertebra and lung lobe; the planner works with the standard
names of DESIGN section 6. The rules, first match wins (TotalSegmentator v1
and v2 names):

===========================================================  ==============
TotalSegmentator                                             standard name
===========================================================  ==============
``liver``                                                    ``liver``
``portal_vein_and_splenic_vein``                             ``portal_vein``
``inferior_vena_cava``                                       ``ivc``
``aorta``                                                    ``aorta``
``liver_vessels`` (its liver_vessels task)                   ``liver_vessel``
``rib_*``, ``vertebrae_*``, ``sacrum``, ``hip_*``,           ``bone``
``sternum``, ``costal_cartilages``, ``scapula_*``,
``clavicula_*``, ``humerus_*``, ``femur_*``, ``skull``
``lung``, ``lung_*`` (lobes)                                 ``lung``
``gallbladder``                                              ``gallbladder``
``kidney_left``, ``kidney_right``, ``kidney_cyst_*``         ``kidney``
``spleen``                                                   ``spleen``
``pancreas``                                                 ``pancreas``
``stomach``, ``small_bowel``, ``colon``, ``duodenum``        ``bowel``
``heart``, ``heart_*`` (v1 chambers), ``atrial_appendage_left``  ``heart``
===========================================================  ==============

Costal cartilage joins bone because a needle must not cross it either (the
planner's risk classes already count it as bone). Every other name (muscles,
adrenal glands, ``esophagus``, ``trachea``, ``liver_tumor``, ...) is kept as it
is, never dropped: the planner shows it and classes it by its own rules.
"""
from __future__ import annotations

import re
from typing import Dict, List, Tuple

import numpy as np

from registration.spatial.volume import LabelMap

_RULES = [
    (r"liver", "liver"),
    (r"portal_vein_and_splenic_vein", "portal_vein"),
    (r"inferior_vena_cava", "ivc"),
    (r"aorta", "aorta"),
    (r"liver_vessels", "liver_vessel"),
    (r"rib_(left|right)_\d+|vertebrae_[a-z]+\d*|sacrum|hip_(left|right)|sternum|costal_cartilages"
     r"|scapula_(left|right)|clavicula_(left|right)|humerus_(left|right)|femur_(left|right)|skull", "bone"),
    (r"lung(_.+)?", "lung"),
    (r"gallbladder", "gallbladder"),
    (r"kidney_(left|right)|kidney_cyst_(left|right)", "kidney"),
    (r"spleen", "spleen"),
    (r"pancreas", "pancreas"),
    (r"stomach|small_bowel|colon|duodenum", "bowel"),
    (r"heart(_.+)?|atrial_appendage_left", "heart"),
]
_COMPILED = [(re.compile(pattern, re.IGNORECASE), name) for pattern, name in _RULES]

#: Order of the standard names in a mapped label map (values 1, 2, ...).
STANDARD_ORDER = ("liver", "portal_vein", "liver_vessel", "ivc", "aorta", "bone", "lung", "gallbladder",
                  "kidney", "spleen", "pancreas", "bowel", "heart")


def standard_name(name: str) -> str:
    """The standard name of a TotalSegmentator structure, or the name itself when no rule applies."""
    for pattern, standard in _COMPILED:
        if pattern.fullmatch(name.strip()):
            return standard
    return name


def to_standard_names(labels: LabelMap) -> Tuple[LabelMap, Dict[str, List[str]]]:
    """The label map with standard names, and ``{standard name: [TotalSegmentator names]}``.

    Structures mapped to one name are merged into one label. Values are renumbered
    1, 2, ...: the standard names in :data:`STANDARD_ORDER`, then the kept names by
    their original value. Geometry and metadata are unchanged.
    """
    groups: Dict[str, List[str]] = {}
    for name in sorted(labels.names, key=labels.names.get):
        groups.setdefault(standard_name(name), []).append(name)
    order = [n for n in STANDARD_ORDER if n in groups] + [n for n in groups if n not in STANDARD_ORDER]
    top = max(labels.names.values(), default=0)
    lut = np.zeros(top + 1, np.uint16)
    names: Dict[str, int] = {}
    for value, standard in enumerate(order, 1):
        names[standard] = value
        for original in groups[standard]:
            lut[labels.names[original]] = value
    arr = labels.array
    inside = arr <= top                      # values without a name (none after naming) stay 0
    out = np.where(inside, lut[np.minimum(arr, top)], 0).astype(np.uint16)
    md = dict(labels.metadata, totalsegmentator_names={k: v for k, v in groups.items()})
    return LabelMap(out, labels.spacing, labels.origin, labels.direction, names, md), groups
