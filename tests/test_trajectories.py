"""Trajectories: every proposed path re-checked independently against the truth label map.

The independent check samples the straight segment every 0.5 mm and looks up
the *label map* (nearest voxel) and the distance to vessel voxel centres with a
KD-tree: it does not use the planner's distance maps.
"""
import functools

import numpy as np
import pytest
from scipy.spatial import cKDTree

from registration.spatial.volume import LabelMap, Volume
from planner.paths import ct_guidance
from planner.case.case_plan import plan_case
from planner.paths.trajectories import (Constraints, GAUGE_OD_MM, evaluate, fibonacci_sphere,
                                  select_diverse)

NAMES = {"liver": 1, "bone": 2, "lung": 3, "gallbladder": 4, "kidney": 5, "portal_vein": 6,
         "hepatic_vein": 7, "lesion_sub": 10, "lesion_deep": 11, "lesion_rib": 12}
FORBIDDEN = ("bone", "lung", "gallbladder", "kidney", "bowel", "heart", "spleen", "pancreas")
HU = {0: 40, 1: 60, 2: 700, 3: -850, 4: 10, 5: 35, 6: 180, 7: 170, 10: 20, 11: 25, 12: 20}


def make_phantom(spacing=2.0):
    """Supine torso phantom in LPS mm (x = left, y = posterior, z = superior), arrays [k, j, i].

    Liver on the patient's right (-x); rib bands cage the right side (x < -20)
    and hide lesion_rib; lesion_sub is subcapsular in the left lobe, anterior;
    lesion_deep sits deep in the liver; vessels are >= 8 mm tubes.
    """
    x = np.arange(-170, 170 + 1e-9, spacing)
    y = np.arange(-130, 130 + 1e-9, spacing)
    z = np.arange(-60, 70 + 1e-9, spacing)
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    lab = np.zeros(Z.shape, np.int16)
    body = (X / 150) ** 2 + (Y / 110) ** 2 <= 1
    r_body = np.sqrt((X / 150) ** 2 + (Y / 110) ** 2)

    def ell(c, s):
        return ((X - c[0]) / s[0]) ** 2 + ((Y - c[1]) / s[1]) ** 2 + ((Z - c[2]) / s[2]) ** 2 <= 1
    lab[ell((-60, 0, 0), (75, 70, 55))] = 1
    lab[ell((-60, 10, 80), (80, 75, 30)) & body] = 3                         # lung base
    lab[ell((-45, -55, -38), (14, 12, 18))] = 4                              # gallbladder
    lab[ell((-75, 70, -35), (25, 20, 35))] = 5                               # right kidney
    lab[((X - -40) ** 2 + (Y - 15) ** 2 <= 6 ** 2)] = 7                      # IVC / hepatic vein
    lab[(((Y - 0) ** 2 + (Z - -12) ** 2) <= 4 ** 2) & (X > -100) & (X < -40)] = 6  # portal branch
    lab[((X - 0) ** 2 + (Y - 80) ** 2 <= 20 ** 2)] = 2                       # spine
    # rib bands (3 mm gaps: too narrow for a needle) cage the whole right side
    # (x < -20 mm); the left lobe is reachable from the front
    cover = (X < -20) & (Z <= 62) & (Z >= -50)
    ribs = (r_body > 0.86) & (r_body < 0.95) & cover & (np.mod(Z + 60, 14) < 11)
    lab[ribs] = 2
    lab[ell((-10, -35, -10), (6, 6, 6))] = 10
    lab[ell((-65, 30, -2), (6, 6, 6))] = 11
    lab[ell((-90, 40, 30), (7, 7, 7))] = 12
    hu = np.full(Z.shape, -1000.0)
    hu[body] = 40
    for v, h in HU.items():
        if v:
            hu[lab == v] = h
    rng = np.random.default_rng(7)
    hu[body] += rng.normal(0, 5, size=int(body.sum()))
    origin = (x[0], y[0], z[0])
    ct = Volume(hu.astype(np.int16), (spacing,) * 3, origin)
    return ct, LabelMap(lab.astype(np.int16), (spacing,) * 3, origin, names=NAMES)


@functools.lru_cache(maxsize=1)
def planned_phantom():
    """(ct, labels, PlanResult) built once per test session (shared with test_export)."""
    ct, lm = make_phantom()
    return ct, lm, plan_case(ct, lm, n_directions=2000)


@pytest.fixture(scope="module")
def phantom():
    return planned_phantom()[:2]


@pytest.fixture(scope="module")
def phantom_plan():
    return planned_phantom()[2]


