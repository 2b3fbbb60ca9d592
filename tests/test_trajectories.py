"""Trajectories: every path proposed as safe re-checked independently against the truth label map.

The independent check (tests/planning_phantom.py) implements the clearance rule of
DESIGN section 7 itself (scipy distance transforms of each structure, sampled
trilinearly every 0.5 mm from both ends): it uses none of the planner's distance
maps or trees. Every trajectory without ``"safe": false`` must pass it, and its
reported clearances must not exceed the measured ones. Outcomes are asserted on
the planner's codes (rejection and reason codes), not on its wording.
"""
import numpy as np
import pytest
from scipy.spatial import cKDTree

from planner.case.case_plan import plan_case
from planner.paths import ct_guidance
from planner.paths.constraints import GAUGE_OD_MM, REJECT_REASONS, Constraints
from planner.paths.planning_maps import nearest_voxel
from planner.paths.trajectories import evaluate, fibonacci_sphere, select_diverse
from planning_phantom import NAMES, independent_violations, make_phantom, planned_phantom


@pytest.fixture(scope="module")
def phantom():
    return planned_phantom()[:2]


@pytest.fixture(scope="module")
def phantom_plan():
    return planned_phantom()[2]


def test_fibonacci_sphere_is_uniform():
    d = fibonacci_sphere(2000)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.abs(d.mean(axis=0)).max() < 0.01
    # nearest-neighbour angle nearly constant (even coverage)
    nn = cKDTree(d).query(d, k=2)[0][:, 1]
    assert nn.max() < 2.0 * nn.mean()


def test_every_proposed_path_passes_the_independent_check(phantom, phantom_plan):
    ct, lm = phantom
    n_paths = 0
    for lesion in phantom_plan.plan["lesions"]:
        for tr in lesion["trajectories"]:
            assert tr["safe"] is True, (lesion["name"], tr.get("violations"))   # the phantom has safe paths only
            n_paths += 1
            v = independent_violations(lm, tr["entry_ct"], tr["target_ct"], lesion_value=lm.names[lesion["name"]],
                                       clearance=tr["clearance_mm"], cautions=tr["cautions"])
            assert v == [], (lesion["name"], tr["guidance"], v)
            assert tr["needle"]["outer_diameter_mm"] == GAUGE_OD_MM["18G"]
            # the entry is on the skin: the CT just outside it is air
            e = np.rint(ct.lps_to_index(tr["entry_ct"])).astype(int)
            assert ct.array[e[2], e[1], e[0]] < -500
    assert n_paths >= 6


def test_behind_rib_lesion_gets_no_us_path_and_says_why(phantom_plan):
    rib = next(l for l in phantom_plan.plan["lesions"] if l["name"] == "lesion_rib")
    assert not [t for t in rib["trajectories"] if t["guidance"] == "us"]
    assert rib["no_us_path_reason"] and rib["no_us_path_code"] == "no_window_within_limit"
    assert rib["recommendation"]["guidance"] in ("ct", "none")
    codes = rib["recommendation"]["reason_codes"]
    assert codes[0] == "no_us_path" and "window_without_inplane_path" not in codes
    assert len(codes) == len(rib["recommendation"]["reasons"])
    sub = next(l for l in phantom_plan.plan["lesions"] if l["name"] == "lesion_sub")
    us = [t for t in sub["trajectories"] if t["guidance"] == "us"]
    assert us, sub["no_us_path_reason"]
    assert phantom_plan.plan["recommendation"]["biopsy_first"] == "lesion_sub"


def test_us_probe_plane_contains_the_path(phantom_plan):
    for lesion in phantom_plan.plan["lesions"]:
        for tr in lesion["trajectories"]:
            if tr["guidance"] != "us":
                continue
            p = tr["probe"]
            n = np.asarray(p["plane_normal_ct"])
            q = np.asarray(p["probe_ct"])
            for pt in (tr["entry_ct"], tr["target_ct"]):
                assert abs(np.dot(np.asarray(pt) - q, n)) < 0.5   # in-plane within 0.5 mm
            assert p["depth_mm"] <= lesion["visibility"]["depth_limit_mm"]


