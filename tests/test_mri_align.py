"""MR -> CT registration (issue 18): a known transform recovered, the .tfm direction, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from planner.cli.main import main
from registration.spatial.transforms import apply, invert, read_tfm, rigid_matrix
from registration.spatial.volume import LabelMap, Volume


def _pair(mr_to_ct: np.ndarray):
    """A small CT (HU) and an MR of the same synthetic abdomen whose anatomy maps MR -> CT by ``mr_to_ct``."""
    sp = 1.5
    n = (64, 72, 80)                         # k, j, i
    origin = np.array([-60.0, -54.0, -48.0])

    def tissue(p):                            # p [..., 3] in CT LPS mm -> tissue code
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        code = np.zeros(p.shape[:-1], np.uint8)
        code[(x / 52) ** 2 + (y / 44) ** 2 + (z / 60) ** 2 < 1] = 1                      # body
        code[((x + 15) / 25) ** 2 + ((y - 5) / 20) ** 2 + ((z - 5) / 28) ** 2 < 1] = 2   # liver
        code[((x - 20) / 8) ** 2 + ((y + 10) / 8) ** 2 + (z / 40) ** 2 < 1] = 3          # vessel
        code[((x + 15) ** 2 + (y - 5) ** 2 + (z + 8) ** 2) < 36] = 4                     # lesion
        code[(np.abs(x) < 8) & (np.abs(y - 30) < 6) & (np.abs(z) < 50)] = 5             # bone
        return code

    k, j, i = np.meshgrid(*[np.arange(v) for v in n], indexing="ij")
    pts = origin + sp * np.stack([i, j, k], axis=-1)
    ct_code = tissue(pts)
    mr_code = tissue(apply(mr_to_ct, pts.reshape(-1, 3)).reshape(pts.shape))
    hu = np.array([-1000, 40, 90, 180, 60, 700], np.float32)[ct_code]
    mri = np.array([0, 300, 1000, 200, 350, 80], np.float32)[mr_code]
    rng = np.random.default_rng(3)
    ct = Volume(sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(hu), 1.0))
                + rng.normal(0, 8, hu.shape).astype(np.float32), (sp,) * 3, origin)
    mr = Volume(np.clip(sitk.GetArrayFromImage(sitk.SmoothingRecursiveGaussian(sitk.GetImageFromArray(mri), 1.0))
                        + rng.normal(0, 15, mri.shape).astype(np.float32), 0, None), (sp,) * 3, origin)
    labels = LabelMap((ct_code == 2).astype(np.uint8) + 20 * (ct_code == 4), (sp,) * 3, origin,
                      names={"liver": 1, "lesion_1": 20})
    return ct, mr, labels


@pytest.mark.slow
def test_known_transform_is_recovered_and_the_tfm_resamples_the_mr_onto_the_ct(tmp_path):
    truth = rigid_matrix([2.0, -3.0, 1.5, 4.0, -3.0, 6.0], center=(0.0, 0.0, 0.0))     # MR -> CT
    ct, mr, labels = _pair(truth)
    sitk.WriteImage(ct.to_sitk(), str(tmp_path / "ct.nrrd"))
    sitk.WriteImage(mr.to_sitk(), str(tmp_path / "mr.nii.gz"))
    sitk.WriteImage(labels.to_sitk(), str(tmp_path / "labels.nrrd"))
    (tmp_path / "names.json").write_text(json.dumps(labels.names))
    rc = main(["align", "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "mr.nii.gz"),
               "--fixed-labels", str(tmp_path / "labels.nrrd"), "--label-names", str(tmp_path / "names.json"),
               "--out", str(tmp_path / "mr_to_ct.json"), "--tfm", "--rigid"])
    assert rc == 0
    doc = json.loads((tmp_path / "mr_to_ct.json").read_text())
    m = np.asarray(doc["mr_to_ct"])
    probe = np.array([[-15.0, 5.0, -8.0], [20.0, -10.0, 0.0], [0.0, 0.0, 20.0]])     # lesion, vessel, centre (CT)
    err = np.linalg.norm(apply(m, apply(invert(truth), probe)) - probe, axis=1)
    assert err.max() < 1.5, err
    lesion = next(t for t in doc["targets"] if t["name"] == "lesion_1")
    assert lesion["tre_mm"] is not None and err[0] <= lesion["tre_95_mm"]
    assert doc["verdict"] in ("good", "check")
    # The .tfm holds the resampling transform (fixed = CT -> moving = MR): ITK maps a CT point to the MR.
    tx = sitk.ReadTransform(str(tmp_path / "mr_to_ct.tfm"))
    p_ct = probe[0]
    np.testing.assert_allclose(tx.TransformPoint(p_ct.tolist()), apply(invert(m), p_ct), atol=1e-6)
    np.testing.assert_allclose(read_tfm(tmp_path / "mr_to_ct.tfm"), invert(m), atol=1e-9)
    # ... so resampling the MR with it lays the MR's lesion on the CT's lesion
    on_ct = sitk.GetArrayFromImage(sitk.Resample(mr.to_sitk(), ct.to_sitk(), tx, sitk.sitkLinear, 0.0))
    lesion_ct = labels.array == 20
    liver_ct = labels.array == 1
    assert on_ct[lesion_ct].mean() < 0.6 * on_ct[liver_ct].mean()


def test_align_bad_input(tmp_path, capsys):
    ct, mr, labels = _pair(np.eye(4))
    sitk.WriteImage(ct.to_sitk(), str(tmp_path / "ct.nrrd"))
    far = Volume(mr.array, mr.spacing, mr.origin + np.array([0.0, 0.0, 1000.0]))
    sitk.WriteImage(far.to_sitk(), str(tmp_path / "far.nii.gz"))
    sitk.WriteImage(mr.to_sitk(), str(tmp_path / "mr.nii.gz"))
    out = tmp_path / "o.json"
    rc = main(["align", "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "far.nii.gz"),
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "do not overlap" in err and "--init centres" in err and not out.exists()
    rc = main(["align", "--fixed", str(tmp_path / "mr.nii.gz"), "--moving", str(tmp_path / "ct.nrrd"),
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like an MR" in err and not out.exists()
    sitk.WriteImage(mr.to_sitk()[:, :, 10], str(tmp_path / "slice.nrrd"))
    rc = main(["align", "--fixed", str(tmp_path / "ct.nrrd"), "--moving", str(tmp_path / "slice.nrrd"),
               "--out", str(out)])
    assert rc == 2 and "2D" in capsys.readouterr().err
