"""MR input (issue 18): DICOM study listing, loading, refusals, intensity handling, CT-or-MR evidence."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from _mri_helpers import _body, _study
from registration.io.mr_intensity import modality_evidence, n4_bias_correct, normalise
from registration.io.mr_io import load_mr
from registration.io.mr_series import list_mr_series
from registration.spatial.errors import InputError
from registration.spatial.volume import Volume


def test_listing_names_sequences_phases_and_refuses_dwi(tmp_path):
    vol = _study(tmp_path)
    series = {s.series_uid: s for s in list_mr_series(tmp_path)}
    assert set(series) == {"1.2.3.10", "1.2.3.11", "1.2.3.12", "1.2.3.13"}
    pre, hbp, t2, dwi = (series[u] for u in ("1.2.3.10", "1.2.3.11", "1.2.3.12", "1.2.3.13"))
    assert pre.mr_phase == "pre-contrast" and pre.weighting == "T1"
    assert hbp.mr_phase == "hepatobiliary" and "1200 s" in hbp.mr_phase_reason
    assert hbp.echo_time_ms == pytest.approx(1.9) and hbp.repetition_time_ms == pytest.approx(4.1)
    assert t2.weighting == "T2" and "heuristic" in t2.weighting_reason
    assert dwi.weighting == "DWI" and dwi.images_per_position == 2 and "diffusion" in dwi.unusable
    with pytest.raises(InputError, match="series found") as exc:        # several: the user must choose
        load_mr(tmp_path)
    assert "hepatobiliary" in str(exc.value) and "--mr-series" in str(exc.value)
    with pytest.raises(InputError, match="diffusion"):
        load_mr(tmp_path, "1.2.3.13")
    mr = load_mr(tmp_path, "1.2.3.11")
    assert mr.metadata["modality"] == "MR" and mr.metadata["mr_phase"] == "hepatobiliary"
    assert mr.shape_ijk == vol.shape_ijk
    np.testing.assert_allclose(mr.spacing, vol.spacing, atol=1e-6)
    np.testing.assert_allclose(mr.origin, vol.origin, atol=1e-6)
    np.testing.assert_allclose(mr.array, np.clip(np.rint(vol.array * 1.2), 0, 65535), atol=0.5)


def test_image_files_3d_4d_2d_and_single_slice(tmp_path):
    vol = _body()
    sitk.WriteImage(vol.to_sitk(), str(tmp_path / "mr.nii.gz"))
    mr = load_mr(tmp_path / "mr.nii.gz")
    assert mr.shape_ijk == vol.shape_ijk and mr.metadata["modality"] == "MR"
    four = sitk.JoinSeries([vol.to_sitk(), vol.to_sitk()])
    sitk.WriteImage(four, str(tmp_path / "dwi.nii.gz"))
    with pytest.raises(InputError, match="4D"):
        load_mr(tmp_path / "dwi.nii.gz")
    sitk.WriteImage(vol.to_sitk()[:, :, 3], str(tmp_path / "slice.nrrd"))
    with pytest.raises(InputError, match="2D"):
        load_mr(tmp_path / "slice.nrrd")
    sitk.WriteImage(vol.to_sitk()[:, :, 3:4], str(tmp_path / "one.mha"))
    with pytest.raises(InputError, match="slice, not a volume"):
        load_mr(tmp_path / "one.mha")


def test_real_single_slice_mr_dicom_is_refused(tmp_path):
    """pydicom's MR_small.dcm: a real MR image, one slice."""
    from pydicom.data import get_testdata_file
    src = get_testdata_file("MR_small.dcm")
    if src is None:
        pytest.skip("pydicom test file MR_small.dcm not available")
    shutil.copy(src, tmp_path / "MR_small.dcm")
    with pytest.raises(InputError, match="one slice cannot be registered"):
        load_mr(tmp_path)


def test_real_ct_is_refused_as_mr(shared_data):
    ct = shared_data("ct", "abdomen-20slice")
    with pytest.raises(InputError, match="looks like a CT") as exc:
        load_mr(ct)
    assert "--ct" in str(exc.value)


def test_modality_evidence():
    rng = np.random.default_rng(1)
    hu = np.full((10, 30, 30), -1000.0)
    hu[:, 5:25, 5:25] = rng.normal(50, 20, (10, 20, 20))
    assert modality_evidence(Volume(hu))[0] == "CT"
    inside = hu[:, 8:22, 8:22].copy()
    inside[:, :5] -= 160                                                         # fat beside soft tissue
    assert modality_evidence(Volume(inside))[0] == "CT"                         # cropped inside the body
    assert modality_evidence(Volume(hu + 1024))[0] == "CT"                      # no intercept
    assert modality_evidence(_body())[0] == "MR"
    assert modality_evidence(Volume(_body().array / 1000.0))[0] == "MR"          # scaled float MR
    dicom_mr = Volume(hu, metadata={"format": "dicom", "modality": "MR"})
    assert modality_evidence(dicom_mr) == ("MR", "DICOM Modality MR")


def test_normalise_and_n4():
    vol = _body(shape=(16, 48, 48), spacing=(2.0, 2.0, 2.0))
    norm = normalise(vol)
    lo, hi = norm.metadata["intensity_range"]
    assert 0.0 <= norm.array.min() and norm.array.max() <= 1.5
    assert lo < 300 < hi and 880 < hi < 1000
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, n) for n in vol.array.shape], indexing="ij")
    bias = (1.0 + 0.3 * j + 0.15 * i).astype(np.float32)
    biased = vol.with_array(vol.array * bias)
    bright = vol.array > 600
    corrected, field = n4_bias_correct(biased)
    cv = lambda a: float(np.std(a[bright]) / np.mean(a[bright]))  # noqa: E731
    assert cv(corrected.array) < 0.6 * cv(biased.array)
    assert np.corrcoef(field[bright], bias[bright])[0, 1] > 0.9
