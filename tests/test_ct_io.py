"""CT input: real DICOM, written multi-series folders, resampling cases, image files, bad input."""
from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from registration.io import ct_io
from registration.io.dicom_series import list_dicom_series
from registration.io.ct_io import load_ct
from registration.io.dicom_write import write_dicom_series
from registration.spatial.errors import InputError
from registration.spatial.volume import Volume


def _oblique_volume(rng, shape=(12, 40, 48), hu_range=(-1024, 1500), dtype=np.int16):
    arr = rng.integers(hu_range[0], hu_range[1], size=shape).astype(dtype)
    rot = Rotation.from_euler("xyz", [8, -5, 20], degrees=True).as_matrix()
    return Volume(arr, (0.7, 0.8, 2.5), (-120.0, 35.5, -300.25), rot)


def _random_names(rng, n):
    return [f"{rng.integers(0, 1 << 40):x}" for _ in range(n)]  # no extension, unordered


# --------------------------------------------------------------------------- real data
def test_abdomen_dicom_loads_with_geometry_and_hu(shared_data):
    folder = shared_data("ct", "abdomen-20slice", "dicom")
    vol = load_ct(folder)
    assert vol.shape_ijk == (512, 512, 20)
    assert vol.spacing == pytest.approx([0.977, 0.977, 2.0], abs=1e-3)
    assert np.allclose(vol.direction, np.eye(3))
    assert vol.array.dtype in (np.int16, np.float32)
    # air outside the body is -1024 HU after RescaleIntercept, contrast-filled vessels / bone > 500
    assert vol.array.min() == -1024 and vol.array.max() > 500
    # independent reference: SimpleITK's own series reader sorts by position too
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    ref = reader.Execute()
    assert np.array_equal(sitk.GetArrayFromImage(ref), vol.array)
    assert np.allclose(ref.GetOrigin(), vol.origin, atol=1e-4)
    md = vol.metadata
    assert md["modality"] == "CT" and md["series_description"] == "CT Body 3.0"
    # ContrastBolusStartTime 14:02:16.7, AcquisitionTime 14:03:52.5: 96 s after injection
    assert md["phase_hint"] == "portal venous" and "96 s after the contrast injection" in md["phase_reason"]
    assert md["warnings"] == []


def test_abdomen_listing_sorted_by_position(shared_data):
    folder = shared_data("ct", "abdomen-20slice", "dicom")
    (info,) = list_dicom_series(folder)
    assert info.n_files == 20 and info.size == (512, 512, 20)
    assert info.spacing == pytest.approx((0.9765625, 0.9765625, 2.0))
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in info.files]
    assert z == sorted(z) and len(set(z)) == 20
    assert info.contrast_agent == "APPLIED"


def test_listing_reads_no_pixels(shared_data, monkeypatch):
    folder = shared_data("ct", "abdomen-20slice", "dicom")

    def forbidden(*a, **k):
        raise AssertionError("listing must read headers only")
    monkeypatch.setattr(ct_io.sitk, "ReadImage", forbidden)
    assert list_dicom_series(folder)[0].n_files == 20


def test_three_slice_ct_loads(shared_data):
    vol = load_ct(shared_data("ct", "liver-3slice", "dicom"))
    assert vol.shape_ijk == (512, 512, 3)
    assert vol.spacing == pytest.approx([0.810547, 0.810547, 1.0], abs=1e-5)
    assert vol.origin == pytest.approx([-235.2, -226.8, -128.69], abs=1e-3)
    assert vol.metadata["patient_id"] == "99000"
    # HU checked independently of GDCM: pydicom's raw pixels with the header's rescale
    for f in sorted(shared_data("ct", "liver-3slice", "dicom").iterdir()):
        ds = pydicom.dcmread(f)
        k = int(round((float(ds.ImagePositionPatient[2]) - vol.origin[2]) / vol.spacing[2]))
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(vol.array[k], hu)


