"""``ctus guide`` and ``ctus replay --needle-path``: recorded and live (real sockets on 127.0.0.1), bad input,
and the demo case end to end (slow)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _needle_helpers import TARGET, write_case
from planner.cli.main import main
from planner.guidance.needle_simulation import SIMULATED_NEEDLE, simulate_insertion
from planner.guidance.planned_path import planned_path, read_plan
from registration.io.seq_mha_write import write_sequence
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import format_matrix, rigid_matrix

REFERENCE_TO_CT = rigid_matrix([4, -6, 9, 25, -10, 15])
CLI = [sys.executable, "-m", "planner.cli.main"]


def probe_sweep(n=40, with_needle=True, needle_invalid=()):
    """A small tracked sweep over the hand-built case, optionally with NeedleToReference per frame."""
    rng = np.random.default_rng(0)
    p2c = np.stack([rigid_matrix([90, 0, 0, -20 + 0.2 * i, 5, 30]) for i in range(n)])
    transforms = {"ProbeToReference": np.linalg.inv(REFERENCE_TO_CT) @ p2c}
    statuses = {}
    if with_needle:
        plan, _ = read_plan(CASE["plan"])
        sim = simulate_insertion(planned_path(plan), n, REFERENCE_TO_CT)
        transforms["NeedleToReference"] = sim.needle_to_reference
        ok = np.ones(n, bool)
        ok[list(needle_invalid)] = False
        statuses["NeedleToReference"] = ok
    return Sweep(rng.integers(0, 255, (n, 32, 48), dtype=np.uint8), np.arange(n) / 20.0, transforms, statuses,
                 {"ImageToProbe": np.diag([0.5, 0.5, 1.0, 1.0])})


CASE = {}


@pytest.fixture(scope="module", autouse=True)
def case(tmp_path_factory):
    CASE.update(write_case(tmp_path_factory.mktemp("needle_case"), REFERENCE_TO_CT))
    folder = Path(CASE["plan"]).parent
    cfg = folder / "needle_config.xml"
    cfg.write_text('<PlusConfiguration><CoordinateDefinitions><Transform From="NeedleTip" To="Needle" Matrix="'
                   + format_matrix(SIMULATED_NEEDLE.tip_to_tool()) + '"/></CoordinateDefinitions></PlusConfiguration>')
    CASE["config"] = str(cfg)
    return CASE


def guide_args(*extra):
    return ["guide", "--registration", CASE["registration"], "--plan", CASE["plan"], "--labels", CASE["labels"],
            "--label-names", CASE["names"], *extra]


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_guide_on_a_recorded_sequence(tmp_path, capsys):
    path = tmp_path / "needle.igs.mha"
    write_sequence(probe_sweep(needle_invalid=(12,)), path)
    assert main(guide_args("--sweep", str(path), "--calibration", CASE["config"], "--json")) == 0
    lines = json_lines(capsys.readouterr().out)
    assert len(lines) == 40
    assert not lines[12]["valid"] and "INVALID" in lines[12]["reason"] and lines[12]["tip_ct"] is None
    valid = [x for x in lines if x["valid"]]
    assert len(valid) == 39 and not any(x["breach"] for x in valid)
    assert np.linalg.norm(np.array(valid[-1]["tip_ct"]) - TARGET) < 1.0
    assert all(x["miss_mm"] < 0.1 and x["angle_deg"] < 0.1 for x in valid)
    assert valid[0]["plane_offset_mm"] is not None          # the sweep's image plane is known
    assert lines[-1]["t"] == pytest.approx(39 / 20.0)


def test_guide_reads_the_plan_folders_own_labels(tmp_path, capsys):
    """Without --labels, ctus guide uses PLAN_DIR/labels.nrrd (written by ctus plan); a plan folder
    without it is a clear error saying what to pass."""
    import shutil
    path = tmp_path / "needle.igs.mha"
    write_sequence(probe_sweep(n=5), path)
    plan_dir = tmp_path / "plan"
    shutil.copytree(CASE["plan"], plan_dir)
    args = ["guide", "--registration", CASE["registration"], "--plan", str(plan_dir), "--sweep", str(path),
            "--calibration", CASE["config"], "--json"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "holds no label map" in err and "--labels" in err and "labels.nrrd" in err
    shutil.copy(CASE["labels"], plan_dir / "labels.nrrd")
    shutil.copy(CASE["names"], plan_dir / "labels.names.json")
    assert main(args) == 0
    lines = json_lines(capsys.readouterr().out)
    assert len(lines) == 5 and lines[-1]["path_clearance_mm"]["portal_vein"] > 0


def test_guide_readable_lines_and_pivot_recording(tmp_path, capsys, shared_data):
    """--pivot-recording: the needle calibrated from PLUS's real stylus pivoting recording (--tool Stylus)."""
    seq = shared_data("plus", "sequences", "EightLandmarkPointsTrackedForPhantomRegistration.igs.mha")
    sweep = probe_sweep(n=10)
    sweep.transforms["StylusToReference"] = sweep.transforms.pop("NeedleToReference")
    sweep.statuses["StylusToReference"] = sweep.statuses.pop("NeedleToReference")
    write_sequence(sweep, tmp_path / "stylus.igs.mha")
    assert main(guide_args("--sweep", str(tmp_path / "stylus.igs.mha"), "--pivot-recording", str(seq),
                           "--tool", "Stylus")) == 0
    out, err = capsys.readouterr()
    assert "pivot calibration of Stylus" in err and "RMS" in err
    lines = out.splitlines()
    assert len(lines) == 10 and all(" tip (" in x and "to target" in x for x in lines)


