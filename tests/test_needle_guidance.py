"""Needle guidance engine on hand-built geometry with exact answers (tests/_needle_helpers.py).

Distances are compared with the analytic values of the clearance rule
(distance to the nearest voxel centre, trilinear between centres) to 0.1 mm
(they are exact here: the fields are linear along the axes the needle uses),
angles to 0.1 deg.
"""
import math

import numpy as np
import pytest

from _needle_helpers import ENTRY, TARGET, needle_labels, needle_pose, plan_dict
from planner.guidance.guidance_state import GuidanceState
from planner.guidance.needle_guide import NeedleGuide, compute_guidance
from planner.guidance.needle_simulation import SIMULATED_NEEDLE, nearest_vessel_direction, rotation_taking, \
    simulate_insertion
from planner.guidance.planned_path import PlannedPath, plan_needle, planned_path
from planner.guidance.risk_field import build_risk_field
from registration.spatial.errors import InputError
from registration.spatial.transforms import rigid_matrix
from registration.tracking.needle_tool import NeedleCalibration

RADIUS = 0.5 * 1.27                      # 18G
HALF_DIAG = 0.5 * math.sqrt(3 * 0.25)    # 0.5 mm voxels
VESSEL_MARGIN = 5.0 + RADIUS + HALF_DIAG
HARD_MARGIN = RADIUS + HALF_DIAG


@pytest.fixture(scope="module")
def risk():
    return build_risk_field(needle_labels(), needle_radius_mm=RADIUS, vessel_margin_mm=5.0,
                            roi_points=[ENTRY, TARGET], target_name="lesion_1")


@pytest.fixture(scope="module")
def path():
    return planned_path(plan_dict(), None)


def down(theta_deg):
    """Unit direction tilted from -z towards +x by theta."""
    t = math.radians(theta_deg)
    return np.array([math.sin(t), 0.0, -math.cos(t)])


def test_risk_field_margins_and_structures(risk):
    by = {s.name: s for s in risk.structures}
    assert set(by) == {"portal_vein", "bone"}                      # liver and the lesion are not risks
    assert by["portal_vein"].margin_mm == pytest.approx(VESSEL_MARGIN)
    assert by["portal_vein"].in_target_margin_mm == pytest.approx(HARD_MARGIN)
    assert by["bone"].margin_mm == pytest.approx(HARD_MARGIN)
    d = risk.distances([[-5.0, 0.0, 20.0], [-10.0, 0.0, 5.0], [0.0, 10.0, 0.0]])
    assert d[risk.names.index("portal_vein")][:2] == pytest.approx([7.0, 12.0], abs=1e-4)
    assert d[risk.names.index("bone")] == pytest.approx([15.0, 15.0, 5.0], abs=1e-4)
    assert risk.in_target([[-5, 0, 0], [-5, 0, 3.9], [-5, 0, 4.6]]).tolist() == [True, True, False]


def test_straight_needle_on_the_plan(risk, path):
    g = compute_guidance(np.array([-5.0, 0.0, 20.0]), down(0), path, risk)
    assert g["tip_to_target_mm"] == pytest.approx(20.0, abs=0.1)
    assert g["miss_mm"] == pytest.approx(0.0, abs=0.1)
    assert g["angle_deg"] == pytest.approx(0.0, abs=0.1)
    assert g["tip_clearance_mm"]["portal_vein"] == pytest.approx(7.0, abs=0.1)
    assert g["path_clearance_mm"]["portal_vein"] == pytest.approx(7.0, abs=0.1)
    assert g["tip_clearance_mm"]["bone"] == pytest.approx(15.0, abs=0.1)
    assert g["nearest_structure"] == "portal_vein"
    assert not g.get("breach", False)


