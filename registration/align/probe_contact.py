"""Probe indentation: how far the registered probe face lies inside the CT's body surface (mm).

A sonographer presses the probe into the abdomen; the CT was taken without it. The skin and the
tissue under the face are pushed in by about the depth the face went in, less and less with depth
(probe pressure moves the tissue near the probe by several mm: docs/clinical_evidence.md section 12).
At a registered pose that depth is visible in the CT: the face centre lies inside the CT's body
outline by the indentation. A probe that rests on the skin without pressing leaves the face on the
outline (0 mm, within the skin voxel and the registration's error along the beam).

:func:`indentation_mm` measures it per frame, from the face centre (:func:`face_column`, its
first fan row: the convex array's arc middle, a linear array's top row) along the beam axis outwards
to the first CT sample below ``BODY_HU`` (air); when the face lies outside the body, inwards to the
first sample at or above it (negative). The sweep's indentation is the median over its frames.
The residual-deformation term uses it to decide whether the tissue the probe presses was pressed
(:func:`registration.align.deformation_error.pressed_fraction`), and the assessment uses it as
evidence against a pose (:func:`off_skin_findings`): a probe touches the skin, so faces that lie
well outside the body outline at the registered pose put the probe where it was not. An MR registered to the sweep
reaches the pipeline mapped onto -100..500 (:func:`~registration.align.image_features.lc2_intensity_volume`):
nothing there reads as air, the indentation is unknown and the prior applies in full (a fat-suppressed
MR's dark body wall must not pass for air).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from registration.spatial.volume import Volume

from .imaged_region import ImagedRegion

#: CT value (HU) between air (-1000) and the skin and fat (-150 to +50): the body outline.
BODY_HU = -400.0
#: Sampling step (mm) along the beam, and how far to look (mm) either way before giving up.
STEP_MM = 0.25
SEARCH_MM = 40.0
#: Median face position (mm) outside the CT's body outline beyond which the registered pose is in
#: doubt ("check"), and beyond which it is rejected ("poor"). A probe touches the skin through a gel
#: film well under 1 mm; at every correct pose the benchmarks measured 0.25-0.5 mm inside (probe
#: resting on the skin) or more (pressed), never outside (356 runs: demo, crlm-1004 seeds 3-27,
#: the "settings" simulator; and, since the face is found on cut masks (:func:`face_column`), 0.75-1.0
#: mm inside on the plain simulator's static sweeps of crlm-1004 seeds 3-8). The four plain results
#: measured 2.6-5.0 mm outside in session 15 (20-55 mm off, one "check" with a 4.5 mm estimate) came
#: from the old plain model's striped frames and the old face column, so they are no evidence for the
#: numbers (benchmarks/results/deformation.md, 2026-12-05, sixteenth session). Heuristic margins: on a
#: patient the skin over the liver can sit a few mm from where the CT shows it (positioning,
#: breath-hold), so a face 1.5-3 mm outside is only a doubt, and 3 mm or more is beyond gel, skin
#: voxel and the registration's error along the beam together.
OFF_SKIN_CHECK_MM = 1.5
OFF_SKIN_POOR_MM = 3.0


def face_column(cols: np.ndarray, top: np.ndarray, fan_mask: np.ndarray) -> int:
    """Index (into ``cols``) of the probe face's centre column, from the fan mask's first row per column
    (``top``): halfway between the top boundary's highest points on either side of the fan's centroid
    column (the convex array's arc ends: the arc's middle is its lowest point; a linear array's top row
    is flat and its outermost columns are taken). Not the middle of the mask's column range: a mask
    detected from the frames may reach further on one side (the plain simulator's frames of the demo's
    lesion_3 sweep: columns 139-631 about the face at 319.5), and the column halfway along that range
    lay on the arc's side, 7 mm above the face (a correct 1.1 mm result read 10.8 mm off the skin)."""
    centre = float(np.mean(np.nonzero(fan_mask)[1]))
    left, right = cols < centre, cols >= centre
    if not left.any() or not right.any():
        return int(np.argmin(np.abs(cols - centre)))
    li = np.flatnonzero(left)[np.argmin(top[left])]                                   # outermost (first) min
    rj = np.flatnonzero(right)[::-1][np.argmin(top[right][::-1])]                     # outermost (last) min
    return int(np.argmin(np.abs(cols - 0.5 * (cols[li] + cols[rj]))))


