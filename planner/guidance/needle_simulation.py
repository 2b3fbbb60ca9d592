"""A simulated tracked needle insertion along a planned path, so guidance runs without hardware.

The simulated needle is straight and rigid, held on the line from the planned
skin entry to an aim point: the target itself, or the target moved
``deviation_mm`` sideways (perpendicular to the planned path) towards the
nearest vessel, which is what a needle that drifts towards a vessel looks like
to the tracker (the aim point is ``deviation_mm`` from the target). Timeline
over ``n`` frames: the tip waits ``approach_mm`` outside the skin on that line
for the first 10 % of the frames, advances at constant speed to the aim point
until 85 %, and holds there.

Poses are ``NeedleToReference`` (the stream's frame): the needle pose in CT is
mapped with ``inv(reference_to_ct)``. The needle's roll about its shaft is
fixed (it does not change any guidance number).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.transforms import invert
from registration.tracking.needle_tool import NeedleCalibration

from .planned_path import PlannedPath
from .risk_field import RiskField

#: The simulated needle: marker on the hub, tip 160 mm ahead along the marker's z axis (a 15 cm needle).
SIMULATED_NEEDLE = NeedleCalibration(np.array([0.0, 0.0, 160.0]), np.array([0.0, 0.0, 1.0]), "Needle",
                                     "simulated needle (ctus replay --needle-path)", 0.0)


@dataclass
class SimulatedInsertion:
    """Poses of a simulated insertion and what was simulated."""
    needle_to_reference: np.ndarray     # [n, 4, 4]
    tip_ct: np.ndarray                  # [n, 3] mm, the simulated truth
    aim_ct: np.ndarray                  # where the needle is pointed (the target, or beside it)
    direction_ct: np.ndarray            # unit, entry -> aim
    deviation_mm: float
    deviation_towards: Optional[str]    # structure the needle was bent towards
    calibration: NeedleCalibration


def rotation_taking(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """3x3 rotation taking unit vector ``a`` onto unit vector ``b`` (the smallest one)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1.0 + 1e-9:  # opposite: turn 180 deg about any axis perpendicular to a
        p = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        p /= np.linalg.norm(p)
        return 2.0 * np.outer(p, p) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def nearest_vessel_direction(path: PlannedPath, risk: RiskField, step_mm: float = 0.5):
    """(unit vector perpendicular to the path towards the nearest vessel, vessel name, its clearance mm).

    The nearest vessel is the vessel structure with the smallest distance to
    the planned segment; the direction is minus the gradient of its distance
    map at the closest path point, with the along-path part removed.
    """
    vessels = [n for n, s in enumerate(risk.structures) if s.risk_class == "vessel"]
    if not vessels:
        raise InputError("no vessel in the label map near the planned path: nothing to deviate towards",
                         fix="run without --needle-deviation-mm, or give the labels with the vessels")
    d = path.direction
    s = np.arange(0.0, path.length_mm + 1e-9, step_mm)
    pts = np.asarray(path.entry_ct, float) + s[:, None] * d
    dist = risk.distances(pts)[vessels]
    if np.all(np.isnan(dist)):
        raise InputError("the planned path lies outside the region of the distance maps")
    k, col = np.unravel_index(np.nanargmin(dist), dist.shape)
    index = vessels[int(k)]
    g = -risk.gradient(index, pts[col])
    g = g - (g @ d) * d
    n = float(np.linalg.norm(g))
    if n < 1e-6:
        raise InputError(f"the path points straight at {risk.structures[index].name}: no sideways direction")
    return g / n, risk.structures[index].name, float(dist[k, col])


def simulate_insertion(path: PlannedPath, n_frames: int, reference_to_ct: np.ndarray, *,
                       deviation_mm: float = 0.0, risk: Optional[RiskField] = None,
                       calibration: NeedleCalibration = SIMULATED_NEEDLE, approach_mm: float = 20.0,
                       start_fraction: float = 0.10, arrive_fraction: float = 0.85) -> SimulatedInsertion:
    """``NeedleToReference`` for ``n_frames`` frames of an insertion along ``path`` (see module docstring)."""
    if n_frames < 2:
        raise InputError(f"a simulated insertion needs at least 2 frames, got {n_frames}")
    entry, target = np.asarray(path.entry_ct, float), np.asarray(path.target_ct, float)
    towards = None
    aim = target
    if deviation_mm:
        if risk is None:
            raise InputError("--needle-deviation-mm needs the label map to find the nearest vessel",
                             fix="pass --labels (and --label-names) with the labels the plan was made with")
        u, towards, _ = nearest_vessel_direction(path, risk)
        aim = target + float(deviation_mm) * u
    d = (aim - entry) / np.linalg.norm(aim - entry)
    depth_total = float(np.linalg.norm(aim - entry)) + approach_mm
    f = np.linspace(0.0, 1.0, n_frames)
    progress = np.clip((f - start_fraction) / max(arrive_fraction - start_fraction, 1e-9), 0.0, 1.0)
    tips = (entry - approach_mm * d)[None, :] + (progress * depth_total)[:, None] * d[None, :]
    rot = rotation_taking(calibration.axis, d)
    ct_to_reference = invert(np.asarray(reference_to_ct, float))
    poses = np.repeat(np.eye(4)[None], n_frames, axis=0)
    poses[:, :3, :3] = rot
    poses[:, :3, 3] = tips - rot @ calibration.tip_mm
    return SimulatedInsertion(np.einsum("ij,njk->nik", ct_to_reference, poses), tips, aim, d,
                              float(deviation_mm), towards, calibration)