# --------------------------------------------------------------------------- written series
def test_two_series_shuffled_names_listed_and_loaded(tmp_path):
    rng = np.random.default_rng(7)
    art = _oblique_volume(rng)
    pv = Volume(rng.uniform(-1000, 1200, size=(9, 30, 36)), (0.9, 0.9, 3.0), (5.0, -60.0, 40.0))
    folder = tmp_path / "mixed"
    write_dicom_series(art, folder, series_description="Abdomen 1.0", contrast_agent="Iohexol",
                       acquisition_time="101530", series_number=3,
                       file_names=_random_names(rng, art.shape_ijk[2]))
    # non-default rescale: slope 0.5 and intercept -1000 must be applied by the reader
    write_dicom_series(pv, folder, series_description="Abdomen 1.0 B", contrast_agent="Iohexol",
                       acquisition_time="101600", series_number=4, rescale_slope=0.5,
                       rescale_intercept=-1000, file_names=_random_names(rng, pv.shape_ijk[2]))
    series = list_dicom_series(folder)
    assert [s.series_description for s in series] == ["Abdomen 1.0", "Abdomen 1.0 B"]
    assert [s.time_from_first_s for s in series] == [0.0, 30.0]
    assert [s.phase_hint for s in series] == ["arterial", "portal venous"]
    assert [s.n_files for s in series] == [12, 9]
    for s in series:   # files ordered along the slice normal, not by (random) name
        normal = np.cross(s.orientation[:3], s.orientation[3:])
        t = [np.array(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient, float) @ normal
             for f in s.files]
        assert np.all(np.diff(t) > 0)
        assert [os.path.basename(f) for f in s.files] != sorted(os.path.basename(f) for f in s.files)

    with pytest.raises(InputError, match="2 series found") as exc:
        load_ct(folder)
    assert "Abdomen 1.0 B" in str(exc.value) and str(folder) in str(exc.value)

    a = load_ct(folder, series_uid=series[0].series_uid)
    assert np.array_equal(a.array, art.array)             # exact HU
    assert np.allclose(a.spacing, art.spacing) and np.allclose(a.origin, art.origin, atol=1e-6)
    assert np.allclose(a.direction, art.direction, atol=1e-6)
    assert a.metadata["phase_hint"] == "arterial"
    b = load_ct(folder, series_uid=series[1].series_uid)
    assert np.max(np.abs(b.array - pv.array)) <= 0.25 + 1e-6   # within half the rescale slope
    assert b.array.dtype == np.float32
    assert np.allclose(b.origin, pv.origin) and np.allclose(b.spacing, pv.spacing)
    # a single file of a series loads that series
    c = load_ct(series[1].files[3])
    assert c.metadata["series_uid"] == series[1].series_uid


def test_phase_hints_from_keywords_and_plain_scan(tmp_path):
    rng = np.random.default_rng(3)
    small = Volume(rng.integers(-100, 100, size=(3, 8, 8)).astype(np.int16))
    write_dicom_series(small, tmp_path, series_description="Abdomen 5mm", acquisition_time="100000")
    write_dicom_series(small, tmp_path, series_description="Pancreas late arterial",
                       contrast_agent="Visipaque", acquisition_time="100130")
    write_dicom_series(small, tmp_path, series_description="Portal venous 70s",
                       contrast_agent="Visipaque", acquisition_time="100155")
    write_dicom_series(small, tmp_path, series_description="Abdomen 5mm",
                       contrast_agent="NONE", acquisition_time="095900")
    hints = {(s.series_description, s.contrast_agent): s.phase_hint for s in list_dicom_series(tmp_path)}
    assert hints == {("Abdomen 5mm", None): "non-contrast",        # before every contrast series
                     ("Pancreas late arterial", "Visipaque"): "arterial",
                     ("Portal venous 70s", "Visipaque"): "portal venous",
                     ("Abdomen 5mm", "NONE"): "non-contrast"}


