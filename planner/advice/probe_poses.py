"""Probe poses for US-guided paths: an image plane that holds the whole needle and the target.

Frames: CT LPS mm; arrays ``[k, j, i]``; a pose is the probe's skin contact
point, its beam direction and image-plane normal (unit vectors, LPS). Rays
are cast on the acoustic block map of :mod:`.visibility` (bone, lung, gas).
"""
from __future__ import annotations

import numpy as np

from planner.paths.planning_maps import OFF_GRID, OUTSIDE

from .visibility import cast_rays

# In-plane probe search: rays from the probe to the target and to these fractions of the
# needle (0 = target) must be clear; the first SKIP mm under the probe are its own contact.
NEEDLE_CHECK_FRACTIONS = (0.0, 0.25, 0.5, 0.75)
PROBE_CONTACT_SKIP_MM = 2.0
PROBE_RAY_STEP_MM = 1.0


def _perp_basis(d: np.ndarray):
    """Two unit vectors (n, 3) orthogonal to each direction d (n, 3) and to each other."""
    helper = np.where(np.abs(d[:, [0]]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]))
    a = np.cross(d, helper)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    return a, np.cross(d, a)


def inplane_probe_poses(maps, block: np.ndarray, target_lps, entries: np.ndarray,
                        directions: np.ndarray, limit_mm: float, *, fan_deg: float = 70.0,
                        offsets_mm=(25.0, 35.0, 50.0), n_rotations: int = 16,
                        min_needle_beam_deg: float = 15.0, min_probe_entry_mm: float = 15.0) -> list:
    """Probe pose on the skin whose image plane contains the whole needle path and the target.

    For each path (target -> entry along ``directions``), rotate a candidate
    image plane about the needle axis; in each plane put the probe on the
    skin ``offsets_mm`` beside the entry (where the ray from the target
    through that point leaves the body). Accept a pose when the target is
    within ``limit_mm``, the needle and the target fit in the fan
    (``fan_deg``), the needle is at least ``min_needle_beam_deg`` off the
    beam, the probe is not on the entry point, and rays from the probe to the
    target and to points along the needle meet no bone, lung or gas.
    Returns one dict (or None) per path: probe_ct, beam_direction_ct,
    plane_normal_ct, depth_mm, needle_beam_angle_deg.
    """
    t = np.asarray(target_lps, float)
    e = np.asarray(entries, float)
    d = np.asarray(directions, float)
    n = len(d)
    if n == 0:
        return []
    a, b = _perp_basis(d)
    th = np.linspace(0.0, 2 * np.pi, n_rotations, endpoint=False)
    offs = np.asarray(offsets_mm, float)
    # candidates (n, R, O)
    u = np.cos(th)[None, :, None] * a[:, None, :] + np.sin(th)[None, :, None] * b[:, None, :]  # (n,R,3)
    aim = e[:, None, None, :] + offs[None, None, :, None] * u[:, :, None, :]                   # (n,R,O,3)
    v = aim - t
    v /= np.linalg.norm(v, axis=-1, keepdims=True)
    v = v.reshape(-1, 3)
    idx_path = np.repeat(np.arange(n), n_rotations * len(offs))
    s = np.arange(0.0, limit_mm + PROBE_RAY_STEP_MM, PROBE_RAY_STEP_MM)
    region = maps.nearest(maps.region, maps.to_kji(t + s[None, :, None] * v[:, None, :]), fill=OFF_GRID)
    out = region <= OUTSIDE
    first = np.argmax(out, axis=1)
    ok = out.any(axis=1) & (region[np.arange(len(v)), first] == OUTSIDE)
    depth = s[first]
    q = t + depth[:, None] * v
    ee = e[idx_path]
    to_t = t - q
    to_e = ee - q
    cos_fan = np.sum(to_t * to_e, axis=1) / np.maximum(
        np.linalg.norm(to_t, axis=1) * np.linalg.norm(to_e, axis=1), 1e-9)
    ok &= np.degrees(np.arccos(np.clip(cos_fan, -1, 1))) <= fan_deg
    ok &= np.linalg.norm(to_e, axis=1) >= min_probe_entry_mm
    nb = np.degrees(np.arccos(np.clip(np.sum(v * d[idx_path], axis=1), -1, 1)))
    ok &= nb >= min_needle_beam_deg
    cand = np.flatnonzero(ok)
    if cand.size:
        clear = np.ones(cand.size, bool)
        for frac in NEEDLE_CHECK_FRACTIONS:
            p = t + frac * (ee[cand] - t)
            clear &= cast_rays(maps, block, q[cand], p, skip_mm=PROBE_CONTACT_SKIP_MM) == 0
        ok[cand] = clear
    poses = []
    for pth in range(n):
        sel = np.flatnonzero(ok & (idx_path == pth))
        if sel.size == 0:
            poses.append(None)
            continue
        c = int(sel[np.argmin(depth[sel])])
        normal = np.cross(d[pth], v[c])
        normal /= np.linalg.norm(normal)
        poses.append({"probe_ct": [round(float(x), 2) for x in q[c]],
                      "beam_direction_ct": [round(float(x), 4) for x in -v[c]],
                      "plane_normal_ct": [round(float(x), 4) for x in normal],
                      "depth_mm": round(float(depth[c]), 1),
                      "needle_beam_angle_deg": round(float(nb[c]), 1)})
    return poses
