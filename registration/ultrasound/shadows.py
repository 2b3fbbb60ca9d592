"""Acoustic shadows in B-mode frames: where a beam has met bone or gas and carries no echo.

Behind a rib or the lung (air) a beam is fully reflected: the rest of the scan
line is the noise floor plus a little haze, with its reflector (a bright band)
just above. Such regions say nothing about the tissue there, and both their
edges and the reflector move with the ribs and the lung, not with an organ
seen elsewhere in the frame. A registration against an image taken in another
session (an MR: another breath-hold, the liver slides under the ribs) therefore
leaves them out (:mod:`registration.align.mr_us`; evidence in
benchmarks/results/mri.md). The same idea as the ultrasound confidence maps
of Karamalis et al. 2012 (MedIA 16:1101), which weight a registration by how
much of the beam's energy reaches a pixel; here the measure is plain:

* scan lines: rays from the fan's apex (a convex probe; found from the fan
  mask's two side edges, :func:`fan_apex`) or image columns (a linear probe);
* per ray and depth ``r``, the echo above the noise floor over the next
  ``WINDOW_MM`` of the ray, against a typical ray's there (per depth, over all
  frames and rays: the floor is the ``FLOOR_PERCENTILE``, typical tissue the
  ``TYPICAL_PERCENTILE``): below ``SHADOW_RATIO`` the ray is dark there (a
  heuristic level: a full shadow is at the floor);
* a shadow does not recover: from its start every deeper depth is dark, or in
  the tail where a typical ray has less than ``TAIL_SHARE`` of its best contrast
  (deep, attenuated: the noise floor raised by the TGC, no evidence either way), or where the
  darkest rays have risen above their lowest level by more than typical tissue stands above
  them (noise amplified by an over-compensating TGC: :meth:`ShadowFinder._informative`);
  and it is at least ``MIN_SHADOW_MM`` long. An anechoic vessel or cyst is
  followed by tissue (often brighter: posterior enhancement), so it is not one;
  a large anechoic region that reaches the tail is (a limit: it is left out too);
* the reflector band (``REFLECTOR_MM`` above the start) goes with the shadow.

Units: pixels and mm of the stored frame (x = column, y = row).
"""
from __future__ import annotations

import weakref
from dataclasses import replace
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

#: Echo (above the floor) over the window ahead below this fraction of a typical ray's = dark (heuristic).
SHADOW_RATIO = 0.3
#: Per-depth percentile over all rays and frames that stands for tissue (shadows can cover half a sweep).
TYPICAL_PERCENTILE = 75.0
#: The tail of a ray: depths below which a typical ray keeps less than this share of its contrast.
TAIL_SHARE = 0.25
#: Length of ray ahead over which darkness is judged, mm.
WINDOW_MM = 6.0
#: Per-depth percentile that stands for the noise floor (a shadow, or the darkest tissue without one).
FLOOR_PERCENTILE = 5.0
#: Band above a shadow's start that holds its reflector (bone surface, pleura), mm.
REFLECTOR_MM = 4.0
#: Smoothing of the frame before the rays are read (speckle), mm.
SMOOTH_MM = 1.0
#: A shadow shorter than this along its ray is not one (a dark patch at the bottom), mm.
MIN_SHADOW_MM = 8.0
#: Spacing of the ray samples (along and across rays), mm: the registration's finest pixel is 1.6 mm.
RAY_STEP_MM = 0.8
#: Frames read for the typical and floor echo per depth.
SAMPLE_FRAMES = 16
#: Side edges flatter than this (columns per row) are parallel: a linear probe, rays are columns.
PARALLEL_SLOPE = 0.02
#: Sideways margin (mm between rays at the deepest depth of a convex fan, proportionally less towards
#: its apex; between columns of a linear probe) by which a CT-to-US registration widens each shadow,
#: filling the gaps between a fragmented shadow's rays with it: beside a rib, the edge of its shadow
#: moves with the rib and LC2 patches fit it instead of the organ. On sweeps simulated from the real
#: CT crlm-1004 the dome sweep's local fits asked for 5.8 mm RMS at the true pose, 3.7 mm with it, and
#: the deformed registrations of seven held-out cases were 0.7 mm more accurate on average (3.45 ->
#: 2.72 mm; benchmarks/results/deformation.md, ninth session of 2026-12-03). Not for the focused
#: refinement (its 30 mm region lost too much: lesion_6 of the demo 1.5 -> 16 mm) nor for MR -> US
#: (with it a dome sweep of the demo's MR ended 9.8 mm off at a lesion). Heuristic.
EDGE_MM = 3.0


