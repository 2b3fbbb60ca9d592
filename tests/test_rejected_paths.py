"""Why a target has no safe path: the rejected candidates that came closest, each with its violations.

Every listed violation is re-checked independently of the planner: lengths from the
recorded points, clearances with a KD-tree of the named structure's voxel centres
(the labels as loaded, no planner map or tree) or with tests/planning_phantom.py's
own distance transforms. A listed path must really break the rule it is listed for.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial import cKDTree

from planner.case.case_plan import plan_case
from planner.export.plan_files import validate_plan
from planner.paths import rejected
from planner.paths.constraints import REJECT_REASONS, Constraints
from planning_phantom import NAMES, independent_violations, make_phantom


def _angle_deg(a, b) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def _check_listing(les: dict, min_sep_deg: float = rejected.MIN_SEPARATION_DEG) -> list:
    """Structure of a no-path lesion's listing: real rejected paths, best first, spread apart,
    none a copy of the least-risk path; -> the listed paths."""
    cands = les["rejected_candidates"]
    assert cands, "a lesion without a safe path lists the rejected paths that came closest"
    assert len(cands) <= 4
    scores = [c["score"] for c in cands]
    assert scores == sorted(scores)                                      # closest first
    dirs = [np.asarray(c["direction_ct"]) for c in cands]
    lr = [t for t in les["trajectories"] if t.get("least_risk")]
    for i, c in enumerate(cands):
        assert c["safe"] is False and c["violations"] and len(c["texts"]) == len(c["violations"])
        assert np.allclose(c["target_ct"], les["target_ct"], atol=0.01)
        e, t = np.asarray(c["entry_ct"]), np.asarray(c["target_ct"])
        assert np.linalg.norm(e - t) == pytest.approx(c["length_mm"], abs=0.6)   # 0.5 mm march step
        assert np.allclose((e - t) / np.linalg.norm(e - t), dirs[i], atol=0.01)
        for j in range(i):
            assert _angle_deg(dirs[i], dirs[j]) >= min_sep_deg - 1e-6
        for t_lr in lr:
            assert _angle_deg(dirs[i], t_lr["direction_ct"]) >= min_sep_deg - 1e-6
        for v in c["violations"]:
            assert v["rule"] in rejected.EXPLAINED_RULES
            if v["unit"] == "mm" and v["rule"] != "too_long":
                assert v["value"] <= v["limit"]                            # a violation, not a caution
    return cands


def test_a_needle_too_short_lists_paths_that_are_really_too_long():
    """A 20 mm needle reaches nothing in the phantom: the listed paths break the length rule by
    the length measured from their recorded points, and the phantom's own check (scipy distance
    transforms) finds every path they are listed for breaking a rule."""
    ct, lm = make_phantom()
    res = plan_case(ct, lm, lesion="lesion_deep", constraints=Constraints(max_length_mm=20.0), n_directions=500)
    validate_plan(res.plan)
    les = res.plan["lesions"][0]
    assert les["recommendation"]["guidance"] == "none"
    for c in _check_listing(les):
        too_long = [v for v in c["violations"] if v["rule"] == "too_long"]
        assert too_long and too_long[0]["limit"] == 20.0
        assert np.linalg.norm(np.subtract(c["entry_ct"], c["target_ct"])) > 20.0
        assert independent_violations(lm, c["entry_ct"], c["target_ct"], max_length_mm=20.0,
                                      lesion_value=NAMES["lesion_deep"])
        assert c["texts"][0].startswith("too long: ") and c["texts"][0].endswith(" > 20")


def test_a_lesion_with_safe_paths_lists_none():
    ct, lm = make_phantom()
    les = plan_case(ct, lm, lesion="lesion_sub", n_directions=500).plan["lesions"][0]
    assert any(t.get("safe", True) for t in les["trajectories"]) and les["rejected_candidates"] == []


def test_words_for_violations_and_counts():
    v = {"rule": "vessel", "structure": "hepatic_vein", "value": 3.19, "limit": 3.78, "unit": "mm",
         "text": "passes 3.2 mm from the hepatic_vein (axis to voxel centres; needs > 3.8 mm ...)"}
    assert rejected.short_text(v) == "passes 3.2 mm from the hepatic vein (needs > 3.8 mm)"
    # a margin missed by less than 0.1 mm keeps its hundredths
    assert rejected.short_text(dict(v, value=3.72)) == "passes 3.72 mm from the hepatic vein (needs > 3.78 mm)"
    assert rejected.rule_text(v) == "vessel rule: passes 3.2 mm from the hepatic vein (needs > 3.8 mm)"
    assert rejected.view_label(v) == "hepatic vein 3.2 < 3.8 mm"
    assert rejected.short_text({"rule": "hard_structure", "structure": "bone", "value": 0.0, "limit": 1.9,
                                "unit": "mm", "text": ""}) == "crosses bone"
    too_long = {"rule": "too_long", "structure": "needle", "value": 172.4, "limit": 150.0, "unit": "mm", "text": ""}
    assert rejected.short_text(too_long) == "too long: 172 mm > 150"
    assert rejected.view_label(too_long) == "172 mm > 150 mm needle"
    assert set(rejected.COUNT_WORDS) == set(REJECT_REASONS)
    assert set(rejected.RULE_WORDS) == set(rejected.EXPLAINED_RULES) <= set(REJECT_REASONS)
    text = rejected.rejection_counts_text({"too_long": 3727, "vessel": 828, "grazing_capsule": 0}, 6133)
    assert text.startswith("None of the 6133 straight paths checked meets every hard rule: 3727 are longer")
    assert "828 pass too close" in text and "graze" not in text            # zero counts left out
    assert [rejected.candidate_label(n) for n in (0, 1, 25, 26)] == ["A", "B", "Z", "27"]


@pytest.mark.slow
def test_demo_lesion_4_has_no_path_and_its_closest_rejected_paths_break_real_rules(tmp_path, demo_case, capsys):
    """The demo's deep 6 mm lesion_4 has no safe path. ``ctus plan`` lists the least-risk path and
    the other rejected paths that came closest; re-measured with a KD-tree of the named
    structure's voxel centres in the label map, each listed clearance is below its limit (the
    violation is real) and agrees with the plan's value to within a voxel."""
    from planner.cli.main import main
    from registration.io.labelmap_io import load_labels
    rc = main(["plan", "--ct", str(demo_case / "ct_portal.nrrd"), "--labels", str(demo_case / "labels.nrrd"),
               "--label-names", str(demo_case / "label_names.json"), "--lesion", "lesion_4",
               "--out", str(tmp_path / "out"), "--no-pdf"])
    assert rc == 0
    out = capsys.readouterr().out
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    validate_plan(plan)
    les = plan["lesions"][0]
    assert les["name"] == "lesion_4" and les["recommendation"]["guidance"] == "none"
    assert not any(t.get("safe", True) for t in les["trajectories"])
    cands = _check_listing(les)
    assert len(cands) >= 3
    # the CLI names every listed path with its rules broken
    assert "other rejected paths, closest first" in out
    for n, c in enumerate(cands):
        assert f"{rejected.candidate_label(n)}: {c['length_mm']:.0f} mm" in out
        assert rejected.rule_text(c["violations"][0]) in out

    labels = load_labels(str(demo_case / "labels.nrrd"), str(demo_case / "label_names.json"))
    half_diag = 0.5 * float(np.linalg.norm(labels.spacing))
    checked = 0
    for c in cands:
        e, t = np.asarray(c["entry_ct"]), np.asarray(c["target_ct"])
        s = np.arange(0.0, 1.0, 0.05 / np.linalg.norm(e - t))
        pts = t + s[:, None] * (e - t)
        for v in c["violations"]:
            if v["rule"] == "too_long":
                assert np.linalg.norm(e - t) > v["limit"]
                checked += 1
                continue
            if v["unit"] != "mm" or v["structure"] not in labels.names:
                continue              # classes derived from the CT (bone, gas) have no label to check
            ijk = np.argwhere(labels.array == labels.names[v["structure"]])[:, ::-1]
            tree = cKDTree(labels.index_to_lps(ijk.astype(float)))
            d = tree.query(pts)[0]
            inside = _in_label(labels, pts, les["name"])
            if "inside the lesion" in v["text"]:
                measured = float(d[inside].min())
            else:
                measured = float(d[~inside].min()) if v["rule"] == "vessel" else float(d.min())
            assert measured <= v["limit"], (c["texts"], measured)          # the violation is real
            assert abs(measured - v["value"]) <= half_diag, (c["texts"], measured)
            checked += 1
    assert checked >= len(cands)


def _in_label(labels, pts: np.ndarray, name: str) -> np.ndarray:
    ijk = np.rint(labels.lps_to_index(pts)).astype(int)
    ijk = np.clip(ijk, 0, np.array(labels.shape_ijk) - 1)
    return labels.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]] == labels.names[name]