def test_ct_paths_respect_gantry_tilt_or_say_double_oblique(phantom_plan):
    """A CT path in a gantry plane needs at most the scanner's tilt (15 deg); a steeper safe path
    is offered as double oblique: gantry untilted, its craniocaudal and in-plane angles stated."""
    n = oblique = 0
    for lesion in phantom_plan.plan["lesions"]:
        for tr in lesion["trajectories"]:
            if tr["guidance"] != "ct":
                continue
            n += 1
            d = np.asarray(tr["entry_ct"]) - np.asarray(tr["target_ct"])
            d = d / np.linalg.norm(d)
            tilt = float(ct_guidance.tilt_deg(d)[0])
            assert tr["ct"]["depth_mm"] == pytest.approx(tr["length_mm"], abs=1.0)
            if not tr["ct"]["double_oblique"]:
                assert abs(tilt) <= 15.0 + 1e-6
                assert tr["ct"]["gantry_tilt_deg"] == pytest.approx(tilt, abs=0.1)
                continue
            oblique += 1
            assert abs(tilt) > 15.0 and tr["ct"]["gantry_tilt_deg"] == 0.0
            assert tr["ct"]["craniocaudal_angle_deg"] == pytest.approx(np.degrees(np.arcsin(d[2])), abs=0.1)
            assert tr["ct"]["in_plane_angle_deg"] == pytest.approx(np.degrees(np.arctan2(d[0], -d[1])), abs=0.1)
            assert "DOUBLE OBLIQUE" in tr["ct"]["text"] and "confirmation scans" in tr["ct"]["text"]
    assert n >= 3
    rib = next(l for l in phantom_plan.plan["lesions"] if l["name"] == "lesion_rib")
    assert oblique >= 1 and rib["recommendation"]["guidance"] == "ct"
    assert "double_oblique_ct" in rib["recommendation"]["reason_codes"]


def test_double_oblique_description_known_direction():
    """A needle 40 deg out of the axial plane, straight anterior in projection: tilt needed 40 deg
    (beyond 30), so double oblique: craniocaudal +40 (entry cranial), in plane 0."""
    ct, lm = make_phantom()
    from planner.anatomy.structures import build_anatomy
    an = build_anatomy(ct, lm)
    t = np.array([-10.0, -35.0, -10.0])
    d = np.array([0.0, -np.cos(np.radians(40)), np.sin(np.radians(40))])
    desc = ct_guidance.describe(an, {"entry_ct": t + 60 * d, "target_ct": t}, max_tilt_deg=30.0)
    assert desc["double_oblique"] and desc["required_tilt_deg"] == pytest.approx(-40.0, abs=0.1)
    assert desc["craniocaudal_angle_deg"] == pytest.approx(40.0, abs=0.1)
    assert desc["in_plane_angle_deg"] == pytest.approx(0.0, abs=0.1) and desc["gantry_tilt_deg"] == 0.0
    tilted = ct_guidance.describe(an, {"entry_ct": t + 60 * d, "target_ct": t}, max_tilt_deg=30.0 + 15.0)
    assert not tilted["double_oblique"] and tilted["gantry_tilt_deg"] == pytest.approx(-40.0, abs=0.1)


def test_tilt_and_vertical_angle_known_directions():
    # straight anterior: tilt 0, angle 0; towards patient's left-anterior at 45 deg: +45
    d = np.array([[0, -1, 0], [np.sqrt(0.5), -np.sqrt(0.5), 0], [0, -np.cos(np.radians(10)), -np.sin(np.radians(10))]])
    assert ct_guidance.tilt_deg(d) == pytest.approx([0, 0, 10], abs=1e-6)
    assert ct_guidance.angle_from_vertical_deg(d) == pytest.approx([0, 45, 0], abs=1e-6)
    g = ct_guidance.gantry_directions()
    assert np.all(np.abs(ct_guidance.tilt_deg(g)) <= 15 + 1e-6)


