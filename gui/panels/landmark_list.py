"""Paired landmarks (CT point, US point) with undo and the rigid fit of the included pairs (no Qt).

Frames: ``ct`` is CT LPS mm (from the slice views); ``reference`` is Reference
mm (the US point, picked as frame pixels ``(col, row)`` in the Image frame,
pixel centres at integers, mapped through that frame's ``image_to_reference``).
The fit (:func:`registration.align.landmarks.register_landmarks`) gives
``reference_to_ct`` with residuals, leave-one-out errors, outliers, FRE and a
predicted TRE; clicked points get an FLE floor (``FLE_FLOOR_MM``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from registration.align.landmarks import LandmarkResult, register_landmarks
from registration.spatial.errors import InputError
from registration.spatial.transforms import apply

#: Lowest fiducial localisation error (RMS mm) assumed for clicked landmarks. Clicks snap to
#: display voxels and anatomical points (vessel bifurcations) are not exact, so an FRE of
#: nearly 0 must not turn into a predicted TRE of 0 mm.
FLE_FLOOR_MM = 1.0


@dataclass
class LandmarkPair:
    name: str
    ct: np.ndarray            # CT LPS mm
    reference: np.ndarray     # Reference mm
    frame: int                # sweep frame the US point was picked on
    pixel: Tuple[float, float]  # (col, row) in that frame
    included: bool = True


class LandmarkList:
    """Pairs with undo and the fit of the included ones (no Qt: testable alone)."""

    def __init__(self):
        self.pairs: List[LandmarkPair] = []
        self._undo: List[List[LandmarkPair]] = []
        self._count = 0
        self.result: Optional[LandmarkResult] = None
        self.message = "no landmark pairs yet"
        self.fle_floor_mm = FLE_FLOOR_MM
        self.fle_from_fre_mm: Optional[float] = None   # the FRE-based estimate before the floor

    def _push(self) -> None:
        self._undo.append(copy.deepcopy(self.pairs))

    def add(self, ct, reference, frame: int, pixel) -> LandmarkPair:
        self._push()
        self._count += 1
        p = LandmarkPair(f"L{self._count}", np.asarray(ct, float), np.asarray(reference, float), int(frame),
                         (float(pixel[0]), float(pixel[1])))
        self.pairs.append(p)
        return p

    def delete(self, index: int) -> None:
        self._push()
        del self.pairs[index]

    def set_included(self, index: int, on: bool) -> None:
        if self.pairs[index].included != bool(on):
            self._push()
            self.pairs[index].included = bool(on)

    def undo(self) -> bool:
        if not self._undo:
            return False
        self.pairs = self._undo.pop()
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    def usable(self) -> List[int]:
        return [i for i, p in enumerate(self.pairs) if p.included]

    def fit(self) -> Optional[LandmarkResult]:
        """Fit the included pairs; sets ``result`` (None below 3 or when degenerate) and ``message``."""
        use = self.usable()
        self.result = None
        if len(use) < 3:
            self.message = (f"{len(use)} usable pair(s): a rigid registration needs at least 3 "
                            "(better 4-6, spread around the target)")
            return None
        args = ([self.pairs[i].ct for i in use], [self.pairs[i].reference for i in use])
        names = [self.pairs[i].name for i in use]
        try:
            self.result = register_landmarks(*args, names=names)
        except InputError as exc:   # collinear / coincident: say why, keep the pairs
            self.message = str(exc)
            return None
        self.fle_from_fre_mm = self.result.fle_mm
        if self.result.fle_mm < self.fle_floor_mm:
            self.result = register_landmarks(*args, names=names, fle_mm=self.fle_floor_mm)
        self.message = ""
        return self.result

    def to_json(self) -> List[dict]:
        return [{"name": p.name, "ct_lps": p.ct.tolist(), "reference": p.reference.tolist(), "frame": p.frame,
                 "pixel": list(p.pixel), "included": p.included} for p in self.pairs]

    @classmethod
    def from_json(cls, items, path=None) -> "LandmarkList":
        """Inverse of :meth:`to_json`; InputError naming the pair and field when unusable."""
        lm = cls()
        for n, d in enumerate(items or []):
            try:
                ct, ref = np.asarray(d["ct_lps"], float), np.asarray(d["reference"], float)
                included = d.get("included", True)
                if not isinstance(included, bool):   # "false" would otherwise count as included
                    raise TypeError(f"'included' must be true or false, not {included!r}")
                pair = LandmarkPair(str(d["name"]), ct, ref, int(d["frame"]),
                                    (float(d["pixel"][0]), float(d["pixel"][1])), included)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise InputError(f"landmark pair {n + 1} is unusable ({exc.__class__.__name__}: {exc})", path=path,
                                 fix="pick the landmarks again") from None
            if ct.shape != (3,) or ref.shape != (3,) or not (np.all(np.isfinite(ct)) and np.all(np.isfinite(ref))):
                raise InputError(f"landmark pair {n + 1}: points must be 3 finite numbers (mm)", path=path,
                                 fix="pick the landmarks again")
            lm.pairs.append(pair)
            digits = pair.name[1:]
            if pair.name.startswith("L") and digits.isdigit():
                lm._count = max(lm._count, int(digits))
        lm._count = max(lm._count, len(lm.pairs))
        return lm

    def residual(self, index: int) -> Optional[float]:
        """|T ref - ct| (mm) of any pair (excluded ones too: shows whether to take them back)."""
        if self.result is None:
            return None
        p = self.pairs[index]
        return float(np.linalg.norm(apply(self.result.reference_to_ct, p.reference) - p.ct))