def test_phase_hints_from_a_pacs_listing():
    """What a C-FIND answer has (description, SeriesDate, SeriesTime) gives the same hints as a folder:
    keywords first; an undescribed series acquired before the contrast series is the plain scan;
    one acquired after them, or without a time, stays unknown (no ContrastBolusAgent in a listing)."""
    from registration.io.contrast_phase import listed_phase_hints
    hints = listed_phase_hints([("Abdomen 5mm", "20240102", "100000"),
                                ("Pancreas late arterial", "20240102", "100130.5"),
                                ("Portal venous 70s", "20240102", "100155"),
                                ("Abdomen 5mm", "20240102", "101000"), ("", "", "")])
    assert [h for h, _ in hints] == ["non-contrast", "arterial", "portal venous", "unknown", "unknown"]
    assert hints[0][1] == "no ContrastBolusAgent, acquired before the contrast series"
    assert hints[2][1] == "series description 'Portal venous 70s'"
    assert listed_phase_hints([]) == []


def _linear_hu(points):
    """An analytic CT: linear in LPS, so linear interpolation reproduces it exactly."""
    return 0.5 * points[..., 0] + 0.25 * points[..., 1] + 3.0 * points[..., 2]


def test_missing_slice_resampled_to_uniform(tmp_path):
    shape = (10, 16, 20)
    vol = Volume(np.zeros(shape, np.int16), (1.0, 1.0, 2.0), (-10.0, -8.0, 0.0))
    k, j, i = np.indices(shape)
    vol.array[...] = np.rint(_linear_hu(vol.index_to_lps(np.stack([i, j, k], -1))))
    files = write_dicom_series(vol, tmp_path, series_description="gap")
    os.remove(files[4])                                   # slice at z = 8 mm is missing
    out = load_ct(tmp_path)
    assert out.shape_ijk == (20, 16, 10)
    assert out.spacing == pytest.approx([1.0, 1.0, 2.0])
    assert any("non-uniform slice spacing" in w for w in out.metadata["warnings"])
    assert np.allclose(out.array, vol.array, atol=0.51)   # interpolated slice within rounding


def test_gantry_tilt_resampled_onto_orthogonal_grid(tmp_path):
    tilt = np.radians(15.0)
    row = np.array([1.0, 0.0, 0.0])
    col = np.array([0.0, np.cos(tilt), np.sin(tilt)])     # tilted gantry: image columns lean in z
    n_k, rows, cols, sx, sy, table_step = 8, 24, 20, 1.5, 1.5, 4.0
    p0 = np.array([-15.0, -20.0, 100.0])
    positions = [p0 + np.array([0, 0, table_step * k]) for k in range(n_k)]   # table moves along z
    jj, ii = np.mgrid[:rows, :cols]
    arr = np.stack([np.rint(_linear_hu(p + ii[..., None] * sx * row + jj[..., None] * sy * col))
                    for p in positions]).astype(np.int16)
    direction = np.column_stack([row, col, np.cross(row, col)])
    files = write_dicom_series(Volume(arr, (sx, sy, 1.0), p0, direction), tmp_path,
                               series_description="tilted")
    for f, p in zip(files, positions):
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [f"{v:.6f}" for v in p]
        ds.GantryDetectorTilt = "15"
        ds.save_as(f)
    out = load_ct(tmp_path)
    assert any("gantry tilt 15.00 deg" in w for w in out.metadata["warnings"])
    assert np.allclose(out.direction[:, 2], np.cross(row, col), atol=1e-9)
    assert out.spacing[2] == pytest.approx(table_step * np.cos(tilt))
    # where each output voxel falls in the tilted input grid (continuous index)
    tilted_ijk_to_lps = np.eye(4)
    tilted_ijk_to_lps[:3, :3] = np.column_stack([row * sx, col * sy, [0, 0, table_step]])
    tilted_ijk_to_lps[:3, 3] = p0
    k, j, i = np.indices(out.array.shape)
    lps = out.index_to_lps(np.stack([i, j, k], -1))
    src = (lps - p0) @ np.linalg.inv(tilted_ijk_to_lps[:3, :3]).T
    interior = np.all((src >= 0) & (src <= np.array([cols, rows, n_k]) - 1), axis=-1)
    assert interior.sum() > 0.4 * out.array.size
    assert np.all(out.array[interior] > -1024)
    err = np.abs(out.array[interior] - _linear_hu(lps[interior]))
    assert err.max() < 0.51            # linear data: only the rounding of stored values remains
    far = np.any((src < -1) | (src > np.array([cols, rows, n_k])), axis=-1)
    assert np.all(out.array[far] == -1024) and far.sum() > 0


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii", ".mha"])
def test_image_files_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(11)
    vol = _oblique_volume(rng, shape=(5, 7, 9))
    path = tmp_path / f"ct{suffix}"
    sitk.WriteImage(vol.to_sitk(), str(path))
    out = load_ct(path)
    assert np.array_equal(out.array, vol.array)
    assert np.allclose(out.origin, vol.origin, atol=1e-4)
    assert np.allclose(out.direction, vol.direction, atol=1e-5)
    assert out.metadata["source"] == str(path)