def test_tilted_needle_path_breach_before_the_tip_reaches_the_margin(risk, path):
    theta = 20.0
    tip = np.array([-5.0, 0.0, 20.0])
    g = compute_guidance(tip, down(theta), path, risk)
    depth = 20 * math.cos(math.radians(theta))
    x_end = -5.0 + depth * math.sin(math.radians(theta))
    assert g["angle_deg"] == pytest.approx(theta, abs=0.1)
    assert g["miss_mm"] == pytest.approx(20 * math.sin(math.radians(theta)), abs=0.1)
    assert g["depth_to_target_mm"] == pytest.approx(depth, abs=0.1)
    assert g["tip_clearance_mm"]["portal_vein"] == pytest.approx(7.0, abs=0.1)   # tip itself is clear
    assert g["path_clearance_mm"]["portal_vein"] == pytest.approx(2.0 - x_end, abs=0.1)
    assert g["breach"] and g["breach_where"] == "path" and g["breach_structure"] == "portal_vein"
    assert g["breach_distance_mm"] == pytest.approx(2.0 - x_end, abs=0.1)
    assert g["breach_margin_mm"] == pytest.approx(VESSEL_MARGIN, abs=1e-6)
    # first sample (every 0.5 mm) where 2 - x(s) <= margin
    s_first = math.ceil(((2.0 - VESSEL_MARGIN) + 5.0) / math.sin(math.radians(theta)) / 0.5) * 0.5
    assert g["breach_ahead_mm"] == pytest.approx(s_first, abs=1e-6)


def test_tip_breach_names_the_structure_and_the_distance(risk, path):
    g = compute_guidance(np.array([-1.0, 0.0, 10.0]), down(0), path, risk)   # 3 mm from the vessel voxels
    assert g["breach"] and g["breach_where"] == "tip"
    assert g["breach_structure"] == "portal_vein" and g["breach_distance_mm"] == pytest.approx(3.0, abs=0.1)
    g = compute_guidance(np.array([-5.0, 14.0, 10.0]), down(0), path, risk)  # 1 mm below the bone slab
    assert g["breach"] and g["breach_where"] == "tip" and g["breach_structure"] == "bone"
    assert g["breach_distance_mm"] == pytest.approx(1.0, abs=0.1)


def test_past_the_target_has_no_path_ahead(risk, path):
    g = compute_guidance(np.array([-5.0, 0.0, -3.0]), down(0), path, risk)
    assert g["depth_to_target_mm"] == pytest.approx(-3.0, abs=0.1)
    assert g["miss_mm"] == pytest.approx(3.0, abs=0.1) and g["lateral_mm"] == pytest.approx(0.0, abs=0.1)
    assert g["tip_to_target_mm"] == pytest.approx(3.0, abs=0.1)


def test_engine_with_calibration_registration_and_image_plane(risk, path):
    """The whole chain: NeedleToReference + calibration + reference_to_ct, plane offset from image_to_ct."""
    reference_to_ct = rigid_matrix([10, -20, 5, 30, 12, -7])
    cal = NeedleCalibration(np.array([3.0, -2.0, 150.0]), np.array([0.02, -0.01, 1.0]), source="test")
    tip_ct = np.array([-5.0, 0.0, 20.0])
    d_ct = down(10)
    needle_to_ct = needle_pose(tip_ct, d_ct, cal.tip_mm, cal.axis, roll_deg=37)
    needle_to_reference = np.linalg.inv(reference_to_ct) @ needle_to_ct
    image_to_ct = np.array([[0.5, 0, 0, -20.0], [0, 0, 0, 2.0], [0, -0.5, 0, 25.0], [0, 0, 0, 1]])
    image_to_ct[:3, 2] = [0, 1, 0]            # third column: the plane normal (not used for pixels)
    image_to_reference = np.linalg.inv(reference_to_ct) @ image_to_ct
    guide = NeedleGuide(path, risk, reference_to_ct, cal)
    st = guide.update(needle_to_reference, timestamp=100.0, received=1000.0,
                      image_to_reference=image_to_reference, image_shape=(200, 100))
    assert st.valid and not st.stale and st.reason == ""
    assert np.allclose(st.tip_ct, tip_ct, atol=1e-6) and np.allclose(st.direction_ct, d_ct, atol=1e-9)
    assert st.angle_deg == pytest.approx(10.0, abs=0.1)
    assert st.plane_offset_mm == pytest.approx(-2.0, abs=0.1)
    assert st.needle_plane_angle_deg == pytest.approx(0.0, abs=0.1)
    assert st.tip_in_image_px == pytest.approx((30.0, 10.0), abs=0.1) and st.tip_in_image
    j = st.to_json()
    for key in ("t", "tip_ct", "tip_to_target_mm", "miss_mm", "angle_deg", "breach", "breach_structure",
                "breach_distance_mm", "stale"):
        assert key in j
    assert j["t"] == 0.0 and j["stale"] is False and len(j["tip_ct"]) == 3


