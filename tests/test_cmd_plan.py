"""`ctus plan`: end to end on files, the real 20-slice CT with a point target, and bad input (exit 2)."""
import json

import numpy as np
import pytest
import SimpleITK as sitk

from planner.cli.main import main
from planning_phantom import independent_violations, make_phantom


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("case")
    ct, lm = make_phantom()
    sitk.WriteImage(ct.to_sitk(), str(d / "ct.nrrd"))
    sitk.WriteImage(lm.to_sitk(), str(d / "labels.nrrd"))
    (d / "names.json").write_text(json.dumps(lm.names))
    no_liver = {k: v for k, v in lm.names.items() if k != "liver"}
    no_liver["parenchyma"] = lm.names["liver"]
    (d / "names_no_liver.json").write_text(json.dumps(no_liver))
    return d


def _args(d, out, *extra):
    return ["plan", "--ct", str(d / "ct.nrrd"), "--labels", str(d / "labels.nrrd"),
            "--label-names", str(d / "names.json"), "--out", str(out), "--directions", "800", *extra]


def test_plan_one_lesion_end_to_end(case_files, tmp_path, capsys):
    rc = main(_args(case_files, tmp_path / "out", "--lesion", "lesion_sub", "--no-pdf"))
    assert rc == 0
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert [l["name"] for l in plan["lesions"]] == ["lesion_sub"]
    assert (tmp_path / "out" / "plan.mrk.json").exists()
    assert not (tmp_path / "out" / "reference_to_ct.tfm").exists()       # not registered
    out = capsys.readouterr().out
    assert "recommendation:" in out and "lesion_sub" in out
    # a second run without --force refuses and leaves the files alone
    rc = main(_args(case_files, tmp_path / "out", "--lesion", "lesion_sub", "--no-pdf"))
    assert rc == 2
    assert "already exists" in capsys.readouterr().err


def test_guidance_ct_only(case_files, tmp_path):
    assert main(_args(case_files, tmp_path, "--lesion", "lesion_sub", "--guidance", "ct", "--no-pdf")) == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert {t["guidance"] for t in plan["lesions"][0]["trajectories"]} == {"ct"}


@pytest.mark.parametrize("extra,needle", [
    (["--target", "0,0,400"], "outside the body"),
    (["--target", "160,-120,0"], "outside the body"),
    (["--target", "60,0,0"], "not inside the liver"),
    (["--target", "1,2"], "not three numbers"),
    (["--lesion", "lesion_99"], "lesion 'lesion_99' is not in the label map"),
    (["--max-length-mm", "500"], "outside (0, 200]"),
])
def test_bad_input_exits_2_with_one_clear_line(case_files, tmp_path, capsys, extra, needle):
    rc = main(_args(case_files, tmp_path, "--no-pdf", *extra))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "plan.json").exists()


def test_label_map_without_liver(case_files, tmp_path, capsys):
    args = _args(case_files, tmp_path, "--no-pdf")
    args[args.index("--label-names") + 1] = str(case_files / "names_no_liver.json")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no liver label" in err and "labels.nrrd" in err


def test_no_possible_path_is_a_plan_not_a_failure(case_files, tmp_path, capsys):
    rc = main(_args(case_files, tmp_path, "--lesion", "lesion_deep", "--max-length-mm", "25", "--no-pdf"))
    assert rc == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    # only the least-risk path, marked unsafe with its violations
    assert [t["safe"] for t in plan["lesions"][0]["trajectories"]] == [False]
    assert plan["recommendation"]["guidance"] == "none"
    assert plan["recommendation"]["reason_codes"] == ["no_safe_path_any_target"]
    # the CLI prints the case's reasons and, per lesion, the unsafe path's violations
    out = capsys.readouterr().out
    assert plan["recommendation"]["reasons"][0] in out
    assert "lesion_deep" in out and "NONE" in out and "least-risk path UNSAFE" in out and "0 US, 0 CT safe paths" in out
    mk = json.loads((tmp_path / "plan.mrk.json").read_text())
    line = next(m for m in mk["markups"] if m["type"] == "Line")
    assert line["name"].endswith("_UNSAFE") and line["display"]["color"][0] > 0.8
    assert line["controlPoints"][0]["description"].startswith("UNSAFE")


def test_patient_position_and_gantry_tilt_are_settings(case_files, tmp_path):
    rc = main(_args(case_files, tmp_path, "--lesion", "lesion_sub", "--guidance", "ct", "--no-pdf",
                    "--max-gantry-tilt-deg", "30", "--patient-position", "supine"))
    assert rc == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert plan["constraints"]["max_gantry_tilt_deg"] == 30.0
    for t in plan["lesions"][0]["trajectories"]:
        assert t["ct"]["double_oblique"] or abs(t["ct"]["gantry_tilt_deg"]) <= 30.0
    assert main(_args(case_files, tmp_path / "x", "--no-pdf", "--max-gantry-tilt-deg", "45")) == 2