def test_guide_bad_input_says_what_to_supply(tmp_path, capsys):
    path = tmp_path / "needle.igs.mha"
    write_sequence(probe_sweep(), path)
    assert main(guide_args("--sweep", str(path))) == 2                 # no calibration anywhere
    err = capsys.readouterr().err
    assert "no Needle calibration" in err and "--calibration" in err and "--pivot-recording" in err
    write_sequence(probe_sweep(with_needle=False), tmp_path / "probe_only.igs.mha")
    assert main(guide_args("--sweep", str(tmp_path / "probe_only.igs.mha"), "--calibration", CASE["config"])) == 2
    err = capsys.readouterr().err
    assert "no NeedleToReference" in err and "ProbeToReference" in err
    assert main(guide_args("--sweep", str(path), "--calibration", CASE["labels"])) == 2
    assert "not valid XML" in capsys.readouterr().err
    assert main(guide_args("--sweep", str(path), "--lesion", "lesion_7")) == 2
    assert "no lesion 'lesion_7'" in capsys.readouterr().err
    assert main(guide_args("--connect", "nohost")) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def run_replay_and_guide(sweep_path, replay_extra, guide_extra, port, timeout=60):
    replay = subprocess.Popen(CLI + ["replay", "--sweep", str(sweep_path), "--port", str(port), "--fps", "30",
                                     "--wait-for-client", "30", *replay_extra], stderr=subprocess.PIPE, text=True)
    try:
        guide = subprocess.run(CLI + guide_args("--connect", f"127.0.0.1:{port}", "--json", "--exit-on-disconnect",
                                                "--duration", str(timeout - 10), *guide_extra),
                               capture_output=True, text=True, timeout=timeout)
    finally:
        replay_err = replay.communicate(timeout=30)[1]
    assert replay.returncode == 0, replay_err
    assert guide.returncode == 0, guide.stderr
    return json_lines(guide.stdout), replay_err, guide.stderr


@pytest.mark.slow
def test_live_replay_needle_and_guide(tmp_path, free_port):
    """ctus replay --needle-path -> ctus guide --connect: calibration from the stream, tip ends on the target."""
    write_sequence(probe_sweep(with_needle=False), tmp_path / "s.igs.mha")
    lines, replay_err, _ = run_replay_and_guide(
        tmp_path / "s.igs.mha", ["--needle-path", CASE["plan"] + ":lesion_1", "--registration",
                                 CASE["registration"]], [], free_port())
    assert "tools: NeedleToReference" in replay_err and "needle along lesion_1" in replay_err
    valid = [x for x in lines if x["valid"]]
    assert len(valid) >= 36 and not any(x["breach"] for x in valid)
    assert np.linalg.norm(np.array(valid[-1]["tip_ct"]) - TARGET) < 1.0
    assert all(x["lag_ms"] is not None and x["lag_ms"] < 1000 for x in valid)


@pytest.mark.slow
def test_live_without_needle_hides_guidance_and_says_why(tmp_path, free_port):
    write_sequence(probe_sweep(with_needle=False), tmp_path / "s.igs.mha")
    lines, _, _ = run_replay_and_guide(tmp_path / "s.igs.mha", [], ["--calibration", CASE["config"]], free_port())
    assert lines and not any(x["valid"] for x in lines)
    assert any("no NeedleToReference received" in x["reason"] for x in lines)


@pytest.mark.slow
def test_live_needle_lost_is_marked_stale(tmp_path, free_port):
    write_sequence(probe_sweep(n=60, with_needle=False), tmp_path / "s.igs.mha")
    lines, replay_err, _ = run_replay_and_guide(
        tmp_path / "s.igs.mha", ["--needle-path", CASE["plan"], "--registration", CASE["registration"],
                                 "--stop-needle-after", "0.8"], [], free_port())
    assert "needle no longer sent" in replay_err
    first_stale = next(i for i, x in enumerate(lines) if x["stale"])
    assert any(x["valid"] for x in lines[:first_stale])
    assert all(not x["valid"] and x["tip_ct"] is None for x in lines[first_stale:])
    assert "stale" in lines[first_stale]["reason"]