def test_stale_invalid_missing_and_uncalibrated_needle_show_no_numbers(risk, path):
    cal = NeedleCalibration(np.array([0.0, 0.0, 160.0]), np.array([0.0, 0.0, 1.0]))
    pose = needle_pose([-5.0, 0.0, 20.0], down(0))
    guide = NeedleGuide(path, risk, np.eye(4), cal)
    fresh = guide.update(pose, timestamp=0.0, received=10.0)
    assert fresh.valid and guide.current(10.1) is fresh
    stale = guide.current(10.25)
    assert stale.stale and not stale.valid and "stale" in stale.reason and "250 ms" in stale.reason
    assert stale.tip_ct is None and stale.tip_to_target_mm is None and stale.to_json()["tip_ct"] is None
    invalid = guide.update(pose, ok=False, timestamp=0.3, received=10.3)
    assert not invalid.valid and "INVALID" in invalid.reason and invalid.stale  # last valid 300 ms ago
    assert invalid.miss_mm is None and not invalid.breach
    missing = guide.update(None, timestamp=0.4, received=10.4)
    assert not missing.valid and "no NeedleToReference" in missing.reason
    nocal = NeedleGuide(path, risk, np.eye(4), None, missing_calibration_reason="no Needle calibration")
    st = nocal.update(pose, timestamp=0.0, received=1.0)
    assert not st.valid and st.reason == "no Needle calibration" and st.tip_ct is None
    assert "NEEDLE HIDDEN" in st.line()


def test_simulated_insertion_ends_on_the_target_and_deviates_towards_the_vessel(risk, path):
    r2c = rigid_matrix([5, 5, -10, 20, -10, 40])
    sim = simulate_insertion(path, 50, r2c, calibration=SIMULATED_NEEDLE)
    tip_ct = (r2c @ sim.needle_to_reference[-1])[:3] @ np.append(SIMULATED_NEEDLE.tip_mm, 1.0)
    assert np.linalg.norm(tip_ct - TARGET) < 1e-6
    assert np.linalg.norm(sim.tip_ct[0] - (ENTRY + 20.0 * path.direction * -1)) < 1e-6   # 20 mm outside
    u, name, clear = nearest_vessel_direction(path, risk)
    assert name == "portal_vein" and u == pytest.approx([1.0, 0.0, 0.0], abs=0.05)
    assert clear == pytest.approx(7.0, abs=0.1)
    dev = simulate_insertion(path, 50, r2c, deviation_mm=6.0, risk=risk)
    assert dev.deviation_towards == "portal_vein"
    assert np.linalg.norm(dev.aim_ct - TARGET) == pytest.approx(6.0, abs=1e-6)
    assert (dev.aim_ct - TARGET) @ path.direction == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError, match="label map"):
        simulate_insertion(path, 50, r2c, deviation_mm=6.0, risk=None)


def test_rotation_taking_and_plan_reading():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a, b = rng.normal(size=3), rng.normal(size=3)
        r = rotation_taking(a, b)
        assert np.allclose(r @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-9)
        assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.linalg.det(r) == pytest.approx(1.0)
    a = np.array([0.0, 0.0, 1.0])
    assert np.allclose(rotation_taking(a, -a) @ a, -a)
    plan = plan_dict()
    assert plan_needle(plan) == pytest.approx((RADIUS, 5.0))
    with pytest.raises(InputError, match="no lesion 'lesion_9'"):
        planned_path(plan, "lesion_9")
    with pytest.raises(InputError, match="trajectories, not 3"):
        planned_path(plan, "lesion_1", 3)
    assert isinstance(planned_path(plan), PlannedPath)


