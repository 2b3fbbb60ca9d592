"""How the demo probe moves during a sweep, and the tracking noise on it.

Poses are 4x4 ``probe_to_ct`` (LPS mm); angles in degrees; ``fps`` frames/s.
Used by :mod:`sample_data.sweeps.tracked_sweeps`.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import Volume
from sample_data.simulator.tissue_classes import CLASS
from sample_data.simulator.us_simulator import UltrasoundSimulator

from .probe_placement import BodyGeometry


def smooth_noise(rng, n: int, fps: float, sigma: float, dims: int = 3) -> np.ndarray:
    """[n, dims] band-limited (1-8 Hz) noise with RMS ``sigma`` per component: hand tremor."""
    t = np.arange(n) / fps
    out = np.zeros((n, dims))
    for _ in range(6):
        f = rng.uniform(1.0, 8.0)
        out += np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 2 * np.pi, dims)) * rng.uniform(0.5, 1.0, dims)
    rms = np.sqrt(np.mean(out ** 2, axis=0))
    return out / np.maximum(rms, 1e-9) * sigma


def _tilt(base: np.ndarray, deg: float) -> np.ndarray:
    local = np.eye(4)
    local[:3, :3] = Rotation.from_rotvec(np.deg2rad(deg) * np.array([1.0, 0, 0])).as_matrix()
    return base @ local


def usable_tilt(sim: UltrasoundSimulator, base: np.ndarray, depth_mm: float, max_deg: float,
                n: int = 7, max_blocked: float = 0.4):
    """(lo, hi) degrees: how far the plane can rock each way before more than
    ``max_blocked`` of the fan down to the target depth (+30 mm) is shadowed by
    bone or gas (a sonographer stops tilting into the lung). At least 3 deg each way."""
    p = sim.probe
    upto = int(np.searchsorted(p.sample_depths_mm, min(depth_mm + 30.0, p.depth_mm)))
    limits = []
    for sign in (-1.0, 1.0):
        ok = 3.0
        for deg in np.linspace(max_deg / n, max_deg, n):
            hu, lab, _ = sim.sample_polar(_tilt(base, sign * deg) @ p.image_to_probe)
            cls = sim.tissue_class(hu[:, :upto], lab[:, :upto])
            blocked = np.maximum.accumulate((cls == CLASS["bone"]) | (cls == CLASS["gas"]), axis=1)
            if blocked.mean() > max_blocked:
                break
            ok = max(ok, float(deg))
        limits.append(ok)
    return limits[0], limits[1]


def sweep_poses(body: BodyGeometry, base: np.ndarray, *, n: int, fps: float, tilt_deg,
                slide_mm: float, lateral_mm: float, rng, tremor_mm: float = 0.5,
                tremor_deg: float = 0.5) -> np.ndarray:
    """[n, 4, 4] probe_to_ct for a fan/tilt sweep around the pose ``base``.

    The plane rocks about the probe's x axis (pivot at the face) from -tilt to
    +tilt (``tilt_deg`` a number, or (lo, hi) degrees for each side), slides
    along the skin (elevation ``slide_mm``, lateral ``lateral_mm``) and rotates
    a few degrees about the beam; at the middle frame all of these are zero, so
    the middle frame is ``base`` (+ tremor). Every pose is snapped back onto
    the skin along its own beam axis.
    """
    lo, hi = (tilt_deg, tilt_deg) if np.isscalar(tilt_deg) else tilt_deg
    mid = n // 2
    s = (np.arange(n) - mid) / max(mid, n - 1 - mid, 1)   # exactly 0 at the middle frame
    wobble = rng.uniform(0.5, 1.5)
    tilt = np.where(s < 0, lo * s, hi * s) + wobble * np.sin(2 * np.pi * 1.5 * s)
    slide_z = slide_mm * np.sin(np.pi * s)
    slide_x = 0.5 * lateral_mm * np.sin(2 * np.pi * s)
    spin = rng.uniform(-4, 4) * np.sin(np.pi * s)
    trem_t = smooth_noise(rng, n, fps, tremor_mm / np.sqrt(3))
    trem_r = smooth_noise(rng, n, fps, tremor_deg / np.sqrt(3))
    poses = np.empty((n, 4, 4))
    for i in range(n):
        local = np.eye(4)
        local[:3, :3] = (Rotation.from_rotvec(np.deg2rad(tilt[i]) * np.array([1.0, 0, 0]))
                         * Rotation.from_rotvec(np.deg2rad(spin[i]) * np.array([0, 1.0, 0]))).as_matrix()
        local[:3, 3] = [slide_x[i], 0.0, slide_z[i]]
        pose = base @ local
        beam = pose[:3, 1]
        hit = body.skin_exit(pose[:3, 3] + 40.0 * beam, -beam)
        if hit is not None:
            pose[:3, 3] = hit[0] + 0.5 * beam
        poses[i] = pose @ rigid_matrix(np.concatenate([trem_r[i], trem_t[i]]))
    return poses


def random_reference_to_ct(rng, ct: Volume) -> np.ndarray:
    """Patient marker pose in the CT: 15-40 deg about a random axis, origin near the body."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    lo, hi = ct.bounds_lps()
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(np.deg2rad(rng.uniform(15, 40)) * axis).as_matrix()
    m[:3, 3] = (lo + hi) / 2 + rng.uniform(-80, 80, 3)
    return m


def _tracking_noise(rng, n: int, mm: float = 0.08, deg: float = 0.03) -> np.ndarray:
    return np.stack([rigid_matrix(np.concatenate([rng.normal(0, deg, 3), rng.normal(0, mm, 3)]))
                     for _ in range(n)])
