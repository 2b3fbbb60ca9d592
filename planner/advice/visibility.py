"""Ultrasound visibility per lesion: acoustic windows, lesion type, measured conspicuity.

Frames: CT LPS mm; arrays ``[k, j, i]``. Sound is blocked by bone, lung and
gas (DESIGN section 7: full shadow behind bone and gas), so an *acoustic
window* is a skin point from which the straight ray to the target meets none
of them. Depth limits follow DESIGN section 1: a 60 dB round-trip budget at
0.5 dB/cm/MHz gives 60 / (2 * 0.5 * f) cm, ~17 cm at 3.5 MHz.

The predicted B-mode visibility is the evidence model of
:mod:`.bmode_visibility` (fed with the window depth and lesion type found
here). The measured conspicuity is the contrast-to-noise ratio of lesion
pixels vs a surrounding liver ring on the registered sweep frames that cut the
lesion.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage

from planner.anatomy.derived import GAS_HU, bounding_box
from planner.paths.planning_maps import OFF_GRID, OUTSIDE
from registration.spatial.distance_map import distance_transform_edt
from registration.spatial.volume import Volume

ATTENUATION_DB_CM_MHZ = 0.5      # liver (DESIGN section 1)
DYNAMIC_RANGE_DB = 60.0          # round-trip budget of an abdominal scanner (DESIGN section 1)
BLOCK_NONE, BLOCK_BONE, BLOCK_LUNG, BLOCK_GAS = 0, 1, 2, 3
BLOCK_NAMES = {BLOCK_BONE: "rib/bone", BLOCK_LUNG: "lung", BLOCK_GAS: "bowel gas"}

BEAM_HALFWIDTH_MM = 3.0          # blockers are grown by this: a rib gap narrower than the beam is no window
WINDOW_RAY_LIMIT_MM = 250.0      # acoustic-window rays end here (beyond any abdominal depth limit)
WINDOW_RAY_STEP_MM = 1.0
RING_INNER_MM, RING_OUTER_MM = 2.0, 8.0   # liver ring around a lesion: past its partial-volume edge
LESION_TYPE_THRESHOLD_HU = 15.0  # lesion vs liver ring contrast that counts as hyper/hypo

#: Pixel size (mm) assumed when a sweep has no valid frame to take its spacing from.
FALLBACK_PIXEL_MM = 0.3



def depth_limit_mm(frequency_mhz: float, attenuation_db_cm_mhz: float = ATTENUATION_DB_CM_MHZ,
                   dynamic_range_db: float = DYNAMIC_RANGE_DB) -> float:
    """Deepest echo within the dynamic range (round trip), mm."""
    return 10.0 * dynamic_range_db / (2.0 * attenuation_db_cm_mhz * frequency_mhz)


def round_trip_attenuation_db(depth_mm: float, frequency_mhz: float,
                              attenuation_db_cm_mhz: float = ATTENUATION_DB_CM_MHZ) -> float:
    """Attenuation (dB) of an echo from ``depth_mm`` and back, in liver."""
    return 2.0 * attenuation_db_cm_mhz * frequency_mhz * depth_mm / 10.0


def acoustic_block_map(anatomy, beam_halfwidth_mm: float = BEAM_HALFWIDTH_MM) -> np.ndarray:
    """int8 ``[k, j, i]``: 0 sound passes, 1 bone, 2 lung, 3 gas (CT HU < ``GAS_HU`` in the body).

    Blockers are grown by ``beam_halfwidth_mm`` (the beam is a few mm wide, so
    a gap between ribs narrower than the beam is no window); each grown voxel
    keeps the class of its nearest blocker.
    """
    return block_map_from_masks(anatomy.ct.array, anatomy.masks, anatomy.spacing_kji, beam_halfwidth_mm)


def block_map_from_masks(ct_hu: np.ndarray, masks, spacing_kji, beam_halfwidth_mm: float = BEAM_HALFWIDTH_MM
                         ) -> np.ndarray:
    """:func:`acoustic_block_map` from the CT (HU, ``[k, j, i]``) and the ``body``, ``lung`` and
    ``bone`` masks alone (spacing in mm, k-j-i order): the planning starts it as soon as those
    masks exist, before the rest of the anatomy (its distance maps) is built."""
    m = masks
    block = np.zeros(m["body"].shape, np.int8)
    block[(ct_hu < GAS_HU) & m["body"]] = BLOCK_GAS
    if "lung" in m:
        block[m["lung"]] = BLOCK_LUNG
    if "bone" in m:
        block[m["bone"]] = BLOCK_BONE
    if beam_halfwidth_mm <= 0 or not block.any():
        return block
    box = bounding_box(m["body"], (1, 1, 1))
    sub = block[box]
    grown = sub.copy()
    nearest = np.full(sub.shape, np.inf)
    spacing = np.asarray(spacing_kji, float)
    pad = [int(p) for p in np.ceil(beam_halfwidth_mm / spacing) + 1]
    for cls in (BLOCK_BONE, BLOCK_LUNG, BLOCK_GAS):      # on a tie the first class named here wins
        mc = sub == cls
        if not mc.any():
            continue
        crop = bounding_box(mc, pad)      # only voxels within the half-width of this class matter
        d = distance_transform_edt(~mc[crop], sampling=spacing)      # C kernel: releases the GIL
        here = (d <= beam_halfwidth_mm) & (sub[crop] == 0) & (d < nearest[crop])
        nearest[crop][here] = d[here]
        grown[crop][here] = cls
    out = np.zeros_like(block)
    out[box] = grown
    return out


def cast_rays(maps, block: np.ndarray, origins: np.ndarray, ends: np.ndarray,
              step_mm: float = 0.5, skip_mm: float = 0.0) -> np.ndarray:
    """First blocking class along each segment origin->end (0 = clear), vectorised.

    ``origins``, ``ends``: (n, 3) LPS mm. Samples within ``skip_mm`` of the
    origin are ignored (the skin contact itself).
    """
    o = np.asarray(origins, float)
    e = np.asarray(ends, float)
    v = e - o
    L = np.linalg.norm(v, axis=1)
    m = int(np.ceil(L.max() / step_mm)) + 1 if len(L) else 1
    s = np.arange(m) * step_mm
    pts = o[:, None, :] + (s[None, :, None] * (v / np.maximum(L, 1e-9)[:, None])[:, None, :])
    valid = (s[None, :] <= L[:, None]) & (s[None, :] >= skip_mm)
    b = maps.nearest(block, maps.to_kji(pts), fill=0)
    b = np.where(valid, b, 0)
    first = np.argmax(b > 0, axis=1)
    return b[np.arange(len(o)), first]


def best_window(maps, block: np.ndarray, target_lps, directions: np.ndarray, limit_mm: float) -> dict:
    """Best acoustic window to a target: the shallowest clear ray to the skin.

    Uses the ``evaluate``-style march of :mod:`planner.paths.trajectories` for the
    skin exit; entries on the table side (the patient lies on it) are excluded. Returns the
    counts of checked and clear directions, what blocked the others, and the
    best window's depth (mm), probe position and beam direction (CT LPS), or
    None when no direction within ``limit_mm`` is clear.
    """
    c = maps.constraints
    t = np.asarray(target_lps, float)
    d = directions[directions @ c.table_side <= c.max_table_side_component]   # no probe under the patient
    s = np.arange(0.0, WINDOW_RAY_LIMIT_MM, WINDOW_RAY_STEP_MM)
    pts = t + s[None, :, None] * d[:, None, :]
    kji = maps.to_kji(pts)
    region = maps.nearest(maps.region, kji, fill=OFF_GRID)
    out = region <= OUTSIDE
    has = out.any(axis=1)
    first = np.argmax(out, axis=1)
    skin_ok = has & (region[np.arange(len(d)), first] == OUTSIDE)
    depth = np.where(skin_ok, s[first], np.inf)
    b = maps.nearest(block, kji, fill=0)
    b = np.where(np.arange(s.size)[None, :] < first[:, None], b, 0)
    blocked_by = b[np.arange(len(d)), np.argmax(b > 0, axis=1)]
    within = skin_ok & (depth <= limit_mm)
    clear = within & (blocked_by == 0)
    n_within = int(within.sum())
    causes = {BLOCK_NAMES[k]: int(np.count_nonzero(within & (blocked_by == k))) for k in BLOCK_NAMES}
    res = {"windows_checked": n_within, "windows_clear": int(clear.sum()),
           "obstructed_fraction": round(1.0 - clear.sum() / n_within, 3) if n_within else 1.0,
           "obstruction_by": causes, "depth_mm": None, "probe_ct": None, "beam_direction_ct": None}
    if clear.any():
        i = int(np.argmin(np.where(clear, depth, np.inf)))
        res["depth_mm"] = round(float(depth[i]), 1)
        res["probe_ct"] = [round(float(x), 2) for x in t + depth[i] * d[i]]
        res["beam_direction_ct"] = [round(float(x), 4) for x in -d[i]]
    return res


def ring_masks(lesion: np.ndarray, liver: np.ndarray, spacing_ijk, inner_mm: float = RING_INNER_MM,
               outer_mm: float = RING_OUTER_MM) -> np.ndarray:
    """Liver ring around a lesion: liver voxels at inner..outer mm from it (``[k, j, i]``)."""
    margin = tuple(int(np.ceil(outer_mm / sp)) + 1 for sp in np.asarray(spacing_ijk, float)[::-1])
    box = bounding_box(lesion, margin)      # the ring lies within outer_mm of the lesion
    dist = distance_transform_edt(~lesion[box], sampling=np.asarray(spacing_ijk, float)[::-1])
    out = np.zeros_like(lesion)
    out[box] = liver[box] & ~lesion[box] & (dist >= inner_mm) & (dist <= outer_mm)
    return out


def ct_contrast(ct: Volume, lesion: np.ndarray, ring: np.ndarray) -> dict:
    """Lesion vs liver-ring HU statistics on one CT phase."""
    l = ct.array[lesion].astype(float)
    r = ct.array[ring].astype(float)
    if l.size == 0 or r.size == 0:
        return {"lesion_hu": None, "ring_hu": None, "contrast_hu": None, "cnr": None}
    diff = float(l.mean() - r.mean())
    noise = float(np.sqrt(0.5 * (l.var() + r.var()))) or 1.0
    return {"lesion_hu": round(float(l.mean()), 1), "ring_hu": round(float(r.mean()), 1),
            "contrast_hu": round(diff, 1), "cnr": round(diff / noise, 2)}


def classify_type(portal: dict, arterial: Optional[dict], threshold_hu: float = LESION_TYPE_THRESHOLD_HU) -> tuple:
    """(type, evidence): 'net-like' (hyperenhancing in arterial), 'adenocarcinoma-like'
    (hypoattenuating in portal) or 'indeterminate', from :func:`ct_contrast` of each phase."""
    if arterial is not None and arterial["contrast_hu"] is not None and arterial["contrast_hu"] > threshold_hu:
        return "net-like", f"arterial phase {arterial['contrast_hu']:+.0f} HU vs liver (hyperenhancing)"
    if portal["contrast_hu"] is not None and portal["contrast_hu"] < -threshold_hu:
        return ("adenocarcinoma-like", f"portal phase {portal['contrast_hu']:+.0f} HU vs liver "
                                       "(hypoattenuating)")
    if portal["contrast_hu"] is not None and portal["contrast_hu"] > threshold_hu and arterial is None:
        return "net-like", f"portal phase {portal['contrast_hu']:+.0f} HU vs liver (hyperattenuating)"
    c = portal["contrast_hu"]
    return "indeterminate", (f"portal contrast {c:+.0f} HU within +/-{threshold_hu:.0f} HU"
                             if c is not None else "no liver ring to compare")


def measured_conspicuity(sweep, reference_to_ct: np.ndarray, ct: Volume, lesion: np.ndarray,
                         ring: np.ndarray, *, min_pixels: int = 20, stride: int = 2,
                         seen_cnr: float = 1.0, smooth_mm: float = 2.0) -> dict:
    """CNR of lesion vs liver-ring pixels on registered frames that cut the lesion.

    image_to_ct = reference_to_ct @ sweep.image_to_reference(i); pixels are
    mapped to CT voxels by nearest neighbour (every ``stride``-th pixel).
    Frames are box-smoothed over ``smooth_mm`` first (speckle averaging; the
    box is ``smooth_mm`` divided by the sweep's finer pixel spacing, in
    pixels); the lesion counts as seen when the median |CNR| over the frames
    that cut it is >= ``seen_cnr``.
    """
    spacing = sweep.pixel_spacing            # (column, row) mm, a property; None without valid frames
    px_mm = float(min(spacing)) if spacing else FALLBACK_PIXEL_MM
    smooth_px = max(1, int(round(smooth_mm / px_mm)))
    n, rows, cols = sweep.frames.shape
    jj, ii = np.mgrid[0:rows:stride, 0:cols:stride]
    fan = sweep.fan_mask[::stride, ::stride] if sweep.fan_mask is not None else np.ones(jj.shape, bool)
    pix = np.stack([ii[fan], jj[fan], np.zeros(fan.sum()), np.ones(fan.sum())])
    lps_to_ijk = ct.lps_to_ijk
    shape = np.array(ct.array.shape)
    per_frame = []
    lv, rv, cut = [], [], []
    for f in range(n):
        i2r = sweep.image_to_reference(f)
        if i2r is None:
            continue
        ijk = (lps_to_ijk @ reference_to_ct @ i2r @ pix)[:3]
        kji = np.rint(ijk[::-1]).astype(np.intp)
        inside = np.all((kji >= 0) & (kji < shape[:, None]), axis=0)
        if not inside.any():
            continue
        k, j, i = kji[:, inside]
        # speckle is averaged over ~2 mm as a reader's eye does over a lesion;
        # zero pixels carry no echo (outside the fan or fully shadowed)
        frame = ndimage.uniform_filter(sweep.frames[f].astype(np.float32), size=smooth_px)
        vals = frame[::stride, ::stride][fan][inside]
        echo = sweep.frames[f][::stride, ::stride][fan][inside] > 0
        in_l = lesion[k, j, i] & echo
        in_r = ring[k, j, i] & echo
        if in_l.sum() < min_pixels or in_r.sum() < min_pixels:
            continue
        a, b = vals[in_l], vals[in_r]
        noise = np.sqrt(0.5 * (a.var() + b.var())) or 1.0
        per_frame.append(float((a.mean() - b.mean()) / noise))
        cut.append((int(in_l.sum()), f))
        lv.append(a.mean())
        rv.append(b.mean())
    if not per_frame:
        return {"frames_cutting_lesion": 0, "cnr": None, "seen": None,
                "note": "no registered frame cuts the lesion"}
    cnr = float(np.median(per_frame))
    return {"frames_cutting_lesion": len(per_frame), "cnr": round(cnr, 2), "best_frame": max(cut)[1],
            "lesion_mean": round(float(np.mean(lv)), 1), "ring_mean": round(float(np.mean(rv)), 1),
            "seen": bool(abs(cnr) >= seen_cnr), "seen_threshold_cnr": seen_cnr, "smoothing_mm": smooth_mm}