def test_guidance_state_line_and_json_round_trip(risk, path):
    st = GuidanceState(1.5, 11.5, 11.5, True, False, "", "lesion_1", tip_ct=np.array([1.0, 2.0, 3.0]),
                       direction_ct=np.array([0.0, 0.0, -1.0]), tip_to_target_mm=12.0, miss_mm=1.0,
                       angle_deg=2.0, breach=True, breach_where="path", breach_structure="portal_vein",
                       breach_distance_mm=3.0, breach_margin_mm=6.1, breach_ahead_mm=8.0)
    assert "BREACH portal_vein 3.0 mm" in st.line() and "8 mm ahead" in st.line()
    j = st.to_json()
    assert j["breach_structure"] == "portal_vein" and j["tip_ct"] == [1.0, 2.0, 3.0]


def test_tip_outside_the_evaluated_region_says_so(risk, path):
    g = compute_guidance(np.array([-5.0, 0.0, 80.0]), down(0), path, risk)   # 80 mm above, off the grid
    assert g["outside_region"] and "portal_vein" not in g["tip_clearance_mm"]
    assert g["path_clearance_mm"]["portal_vein"] == pytest.approx(7.0, abs=0.1)  # the path inside is evaluated
    assert g["tip_to_target_mm"] == pytest.approx(80.0, abs=0.1)


def test_vessel_the_plan_accepted_closer_breaches_only_at_the_floor(path):
    """The planned path passes 7 mm from portal_vein: with a 7 mm soft margin (8.07 mm with the needle
    and voxel terms) the plan accepted it with a caution, so along the plan the state is caution, not
    breach; the breach comes at the plan's 2 mm floor (3.07 mm); structures the plan kept clear of
    keep the soft margin."""
    risk = build_risk_field(needle_labels(), needle_radius_mm=RADIUS, vessel_margin_mm=7.0, vessel_floor_mm=2.0,
                            planned_segment=[ENTRY, TARGET], roi_points=[ENTRY, TARGET], target_name="lesion_1")
    by = {s.name: s for s in risk.structures}
    assert by["portal_vein"].margin_mm == pytest.approx(2.0 + HARD_MARGIN)
    assert by["portal_vein"].caution_mm == pytest.approx(7.0 + HARD_MARGIN)
    assert by["bone"].margin_mm == pytest.approx(HARD_MARGIN) and by["bone"].caution_mm is None
    assert any("portal_vein: the plan passes 7.0 mm" in n for n in risk.notes)
    on_plan = compute_guidance(np.array([-5.0, 0.0, 20.0]), down(0), path, risk)
    assert not on_plan.get("breach", False)
    assert on_plan["caution"] and on_plan["caution_structure"] == "portal_vein"
    assert on_plan["caution_distance_mm"] == pytest.approx(7.0, abs=0.1)
    # tip 2.9 mm from the vessel's nearest voxel centre (x = 2): inside the floor margin
    close = compute_guidance(np.array([-0.9, 0.0, 20.0]), down(0), path, risk)
    assert close["breach"] and close["breach_where"] == "tip" and close["breach_structure"] == "portal_vein"
    assert close["breach_margin_mm"] == pytest.approx(2.0 + HARD_MARGIN)
    # without the floor (older plans) the soft margin breaches along the plan, as before
    strict = build_risk_field(needle_labels(), needle_radius_mm=RADIUS, vessel_margin_mm=7.0,
                              roi_points=[ENTRY, TARGET], target_name="lesion_1")
    assert compute_guidance(np.array([-5.0, 0.0, 20.0]), down(0), path, strict)["breach"]


def test_least_risk_path_is_never_guided_as_safe():
    plan = plan_dict()
    plan["lesions"][0]["trajectories"][0]["safe"] = False
    guide = NeedleGuide(planned_path(plan, None), None, np.eye(4),
                        NeedleCalibration(tip_mm=np.array([0.0, 0.0, 160.0]), axis=np.array([0.0, 0.0, 1.0])))
    state = guide.update(needle_pose(np.array([-5.0, 0.0, 20.0]), down(0)), timestamp=1.0)
    assert state.valid and not state.planned_path_safe
    assert "PLANNED PATH UNSAFE" in state.line() and state.to_json()["planned_path_safe"] is False