def test_nrrd_in_ras_space_is_converted_to_lps(tmp_path):
    """Known case written by hand: a RAS origin (10, 20, 30) is LPS (-10, -20, 30)."""
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: right-anterior-superior\n"
              "sizes: 4 3 2\nspace directions: (1,0,0) (0,1,0) (0,0,2)\n"
              "kinds: domain domain domain\nendian: little\nencoding: raw\n"
              "space origin: (10,20,30)\n\n")
    path = tmp_path / "ras.nrrd"
    path.write_bytes(header.encode() + data.tobytes())
    out = load_ct(path)
    assert out.origin == pytest.approx([-10, -20, 30])
    # +i points to R in RAS terms (1,0,0) = -L in LPS: direction column -x
    assert np.allclose(out.direction, np.diag([-1, -1, 1]))
    assert np.array_equal(out.array, data)
    assert out.index_to_lps([3, 2, 1]) == pytest.approx([-13, -22, 32])


# --------------------------------------------------------------------------- bad input
def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="not found") as exc:
        load_ct(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(exc.value) and "DICOM folder" in str(exc.value)


def test_empty_folder(tmp_path):
    with pytest.raises(InputError, match="folder is empty") as exc:
        load_ct(tmp_path)
    assert str(tmp_path) in str(exc.value) and "DICOM files" in str(exc.value)


def test_folder_of_non_dicom_files(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.dcm").write_bytes(b"\x00" * 300)
    with pytest.raises(InputError, match="none of the 2 files is a DICOM image") as exc:
        load_ct(tmp_path)
    assert str(tmp_path) in str(exc.value) and "give the folder" in str(exc.value)


def test_truncated_nrrd(tmp_path):
    vol = Volume(np.zeros((10, 20, 20), np.int16))
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(vol.to_sitk(), str(path), False)
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(InputError, match="cannot read the image") as exc:
        load_ct(path)
    assert str(path) in str(exc.value) and "not corrupted" in str(exc.value)


def test_unknown_series_uid(tmp_path):
    write_dicom_series(Volume(np.zeros((2, 4, 4), np.int16)), tmp_path, series_description="x")
    with pytest.raises(InputError, match="series 1.2.3 is not in the folder") as exc:
        load_ct(tmp_path, series_uid="1.2.3")
    assert "pass one of the listed series UIDs" in str(exc.value)


def test_duplicate_slice_positions(tmp_path):
    files = write_dicom_series(Volume(np.zeros((3, 4, 4), np.int16)), tmp_path,
                               series_description="dup")
    ds = pydicom.dcmread(files[2])
    ds.ImagePositionPatient = pydicom.dcmread(files[1]).ImagePositionPatient
    ds.save_as(files[2])
    with pytest.raises(InputError, match="two slices at the same position"):
        load_ct(tmp_path)


def test_sequence_image_is_not_a_ct(tmp_path):
    path = tmp_path / "vec.mha"
    sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkVectorFloat32, 3), str(path))
    with pytest.raises(InputError, match="expected a 3D scalar image"):
        load_ct(path)