def test_vectorised_evaluation_matches_a_plain_loop(phantom):
    """The vectorised hard-constraint verdict agrees with a per-path loop on the label map."""
    ct, lm = phantom
    from planner.anatomy.structures import build_anatomy
    from planner.paths.planning_maps import build_maps
    an = build_anatomy(ct, lm)
    mask = lm.array == NAMES["lesion_sub"]
    maps = build_maps(an, mask, Constraints())
    target = np.array([-10.0, -35.0, -10.0])
    rng = np.random.default_rng(3)
    dirs = fibonacci_sphere(600)[rng.permutation(600)[:300]]
    res = evaluate(maps, target, dirs)
    ok = np.flatnonzero(res["ok"])
    assert ok.size > 5
    for i in ok:     # the loop samples other points: 0.05 mm of tolerance
        assert independent_violations(lm, res["entry_ct"][i], target, lesion_value=NAMES["lesion_sub"],
                                      tolerance_mm=0.05) == []
    # rejected for hard structures / vessels really come near one (needle radius + half diagonal
    # (+ the 2 mm floor for vessels))
    live = ~res["too_long"] & ~res["leaves_ct_volume"] & ~res["entry_on_table_side"]
    thr = 0.635 + np.linalg.norm(ct.spacing) / 2
    hard = np.flatnonzero(res["hard_structure"] & live)
    vessel = np.flatnonzero(res["vessel"] & live)
    assert hard.size > 0 and vessel.size > 0
    assert np.all(res["organ_clearance_mm"][hard] <= thr + 1e-6)
    assert np.all(np.minimum(res["vessel_clearance_mm"][vessel] - 2.0, res["vessel_in_lesion_mm"][vessel])
                  <= thr + 1e-6)


def test_no_path_possible_gives_the_least_risk_path_marked_unsafe():
    """Nothing reachable with a 20 mm needle: no plan, but the least-risk path is shown, marked
    unsafe, with its violations in mm (here: the length it needs), never as a safe path."""
    ct, lm = make_phantom()
    c = Constraints(max_length_mm=20.0)
    res = plan_case(ct, lm, lesion="lesion_deep", constraints=c, n_directions=500)
    les = res.plan["lesions"][0]
    assert [t["safe"] for t in les["trajectories"]] == [False]
    lr = les["trajectories"][0]
    assert lr["least_risk"] and lr["violations"]
    too_long = [v for v in lr["violations"] if v["rule"] == "too_long"]
    assert too_long and too_long[0]["limit_mm"] == 20.0 and too_long[0]["value_mm"] == pytest.approx(lr["length_mm"], abs=0.1)
    assert lr["length_mm"] > 20.0 and "mm" in too_long[0]["text"]
    assert les["recommendation"]["guidance"] == "none"
    codes = les["recommendation"]["reason_codes"]
    assert "no_safe_path" in codes and "least_risk_path" in codes
    assert les["no_us_path_code"] == "no_safe_needle_path"
    assert les["candidates"]["safe"] == 0 and set(les["candidates"]["rejected_by"]) == set(REJECT_REASONS)
    assert les["candidates"]["rejected_by"]["too_long"] > 0
    assert res.plan["recommendation"]["guidance"] == "none"
    assert res.plan["recommendation"]["reason_codes"] == ["no_safe_path_any_target"]


def test_soft_rules_rank_but_do_not_reject():
    """A subcapsular lesion with less than 10 mm of liver before it, or a path nearer than 5 mm to
    a vessel, is not rejected: it costs more and carries a caution (docs/clinical_evidence.md 4)."""
    ct, lm = make_phantom()
    from planner.anatomy.structures import build_anatomy
    from planner.paths.planning_maps import build_maps
    an = build_anatomy(ct, lm)
    maps = build_maps(an, lm.array == NAMES["lesion_sub"], Constraints())
    res = evaluate(maps, np.array([-10.0, -35.0, -10.0]), fibonacci_sphere(2000))
    short = res["ok"] & res["liver_traverse"]
    assert short.any() and (res["ok"] & ~res["liver_traverse"]).any()
    assert res["cost"][short].min() > res["cost"][res["ok"] & ~res["liver_traverse"]].min()
    strict = evaluate(build_maps(an, lm.array == NAMES["lesion_sub"], Constraints(vessel_floor_mm=5.0)),
                      np.array([-10.0, -35.0, -10.0]), fibonacci_sphere(2000))
    assert strict["ok"].sum() <= res["ok"].sum()


def test_select_diverse_spreads_directions():
    d = fibonacci_sphere(500)
    cost = np.linspace(0, 1, 500)
    idx = select_diverse(cost, np.ones(500, bool), d, 5, min_angle_deg=20)
    assert len(idx) == 5
    for a in range(5):
        for b in range(a + 1, 5):
            assert np.degrees(np.arccos(np.clip(d[idx[a]] @ d[idx[b]], -1, 1))) >= 20 - 1e-9


