"""One label map from the masks: fixed values, standard names, an order for overlaps.

Values are fixed so files from different CTs read alike; 21 and up are left
to lesions (:data:`FIRST_LESION_VALUE`). Overlaps are resolved by painting
in order of what must win: the body first, then air, liver, the gallbladder (which may
lie in the liver region's fossa), kidney, spleen, bowel, heart, bone, and the
vessels last (a vessel is a vessel even inside the liver or where its lumen
touches a vertebra). ``names`` lists only the structures present.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

LABEL_VALUES: Dict[str, int] = {
    "body": 1, "liver": 2, "portal_vein": 3, "hepatic_vein": 4, "aorta": 5, "bone": 6,
    "lung": 7, "bowel_gas": 8, "ivc": 9, "liver_vessel": 10, "heart": 11,
    "gallbladder": 12, "kidney": 13, "spleen": 14, "bowel": 15,
}
FIRST_LESION_VALUE = 21
PAINT_ORDER = ("body", "lung", "bowel_gas", "liver", "gallbladder", "kidney", "spleen", "bowel", "heart", "bone",
               "liver_vessel", "hepatic_vein", "portal_vein", "ivc", "aorta")


def paint_labels(st) -> Tuple[np.ndarray, Dict[str, int]]:
    """(uint8 label array in the state's canonical order, {name: value} of the present labels)."""
    masks = dict(st.masks)
    masks["body"] = masks["trunk"]
    masks["liver"] = st.liver_region
    out = np.zeros(st.ct.array.shape, np.uint8)
    for name in PAINT_ORDER:
        m = masks.get(name)
        if m is not None and m.any():
            out[m] = LABEL_VALUES[name]
    present = set(np.unique(out).tolist())
    names = {n: v for n, v in LABEL_VALUES.items() if v in present}
    return out, names
