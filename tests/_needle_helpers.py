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


def needle_ct():
    """A CT (HU) on the label grid of :func:`needle_labels`: liver 60, vessel 180, bone 700, lesion 30."""
    from registration.spatial.volume import Volume
    lab = needle_labels()
    hu = np.full(lab.array.shape, -900.0, np.float32)
    for name, value in NAMES.items():
        hu[lab.array == value] = {"liver": 60.0, "portal_vein": 180.0, "bone": 700.0, "lesion_1": 30.0}[name]
    return Volume(hu, lab.spacing, lab.origin)


#: Image pixel -> CT for the in-plane probe of :func:`in_plane_sweep` (0.5 mm pixels; column +x,
#: row towards -z: the plane y = 0 holds the planned path, entry at the top).
IMAGE_TO_CT = np.array([[0.5, 0.0, 0.0, -20.0], [0.0, 0.0, 1.0, 0.0], [0.0, -0.5, 0.0, 29.0], [0, 0, 0, 1.0]])


def in_plane_sweep(reference_to_ct, n=30, needle_invalid=(), with_needle=True, y_step_mm=0.05):
    """A tracked sweep (48 x 64 frames) whose image plane holds the planned path (y moves by
    ``y_step_mm`` per frame from -0.75 mm), with a simulated insertion along the plan as
    NeedleToReference (INVALID at ``needle_invalid``). -> (Sweep, SimulatedInsertion or None)."""
    from planner.guidance.needle_simulation import simulate_insertion
    from planner.guidance.planned_path import planned_path
    from registration.spatial.sweep import Sweep
    rng = np.random.default_rng(1)
    ct_to_reference = np.linalg.inv(np.asarray(reference_to_ct, float))
    image_to_probe = np.diag([0.5, 0.5, 1.0, 1.0])
    p2r = []
    for i in range(n):
        i2c = IMAGE_TO_CT.copy()
        i2c[1, 3] = -0.75 + y_step_mm * i
        p2r.append(ct_to_reference @ i2c @ np.linalg.inv(image_to_probe))
    transforms, statuses, sim = {"ProbeToReference": np.array(p2r)}, {}, None
    if with_needle:
        sim = simulate_insertion(planned_path(plan_dict()), n, reference_to_ct)
        transforms["NeedleToReference"] = sim.needle_to_reference
        ok = np.ones(n, bool)
        ok[list(needle_invalid)] = False
        statuses["NeedleToReference"] = ok
    frames = rng.integers(0, 120, (n, 64, 48), dtype=np.uint8)
    return Sweep(frames, np.arange(n) / 20.0, transforms, statuses, {"ImageToProbe": image_to_probe}), sim


def needle_config(folder: Path) -> str:
    """A PLUS config holding the simulated needle's NeedleTip -> Needle; returns its path."""
    from planner.guidance.needle_simulation import SIMULATED_NEEDLE
    from registration.spatial.transforms import format_matrix
    cfg = Path(folder) / "needle_config.xml"
    cfg.write_text('<PlusConfiguration><CoordinateDefinitions><Transform From="NeedleTip" To="Needle" Matrix="'
                   + format_matrix(SIMULATED_NEEDLE.tip_to_tool()) + '"/></CoordinateDefinitions></PlusConfiguration>')
    return str(cfg)


def plan_folder_with_labels(case: dict) -> str:
    """The case's plan folder with the label map beside plan.json (as ctus plan keeps it)."""
    import shutil
    plan = Path(case["plan"])
    shutil.copy(case["labels"], plan / "labels.nrrd")
    shutil.copy(case["names"], plan / "labels.names.json")
    return str(plan)


def demo_needle_plan(demo_case: Path, out: Path) -> dict:
    """``ctus plan`` of the demo case's lesion_1 into ``out`` (it keeps labels.nrrd) and the case's
    true registration as RESULT-like JSON: {'plan', 'registration', 'reference_to_ct', 'sweep', 'config'}."""
    from planner.cli.main import main
    demo_case, out = Path(demo_case), Path(out)
    plan_dir = out / "plan"
    assert main(["plan", "--ct", str(demo_case / "ct_portal.nrrd"), "--labels", str(demo_case / "labels.nrrd"),
                 "--label-names", str(demo_case / "label_names.json"), "--lesion", "lesion_1", "--no-pdf",
                 "--out", str(plan_dir)]) == 0
    truth = json.loads((demo_case / "truth.json").read_text())
    reg = out / "truth_registration.json"
    reg.write_text(json.dumps({"reference_to_ct": truth["reference_to_ct"]}))
    return {"plan": str(plan_dir), "registration": str(reg), "reference_to_ct": np.asarray(truth["reference_to_ct"]),
            "sweep": str(demo_case / "sweep_lesion_1.igs.mha"),
            "config": str(demo_case / truth["ultrasound"]["config"])}


def start_replay(plan: dict, port: int, *extra: str):
    """A real ``ctus replay`` of the demo lesion sweep with a simulated needle along ``plan``'s
    lesion_1 path on 127.0.0.1:``port`` (starts when a client connects); ``extra``: more options."""
    import subprocess
    import sys
    cmd = [sys.executable, "-m", "planner.cli.main", "replay", "--sweep", plan["sweep"], "--calibration",
           plan["config"], "--port", str(port), "--fps", "30", "--wait-for-client", "60",
           "--needle-path", plan["plan"] + ":lesion_1", "--registration", plan["registration"], *extra]
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