def test_series_uid_with_two_image_sizes_is_split(tmp_path):
    """A localizer sharing the CT's series UID is listed apart instead of breaking the series."""
    rng = np.random.default_rng(2)
    ct = Volume(rng.integers(-1000, 1000, size=(6, 10, 12)).astype(np.int16))
    scout = Volume(np.zeros((1, 20, 20), np.int16), (2, 2, 2), (0, 0, 50), np.array(
        [[1, 0, 0], [0, 0, 1], [0, -1, 0]], float))               # coronal
    write_dicom_series(ct, tmp_path, series_description="CT", series_uid="1.2.3.4")
    write_dicom_series(scout, tmp_path, series_description="CT", series_uid="1.2.3.4")
    series = {s.series_uid: s for s in list_dicom_series(tmp_path)}
    assert sorted(series) == ["1.2.3.4", "1.2.3.4#2"]
    assert series["1.2.3.4"].n_files == 6 and series["1.2.3.4#2"].n_files == 1
    assert np.array_equal(load_ct(tmp_path, series_uid="1.2.3.4").array, ct.array)


def test_written_series_read_by_simpleitk_and_tags(tmp_path):
    """The writer checked by an independent reader (GDCM via SimpleITK) and its DICOM tags."""
    rng = np.random.default_rng(4)
    vol = _oblique_volume(rng, shape=(7, 9, 11), hu_range=(-3000, 3000))   # needs signed storage
    files = write_dicom_series(vol, tmp_path, series_description="Portal venous",
                               contrast_agent="Omnipaque 350", acquisition_time="101530.5",
                               patient_id="P42", frame_of_reference_uid="1.2.826.0.1.3680043.8.498.1")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    img = reader.Execute()
    assert img.GetSize() == vol.shape_ijk
    assert np.allclose(img.GetSpacing(), vol.spacing, atol=1e-6)   # (0.7, 0.8): PixelSpacing order
    assert np.allclose(img.GetOrigin(), vol.origin, atol=1e-6)
    assert np.allclose(np.array(img.GetDirection()).reshape(3, 3), vol.direction, atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(img), vol.array)
    ds = pydicom.dcmread(files[3])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"
    assert ds.ContrastBolusAgent == "Omnipaque 350" and ds.AcquisitionTime == "101530.5"
    assert ds.SeriesDescription == "Portal venous" and ds.PatientID == "P42"
    assert ds.FrameOfReferenceUID == "1.2.826.0.1.3680043.8.498.1"
    assert float(ds.SliceThickness) == pytest.approx(2.5) and ds.PixelRepresentation == 1
    assert [float(x) for x in ds.PixelSpacing] == pytest.approx([0.8, 0.7])  # row, column spacing
    assert [float(x) for x in ds.ImagePositionPatient] == pytest.approx(vol.index_to_lps([0, 0, 3]), abs=1e-6)
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1


def test_writer_rejects_bad_arguments(tmp_path):
    vol = Volume(np.zeros((2, 3, 3), np.int16))
    with pytest.raises(InputError, match="is not DICOM TM"):
        write_dicom_series(vol, tmp_path, series_description="x", acquisition_time="10:15")
    with pytest.raises(InputError, match="do not fit 16 bits"):
        write_dicom_series(vol.with_array(np.full((2, 3, 3), 1e6)), tmp_path, series_description="x")
    with pytest.raises(InputError, match="file names must be unique"):
        write_dicom_series(vol, tmp_path, series_description="x", file_names=["a", "a"])
    assert os.listdir(tmp_path) == []                 # nothing half-written


def test_left_handed_volume_comes_back_in_ascending_slice_order(tmp_path):
    """k pointing against the slice normal (e.g. feet-first stacking): same physical image."""
    rng = np.random.default_rng(9)
    vol = Volume(rng.integers(-500, 500, size=(5, 6, 7)).astype(np.int16), (0.5, 0.6, 3.0),
                 (1.0, 2.0, 50.0), np.diag([1.0, 1.0, -1.0]))
    write_dicom_series(vol, tmp_path, series_description="ff")
    out = load_ct(tmp_path)
    assert np.allclose(out.direction, np.eye(3))
    assert np.array_equal(out.array, vol.array[::-1])
    assert out.origin == pytest.approx(vol.index_to_lps([0, 0, 4]))
    # every voxel keeps its LPS position
    assert out.index_to_lps([3, 2, 1]) == pytest.approx(vol.index_to_lps([3, 2, 3]))


