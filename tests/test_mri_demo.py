"""The demo MR (issue 18): what ctus sample writes, the MR-only lesion, MR -> CT and MR -> sweep on it, its plan."""
from __future__ import annotations

import json

import numpy as np
import pytest

from planner.cli.main import main
from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from registration.io.mr_io import load_mr
from registration.spatial.transforms import apply, invert, rigid_matrix

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def case(demo_case):
    truth = json.loads((demo_case / "truth.json").read_text())
    return demo_case, truth


def _mean_in_sphere(vol, centre, radius_mm):
    lo = np.floor(vol.lps_to_index(np.asarray(centre) - radius_mm)).astype(int)
    hi = np.ceil(vol.lps_to_index(np.asarray(centre) + radius_mm)).astype(int) + 1
    kk, jj, ii = np.meshgrid(*[np.arange(a, b) for a, b in zip(lo[::-1], hi[::-1])], indexing="ij")
    p = vol.index_to_lps(np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float))
    inside = np.linalg.norm(p - np.asarray(centre), axis=1) <= radius_mm
    return float(vol.array[kk.ravel()[inside], jj.ravel()[inside], ii.ravel()[inside]].mean())


def test_demo_mr_files_and_the_lesion_only_the_mr_shows(case):
    d, truth = case
    mr_truth = truth["mr"]
    mr_nii = load_mr(d / mr_truth["files"]["nifti"])
    mr_dcm = load_mr(d / mr_truth["files"]["dicom"])
    assert mr_dcm.metadata["mr_phase"] == "hepatobiliary" and mr_dcm.metadata["weighting"] == "T1"
    np.testing.assert_array_equal(mr_nii.array, mr_dcm.array)
    np.testing.assert_allclose(mr_dcm.origin, mr_nii.origin, atol=1e-3)
    only = mr_truth["mr_only_lesion"]
    ct = load_ct(d / "ct_portal.nrrd")
    labels = load_labels(d / "labels.nrrd", d / "label_names.json", reference=ct)
    c_ct = np.asarray(only["centroid_ct"])
    # not in the CT labels: the liver all around it
    ijk = np.rint(labels.lps_to_index(c_ct)).astype(int)
    assert labels.array[ijk[2], ijk[1], ijk[0]] == labels.names["liver"]
    assert only["name"] not in labels.names
    # not on the CT: the same HU as the liver around it (within the CT noise)
    inside, ring = _mean_in_sphere(ct, c_ct, 3.0), _mean_in_sphere(ct, c_ct, 12.0)
    assert abs(inside - ring) < 8.0
    # on the MR: much darker than the liver around it
    c_mr = np.asarray(only["centroid_mr"])
    assert _mean_in_sphere(mr_nii, c_mr, 2.5) < 0.6 * _mean_in_sphere(mr_nii, c_mr, 12.0)
    # the truth's rigid fit is close at every lesion (the deformation is small there)
    assert max(les["rigid_fit_residual_mm"] for les in mr_truth["lesions"]) < 1.0


@pytest.fixture(scope="module")
def aligned(case, tmp_path_factory):
    """``ctus align`` on the demo (run once): the MR_TO_CT.json path."""
    d, _ = case
    out = tmp_path_factory.mktemp("align") / "mr_to_ct.json"
    assert main(["align", "--fixed", str(d / "ct_portal.nrrd"), "--moving", str(d / "mr_hbp.nii.gz"),
                 "--fixed-labels", str(d / "labels.nrrd"), "--label-names", str(d / "label_names.json"),
                 "--out", str(out), "--tfm"]) == 0
    return out


@pytest.fixture(scope="module")
def mr_registered(case, aligned, tmp_path_factory):
    """``ctus register --mr`` on the survey sweep from an 8 mm start, chained to the CT by the
    align result (run once): (RESULT.json path, its start)."""
    d, truth = case
    mr_truth = truth["mr"]
    tmp = tmp_path_factory.mktemp("register")
    start = rigid_matrix([2.0, -3.0, 1.0, 5.0, -4.0, 4.0], center=mr_truth["mr_only_lesion"]["centroid_mr"])
    init = start @ np.asarray(mr_truth["reference_to_mr"])
    (tmp / "init.json").write_text(json.dumps({"reference_to_mr": init.tolist()}))
    targets = {"targets": [{"name": les["name"], "point": les["centroid_mr"], "radius_mm": les["diameter_mm"] / 2}
                           for les in mr_truth["lesions"] + [mr_truth["mr_only_lesion"]]]}
    (tmp / "t.json").write_text(json.dumps(targets))
    out = tmp / "result.json"
    assert main(["register", "--mr", str(d / "mr_hbp.nii.gz"), "--sweep", str(d / "sweep_survey.igs.mha"),
                 "--calibration", str(d / truth["ultrasound"]["config"]), "--init", str(tmp / "init.json"),
                 "--targets", str(tmp / "t.json"), "--mr-to-ct", str(aligned), "--out", str(out)]) == 0
    return out


