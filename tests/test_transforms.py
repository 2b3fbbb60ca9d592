"""Transforms: naming, rigid parameters, LPS/RAS and ITK .tfm files, tested from definitions."""
import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from registration.spatial.errors import InputError
from registration.spatial.transforms import (
    apply, as_matrix, compose, difference, invert, lps_to_ras, parse_matrix_text, ras_to_lps,
    read_tfm, rigid_matrix, rigid_params, write_tfm)

angles = st.floats(-170, 170)
shifts = st.floats(-200, 200)


@settings(max_examples=50, deadline=None)
@given(st.tuples(angles, angles, angles, shifts, shifts, shifts))
def test_rigid_params_round_trip(p):
    p = np.array(p)
    if np.linalg.norm(p[:3]) >= 179:  # rotation vectors wrap at 180 deg
        p[:3] *= 170 / np.linalg.norm(p[:3])
    m = rigid_matrix(p, center=(10, -5, 3))
    assert np.allclose(rigid_params(m, center=(10, -5, 3)), p, atol=1e-6)


def test_rigid_rotation_is_about_center():
    c = np.array([5.0, 6.0, 7.0])
    m = rigid_matrix([0, 0, 90, 0, 0, 0], center=c)
    assert np.allclose(apply(m, c), c)
    # 90 deg about +z: x axis -> y axis
    assert np.allclose(apply(m, c + [1, 0, 0]), c + [0, 1, 0])


def test_compose_cancels_inner_names():
    image_to_probe = np.diag([0.2, 0.2, 1.0, 1.0])
    probe_to_reference = rigid_matrix([0, 0, 0, 10, 0, 0])
    image_to_reference = compose(probe_to_reference, image_to_probe)
    # pixel (5, 0) -> 1 mm along probe x -> +10 in reference
    assert np.allclose(apply(image_to_reference, [5, 0, 0]), [11, 0, 0])
    assert np.allclose(invert(image_to_reference) @ image_to_reference, np.eye(4))


def test_difference_reports_mm_and_degrees():
    a = rigid_matrix([0, 0, 0, 0, 0, 0])
    b = rigid_matrix([0, 5, 0, 3, 4, 0])
    t, r = difference(a, b)
    assert t == pytest.approx(5.0)
    assert r == pytest.approx(5.0)


def test_ras_translation_in_lps_from_definition():
    # Definition: p_ras = (-x, -y, z) of p_lps. A transform that adds (10, 20, 30) to RAS
    # points moves an LPS point by (-10, -20, +30).
    ras_translate = np.eye(4)
    ras_translate[:3, 3] = [10, 20, 30]
    m_lps = ras_to_lps(ras_translate)
    p_lps = np.array([1.0, 2.0, 3.0])
    p_ras = p_lps * [-1, -1, 1]
    moved_ras = p_ras + [10, 20, 30]
    assert np.allclose(apply(m_lps, p_lps), moved_ras * [-1, -1, 1])
    assert np.allclose(m_lps[:3, 3], [-10, -20, 30])
    assert np.allclose(lps_to_ras(m_lps), ras_translate)


def test_tfm_written_lps_translation_text(tmp_path):
    ras_translate = np.eye(4)
    ras_translate[:3, 3] = [10, 20, 30]
    path = tmp_path / "t.tfm"
    write_tfm(path, ras_to_lps(ras_translate))
    text = path.read_text()
    assert text.startswith("#Insight Transform File V1.0")
    assert "Transform: AffineTransform_double_3_3" in text
    params = [float(v) for v in text.split("Parameters: ")[1].splitlines()[0].split()]
    assert np.allclose(params, [1, 0, 0, 0, 1, 0, 0, 0, 1, -10, -20, 30])


def test_tfm_round_trip_with_simpleitk_resampling_direction(tmp_path):
    # reference_to_ct written as the resampling transform (fixed = Reference, moving = CT):
    # ITK must map a Reference point to where reference_to_ct puts it.
    reference_to_ct = rigid_matrix([12, -7, 25, 40, -15, 8], center=(3, 4, 5))
    path = tmp_path / "reference_to_ct.tfm"
    write_tfm(path, reference_to_ct, center=(-20, 30, 100))
    tx = sitk.ReadTransform(str(path))
    p_ref = (17.0, -42.0, 91.0)
    assert np.allclose(tx.TransformPoint(p_ref), apply(reference_to_ct, p_ref), atol=1e-9)
    assert np.allclose(read_tfm(path), reference_to_ct, atol=1e-12)
    # and resampling a CT with it samples the CT at reference_to_ct(p): a bright voxel at
    # ct_point shows up at the reference point that maps onto it.
    ct = sitk.Image(60, 60, 60, sitk.sitkFloat32)
    ct.SetOrigin((-30, -30, -30))
    ct_point = (4.0, -6.0, 10.0)
    idx = ct.TransformPhysicalPointToIndex(ct_point)
    ct[idx] = 1000.0
    ref_point = apply(invert(reference_to_ct), ct.TransformIndexToPhysicalPoint(idx))
    ref_grid = sitk.Image(1, 1, 1, sitk.sitkFloat32)
    ref_grid.SetOrigin(tuple(ref_point))
    out = sitk.Resample(ct, ref_grid, tx, sitk.sitkNearestNeighbor, 0.0)
    assert out[0, 0, 0] == 1000.0


def test_tfm_reads_euler_written_by_itk(tmp_path):
    tx = sitk.Euler3DTransform((1, 2, 3), 0.1, -0.2, 0.3, (4, 5, 6))
    path = str(tmp_path / "e.tfm")
    sitk.WriteTransform(tx, path)
    m = read_tfm(path)
    p = (10.0, 20.0, 30.0)
    assert np.allclose(apply(m, p), tx.TransformPoint(p))


def test_tfm_bad_input(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_tfm(tmp_path / "missing.tfm")
    bad = tmp_path / "bad.tfm"
    bad.write_text("hello")
    with pytest.raises(InputError, match="bad.tfm"):
        read_tfm(bad)


@pytest.mark.parametrize("text,match", [
    ("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0", "15 numbers"),
    ("1 0 0 x 0 1 0 0 0 0 1 0 0 0 0 1", "not numeric"),
    ("1 0 0 nan 0 1 0 0 0 0 1 0 0 0 0 1", "NaN"),
    ("1 0 0 0 0 1 0 0 0 0 1 0 1 0 0 1", "not affine"),
])
def test_matrix_text_errors(text, match):
    with pytest.raises(InputError, match=match):
        parse_matrix_text(text, name="ProbeToTrackerTransform", path="sweep.mha")


def test_as_matrix_accepts_3x4():
    m = as_matrix(np.arange(12).reshape(3, 4))
    assert m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1])


def test_atomic_write_has_normal_permissions_and_leaves_no_temp(tmp_path):
    import os
    from registration.spatial.atomic_io import atomic_write_text
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (os.stat(tmp_path / "a.txt").st_mode & 0o777) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
