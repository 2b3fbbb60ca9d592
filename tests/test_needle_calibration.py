"""Needle/stylus calibration: pivot calibration (synthetic and real PLUS recordings), PLUS configs, tool poses."""
import numpy as np
import pytest

from registration.io.sequence_io import load_sweep
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import rigid_matrix
from registration.tracking.needle_tool import NeedleCalibration, calibration_from_config, \
    calibration_from_pivot_recording, tool_to_reference, tracked_tools
from registration.tracking.pivot_calibration import find_pivot_segments, orientation_span_deg, pivot_calibrate, \
    pivot_calibrate_recording


def pivot_poses(tip, pivot, n, rng, cone_deg=30.0, noise_mm=0.0):
    """Marker poses whose ``tip`` (marker frame) sits on ``pivot`` (Reference), rotating in a cone."""
    out = []
    for _ in range(n):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        ang = np.radians(rng.uniform(-cone_deg, cone_deg))
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        r = np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * k @ k
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = pivot - r @ tip + rng.normal(scale=noise_mm, size=3)
        out.append(m)
    return np.array(out)


def test_pivot_recovers_a_known_tip_offset():
    rng = np.random.default_rng(0)
    tip, pivot = np.array([12.0, -3.5, 171.25]), np.array([40.0, 80.0, -300.0])
    res = pivot_calibrate(pivot_poses(tip, pivot, 200, rng, noise_mm=0.2))
    assert np.linalg.norm(res.tip_in_marker_mm - tip) < 0.1
    assert np.linalg.norm(res.pivot_in_reference_mm - pivot) < 0.1
    assert 0.15 < res.rms_mm < 0.4 and res.n_poses == 200 and res.orientation_span_deg > 30
    exact = pivot_calibrate(pivot_poses(tip, pivot, 20, rng))
    assert np.linalg.norm(exact.tip_in_marker_mm - tip) < 1e-6 and exact.rms_mm < 1e-6
    # the 4x4 result: translation = tip, z axis along the marker -> tip line
    m = exact.tip_to_marker()
    assert np.allclose(m[:3, 3], tip) and np.allclose(m[:3, 2], tip / np.linalg.norm(tip))
    assert np.allclose(m[:3, :3].T @ m[:3, :3], np.eye(3), atol=1e-9)


def test_pivot_refuses_poses_that_do_not_rotate():
    rng = np.random.default_rng(1)
    poses = pivot_poses(np.array([0, 0, 150.0]), np.zeros(3), 50, rng, cone_deg=3.0)
    assert orientation_span_deg(poses) < 15
    with pytest.raises(InputError, match="rotated only"):
        pivot_calibrate(poses)
    with pytest.raises(InputError, match="at least 4 poses"):
        pivot_calibrate(poses[:3])


def test_pivoting_stretches_found_in_a_longer_recording():
    rng = np.random.default_rng(2)
    tip = np.array([5.0, 2.0, 140.0])
    moving = np.array([rigid_matrix([*rng.uniform(-40, 40, 3), *rng.uniform(-100, 100, 3)]) for _ in range(40)])
    rec = np.concatenate([moving, pivot_poses(tip, np.array([0, 0, 0.0]), 60, rng, noise_mm=0.1), moving,
                          pivot_poses(tip, np.array([50.0, 20, 10]), 60, rng, noise_mm=0.1), moving[:20]])
    segs = find_pivot_segments(rec, window=20)
    assert len(segs) == 2 and segs[0][0] >= 40 and segs[0][1] <= 100 and segs[1][0] >= 140
    res = pivot_calibrate_recording(rec, window=20)
    assert np.linalg.norm(res.tip_in_marker_mm - tip) < 0.1 and len(res.pivots_in_reference_mm) == 2
    with pytest.raises(InputError, match="no pivoting found"):
        pivot_calibrate_recording(moving)


