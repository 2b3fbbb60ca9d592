"""Hand-built needle-guidance geometry with exact answers (shared by the needle tests).

Grid: 0.5 mm isotropic, 120^3 voxels, origin (-30, -30, -30) LPS, identity
direction, so voxel centres sit at multiples of 0.5 mm. Structures:

- ``portal_vein``: cylinder along z about (x=5, y=0), radius 3 mm (voxel
  centres with r <= 3): its nearest voxel centre to a point (x < 2, y = 0)
  lies at x = 2, so the distance there is exactly ``2 - x``.
- ``lesion_1``: sphere of radius 4 mm about (-5, 0, 0) (the target).
- ``bone``: slab y >= 15 mm, so the distance from (x, y < 15, z) is ``15 - y``.
- ``liver``: everything else inside |coord| <= 28 (not a risk structure).

Plan: one path from entry (-5, 0, 28) to target (-5, 0, 0) (straight down -z).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from registration.spatial.volume import LabelMap

SPACING = 0.5
ORIGIN = -30.0
N = 120
VESSEL_X, VESSEL_R = 5.0, 3.0
TARGET = np.array([-5.0, 0.0, 0.0])
ENTRY = np.array([-5.0, 0.0, 28.0])
NAMES = {"liver": 2, "portal_vein": 3, "bone": 6, "lesion_1": 21}


def needle_labels() -> LabelMap:
    c = ORIGIN + SPACING * np.arange(N)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")          # arrays [k, j, i]
    arr = np.zeros((N, N, N), np.uint8)
    arr[(np.abs(x) <= 28) & (np.abs(y) <= 28) & (np.abs(z) <= 28)] = NAMES["liver"]
    arr[(x - VESSEL_X) ** 2 + y ** 2 <= VESSEL_R ** 2] = NAMES["portal_vein"]
    arr[y >= 15.0] = NAMES["bone"]
    arr[np.sum((np.stack([x, y, z], -1) - TARGET) ** 2, axis=-1) <= 16.0] = NAMES["lesion_1"]
    return LabelMap(arr, (SPACING,) * 3, (ORIGIN,) * 3, names=NAMES)


def plan_dict() -> dict:
    return {"lesions": [{"name": "lesion_1", "trajectories": [
        {"guidance": "us", "entry_ct": ENTRY.tolist(), "target_ct": TARGET.tolist(), "length_mm": 28.0}]}],
        "constraints": {"needle_gauge": "18G", "vessel_margin_mm": 5.0},
        "recommendation": {"biopsy_first": "lesion_1"}}


def write_case(folder: Path, reference_to_ct=None) -> dict:
    """labels.nrrd, label_names.json, plan/plan.json and registration.json in ``folder``; returns their paths."""
    from registration.io.labelmap_io import write_labels
    folder = Path(folder)
    (folder / "plan").mkdir(parents=True, exist_ok=True)
    write_labels(needle_labels(), folder / "labels.nrrd")
    (folder / "label_names.json").write_text(json.dumps(NAMES))
    (folder / "plan" / "plan.json").write_text(json.dumps(plan_dict()))
    r2c = np.eye(4) if reference_to_ct is None else np.asarray(reference_to_ct, float)
    (folder / "registration.json").write_text(json.dumps({"reference_to_ct": r2c.tolist()}))
    return {"labels": str(folder / "labels.nrrd"), "names": str(folder / "label_names.json"),
            "plan": str(folder / "plan"), "registration": str(folder / "registration.json")}


def needle_pose(tip, direction, tip_in_needle=(0.0, 0.0, 160.0), axis_in_needle=(0.0, 0.0, 1.0),
                roll_deg: float = 0.0) -> np.ndarray:
    """A NeedleToX pose putting the calibrated tip at ``tip`` with the shaft along ``direction``."""
    from planner.guidance.needle_simulation import rotation_taking
    a = np.asarray(axis_in_needle, float) / np.linalg.norm(axis_in_needle)
    r = rotation_taking(a, np.asarray(direction, float))
    c, s = np.cos(np.radians(roll_deg)), np.sin(np.radians(roll_deg))
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    roll = np.eye(3) + s * k + (1 - c) * k @ k      # about the needle's own axis: changes nothing measured
    m = np.eye(4)
    m[:3, :3] = r @ roll
    m[:3, 3] = np.asarray(tip, float) - m[:3, :3] @ np.asarray(tip_in_needle, float)
    return m
