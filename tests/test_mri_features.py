"""LC2 features of an MR (issue 18): the pipeline's CT feature code on the mapped MR equals the MR definition."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from planner.cli.main import main
from registration.align.image_features import feature_arrays, lc2_intensity_volume
from registration.align.lc2 import ct_feature_arrays
from registration.io.mr_intensity import normalise
from registration.spatial.volume import Volume


def _mr(seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    a = np.zeros((20, 30, 30), np.float32)
    a[3:17, 5:25, 5:25] = 400
    a[6:14, 10:20, 8:22] = 1500
    a += rng.normal(0, 20, a.shape).astype(np.float32)
    return Volume(np.clip(a, 0, None), (1.2, 1.2, 2.0), (10.0, -5.0, 3.0))


def test_mr_through_the_ct_feature_code_gives_the_mr_features():
    mr = _mr()
    mapped = lc2_intensity_volume(mr, "MR")
    sp = tuple(mr.spacing[::-1])
    p_pipe, g_pipe = ct_feature_arrays(mapped.array, sp)            # what LC2's feature stage computes
    p_def, g_def = feature_arrays(normalise(mr).array, sp, "MR")     # the MR definition
    np.testing.assert_allclose(p_pipe, p_def, atol=1e-5)
    # g is the same up to the window's scale (400 HU-equivalent per normalised unit): LC2 ignores it
    np.testing.assert_allclose(g_pipe, 400.0 * g_def, rtol=1e-4, atol=1e-3)
    assert lc2_intensity_volume(mr, "CT") is mr
    with pytest.raises(ValueError):
        lc2_intensity_volume(mr, "US")


def test_register_refuses_an_mr_given_as_ct(tmp_path, capsys):
    mr = _mr()
    sitk.WriteImage(mr.to_sitk(), str(tmp_path / "mr.nii.gz"))
    (tmp_path / "init.json").write_text(json.dumps({"reference_to_ct": np.eye(4).tolist()}))
    rc = main(["register", "--ct", str(tmp_path / "mr.nii.gz"), "--sweep", str(tmp_path / "none.igs.mha"),
               "--init", str(tmp_path / "init.json"), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like an MR" in err and "--mr" in err
    assert not (tmp_path / "r.json").exists()


def test_register_refuses_a_ct_given_as_mr(tmp_path, capsys, shared_data):
    ct = shared_data("ct", "abdomen-20slice")
    (tmp_path / "init.json").write_text(json.dumps({"reference_to_mr": np.eye(4).tolist()}))
    rc = main(["register", "--mr", str(ct), "--sweep", str(tmp_path / "none.igs.mha"),
               "--init", str(tmp_path / "init.json"), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like a CT" in err and "--ct" in err


def test_an_mr_registration_is_at_best_check_with_the_reason():
    from registration.align.assessment import Assessment, TargetEstimate
    from registration.align.mr_us import MR_VERDICT_REASON, cap_mr_verdict
    a = Assessment("good", ["LC2 0.2 -> 0.3"], [TargetEstimate("lesion_1", tre_registration_mm=1.0, verdict="good"),
                                               TargetEstimate("far", verdict="poor", why=["far"])], None, 0.0)
    cap_mr_verdict(a)
    assert a.verdict == "check" and a.reasons[-1] == MR_VERDICT_REASON
    assert a.targets[0].verdict == "check" and a.targets[0].why == [MR_VERDICT_REASON]
    assert a.targets[0].tre_registration_mm == 1.0                    # the estimate is kept
    assert a.targets[1].verdict == "poor" and a.targets[1].why == ["far"]