def fan_apex(fan_mask: np.ndarray) -> Optional[Tuple[float, float]]:
    """(row, col) of the point the fan's side edges meet (a convex probe; above the image), or
    None when they are parallel (a linear probe) or cannot be fitted."""
    rows = np.flatnonzero(fan_mask.any(axis=1))
    if rows.size < 20:
        return None
    left = np.array([np.flatnonzero(fan_mask[r])[0] for r in rows], float)
    right = np.array([np.flatnonzero(fan_mask[r])[-1] for r in rows], float)
    # The side edges: rows between the end of the top arc and the widest row (the bottom arc after it).
    widest = rows[int(np.argmax(right - left))]
    top = rows[0] + 0.15 * (widest - rows[0])
    sel = (rows >= top) & (rows <= widest - 0.05 * (widest - rows[0]))
    if sel.sum() < 10:
        return None
    bl = np.polyfit(rows[sel], left[sel], 1)
    br = np.polyfit(rows[sel], right[sel], 1)
    if abs(bl[0]) < PARALLEL_SLOPE and abs(br[0]) < PARALLEL_SLOPE:
        return None
    if abs(bl[0] - br[0]) < 1e-6:
        return None
    r = (br[1] - bl[1]) / (bl[0] - br[0])
    return float(r), float(np.polyval(bl, r))


