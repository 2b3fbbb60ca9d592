"""Where the tracked needle lies relative to a shown plane (US frame or CT slice), for drawing.

Pure numpy, CT LPS mm. The needle of a valid
:class:`planner.guidance.guidance_state.GuidanceState` is the segment from the
hub side (``SHAFT_MM`` behind the tip, the part of a biopsy needle that can be
in the body) to the tip, and its projected path runs on from the tip to the
closest approach to the target (``projected_end_ct``). On the ultrasound
image only the part within ``IN_PLANE_MM`` of the image plane is drawn (a
projection of a needle out of the plane would look like a needle where there
is none); where the needle line crosses the plane is marked instead.

A US frame's pixel ``(col, row)`` maps to CT through ``image_to_ct``
(``reference_to_ct @ image_to_reference``; its first two columns are the
pixel steps in mm, see DESIGN section 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

SHAFT_MM = 150.0        # needle length drawn behind the tip
IN_PLANE_MM = 3.0       # within this of the plane a point is drawn as "in plane" (beam thickness order)
SAMPLES = 60


@dataclass(frozen=True)
class NeedleLine:
    """Sampled needle (hub -> tip) and projected path (tip -> end), CT LPS mm [n, 3]."""
    shaft: np.ndarray
    ahead: np.ndarray
    tip: np.ndarray
    direction: np.ndarray


def needle_line(state, shaft_mm: float = SHAFT_MM, samples: int = SAMPLES) -> Optional[NeedleLine]:
    """The needle of a valid state (None when hidden)."""
    if state is None or not state.valid or state.tip_ct is None:
        return None
    tip, d = np.asarray(state.tip_ct, float), np.asarray(state.direction_ct, float)
    t = np.linspace(0.0, 1.0, samples)[:, None]
    end = np.asarray(state.projected_end_ct, float) if state.projected_end_ct is not None else tip
    return NeedleLine(tip - shaft_mm * d + t * shaft_mm * d, tip + t * (end - tip), tip, d)


def segment(entry, target, samples: int = SAMPLES) -> np.ndarray:
    """[samples, 3] points from ``entry`` to ``target``."""
    e, t = np.asarray(entry, float), np.asarray(target, float)
    return e + np.linspace(0.0, 1.0, samples)[:, None] * (t - e)


def to_image(pts: np.ndarray, image_to_ct: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(col, row) [n, 2] of CT points projected on the image plane, signed distance (mm) [n]
    from the plane along column x row."""
    m = np.asarray(image_to_ct, float)
    x, y = m[:3, 0], m[:3, 1]
    n = np.cross(x, y)
    n /= np.linalg.norm(n)
    d = np.atleast_2d(pts) - m[:3, 3]
    return np.c_[d @ x / (x @ x), d @ y / (y @ y)], d @ n


def plane_crossing(line: NeedleLine, image_to_ct: np.ndarray, min_angle_deg: float = 3.0) -> Optional[Tuple[np.ndarray, float]]:
    """Where the needle line (shaft or projected path) crosses the image plane: ((col, row), s mm
    along the needle from the tip, + ahead), or None when it does not within the drawn
    segments or runs about parallel to the plane (then it lies in it, or stays off it)."""
    m = np.asarray(image_to_ct, float)
    n = np.cross(m[:3, 0], m[:3, 1])
    n /= np.linalg.norm(n)
    dn = float(line.direction @ n)
    if abs(dn) < np.sin(np.radians(min_angle_deg)):
        return None
    s = -float((line.tip - m[:3, 3]) @ n) / dn
    back = -float(np.linalg.norm(line.shaft[-1] - line.shaft[0]))
    ahead = float(np.linalg.norm(line.ahead[-1] - line.ahead[0]))
    if not back <= s <= ahead:
        return None
    px, _ = to_image(line.tip + s * line.direction, m)
    return px[0], s


def runs(mask: np.ndarray):
    """(start, stop) index pairs of the True runs of a bool array (stop exclusive)."""
    m = np.r_[False, np.asarray(mask, bool), False].astype(np.int8)
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))
