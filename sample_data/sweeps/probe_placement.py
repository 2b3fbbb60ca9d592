"""Where the demo probe goes: the body surface, acoustic windows, probe poses.

Frames: LPS mm in the CT. A probe pose is a 4x4 ``probe_to_ct`` whose origin is
the face centre on the skin, z the beam axis into the body, x the lateral
(marked-side) axis, as :class:`~sample_data.simulator.probe.ConvexProbe` defines it.
Used by :mod:`sample_data.sweeps.tracked_sweeps` (and :mod:`sample_data.case.realism`).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume
from sample_data.simulator.tissue_classes import CLASS
from sample_data.simulator.us_simulator import UltrasoundSimulator


#: A walk out of the body has left it at the first stretch this long outside (mm): longer than a
#: gas pocket in a bowel loop, shorter than the air between the back and the CT table.
OUTSIDE_RUN_MM = 15.0


class BodyGeometry:
    """Inside-body lookups on the CT grid for placing the probe on the skin."""

    def __init__(self, ct: Volume, labels: LabelMap):
        self.ct = ct
        inside = np.asarray(labels.array) > 0
        # Unlabelled tissue (a CT with organ labels only) counts by HU.
        self.inside = inside | (np.asarray(ct.array) > -400)
        self.hu = ct.array
        self.lab = labels.array
        bone = {v for n, v in labels.names.items() if any(s in n.lower() for s in
                ("bone", "rib", "vertebra", "sacrum", "sternum", "spine"))}
        gas = {v for n, v in labels.names.items() if any(s in n.lower() for s in ("lung", "trachea"))}
        self.bone_values = np.array(sorted(bone) or [-1])
        self.gas_values = np.array(sorted(gas) or [-1])

    def _idx(self, pts):
        ijk = np.rint(self.ct.lps_to_index(pts)).astype(np.intp)
        shape = np.array(self.ct.shape_ijk)
        ok = np.all((ijk >= 0) & (ijk < shape), axis=-1)
        ijk = np.clip(ijk, 0, shape - 1)
        return ok, (ijk[..., 2], ijk[..., 1], ijk[..., 0])

    def is_inside(self, pts) -> np.ndarray:
        ok, idx = self._idx(pts)
        return ok & self.inside[idx]

    def is_obstacle(self, pts) -> np.ndarray:
        """Bone or gas (HU or label) at the points."""
        ok, idx = self._idx(pts)
        hu, lab = self.hu[idx], self.lab[idx]
        obst = (hu > 300) | (hu < -400) | np.isin(lab, self.bone_values) | np.isin(lab, self.gas_values)
        return ok & obst

    def skin_exit(self, start, direction_out, max_mm: float = 400.0, step: float = 0.5):
        """The skin point when walking from ``start`` along ``direction_out`` (unit): the last inside
        point before the first stretch of at least ``OUTSIDE_RUN_MM`` outside the body.

        Returns (skin point LPS mm, distance mm) or None if the walk never leaves the body. The
        first long exit, not the last inside point: on a real CT the ray goes on through the air
        to the table (above -400 HU, "inside" by HU), and the probe was put on the table, 50 mm
        from the skin (crlm-1004, a posterior target). A short gap (unlabelled gas in a bowel
        loop, on a CT with organ labels only) is walked through.
        """
        d = np.asarray(direction_out, float)
        t = np.arange(0.0, max_mm, step)
        pts = np.asarray(start, float) + t[:, None] * d
        in_grid, _ = self._idx(pts)
        inside = self.is_inside(pts)
        if not inside.any():
            return None
        run = max(int(round(OUTSIDE_RUN_MM / step)), 1)
        # outside_ahead[k]: samples k+1 .. k+run are all outside (or past the end of the walk).
        out = np.concatenate([~inside, np.ones(run, bool)])
        csum = np.concatenate([[0], np.cumsum(out)])
        k = np.arange(len(t))
        outside_ahead = (csum[k + 1 + run] - csum[k + 1]) == run
        exits = np.flatnonzero(inside & outside_ahead)
        if exits.size == 0:
            return None
        last = int(exits[0])
        if last + 1 >= len(t):                     # still inside at the end of the walk
            return None
        # Leaving through a face of the CT box is not skin (the body is cut there).
        if not in_grid[last + 1]:
            return None
        return pts[last], float(t[last])


def skin_normal(body: BodyGeometry, skin_point, radius_mm: float = 8.0) -> np.ndarray:
    """Inward unit normal of the body surface at ``skin_point`` (from which nearby points are inside)."""
    u = _fibonacci_directions(96)
    inside = body.is_inside(np.asarray(skin_point, float) + radius_mm * u)
    if not inside.any() or inside.all():
        return None
    n = u[inside].mean(axis=0) - u[~inside].mean(axis=0)
    return n / np.linalg.norm(n)


def face_skin(pose: np.ndarray, normal, max_deg: float = 20.0) -> np.ndarray:
    """Rotate ``pose`` about its elevation axis (z, through the face) towards the skin normal.

    The image plane and the points in it stay where they are (their fan angle
    changes by at most ``max_deg``), so a target in the plane stays in the fan.
    """
    if normal is None:
        return pose
    x, y = pose[:3, 0], pose[:3, 1]
    phi = np.arctan2(np.dot(normal, x), np.dot(normal, y))
    phi = float(np.clip(phi, -np.deg2rad(max_deg), np.deg2rad(max_deg)))
    out = pose.copy()
    out[:3, 1] = np.cos(phi) * y + np.sin(phi) * x
    out[:3, 0] = np.cos(phi) * x - np.sin(phi) * y
    return out


def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)


def probe_pose(origin, beam, lateral) -> np.ndarray:
    """4x4 probe_to_ct from the face centre, beam direction (Probe +y) and lateral (+x)."""
    y = np.asarray(beam, float) / np.linalg.norm(beam)
    x = np.asarray(lateral, float) - np.dot(lateral, y) * y
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, np.cross(x, y), origin
    return m


def find_window(body: BodyGeometry, target, *, max_depth_mm: float, n_dirs: int = 400):
    """Skin point and inward beam direction with the shortest obstacle-free path to ``target``.

    Directions with a posterior component > 0.35 are excluded: the patient lies
    supine and the probe cannot go under the back. Cost: path length + 80 x
    (1 - cos) of the angle to the skin normal + 12 per blocked neighbouring path
    (10 mm around the axis at the skin). Returns (skin_point, beam_dir, depth_mm,
    obstructed: bool, the central path crosses bone or gas); if every central
    path does, the cheapest is returned with obstructed=True.
    """
    target = np.asarray(target, float)
    best, fallback = None, None
    step = 1.0
    for d in _fibonacci_directions(n_dirs):
        if d[1] > 0.35:
            continue
        hit = body.skin_exit(target, d)
        if hit is None:
            continue
        skin, depth = hit
        if depth > max_depth_mm - 10:
            continue
        # Obstacles on the central path (ignoring the last 2 mm: skin staircase) and on
        # four paths to skin points 10 mm around it, so the window is not on the edge of
        # a rib or of the lung (the fan and the tilt need room around the axis).
        t = np.arange(step, max(depth - 2.0, step), step)
        n_obst = int(body.is_obstacle(target + t[:, None] * d).sum())
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        frac = (t / depth)[:, None]
        n_side = sum(int(np.any(body.is_obstacle(target + t[:, None] * d + frac * (10.0 * off))))
                     for off in (u, -u, v, -v))
        # Prefer windows where the path meets the skin square on: the face then touches
        # the skin across its width instead of hanging in the air on one side.
        normal = skin_normal(body, skin)
        oblique = 1.0 - float(np.dot(normal, -d)) if normal is not None else 1.0
        cand = (depth + 15.0 * n_obst + 12.0 * n_side + 80.0 * oblique, skin, -d, depth, n_obst > 0)
        if n_obst == 0 and (best is None or cand[0] < best[0]):
            best = cand
        if fallback is None or cand[0] < fallback[0]:
            fallback = cand
    pick = best or fallback
    if pick is None:
        raise InputError(f"no skin window within {max_depth_mm:.0f} mm of the target "
                         f"{np.round(target, 1).tolist()}", fix="check the body label and the target")
    return pick[1], pick[2], pick[3], pick[4]


def best_lateral(sim: UltrasoundSimulator, origin, beam, target, rng) -> np.ndarray:
    """Probe rotation about its axis whose fan around the target is least shadowed."""
    beam = np.asarray(beam, float)
    a = np.cross(beam, [0.0, 0.0, 1.0])
    if np.linalg.norm(a) < 1e-3:
        a = np.cross(beam, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    depth = float(np.linalg.norm(np.asarray(target) - origin))
    p = sim.probe
    near = np.abs(p.sample_depths_mm - depth) < 25.0
    best, best_score = a, -1.0
    offset = rng.uniform(0, 15)
    for ang in np.arange(0.0, 180.0, 15.0) + offset:
        lateral = Rotation.from_rotvec(np.deg2rad(ang) * beam).apply(a)
        pose = probe_pose(origin, beam, lateral)
        hu, lab, pts = sim.sample_polar(pose @ p.image_to_probe)
        cls = sim.tissue_class(hu, lab)
        # Beams that leave the CT box image nothing real: count them as blocked too.
        upto = int(np.searchsorted(p.sample_depths_mm, depth + 25.0))
        ijk = sim.ct.lps_to_index(pts[:, :upto:8].reshape(-1, 3)).reshape(pts.shape[0], -1, 3)
        out = np.any((ijk < -0.5) | (ijk > np.array(sim.ct.shape_ijk) - 0.5), axis=(1, 2))
        blocked = np.maximum.accumulate((cls == CLASS["bone"]) | (cls == CLASS["gas"]), axis=1)
        blocked |= out[:, None]
        score = 1.0 - blocked[:, near].mean()
        if score > best_score + 1e-6:
            best, best_score = lateral, score
    return best