class ShadowFinder:
    """Shadows of a sweep's frames (see the module docstring); ``spacing_mm`` = (x, y) pixel size."""

    def __init__(self, frames: np.ndarray, fan_mask: np.ndarray, spacing_mm: Tuple[float, float],
                 sample_frames: Optional[Sequence[int]] = None):
        # (the frames are not kept: the cache below holds the finder by a weak reference to them)
        self.fan = np.asarray(fan_mask, bool)
        self.sx, self.sy = (float(v) for v in spacing_mm)
        self.step_mm = max(min(self.sx, self.sy), RAY_STEP_MM)
        self._cache: dict = {}                     # frame index -> its ray shadow (several levels ask)
        rows, cols = self.fan.shape
        apex = fan_apex(self.fan)
        ys, xs = np.nonzero(self.fan)
        if apex is None:                           # linear probe: rays are the columns
            self.apex = None
            self.angles = np.arange(xs.min(), xs.max() + 1, dtype=float)
            self.radii = np.arange(ys.min(), ys.max() + 1, self.step_mm / self.sy)
        else:
            self.apex = apex
            th = np.arctan2((xs - apex[1]) * self.sx, (ys - apex[0]) * self.sy)
            rr = np.hypot((xs - apex[1]) * self.sx, (ys - apex[0]) * self.sy)
            n_rays = max(int(np.ceil((th.max() - th.min()) * rr.max() / self.step_mm)), 8)
            self.angles = np.linspace(th.min(), th.max(), n_rays)
            self.radii = np.arange(rr.min(), rr.max() + self.step_mm, self.step_mm)
        # distance between neighbouring rays (mm): columns of a linear probe; at the deepest depth of a fan
        self.ray_spacing_mm = self.sx if self.apex is None else \
            float((self.angles[-1] - self.angles[0]) / max(len(self.angles) - 1, 1) * self.radii[-1])
        self.ray_y, self.ray_x = self._ray_coords(*np.meshgrid(self.angles, self.radii, indexing="ij"))
        inside = ndimage.map_coordinates(self.fan.astype(np.float32), [self.ray_y, self.ray_x], order=1,
                                         mode="constant") > 0.99
        self.ray_inside = inside
        idx = range(len(frames)) if sample_frames is None else sample_frames
        idx = list(idx)
        idx = idx[:: max(1, len(idx) // SAMPLE_FRAMES)]
        stack = np.stack([self._rays(frames[i]) for i in idx])
        typical, floor = np.zeros(len(self.radii)), np.zeros(len(self.radii))
        for k in range(len(self.radii)):
            if inside[:, k].any():
                vals = stack[:, :, k][np.broadcast_to(inside[:, k], stack.shape[:2])]
                floor[k], typical[k] = np.percentile(vals, [FLOOR_PERCENTILE, TYPICAL_PERCENTILE])
        self.floor = floor
        #: What a depth can tell (typical echo above the floor): deep, attenuated depths where tissue is at
        #: the noise floor (raised by the TGC) tell nothing and do not dilute the rest-of-ray mean.
        self.contrast = np.maximum(typical - floor, 0.0)
        self.informative = self._informative(inside.any(axis=0))

    def _informative(self, has_rays: np.ndarray) -> np.ndarray:
        """bool per depth: typical tissue there stands clear of the noise floor (else the ray's tail).

        Two conditions. (1) Its contrast (typical echo above the floor) is at least ``TAIL_SHARE``
        of the best depth's. (2) It is at least the noise floor's rise above its lowest level: a TGC
        amplifies the electronic noise with depth, so once the frame's darkest rays (shadows,
        anechoic vessels: the noise) brighten with depth, tissue must stand above them by more than
        they have risen. The noise at a depth is bounded by the floor at every deeper depth (it only
        rises), which keeps a bright near field (fat and muscle without shadows, a high 5th
        percentile) informative. Without (2) an over-compensating TGC (bright noise in the deep
        field) made every depth "informative", so no shadow ran to the ray's end and none was
        found (benchmarks/results/simulator_variants.md, 2026-12-03)."""
        share = self.contrast >= TAIL_SHARE * self.contrast.max()
        if not has_rays.any():
            return share
        floor = np.where(has_rays, self.floor, np.inf)
        noise = np.minimum.accumulate(floor[::-1])[::-1]
        rise = np.where(has_rays, noise - floor[has_rays].min(), 0.0)
        return share & (self.contrast >= rise)

    def _ray_coords(self, ang, rad):
        if self.apex is None:
            return rad, ang
        return self.apex[0] + rad * np.cos(ang) / self.sy, self.apex[1] + rad * np.sin(ang) / self.sx

    def _rays(self, frame: np.ndarray) -> np.ndarray:
        sm = ndimage.gaussian_filter(np.asarray(frame, np.float32), (SMOOTH_MM / self.sy, SMOOTH_MM / self.sx))
        return ndimage.map_coordinates(sm, [self.ray_y, self.ray_x], order=1, mode="constant")

    def ray_shadow(self, frame: np.ndarray) -> np.ndarray:
        """bool [rays, depths]: shadow or its reflector, along each ray."""
        raw = self._rays(frame)
        c = np.where(self.ray_inside, self.contrast[None, :], 0.0)
        v = np.where(self.ray_inside, np.clip(raw - self.floor[None, :], 0.0, c), 0.0)
        n_win = max(int(round(WINDOW_MM / self.step_mm)), 1)
        # Echo above the floor over the next WINDOW_MM of the ray, against a typical ray's.
        ahead_v = ndimage.uniform_filter1d(v, n_win, axis=1, origin=-(n_win // 2), mode="constant")
        ahead_c = ndimage.uniform_filter1d(c, n_win, axis=1, origin=-(n_win // 2), mode="constant")
        # The tail: depths where a typical ray is within TAIL_SHARE of its best contrast from the floor
        # (deep, attenuated: the noise floor raised by the TGC): no evidence either way.
        informative = self.informative
        dark = (ahead_v < SHADOW_RATIO * ahead_c) & informative[None, :] & self.ray_inside
        # A full shadow does not recover: from its start, every deeper depth is dark or tail.
        ok = dark | ~informative[None, :] | ~self.ray_inside
        run = np.minimum.accumulate(ok[:, ::-1], axis=1)[:, ::-1] & dark
        start = np.argmax(run, axis=1)
        has = run.sum(axis=1) * self.step_mm >= MIN_SHADOW_MM
        n_up = max(int(round(REFLECTOR_MM / self.step_mm)), 1)
        k = np.arange(run.shape[1])[None, :]
        out = has[:, None] & (k >= (start - n_up)[:, None])
        return out & self.ray_inside

    def shadow(self, frame: np.ndarray, ys: np.ndarray, xs: np.ndarray, key=None,
               edge_mm: float = 0.0) -> np.ndarray:
        """bool per point (``ys``, ``xs``: frame pixel coordinates): in a shadow or its reflector.
        ``key`` (e.g. the frame index): the frame's ray shadow is kept under it for later calls.
        ``edge_mm``: each shadow widened sideways by that much (``EDGE_MM``; the rays within it)."""
        ray = self._cache.get(key) if key is not None else None
        if ray is None:
            ray = self.ray_shadow(frame).astype(np.float32)
            if key is not None:
                self._cache[key] = ray
        n_edge = int(round(edge_mm / self.ray_spacing_mm)) if edge_mm > 0 and self.ray_spacing_mm > 0 else 0
        if n_edge > 0:            # the rays within edge_mm of a shadow's side (inside the fan) go with it
            ray = ndimage.maximum_filter1d(ray, 2 * n_edge + 1, axis=0, mode="constant") * self.ray_inside
        if self.apex is None:
            a, r = xs, ys
            ai = np.interp(a, self.angles, np.arange(len(self.angles)))
            ri = (r - self.radii[0]) / (self.radii[1] - self.radii[0])
        else:
            dy, dx = (ys - self.apex[0]) * self.sy, (xs - self.apex[1]) * self.sx
            ai = np.interp(np.arctan2(dx, dy), self.angles, np.arange(len(self.angles)))
            ri = (np.hypot(dx, dy) - self.radii[0]) / self.step_mm
        return ndimage.map_coordinates(ray, [ai, ri], order=1, mode="nearest") >= 0.5


_FINDERS: dict = {}     # id(frames array) -> (weakref to it, fan mask, ShadowFinder): built once per sweep


def mark_shadows(sweep, edge_mm: float = 0.0):
    """``sweep`` with ``metadata['drop_shadows'] = True`` and ``['shadow_edge_mm'] = edge_mm`` (a new
    Sweep; the input is unchanged): the LC2 frames (:func:`registration.align.lc2_cost.frame_samples`)
    then leave shadows out, each widened sideways by ``edge_mm`` (:meth:`ShadowFinder.shadow`)."""
    return replace(sweep, metadata=dict(sweep.metadata, drop_shadows=True, shadow_edge_mm=float(edge_mm)))


def finder_of(sweep, fan_mask: np.ndarray) -> ShadowFinder:
    """The sweep's ShadowFinder (built once per frames array and fan; pixel size from its first valid frame)."""
    key = id(sweep.frames)
    hit = _FINDERS.get(key)
    if hit is not None and hit[0]() is sweep.frames and np.array_equal(hit[1], fan_mask):
        return hit[2]
    mats, valid = sweep.require_image_to_reference()
    m = mats[int(np.flatnonzero(valid)[0])] if np.any(valid) else mats[0]
    f = ShadowFinder(sweep.frames, fan_mask, (float(np.linalg.norm(m[:3, 0])), float(np.linalg.norm(m[:3, 1]))),
                     sample_frames=np.flatnonzero(valid))
    for k in [k for k, v in _FINDERS.items() if v[0]() is None]:
        del _FINDERS[k]
    _FINDERS[key] = (weakref.ref(sweep.frames), np.array(fan_mask, bool), f)
    return f


def drop_shadows(sweep, fan_mask: np.ndarray, indices, fan: np.ndarray, fy: np.ndarray, fx: np.ndarray,
                 u: np.ndarray, fans: np.ndarray,
                 pts: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray, List[np.ndarray]]:
    """Per frame, drop the resampled pixels that lie in a shadow or its reflector. ``fan``: the
    resampled common fan, ``fy``, ``fx``: its pixels' original coordinates (in order); ``u``,
    ``fans`` [n, rows, cols] and ``pts`` (per frame, the Reference points of ``fans[n]``'s pixels
    in order) are the frames' values, masks and points, updated and returned."""
    finder = finder_of(sweep, fan_mask)
    edge = float(sweep.metadata.get("shadow_edge_mm", 0.0))      # mark_shadows' margin
    out_pts = []
    for n, f in enumerate(indices):
        keep = ~finder.shadow(sweep.frames[f], fy, fx, key=int(f), edge_mm=edge)   # over the common fan's pixels
        sel = fans[n][fan]                                       # this frame's pixels among them
        out_pts.append(pts[n][keep[sel]])
        frame_fan = np.zeros(fan.shape, bool)
        frame_fan[fan] = sel & keep
        fans[n] = frame_fan
        u[n][~frame_fan] = 0.0
    return u, fans, out_pts