@pytest.mark.slow
def test_demo_case_paths_pass_the_independent_check():
    """The shared demo case (sample_data): 0 violations against its full-resolution truth labels."""
    case = pytest.importorskip("sample_data.case.demo_case")
    import json
    from registration.io.labelmap_io import load_labels
    from registration.io.ct_io import load_ct
    d = case.ensure_demo_case()
    ct = load_ct(d / "ct_portal.nrrd")
    art = load_ct(d / "ct_arterial.nrrd")
    lm = load_labels(d / "labels.nrrd", d / "label_names.json", reference=ct)
    truth = json.loads((d / "truth.json").read_text())
    res = plan_case(ct, lm, ct_arterial=art, n_directions=3000, max_planning_voxels=6_000_000)
    vessels = ("portal_vein", "hepatic_vein", "artery", "ivc")
    n = 0
    for les in res.plan["lesions"]:
        for tr in les["trajectories"]:
            if tr["safe"] is False:
                assert tr["violations"] and les["recommendation"]["guidance"] == "none"
                continue
            n += 1
            v = independent_violations(lm, tr["entry_ct"], tr["target_ct"], vessel_names=vessels,
                                       lesion_value=lm.names[les["name"]], clearance=tr["clearance_mm"],
                                       cautions=tr["cautions"])
            assert v == [], (les["name"], tr["guidance"], v)
    assert n > 0
    assert sum(l["recommendation"]["guidance"] != "none" for l in res.plan["lesions"]) >= 5
    by_name = {l["name"]: l for l in res.plan["lesions"]}
    for t in truth["lesions"]:
        les = by_name[t["name"]]
        # lesion type from the two phases matches the truth
        assert les["visibility"]["lesion_type"] == {"net": "net-like",
                                                    "adenocarcinoma": "adenocarcinoma-like"}[t["type"]]
        if {"deep", "behind_rib"} & set(t["notes"]):
            # not guided by plain US (no window within reach, or too small and deep for B-mode)
            assert les["recommendation"]["guidance"] not in ("us", "ceus"), t["name"]


def test_nearest_voxel_matches_plain_indexing():
    """The flat-gather lookup against plain rounding and indexing, off-grid points filled."""
    rng = np.random.default_rng(2)
    arr = rng.integers(-3, 6, size=(7, 9, 11)).astype(np.int8)
    kji = rng.uniform(-2.0, 12.0, size=(3, 40, 25))
    got = nearest_voxel(arr, kji, -1)
    idx = np.rint(kji).astype(int)
    for n in np.ndindex(kji.shape[1:]):
        k, j, i = idx[:, n[0], n[1]]
        inside = 0 <= k < 7 and 0 <= j < 9 and 0 <= i < 11
        assert got[n] == (arr[k, j, i] if inside else -1)
    assert got.dtype == arr.dtype


def test_unknown_needle_gauge_lists_the_choices():
    from registration.spatial.errors import InputError
    with pytest.raises(InputError, match="18G"):
        Constraints(needle_gauge="99G")


def test_patient_position_decides_the_table_side():
    """Supine: no entry from behind; prone: no entry from the front (a setting, not a medical rule)."""
    from planner.anatomy.structures import build_anatomy
    from planner.paths.planning_maps import build_maps
    ct, lm = make_phantom()
    an = build_anatomy(ct, lm)
    dirs = fibonacci_sphere(800)
    target = np.array([-10.0, -35.0, -10.0])
    for position, side in (("supine", np.array([0, 1.0, 0])), ("prone", np.array([0, -1.0, 0]))):
        res = evaluate(build_maps(an, lm.array == NAMES["lesion_sub"], Constraints(patient_position=position)),
                       target, dirs)
        assert np.array_equal(res["entry_on_table_side"], dirs @ side > 0.5)
        assert not np.any(res["ok"] & (dirs @ side > 0.5))
    from registration.spatial.errors import InputError
    with pytest.raises(InputError, match="supine"):
        Constraints(patient_position="standing")
    with pytest.raises(InputError, match="30"):
        Constraints(max_gantry_tilt_deg=40.0)