def independent_violations(labels: LabelMap, entry, target, *, max_length_mm=150.0, vessel_margin_mm=5.0,
                           vessel_names=("portal_vein", "hepatic_vein", "artery"), step=0.5,
                           lesion_value=None):
    """Violations of one straight path by resampling the truth label map every 0.5 mm.

    Forbidden labels at any sample; vessel voxels closer than the margin to any
    sample outside the target lesion (``lesion_value``), no vessel label at
    samples inside it; length; >= 10 mm of liver label along the path.
    """
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    L = np.linalg.norm(entry - target)
    out = []
    if L > max_length_mm + 1e-6:
        out.append(f"length {L:.1f} mm > {max_length_mm}")
    s = np.arange(0, L + 1e-9, step)
    pts = target + s[:, None] * (entry - target) / L
    ijk = np.rint(labels.lps_to_index(pts)).astype(int)
    ijk = np.clip(ijk, 0, np.array(labels.shape_ijk) - 1)
    vals = labels.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]
    for name in FORBIDDEN:
        if name in labels.names and np.any(vals == labels.names[name]):
            out.append(f"crosses {name}")
    vessel_values = [labels.names[n] for n in vessel_names if n in labels.names]
    if np.any(np.isin(vals, vessel_values)):
        out.append("crosses a vessel")
    vessel = np.isin(labels.array, vessel_values)
    outside = vals != lesion_value if lesion_value is not None else np.ones(len(vals), bool)
    if vessel.any() and outside.any():
        kji = np.argwhere(vessel)
        tree = cKDTree(labels.index_to_lps(kji[:, ::-1].astype(float)))
        dmin = tree.query(pts[outside])[0].min()
        if dmin < vessel_margin_mm:
            out.append(f"{dmin:.2f} mm from a vessel")
    liver_mm = np.count_nonzero(vals == labels.names["liver"]) * step
    if liver_mm < 10.0 - 1.0:  # one sample of tolerance at the capsule
        out.append(f"only {liver_mm:.1f} mm of liver")
    return out


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
            n_paths += 1
            v = independent_violations(lm, tr["entry_ct"], tr["target_ct"],
                                       lesion_value=lm.names[lesion["name"]])
            assert v == [], (lesion["name"], tr["guidance"], v)
            assert tr["needle"]["outer_diameter_mm"] == GAUGE_OD_MM["18G"]
            # the entry is on the skin: the CT just outside it is air
            e = np.rint(ct.lps_to_index(tr["entry_ct"])).astype(int)
            assert ct.array[e[2], e[1], e[0]] < -500
    assert n_paths >= 6


def test_behind_rib_lesion_gets_no_us_path_and_says_why(phantom_plan):
    rib = next(l for l in phantom_plan.plan["lesions"] if l["name"] == "lesion_rib")
    assert not [t for t in rib["trajectories"] if t["guidance"] == "us"]
    assert rib["no_us_path_reason"]
    assert rib["recommendation"]["guidance"] in ("ct", "none")
    assert any("no US-guided path" in r for r in rib["recommendation"]["reasons"])
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


def test_ct_paths_respect_gantry_tilt(phantom_plan):
    n = 0
    for lesion in phantom_plan.plan["lesions"]:
        for tr in lesion["trajectories"]:
            if tr["guidance"] == "ct":
                n += 1
                d = np.asarray(tr["entry_ct"]) - np.asarray(tr["target_ct"])
                tilt = float(ct_guidance.tilt_deg(d / np.linalg.norm(d))[0])
                assert abs(tilt) <= 15.0 + 1e-6
                assert tr["ct"]["gantry_tilt_deg"] == pytest.approx(tilt, abs=0.1)
                assert tr["ct"]["depth_mm"] == pytest.approx(tr["length_mm"], abs=1.0)
    assert n >= 3


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
    from planner.paths.trajectories import build_maps
    an = build_anatomy(ct, lm)
    mask = lm.array == NAMES["lesion_sub"]
    maps = build_maps(an, mask, Constraints())
    target = np.array([-10.0, -35.0, -10.0])
    rng = np.random.default_rng(3)
    dirs = fibonacci_sphere(600)[rng.permutation(600)[:300]]
    res = evaluate(maps, target, dirs)
    ok = np.flatnonzero(res["ok"])
    assert ok.size > 5
    for i in ok:
        assert independent_violations(lm, res["entry_ct"][i], target, lesion_value=NAMES["lesion_sub"]) == []
    # rejected for hard structures really come near one (within needle radius + 2 voxel diagonals)
    hard = np.flatnonzero(res["hard_structure_or_vessel"] & ~res["too_long"] & ~res["leaves_ct_volume"]
                          & ~res["entry_on_back"])
    assert hard.size > 0
    for i in hard[:20]:
        assert res["min_clearance_mm"][i] <= 0.635 + np.linalg.norm(ct.spacing) / 2 + 1e-6


def test_no_path_possible_is_reported_not_raised():
    ct, lm = make_phantom()
    c = Constraints(max_length_mm=20.0)     # nothing is reachable in 20 mm
    res = plan_case(ct, lm, lesion="lesion_deep", constraints=c, n_directions=500)
    les = res.plan["lesions"][0]
    assert les["trajectories"] == []
    assert les["recommendation"]["guidance"] == "none"
    assert res.plan["recommendation"]["guidance"] == "none"
    assert any("no safe" in r for r in res.plan["recommendation"]["reasons"])


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
            n += 1
            v = independent_violations(lm, tr["entry_ct"], tr["target_ct"], vessel_names=vessels,
                                       lesion_value=lm.names[les["name"]])
            assert v == [], (les["name"], tr["guidance"], v)
    assert n > 0
    by_name = {l["name"]: l for l in res.plan["lesions"]}
    for t in truth["lesions"]:
        les = by_name[t["name"]]
        # lesion type from the two phases matches the truth
        assert les["visibility"]["lesion_type"] == {"net": "net-like",
                                                    "adenocarcinoma": "adenocarcinoma-like"}[t["type"]]
        if {"deep", "behind_rib"} & set(t["notes"]):
            assert not [x for x in les["trajectories"] if x["guidance"] == "us"], t["name"]
            assert les["no_us_path_reason"], t["name"]
            assert any("no US-guided path" in r for r in les["recommendation"]["reasons"])