def test_real_plus_landmark_recording_pivots(shared_data):
    """PLUS's phantom-landmark recording: the stylus pivots on each of 8 landmarks.

    Compared with the StylusTipToStylus of the PLUS config that goes with it
    (PLUS's own pivot calibration, Error 0.462 mm, from another session).
    """
    seq = shared_data("plus", "sequences", "EightLandmarkPointsTrackedForPhantomRegistration.igs.mha")
    cfg = shared_data("plus", "configs", "PlusDeviceSet_fCal_Sim_RecordPhantomLandmarks.xml")
    cal, res = calibration_from_pivot_recording(seq, tool="Stylus")
    plus = calibration_from_config(cfg, tool="Stylus")
    diff = float(np.linalg.norm(cal.tip_mm - plus.tip_mm))
    print(f"\nreal pivot calibration: tip {np.round(cal.tip_mm, 2)} mm, RMS {res.rms_mm:.2f} mm, "
          f"{res.n_poses} poses in {len(res.segments)} pivots; PLUS config tip {np.round(plus.tip_mm, 2)} "
          f"(error {plus.error_mm} mm): {diff:.2f} mm apart")
    assert len(res.segments) >= 8 and res.rms_mm < 1.0
    assert diff < 3.0
    assert float(np.degrees(np.arccos(cal.axis @ plus.axis))) < 2.0


@pytest.mark.parametrize("name", ["SpinePhantomFreehand", "WaterTankBottomTranslationCombined",
                                  "fCal_Test_Calibration_3NWires_fCal2.0"])
def test_real_recordings_without_pivoting_are_refused(shared_data, name):
    seq = shared_data("plus", "sequences", f"{name}.igs.mha")
    with pytest.raises(InputError, match="no pivoting found"):
        calibration_from_pivot_recording(seq, tool="Stylus")


def test_config_calibration_and_what_to_supply(shared_data, tmp_path):
    cfg = shared_data("plus", "configs", "PlusDeviceSet_fCal_Sim_RecordPhantomLandmarks.xml")
    cal = calibration_from_config(cfg, tool="Stylus")
    assert cal.tip_mm == pytest.approx([108.565, 7.77385, 2.5389]) and cal.error_mm == pytest.approx(0.462016)
    assert cal.axis == pytest.approx(cal.tip_mm / np.linalg.norm(cal.tip_mm))
    with pytest.raises(InputError) as e:
        calibration_from_config(cfg)                       # a needle was asked for
    msg = str(e.value)
    assert "no NeedleTipToNeedle" in msg and "StylusTipToStylus" in msg and "--pivot-recording" in msg
    assert "--tool Stylus" in msg and str(cfg) in msg
    xml = tmp_path / "needle.xml"
    xml.write_text('<PlusConfiguration><CoordinateDefinitions><Transform From="NeedleTip" To="Needle" '
                   'Matrix="0 0 1 2  0 1 0 0  -1 0 0 150  0 0 0 1"/></CoordinateDefinitions></PlusConfiguration>')
    auto = calibration_from_config(xml)
    assert auto.tip_mm == pytest.approx([2, 0, 150]) and auto.axis @ [0, 0, 1] > 0.99
    x_axis = calibration_from_config(xml, axis="x")
    assert x_axis.axis == pytest.approx([0, 0, -1])
    with pytest.raises(InputError, match="not one of"):
        calibration_from_config(xml, axis="w")
    with pytest.raises(InputError, match="cannot be taken"):
        NeedleCalibration.from_tip_to_tool(np.eye(4))
    back = NeedleCalibration.from_tip_to_tool(auto.tip_to_tool(), axis="z")
    assert back.tip_mm == pytest.approx(auto.tip_mm) and back.axis == pytest.approx(auto.axis)


def test_tool_poses_direct_and_through_the_tracker(shared_data):
    n = 5
    r2t = np.array([rigid_matrix([i, 2, 3, 10, 20 * i, 30]) for i in range(n)])
    n2r = np.array([rigid_matrix([0, i, 0, 1, 2, i]) for i in range(n)])
    ok = np.array([True, True, False, True, True])
    sweep = Sweep(np.zeros((n, 0, 0), np.uint8), np.arange(n) * 0.1,
                  {"NeedleToTracker": r2t @ n2r, "ReferenceToTracker": r2t}, {"NeedleToTracker": ok})
    mats, valid = tool_to_reference(sweep)
    assert valid.tolist() == ok.tolist() and np.allclose(mats[valid], n2r[valid]) and np.isnan(mats[2]).all()
    assert tracked_tools(sweep) == ["Needle"]
    with pytest.raises(InputError, match="no StylusToReference") as e:
        tool_to_reference(sweep, "Stylus")
    assert "--tool (Needle)" in str(e.value)
    spine = load_sweep(shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha"))
    assert tracked_tools(spine) == ["Stylus"]
    m, v = tool_to_reference(spine, "Stylus")
    expect = np.linalg.inv(spine.transforms["ReferenceToTracker"][0]) @ spine.transforms["StylusToTracker"][0]
    assert v.all() and np.allclose(m[0], expect)
