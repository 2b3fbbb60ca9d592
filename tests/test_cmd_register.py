"""`ctus register` end to end on the synthetic case: result file, progress, bad input -> exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from planner.cli.main import main
from registration.align.landmarks import save_pairs
from registration.io.seq_mha_write import write_sequence
from registration.spatial.transforms import apply, invert, rigid_matrix

from synthetic_case import TRUE_REFERENCE_TO_CT, lesion_centroids_ct, make_ct, make_sweep

FAST = ["--starts", "2"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("case")
    ct = make_ct()
    import SimpleITK as sitk
    sitk.WriteImage(ct.to_sitk(), str(d / "ct.nrrd"))
    sweep = make_sweep(ct, n_frames=16)
    write_sequence(sweep, d / "sweep.igs.mha")
    bad = make_sweep(ct, n_frames=4, invalid=range(4))
    write_sequence(bad, d / "invalid.igs.mha")
    init = rigid_matrix([2.0, -3.0, 2.0, 4.0, -5.0, 3.0], center=lesion_centroids_ct().mean(0)) @ TRUE_REFERENCE_TO_CT
    (d / "init.json").write_text(json.dumps({"reference_to_ct": init.tolist()}))
    (d / "targets.json").write_text(json.dumps({"targets": [
        {"name": f"lesion_{i + 1}", "point": p.tolist(), "radius_mm": 8.0}
        for i, p in enumerate(lesion_centroids_ct())]}))
    return d


def _tre(m, points_ct):
    ref = apply(invert(TRUE_REFERENCE_TO_CT), points_ct)
    return np.linalg.norm(apply(m, ref) - points_ct, axis=1)


@pytest.mark.slow
def test_register_writes_result_with_uncertainty(case, capsys):
    out = case / "result.json"
    code = main(["register", "--ct", str(case / "ct.nrrd"), "--sweep", str(case / "sweep.igs.mha"),
                 "--init", str(case / "init.json"), "--targets", str(case / "targets.json"),
                 "--out", str(out), "--json-progress"] + FAST)
    assert code == 0
    doc = json.loads(out.read_text())
    m = np.array(doc["reference_to_ct"])
    assert m.shape == (4, 4)
    assert _tre(m, lesion_centroids_ct()).max() < 2.0
    assert doc["method"] == "lc2" and doc["metric_final"] > doc["metric_initial"]
    assert doc["iterations"] > 0 and doc["wall_time_s"] > 0
    assert {t["name"] for t in doc["targets"]} == {"lesion_1", "lesion_2"}
    for t in doc["targets"]:
        assert 0 < t["tre_registration_mm"] < 5 and 0 <= t["hit_probability"] <= 1
    assert doc["verdict"] in ("good", "check")
    err = capsys.readouterr().err
    lines = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
    assert any("progress" in l for l in lines)
    # refuses to overwrite without --force
    assert main(["register", "--ct", str(case / "ct.nrrd"), "--sweep", str(case / "sweep.igs.mha"),
                 "--init", str(case / "init.json"), "--out", str(out)]) == 2


@pytest.mark.slow
def test_register_from_landmarks_reports_the_landmark_fit(case, tmp_path):
    rng = np.random.default_rng(0)
    ct_pts = np.array([[20, 0, 10], [-15, -20, -15], [30, 20, -20], [-25, 15, 25], [0, -30, 0]], float)
    ref_pts = apply(invert(TRUE_REFERENCE_TO_CT), ct_pts) + rng.normal(0, 1.0, ct_pts.shape)
    save_pairs(tmp_path / "pairs.json", [f"p{i}" for i in range(5)], ct_pts, ref_pts)
    out = tmp_path / "r.json"
    code = main(["register", "--ct", str(case / "ct.nrrd"), "--sweep", str(case / "sweep.igs.mha"),
                 "--landmarks", str(tmp_path / "pairs.json"), "--targets", str(case / "targets.json"),
                 "--out", str(out)] + FAST)
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["init"]["source"] == "landmarks"
    assert len(doc["landmarks"]["landmarks"]) == 5 and doc["landmarks"]["fre_mm"] > 0
    assert set(doc["landmarks"]["predicted_tre_mm"]) == {"lesion_1", "lesion_2"}
    assert _tre(np.array(doc["reference_to_ct"]), lesion_centroids_ct()).max() < 2.0


def _bad(case, tmp_path, capsys, extra, match):
    out = tmp_path / "never.json"
    args = ["register", "--ct", str(case / "ct.nrrd"), "--out", str(out)] + extra
    if "--sweep" not in extra:
        args += ["--sweep", str(case / "sweep.igs.mha")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert match in err[-1] and err[-1].startswith("ctus register: error:")
    assert not out.exists()
    assert not list(tmp_path.glob(".never.json*"))


def test_no_overlap_is_bad_input(case, tmp_path, capsys):
    far = rigid_matrix([0, 0, 0, 400.0, 0, 0]) @ TRUE_REFERENCE_TO_CT
    (tmp_path / "far.json").write_text(json.dumps({"reference_to_ct": far.tolist()}))
    _bad(case, tmp_path, capsys, ["--init", str(tmp_path / "far.json")], "do not overlap")


def test_all_frames_invalid_is_bad_input(case, tmp_path, capsys):
    _bad(case, tmp_path, capsys, ["--init", str(case / "init.json"), "--sweep", str(case / "invalid.igs.mha")],
         "INVALID")


def test_nan_in_init_matrix_is_bad_input(case, tmp_path, capsys):
    m = np.eye(4).tolist()
    m[1][3] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps({"reference_to_ct": m}).replace("NaN", "NaN"))
    _bad(case, tmp_path, capsys, ["--init", str(tmp_path / "nan.json")], "NaN")


@pytest.mark.parametrize("pairs,match", [
    ([[0, 0, 0], [10, 0, 0]], "at least 3"),
    ([[0, 0, 0], [10, 0, 0], [20, 0, 0], [30, 0, 0]], "collinear"),
])
def test_bad_landmarks_are_bad_input(case, tmp_path, capsys, pairs, match):
    p = np.array(pairs, float)
    (tmp_path / "pairs.json").write_text(json.dumps({"pairs": [
        {"name": f"p{i}", "ct": q.tolist(), "reference": q.tolist()} for i, q in enumerate(p)]}))
    _bad(case, tmp_path, capsys, ["--landmarks", str(tmp_path / "pairs.json")], match)


def test_mirror_init_is_bad_input(case, tmp_path, capsys):
    m = np.diag([-1.0, 1, 1, 1])
    (tmp_path / "mirror.json").write_text(json.dumps({"reference_to_ct": m.tolist()}))
    _bad(case, tmp_path, capsys, ["--init", str(tmp_path / "mirror.json")], "not a rigid")


@pytest.mark.slow
def test_lesions_of_a_label_map_become_targets(case, tmp_path):
    import SimpleITK as sitk
    from registration.spatial.volume import Volume
    ct = make_ct()
    k, j, i = np.meshgrid(*[np.arange(n) for n in ct.array.shape], indexing="ij")
    lps = ct.index_to_lps(np.stack([i, j, k], -1).reshape(-1, 3).astype(float)).reshape(ct.array.shape + (3,))
    lab = np.zeros(ct.array.shape, np.uint8)
    for value, (c, r) in enumerate(zip(lesion_centroids_ct(), (9.0, 7.0)), start=1):
        lab[np.linalg.norm(lps - c, axis=-1) < r] = value
    sitk.WriteImage(Volume(lab, ct.spacing, ct.origin).to_sitk(), str(tmp_path / "labels.nrrd"))
    (tmp_path / "names.json").write_text(json.dumps({"lesion_1": 1, "lesion_2": 2}))
    out = tmp_path / "r.json"
    assert main(["register", "--ct", str(case / "ct.nrrd"), "--sweep", str(case / "sweep.igs.mha"),
                 "--init", str(case / "init.json"), "--labels", str(tmp_path / "labels.nrrd"),
                 "--label-names", str(tmp_path / "names.json"), "--out", str(out)] + FAST) == 0
    rows = {t["name"]: t for t in json.loads(out.read_text())["targets"]}
    assert set(rows) == {"lesion_1", "lesion_2"}
    assert np.allclose(rows["lesion_1"]["point_ct"], lesion_centroids_ct()[0], atol=1.0)
    assert rows["lesion_1"]["radius_mm"] == pytest.approx(9.0, abs=1.0)
    assert 0 <= rows["lesion_2"]["hit_probability"] <= 1


def test_register_starts_without_the_planner_pydicom_or_scipy_optimize():
    """`ctus register` imports only its own command and what a NRRD registration needs (start-up time)."""
    import subprocess
    import sys
    code = ("import sys; from planner.cli.main import _command_of, build_parser; "
            "build_parser([_command_of(['register', '--ct', 'ct.nrrd'])]); "
            "from registration.io.ct_io import load_ct; from registration.io.sequence_io import load_sweep; "
            "from registration.align.intensity_registration import register_sweep; "
            "import registration.align.motion, registration.align.result_document; "
            "bad = [m for m in ('planner.case.case_plan', 'pydicom', 'scipy.optimize', 'scipy.spatial', 'numba') "
            "if m in sys.modules]; assert not bad, bad")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_feature_cache_folder_is_reused_with_the_same_result(case, tmp_path, monkeypatch):
    from collections import OrderedDict

    from registration.align.lc2_features import FEATURE_CACHE
    # a `ctus register` process starts with nothing in memory (an earlier test in this process may
    # have left these features there, and a memory hit is not written to the folder)
    monkeypatch.setattr(FEATURE_CACHE, "_mem", OrderedDict())
    cache = tmp_path / "features"
    docs, stamps = [], []
    for k in range(2):
        out = tmp_path / f"r{k}.json"
        assert main(["register", "--ct", str(case / "ct.nrrd"), "--sweep", str(case / "sweep.igs.mha"),
                     "--init", str(case / "init.json"), "--out", str(out), "--feature-cache", str(cache),
                     "--breathing", "off", "--starts", "1"]) == 0
        docs.append(json.loads(out.read_text()))
        files = list(cache.glob("lc2-features-*.npz"))
        assert len(files) == 1
        stamps.append(files[0].stat().st_mtime_ns)
    assert stamps[0] == stamps[1]                      # the second run read the features, did not redo them
    assert docs[0]["reference_to_ct"] == docs[1]["reference_to_ct"]


def test_the_summary_says_when_the_second_search_moved_the_result(capsys):
    """ctus register's summary names a second search with small patches that replaced the levels'
    result (how far, the fine level's LC2 of both); nothing when it kept the levels' result."""
    import numpy as np

    from planner.cli.cmd_register import _print_summary
    from registration.align.registration_result import RegistrationResult, StartResult
    from registration.align.uncertainty import assess
    res = RegistrationResult(np.eye(4), "lc2", 0.2, 0.3, 10, 1.0, np.zeros(3),
                             [StartResult(np.zeros(6), np.eye(4), 0.1, 0.3, 5)])
    res.uncertainty = assess(res, {})
    res.second_search = {"chosen": True, "fine_lc2": [0.265, 0.281], "apart_mm": 6.4}
    _print_summary(res, "RESULT.json")
    assert "a second search with small patches moved the result 6.4 mm (fine-level LC2 0.265 -> 0.281)" in \
        capsys.readouterr().out
    res.second_search = dict(res.second_search, chosen=False)
    _print_summary(res, "RESULT.json")
    assert "second search" not in capsys.readouterr().out