def test_image_file_without_negative_values_is_flagged(tmp_path):
    raw = Volume(np.full((3, 4, 5), 1064, np.uint16))          # 40 HU stored as HU + 1024
    raw.array[0, 0, 0] = 0
    path = tmp_path / "raw.nrrd"
    sitk.WriteImage(raw.to_sitk(), str(path))
    out = load_ct(path)
    assert out.array.dtype == np.int16 and out.array.max() == 1064
    assert any("-1024 HU intercept" in w for w in out.metadata["warnings"])
    ok = tmp_path / "hu.nrrd"
    sitk.WriteImage(Volume(raw.array.astype(np.int16) - 1024).to_sitk(), str(ok))
    assert load_ct(ok).metadata["warnings"] == []


def test_series_as_dict_is_json_ready(shared_data):
    import json
    (info,) = list_dicom_series(shared_data("ct", "abdomen-20slice", "dicom"))
    d = json.loads(json.dumps(info.as_dict()))
    assert d["size"] == [512, 512, 20] and d["phase_hint"] == "portal venous"
    assert d["time_from_injection_s"] == pytest.approx(95.763, abs=1e-3)
    assert "files" not in d and "positions" not in d


def test_several_missing_slices_refused(tmp_path):
    vol = Volume(np.zeros((12, 4, 4), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    files = write_dicom_series(vol, tmp_path, series_description="incomplete")
    for f in files[4:8]:                                  # 10 mm gap where 2 mm is usual
        os.remove(f)
    with pytest.raises(InputError, match="10.0 mm gap between slices at 6.0 and 16.0 mm") as exc:
        load_ct(tmp_path)
    assert "complete series" in str(exc.value) and str(tmp_path) in str(exc.value)


def test_resampling_warning_is_logged(tmp_path, caplog):
    vol = Volume(np.zeros((6, 4, 4), np.int16), (1.0, 1.0, 2.0))
    os.remove(write_dicom_series(vol, tmp_path, series_description="gap")[2])
    with caplog.at_level("WARNING", logger="registration.io.ct_io"):
        load_ct(tmp_path)
    assert "non-uniform slice spacing" in caplog.text


def test_progress_reported_and_cancellable(tmp_path):
    from registration.spatial.errors import CancelledError
    vol = Volume(np.zeros((25, 4, 4), np.int16))
    write_dicom_series(vol, tmp_path, series_description="p")
    seen = []
    load_ct(tmp_path, progress=lambda f, msg: seen.append((f, msg)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(seen) >= 3
    assert any("decoding slice" in m for _, m in seen)
    with pytest.raises(CancelledError):
        load_ct(tmp_path, progress=lambda f, msg: f < 0.5)


def test_writer_is_reproducible_with_given_uids_and_times(tmp_path):
    vol = Volume(np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4))
    kwargs = dict(series_description="repro", contrast_agent="Iohexol", acquisition_time="101540",
                  series_uid="1.2.826.0.1.3680043.8.498.10", study_uid="1.2.826.0.1.3680043.8.498.11",
                  frame_of_reference_uid="1.2.826.0.1.3680043.8.498.12",
                  sop_instance_uids=lambda k: f"1.2.826.0.1.3680043.8.498.20.{k + 1}",
                  study_date="20240131", study_time="101500", contrast_start_time="101500",
                  extra_tags={"PatientPosition": "HFS", "BodyPartExamined": "ABDOMEN"},
                  file_names=lambda k: f"CT{k + 1:04d}.dcm")
    a = write_dicom_series(vol, tmp_path / "a", **kwargs)
    b = write_dicom_series(vol, tmp_path / "b", **kwargs)
    assert [open(x, "rb").read() for x in a] == [open(x, "rb").read() for x in b]
    ds = pydicom.dcmread(a[1])
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.3680043.8.498.20.2"
    assert ds.PatientPosition == "HFS" and ds.StudyDate == "20240131"
    assert ds.ContrastBolusStartTime == "101500"
    with pytest.raises(InputError, match="'PixelSpacing' is set by the writer"):
        write_dicom_series(vol, tmp_path / "c", series_description="x",
                           extra_tags={"PixelSpacing": [1, 1]})
    with pytest.raises(InputError, match="not a DICOM keyword"):
        write_dicom_series(vol, tmp_path / "c", series_description="x", extra_tags={"Foo": 1})
    with pytest.raises(InputError, match="distinct valid UIDs"):
        write_dicom_series(vol, tmp_path / "c", series_description="x", sop_instance_uids=["1.2", "1.2"])


def test_phase_from_contrast_injection_time(tmp_path):
    small = Volume(np.zeros((2, 4, 4), np.int16))
    for name, acq in (("A", "100045"), ("B", "100110"), ("C", "100400")):
        write_dicom_series(small, tmp_path, series_description=f"Abdomen {name}", contrast_agent="X",
                           acquisition_time=acq, contrast_start_time="100000")
    series = {s.series_description: s for s in list_dicom_series(tmp_path)}
    assert {k: (s.time_from_injection_s, s.phase_hint) for k, s in series.items()} == {
        "Abdomen A": (45.0, "arterial"), "Abdomen B": (70.0, "portal venous"),
        "Abdomen C": (240.0, "delayed")}
    assert "after the contrast injection" in series["Abdomen B"].phase_reason


def test_listing_spacing_with_slightly_non_unit_orientation_vectors(tmp_path):
    """Some scanners write ImageOrientationPatient a little off unit length: the listing's
    slice spacing (shown by ctus info) must still be the distance between slices."""
    vol = Volume(np.zeros((6, 8, 10), np.int16), (0.7, 0.7, 2.5), (0.0, 0.0, 0.0))
    folder = tmp_path / "iop"
    write_dicom_series(vol, folder, series_description="iop")
    for f in sorted(os.listdir(folder)):
        ds = pydicom.dcmread(folder / f)
        ds.ImageOrientationPatient = [0.9, 0.0, 0.0, 0.0, 0.9, 0.0]
        ds.save_as(folder / f)
    (info,) = list_dicom_series(folder)
    assert info.spacing[2] == pytest.approx(2.5, abs=1e-6)
    assert load_ct(folder).spacing[2] == pytest.approx(2.5, abs=1e-6)


# --------------------------------------------------------------------------- plain-pixel reader
@pytest.mark.parametrize("slope,intercept,hu_range,signed", [(1.0, -1024.0, (-1024, 3000), False),
                                                             (1.0, -1024.0, (-3000, 3000), True),
                                                             (0.5, -1000.25, (-1000, 2000), False)])
def test_plain_pixel_reader_decodes_as_gdcm(tmp_path, slope, intercept, hu_range, signed):
    """Uncompressed series are read from their pixel bytes with the rescale applied exactly as
    GDCM applies it (whole HU -> int16, fractional -> float32)."""
    from registration.io import dicom_volume
    rng = np.random.default_rng(9)
    vol = _oblique_volume(rng, shape=(5, 13, 17), hu_range=hu_range)
    if slope != 1.0:   # values the slope can represent: stored = (hu - intercept) / slope
        vol = vol.with_array((np.round((vol.array - intercept) / slope) * slope + intercept).astype(np.float32))
    files = write_dicom_series(vol, tmp_path, series_description="plain", rescale_slope=slope,
                               rescale_intercept=intercept)
    assert pydicom.dcmread(files[0]).PixelRepresentation == int(signed)
    ordered = list_dicom_series(tmp_path)[0].files
    plain = dicom_volume._read_plain_pixels(ordered)
    gdcm = dicom_volume._read_pixels_gdcm(ordered)
    assert plain is not None and plain.dtype == gdcm.dtype and np.array_equal(plain, gdcm)
    assert plain.dtype == (np.int16 if slope == 1.0 else np.float32)


def test_compressed_series_is_left_to_gdcm(shared_data):
    """JPEG 2000 pixels (the real abdomen CT): the plain reader declines, GDCM decodes."""
    from registration.io import dicom_volume
    files = list_dicom_series(shared_data("ct", "abdomen-20slice", "dicom"))[0].files
    assert dicom_volume._read_plain_pixels(files) is None
    assert dicom_volume._read_pixels(files).shape == (20, 512, 512)
