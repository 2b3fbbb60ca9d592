"""Segment a liver lesion on the MR from one click: contrast to the surrounding liver.

On a hepatobiliary-phase T1 the liver is bright and a metastasis dark (on T2
or DWI it is the other way round); MR has no absolute units and a smooth coil
bias, so the grower works on *local* levels only (the CT's lesion grower uses
HU, and is another module: this one is MR-specific):

1. the click snaps to the most lesion-like voxel within ``SNAP_MM`` (the
   darkest, or brightest for a bright lesion, of the lightly smoothed MR);
2. ``lesion`` level = median within ``CORE_MM`` of it; ``liver`` level = the
   ``LIVER_PERCENTILE`` of a shell ``SHELL_MM`` around it (the liver is the
   brightest tissue there on a hepatobiliary phase; for a bright lesion the
   dark end is used), noise = the robust spread of the liver side of the shell;
3. threshold half-way; the contrast must be ``MIN_CNR`` x the noise (the robust
   spread of the high-pass residual, so the coil bias is not counted as noise)
   and ``MIN_RELATIVE_CONTRAST`` of the liver level, else InputError (nothing
   there to segment: a click beside the lesion, or a lesion this sequence does
   not show);
4. the connected region of the seed below (above) the threshold, limited to a
   sphere of ``LEAK_FACTOR`` x the radius where the mean radial profile
   crosses the threshold (+ ``LEAK_MARGIN_MM``), then opened by reconstruction
   (eroded by half that radius, at most ``MAX_OPENING_MM``; the seed's part
   dilated back inside the region) so vessels touching the lesion (dark too on
   a hepatobiliary phase) are cut; holes filled.

Units mm, points MR LPS mm; masks ``[k, j, i]`` in a box of the MR grid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

MAX_DIAMETER_MM = 60.0
SNAP_MM = 3.0
CORE_MM = 2.0
SHELL_MM = (12.0, 30.0)
LIVER_PERCENTILE = 80.0
MIN_CNR = 3.0
MIN_RELATIVE_CONTRAST = 0.15     # heuristic: metastases on a hepatobiliary phase differ by far more
LEAK_FACTOR = 1.3
LEAK_MARGIN_MM = 1.5
MAX_OPENING_MM = 3.0


@dataclass
class GrownLesion:
    """A lesion grown on the MR: ``mask`` over ``box`` (slices of the MR array), its seed, levels
    (MR units), contrast-to-noise, equivalent diameter (mm) and centroid (MR LPS mm)."""
    mask: np.ndarray
    box: Tuple[slice, slice, slice]
    seed_mr: np.ndarray
    lesion_level: float
    liver_level: float
    noise: float
    cnr: float
    diameter_mm: float
    centroid_mr: np.ndarray
    polarity: str            # "dark" or "bright" against the liver

    def to_dict(self) -> dict:
        return {"seed_mr": self.seed_mr.round(3).tolist(), "lesion_level": round(self.lesion_level, 4),
                "liver_level": round(self.liver_level, 4), "noise": round(self.noise, 4),
                "cnr": round(self.cnr, 2), "diameter_mm": round(self.diameter_mm, 2),
                "centroid_mr": self.centroid_mr.round(3).tolist(), "polarity": self.polarity}


def _box(mr: Volume, centre, radius_mm: float):
    c = mr.lps_to_index(np.asarray(centre, float))
    r = radius_mm / np.asarray(mr.spacing, float)
    lo = np.maximum(np.floor(c - r).astype(int), 0)
    hi = np.minimum(np.ceil(c + r).astype(int) + 1, np.asarray(mr.shape_ijk))
    if np.any(hi - lo < 3):
        raise InputError(f"the click {np.round(centre, 1).tolist()} (MR LPS mm) is outside the MR",
                         fix="click inside the lesion on the MR")
    return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])), lo


def _distance_mm(shape, lo, mr: Volume, point) -> np.ndarray:
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    ijk = np.stack([i + lo[0], j + lo[1], k + lo[2]], axis=-1).reshape(-1, 3).astype(float)
    return np.linalg.norm(mr.index_to_lps(ijk) - np.asarray(point, float), axis=1).reshape(shape)


# long: the five steps of the module docstring, in order, on one box of the MR
def grow_mr_lesion(mr_norm: Volume, click_mr, *, polarity: str = "dark",
                   max_diameter_mm: float = MAX_DIAMETER_MM) -> GrownLesion:
    """Grow the lesion under ``click_mr`` (MR LPS mm) on ``mr_norm``: the MR as stored or scaled
    (only local levels and their ratio are used: 0 must mean no signal, as in a magnitude image;
    not a clipped normalisation). ``polarity``: "dark" (default: metastases on a hepatobiliary
    phase), "bright" (T2, diffusion) or "auto" (the side the click's neighbourhood departs from
    the liver). InputError when there is no lesion contrast at the click, or when the region
    has no boundary within ``max_diameter_mm``."""
    box, lo = _box(mr_norm, click_mr, max_diameter_mm / 2 + SHELL_MM[1] / 2)
    raw = np.asarray(mr_norm.array[box], np.float32)
    sub = ndimage.gaussian_filter(raw, 0.6)
    residual = raw - ndimage.gaussian_filter(raw, 2.0)
    d = _distance_mm(sub.shape, lo, mr_norm, click_mr)
    shell = sub[(d >= SHELL_MM[0]) & (d <= SHELL_MM[1])]
    if shell.size < 20:
        raise InputError("the click is too close to the edge of the MR", fix="click inside the lesion")
    near = d <= SNAP_MM
    if polarity == "auto":
        bright_liver = float(np.percentile(shell, LIVER_PERCENTILE))
        polarity = "dark" if float(np.median(sub[near])) <= bright_liver else "bright"
    sign = 1.0 if polarity == "dark" else -1.0
    # snap: the most lesion-like voxel near the click
    flat = np.where(near, sign * sub, np.inf)
    seed_idx = np.unravel_index(int(np.argmin(flat)), sub.shape)
    seed_ijk = np.array([seed_idx[2] + lo[0], seed_idx[1] + lo[1], seed_idx[0] + lo[2]], float)
    seed = mr_norm.index_to_lps(seed_ijk)
    d = _distance_mm(sub.shape, lo, mr_norm, seed)
    core = sub[d <= max(CORE_MM, 1.01 * float(np.max(mr_norm.spacing)))]
    lesion = float(np.median(core))
    liver = float(np.percentile(shell, LIVER_PERCENTILE if sign > 0 else 100 - LIVER_PERCENTILE))
    theta = 0.5 * (lesion + liver)
    in_shell = (d >= SHELL_MM[0]) & (d <= SHELL_MM[1])
    liver_side = residual[in_shell & (sign * (sub - theta) > 0)]
    noise = float(1.4826 * np.median(np.abs(liver_side - np.median(liver_side)))) if liver_side.size > 10 \
        else float("inf")
    cnr = sign * (liver - lesion) / max(noise, 1e-6)
    if not np.isfinite(cnr) or cnr < MIN_CNR or sign * (liver - lesion) < MIN_RELATIVE_CONTRAST * abs(liver):
        raise InputError(f"no lesion contrast at the click {np.round(click_mr, 1).tolist()} (MR LPS mm): "
                         f"lesion {lesion:.2f} vs liver {liver:.2f}, contrast {cnr:.1f} x noise (< {MIN_CNR:g})",
                         fix="click inside the lesion on the MR (on a hepatobiliary phase it is darker than the liver)")
    inside = sign * (sub - theta) < 0
    lab, _ = ndimage.label(inside)
    region = lab == lab[seed_idx]
    # radius where the mean radial profile crosses the threshold
    step = float(np.min(mr_norm.spacing)) / 2
    radii = np.arange(0.0, max_diameter_mm / 2, step)
    r_est = max_diameter_mm / 2
    for r in radii:
        ring = (d >= r) & (d < r + step)
        if ring.any() and sign * (float(sub[ring].mean()) - theta) > 0:
            r_est = r
            break
    region &= d <= min(LEAK_FACTOR * r_est + LEAK_MARGIN_MM, max_diameter_mm / 2)
    region = _open_by_reconstruction(region, seed_idx, min(0.5 * r_est, MAX_OPENING_MM), mr_norm.spacing)
    region = ndimage.binary_fill_holes(region)
    if np.any(region & (d >= max_diameter_mm / 2 - float(np.max(mr_norm.spacing)))):
        raise InputError(f"the region grown from {np.round(click_mr, 1).tolist()} (MR LPS mm) reaches the "
                         f"{max_diameter_mm:.0f} mm limit: no lesion boundary found",
                         fix="click inside the lesion (for a lesion brighter than the liver use polarity 'bright')")
    n = int(region.sum())
    vox_ml = float(np.prod(mr_norm.spacing))
    diameter = float((6.0 * n * vox_ml / np.pi) ** (1.0 / 3.0))
    k, j, i = np.nonzero(region)
    centroid = mr_norm.index_to_lps(np.stack([i + lo[0], j + lo[1], k + lo[2]], axis=1).mean(axis=0))
    return GrownLesion(region, box, seed, lesion, liver, noise, float(cnr), diameter, centroid, polarity)


def _ball(radius_mm: float, spacing) -> np.ndarray:
    r = np.maximum(np.floor(radius_mm / np.asarray(spacing, float)).astype(int), 0)    # (i, j, k)
    k, j, i = np.meshgrid(*[np.arange(-v, v + 1) for v in r[::-1]], indexing="ij")
    sp = np.asarray(spacing, float)
    return (i * sp[0]) ** 2 + (j * sp[1]) ** 2 + (k * sp[2]) ** 2 <= radius_mm ** 2 + 1e-9


def _open_by_reconstruction(region: np.ndarray, seed_idx, radius_mm: float, spacing) -> np.ndarray:
    """The seed's connected part of ``region`` after an erosion by ``radius_mm``, dilated back by the
    same ball inside ``region``: thin attachments (vessels) narrower than the ball are cut."""
    lab, _ = ndimage.label(region)
    region = lab == lab[seed_idx]
    ball = _ball(radius_mm, spacing)
    if ball.sum() <= 1:
        return region
    core = ndimage.binary_erosion(region, structure=ball)
    if not core.any():
        return region
    lab, _ = ndimage.label(core)
    if lab[seed_idx]:
        keep = lab == lab[seed_idx]
    else:       # the seed sits in the eroded rim: its nearest core part
        d = ndimage.distance_transform_edt(~core, return_indices=True)[1]
        keep = lab == lab[tuple(d[:, seed_idx[0], seed_idx[1], seed_idx[2]])]
    return ndimage.binary_dilation(keep, structure=ball) & region