@pytest.mark.slow
def test_real_ct_point_target_respects_ribs_and_vessels(shared_data, tmp_path, artifacts_dir):
    d = shared_data("ct", "abdomen-20slice")
    target = "-90,-127,-786"        # LPS mm, inside the liver on a middle slice
    rc = main(["plan", "--ct", str(d / "dicom"), "--labels", str(d / "labels.nii.gz"), "--label-names",
               str(d / "label_names.txt"), f"--target={target}", "--out", str(tmp_path), "--directions", "2500"])
    assert rc == 0
    plan = json.loads((tmp_path / "plan.json").read_text())
    les = plan["lesions"][0]
    paths = les["trajectories"]
    assert paths, les["candidates"]
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    ct = load_ct(d / "dicom")
    lm = load_labels(d / "labels.nii.gz", d / "label_names.txt", reference=ct)
    # independent check: re-sample each straight segment against the TotalSegmentator labels
    ribs = [n for n in lm.names if n.startswith(("rib_", "vertebrae_", "costal", "sternum"))]
    truth = lm.with_array(np.where(np.isin(lm.array, [lm.names[n] for n in ribs]), 1000, lm.array))
    truth.names = dict(lm.names, bone=1000)
    for t in paths:
        assert t["safe"] is True
        v = independent_violations(truth, t["entry_ct"], t["target_ct"],
                                   vessel_names=("aorta", "inferior_vena_cava", "portal_vein_and_splenic_vein"),
                                   clearance={k: x for k, x in t["clearance_mm"].items() if k == "bone"})
        assert v == [], (t["guidance"], v)
        assert t["clearance_mm"]["bone"] > 0.635
    import shutil
    import subprocess
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "60", str(tmp_path / "plan.pdf"),
                        str(artifacts_dir / "plan_real_ct")], check=True)


@pytest.mark.slow
def test_demo_case_with_registered_sweep(tmp_path):
    """Demo case + the NET lesion's sweep registered with the true reference_to_ct: the lesion is
    measured on the frames that cut it (hyperechoic: CNR > 0), the .tfm maps like the truth."""
    case = pytest.importorskip("sample_data.case.demo_case")
    d = case.ensure_demo_case()
    truth = json.loads((d / "truth.json").read_text())
    (tmp_path / "result.json").write_text(json.dumps({"reference_to_ct": truth["reference_to_ct"],
                                                      "tre_rms_mm": 3.0}))
    rc = main(["plan", "--ct", str(d / "ct_portal.nrrd"), "--ct-arterial", str(d / "ct_arterial.nrrd"),
               "--labels", str(d / "labels.nrrd"), "--label-names", str(d / "label_names.json"),
               "--sweep", str(d / "sweep_lesion_6.igs.mha"), "--registration", str(tmp_path / "result.json"),
               "--lesion", "lesion_6", "--out", str(tmp_path / "out"), "--directions", "1500",
               "--max-planning-voxels", "6000000"])
    assert rc == 0
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    les = plan["lesions"][0]
    meas = les["visibility"]["measured"]
    assert meas["frames_cutting_lesion"] > 5
    assert meas["cnr"] > 0                      # NET metastasis: brighter than the liver ring
    assert les["visibility"]["lesion_type"] == "net-like"
    assert les["visibility"]["fusion"]["hit_probability"] > 0.9     # 18 mm lesion, TRE 3 mm
    tx = sitk.ReadTransform(str(tmp_path / "out" / "reference_to_ct.tfm"))
    m = np.asarray(truth["reference_to_ct"])
    p = np.array([10.0, -20.0, 30.0])
    assert np.allclose(tx.TransformPoint(tuple(p)), (m @ np.append(p, 1))[:3], atol=1e-6)


def test_registration_tre_is_read_from_what_ctus_register_writes():
    """The planner takes each lesion's TRE from RESULT.json's target rows (tre_registration_mm,
    as registration.align.uncertainty writes them), and nothing from a result the registration
    itself called poor (no hit probability, so no fusion recommendation)."""
    from planner.advice.fusion_error import registration_tre_mm
    result = {"reference_to_ct": np.eye(4).tolist(), "verdict": "check",
              "targets": [{"name": "lesion_1", "tre_registration_mm": 1.7, "tre_total_mm": 3.4},
                          {"name": "lesion_2", "tre_registration_mm": None}]}
    assert registration_tre_mm(result, "lesion_1") == pytest.approx(1.7)
    assert registration_tre_mm(result, "lesion_2") is None
    assert registration_tre_mm(result, "lesion_9") is None
    assert registration_tre_mm(dict(result, verdict="poor"), "lesion_1") is None
    # The {name: row} form takes the same keys, and a missing value is unknown, not an error.
    by_name = {"targets": {"lesion_1": {"tre_registration_mm": 2.2}, "lesion_2": {"tre_rms_mm": None},
                           "lesion_3": 1.5}}
    assert registration_tre_mm(by_name, "lesion_1") == pytest.approx(2.2)
    assert registration_tre_mm(by_name, "lesion_2") is None
    assert registration_tre_mm(by_name, "lesion_3") == pytest.approx(1.5)