def test_align_on_the_demo_within_2_mm_at_the_lesions(case, aligned):
    _, truth = case
    doc = json.loads(aligned.read_text())
    m = np.asarray(doc["mr_to_ct"])
    pts = truth["mr"]["lesions"] + [truth["mr"]["mr_only_lesion"]]
    err = [np.linalg.norm(apply(m, les["centroid_mr"]) - np.asarray(les["centroid_ct"])) for les in pts]
    assert max(err) <= 2.0, err
    est = {t["name"]: t for t in doc["targets"]}
    covered = [e <= est[les["name"]]["tre_95_mm"] for les, e in zip(pts, err) if les["name"] in est]
    assert np.mean(covered) >= 0.8
    assert doc["verdict"] in ("good", "check")
    assert aligned.with_suffix(".tfm").is_file() or any(aligned.parent.glob("*.tfm"))


def test_register_mr_to_a_demo_sweep_from_8_mm(case, aligned, mr_registered):
    _, truth = case
    mr_truth = truth["mr"]
    doc = json.loads(mr_registered.read_text())
    assert doc["fixed_modality"] == "MR"
    m = np.asarray(doc["reference_to_mr"])
    ref_to_ct = np.asarray(truth["reference_to_ct"])
    only = mr_truth["mr_only_lesion"]
    p_ref = apply(invert(ref_to_ct), only["centroid_ct"])
    assert np.linalg.norm(apply(m, p_ref) - np.asarray(only["centroid_mr"])) < 2.0
    assert doc["uncertainty"]["verdict"] == "check"             # at best check for MR (mr_us.MR_BEST_VERDICT)
    # chained to the CT: reference_to_ct = mr_to_ct @ reference_to_mr, the MR-CT error in its rows
    mr_to_ct = np.asarray(json.loads(aligned.read_text())["mr_to_ct"])
    np.testing.assert_allclose(doc["reference_to_ct"], mr_to_ct @ m, atol=1e-9)
    p_ct = apply(np.asarray(doc["reference_to_ct"]), p_ref)
    assert np.linalg.norm(p_ct - np.asarray(only["centroid_ct"])) < 3.0


def test_the_mr_only_lesion_planned_on_the_ct_with_its_hit_probability(case, aligned, mr_registered, tmp_path):
    d, truth = case
    only = truth["mr"]["mr_only_lesion"]
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps({"lesions": [{"name": only["name"], "point": only["centroid_mr"]}]}))
    out = tmp_path / "plan"
    assert main(["plan", "--ct", str(d / "ct_portal.nrrd"), "--labels", str(d / "labels.nrrd"),
                 "--label-names", str(d / "label_names.json"), "--sweep", str(d / "sweep_survey.igs.mha"),
                 "--registration", str(mr_registered), "--mr", str(d / "mr_hbp.nii.gz"), "--mr-to-ct", str(aligned),
                 "--mr-lesions", str(seeds), "--lesion", only["name"], "--out", str(out)]) == 0
    plan = json.loads((out / "plan.json").read_text())
    row = next(r for r in plan["lesions"] if r["name"] == only["name"])
    assert row["seen_on"] == ["MR"] and row["mr"]["source"] == "click"
    assert np.linalg.norm(np.asarray(row["centroid_ct"]) - only["centroid_ct"]) < 2.0
    assert abs(row["diameter_mm"] - only["diameter_mm"]) < 3.0
    fusion = row["visibility"]["fusion"]
    # chained MR registration: the MR-CT transform cancels, the MR-US registration's error applies
    reg = json.loads(mr_registered.read_text())
    own = {t["name"]: t for t in reg["uncertainty"]["targets"]}[only["name"]]["tre_registration_mm"]
    assert fusion["tre_rms_mm"] == pytest.approx(own, abs=0.01)
    assert fusion["hit_probability"] is not None and 0.0 < fusion["hit_probability"] <= 1.0
    assert row["mr"]["mr_ct_error_mm"] is not None and row["mr"]["mr_ct_error_mm"] < 3.0
    # the plan folder's label map (what ctus guide and ctus pacs send read) holds the MR lesion
    kept = load_labels(out / "labels.nrrd", out / "labels.names.json")
    ijk = np.rint(kept.lps_to_index(only["centroid_ct"])).astype(int)
    assert kept.array[ijk[2], ijk[1], ijk[0]] == kept.names[only["name"]]