@pytest.mark.slow
def test_demo_case_plan_replay_and_guide(tmp_path, demo_case, free_port):
    """The demo case: ctus plan, then ctus replay --needle-path | ctus guide, along the plan and 6 mm off."""
    from planner.anatomy.structures import risk_class_of
    case = Path(demo_case)
    plan_dir = tmp_path / "plan"
    assert main(["plan", "--ct", str(case / "ct_portal.nrrd"), "--labels", str(case / "labels.nrrd"),
                 "--label-names", str(case / "label_names.json"), "--lesion", "lesion_1", "--no-pdf",
                 "--out", str(plan_dir)]) == 0
    truth = json.loads((case / "truth.json").read_text())
    reg = tmp_path / "truth_registration.json"
    reg.write_text(json.dumps({"reference_to_ct": truth["reference_to_ct"]}))
    CASE.update(registration=str(reg), plan=str(plan_dir), labels=str(case / "labels.nrrd"),
                names=str(case / "label_names.json"))
    from registration.io.labelmap_io import load_labels
    kept, given = load_labels(plan_dir / "labels.nrrd"), load_labels(case / "labels.nrrd", case / "label_names.json")
    assert kept.names == given.names and np.array_equal(kept.array, given.array)   # the plan keeps its labels
    plan, _ = read_plan(plan_dir)
    target = np.array(planned_path(plan, "lesion_1").target_ct)
    sweep = case / "sweep_lesion_1.igs.mha"
    calib = str(next(case.glob("PlusDeviceSet_*.xml")))
    common = ["--calibration", calib, "--needle-path", f"{plan_dir}:lesion_1", "--registration", str(reg)]
    lines, _, guide_err = run_replay_and_guide(sweep, common, ["--lesion", "lesion_1"], free_port(), timeout=90)
    valid = [x for x in lines if x["valid"]]
    print(f"\nalong the plan: {len(valid)} guided frames, final tip {np.linalg.norm(np.array(valid[-1]['tip_ct']) - target):.2f} mm "
          f"from the target, median lag {np.median([x['lag_ms'] for x in valid]):.1f} ms")
    assert len(valid) >= 90 and not any(x["breach"] for x in valid)
    assert np.linalg.norm(np.array(valid[-1]["tip_ct"]) - target) < 1.0
    lines, replay_err, _ = run_replay_and_guide(
        sweep, common + ["--needle-deviation-mm", "6"],     # the plan folder's own labels.nrrd
        ["--lesion", "lesion_1"], free_port(), timeout=90)
    valid = [x for x in lines if x["valid"]]
    first = next(i for i, x in enumerate(valid) if x["breach"])
    tip_in = next((i for i, x in enumerate(valid) if x["breach"] and x["breach_where"] == "tip"), None)
    name = valid[first]["breach_structure"]
    print(f"6 mm off: breach '{name}' first at guided frame {first} ({valid[first]['breach_where']}, "
          f"{valid[first]['breach_distance_mm']} mm), tip in the margin at frame {tip_in}")
    assert f"towards {name}" in replay_err
    assert risk_class_of(name) == "vessel" and valid[first]["breach_where"] == "path"
    assert tip_in is not None and first < tip_in
    assert valid[-1]["miss_mm"] == pytest.approx(6.0, abs=0.5)


def test_live_needle_without_any_calibration_is_a_clear_error():
    """The stream carries NeedleToReference but nobody supplies NeedleTipToNeedle: hidden, then an error."""
    import time
    from planner.guidance.guidance_stream import LiveGuidance
    from planner.guidance.needle_guide import NeedleGuide
    from registration.live.igtl_server import IgtlServer, SweepStreamer
    from registration.spatial.errors import InputError
    plan, _ = read_plan(CASE["plan"])
    guide = NeedleGuide(planned_path(plan), None, REFERENCE_TO_CT, None, missing_calibration_reason="no calibration")
    seen = []
    with IgtlServer(port=0) as server:
        session = LiveGuidance(guide, "127.0.0.1", server.port, calibration_wait_s=0.3).start()
        t = time.monotonic()
        while server.n_clients == 0 and time.monotonic() - t < 3:
            time.sleep(0.01)
        streamer = SweepStreamer(probe_sweep(n=200), server, fps=50).start()
        try:
            with pytest.raises(InputError) as e:
                for state in session.states(duration_s=5):
                    seen.append(state)
        finally:
            streamer.stop()
            session.stop()
    assert "--calibration" in str(e.value) and "--pivot-recording" in str(e.value)
    assert seen and not any(s.valid for s in seen) and any(s.reason == "no calibration" for s in seen)