def face_points(region: ImagedRegion, reference_to_ct: np.ndarray) -> tuple:
    """(face centres [n, 3] CT LPS mm, unit beam directions [n, 3]) of the region's frames placed by
    ``reference_to_ct`` (the face centre: :func:`face_column`, on the fan's first row there); the beam
    is the image's +row axis (into the body)."""
    cols, top = region.fan_top()
    if cols.size == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    i = face_column(cols, top, region.fan_mask)
    mats = np.asarray(reference_to_ct, float) @ np.asarray(region.image_to_reference, float)
    pts = (mats @ np.array([float(cols[i]), float(top[i]), 0.0, 1.0]))[:, :3]
    beam = mats[:, :3, 1] / np.linalg.norm(mats[:, :3, 1], axis=1)[:, None]
    return pts, beam


def off_skin_findings(indentation: Optional[float]) -> tuple:
    """(reasons for poor, reasons for check) from the sweep's median ``indentation`` (mm; negative:
    the faces lie outside the CT's body outline; None: not measured, no finding)."""
    if indentation is None or not np.isfinite(indentation) or -indentation < OFF_SKIN_CHECK_MM:
        return [], []
    msg = (f"the probe faces lie {-indentation:.1f} mm outside the CT's skin at the registered pose (median "
           "over the frames), but a probe touches the skin: ")
    if -indentation >= OFF_SKIN_POOR_MM:
        return [msg + "the pose is off along the beam or tilted; register again from another start"], []
    return [], [msg + "check the overlay (or the patient lay differently at the CT)"]


def _hu_along(ct: Volume, start: np.ndarray, direction: np.ndarray, s: np.ndarray) -> np.ndarray:
    """CT values (HU, linear) at ``start + s * direction``; NaN outside the volume (a CT cut there
    shows no outline: leaving through the box's face is not the skin)."""
    ijk = ct.lps_to_index(start[None] + s[:, None] * direction[None])
    return ndimage.map_coordinates(ct.array, ijk[:, ::-1].T, order=1, cval=np.nan, output=np.float64)


def _first_crossing(values: np.ndarray, s: np.ndarray, below: bool) -> float:
    """The first ``s`` where ``values`` fall below (or reach) ``BODY_HU``; NaN when the walk leaves
    the volume first or never crosses."""
    crossed = values < BODY_HU if below else values >= BODY_HU
    stop = np.flatnonzero(crossed | np.isnan(values))
    return float(s[stop[0]]) if stop.size and not np.isnan(values[stop[0]]) else float("nan")


def frame_indentations_mm(ct: Volume, region: ImagedRegion, reference_to_ct: np.ndarray) -> np.ndarray:
    """[n] indentation (mm) of each frame's face centre into the CT body (negative: outside it;
    NaN: no body outline within ``SEARCH_MM`` either way, e.g. the CT cut there)."""
    pts, beam = face_points(region, reference_to_ct)
    s = np.arange(0.0, SEARCH_MM + STEP_MM / 2, STEP_MM)
    out = np.full(len(pts), np.nan)
    for k, (p, b) in enumerate(zip(pts, beam)):
        outward = _hu_along(ct, p, -b, s)
        if np.isnan(outward[0]):                              # face outside the CT's box
            continue
        if outward[0] >= BODY_HU:                             # face inside the body: walk out to air
            out[k] = _first_crossing(outward, s, below=True)
        else:                                                 # face in air: walk in to the skin
            out[k] = -_first_crossing(_hu_along(ct, p, b, s), s, below=False)
    return out


def indentation_mm(ct: Optional[Volume], region: Optional[ImagedRegion],
                   reference_to_ct: np.ndarray) -> Optional[float]:
    """Median indentation (mm) of the region's probe faces into the CT body at ``reference_to_ct``;
    None when it cannot be measured (no CT or frames, or no outline near most faces)."""
    if ct is None or region is None or not len(region.image_to_reference):
        return None
    d = frame_indentations_mm(ct, region, reference_to_ct)
    if np.count_nonzero(np.isfinite(d)) * 2 <= len(d):      # most faces without an outline: unknown
        return None
    return float(np.nanmedian(d))
