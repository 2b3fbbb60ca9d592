"""PLUS sequence metafiles: every real file opens, each file kind round-trips, bad input is an InputError."""
from __future__ import annotations

import dataclasses
import re
import time

import numpy as np
import pytest
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.io.sequence_io import load_sweep, main, summary_row
from registration.io.seq_mha_read import read_sequence
from registration.io.seq_mha_write import write_sequence
from registration.spatial.sweep import Sweep

from _helpers import assert_same, make_sweep

SPINE_CONFIG = "PlusDeviceSet_SpinePhantomFreehandReconstructionOnly.xml"

# file -> (frames, cols, rows): what the headers of the real PLUS files say.
REAL = {
    "BoneUltrasound_L14.igs.mha": (21, 820, 616),
    "EightLandmarkPointsTrackedForPhantomRegistration.igs.mha": (1000, 0, 0),
    "NwirePhantomFreehand.igs.mha": (97, 820, 616),
    "NwirePhantomFreehandCropped.igs.mha": (20, 200, 150),
    "Prostate10_tracker.igs.mha": (10, 1, 1),
    "Prostate10_video.igs.mhd": (10, 640, 480),
    "SpinePhantomFreehand.igs.mha": (21, 820, 616),
    "TransformInterpolationTest.igs.mha": (500, 1, 1),
    "UltrasonixCurvilinearScanConvertedData.igs.mha": (5, 820, 616),
    "WaterTankBottomTranslationCombined.igs.mha": (201, 820, 616),
    "fCal_Test_Calibration_3NWires_fCal2.0.igs.mha": (190, 820, 616),
    "fCal_Test_Validation_3NWires_fCal2.0.igs.mha": (103, 820, 616),
}


# ----------------------------------------------------------------------------- real files
def test_every_real_sequence_opens(shared_data, capsys):
    folder = shared_data("plus", "sequences")
    rows = []
    for name, (n, cols, r) in REAL.items():
        sweep = read_sequence(folder / name)
        assert sweep.frames.shape == (n, r, cols), name
        assert sweep.frames.dtype == np.uint8
        assert np.all(np.diff(sweep.timestamps) >= 0), name
        rows.append(summary_row(sweep))
    with capsys.disabled():
        print("\nfile | frames | size | transforms (invalid) | image invalid | notes")
        for row in rows:
            print(f"{row['file']} | {row['frames']} | {row['size']} | {row['transforms']} | "
                  f"{row['image_invalid']} | {row['notes']}")
    by = {r["file"]: r for r in rows}
    assert "StylusToTracker(97 invalid)" in by["NwirePhantomFreehand.igs.mha"]["transforms"]
    assert by["EightLandmarkPointsTrackedForPhantomRegistration.igs.mha"]["image_invalid"] == 1000
    # Prostate10_video's header skips Seq_Frame0002: that frame is excluded, not invented.
    assert by["Prostate10_video.igs.mhd"]["image_invalid"] == 1


def test_pixels_match_simpleitk(shared_data):
    """Our frames are SimpleITK's array for MF files (uncompressed and compressed)."""
    folder = shared_data("plus", "sequences")
    for name in ("UltrasonixCurvilinearScanConvertedData.igs.mha", "NwirePhantomFreehandCropped.igs.mha"):
        ours = read_sequence(folder / name).frames
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / name)))
        np.testing.assert_array_equal(ours, ref)


def test_liver_sweep_reads_fast_with_image_to_reference(shared_data):
    path = shared_data("liver-us", "liver_sweep.igs.mha")
    t0 = time.perf_counter()
    sweep = read_sequence(path)
    elapsed = time.perf_counter() - t0
    print(f"liver sweep read in {elapsed:.2f} s")
    assert sweep.frames.shape == (140, 593, 739)
    mats, valid = sweep.require_image_to_reference()
    assert valid.all()
    assert sweep.pixel_spacing == pytest.approx((0.3148, 0.3148), abs=1e-3)
    np.testing.assert_allclose(mats[0], sweep.transforms["ImageToReference"][0])
    assert sweep.fan_mask is not None and 0.4 < sweep.fan_mask.mean() < 0.9
    assert elapsed < 5.0  # generous: the point is a vectorised parse, not a timing gate


def test_spine_phantom_with_config_gives_image_to_reference(shared_data):
    seq = shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha")
    cfg = shared_data("plus", "configs", SPINE_CONFIG)
    sweep = read_sequence(seq, calibration=cfg)
    mats, valid = sweep.require_image_to_reference()
    assert valid.all() and len(valid) == 21
    # Actual value from the config: 0.0854 mm/px along columns, 0.0790 along rows.
    sx, sy = sweep.pixel_spacing
    assert sx == pytest.approx(0.08542, abs=1e-4) and sy == pytest.approx(0.07900, abs=1e-4)
    i = 7
    expected = (np.linalg.inv(sweep.transforms["ReferenceToTracker"][i])
                @ sweep.transforms["ProbeToTracker"][i] @ sweep.calibration["ImageToProbe"])
    np.testing.assert_allclose(sweep.image_to_reference(i), expected, atol=1e-9)


def test_spine_without_config_has_no_chain_and_says_how_to_fix(shared_data):
    sweep = read_sequence(shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha"))
    with pytest.raises(InputError, match="ImageToProbe.*--calibration"):
        sweep.require_image_to_reference()


def test_cropped_sequence_maps_stored_pixels(shared_data):
    folder = shared_data("plus", "sequences")
    cfg = shared_data("plus", "configs", SPINE_CONFIG)
    full = read_sequence(folder / "NwirePhantomFreehand.igs.mha", calibration=cfg)
    crop = read_sequence(folder / "NwirePhantomFreehandCropped.igs.mha", calibration=cfg)
    # ImageToCroppedImage = translation (-335, -285): stored pixels are full[285:435, 335:535].
    np.testing.assert_array_equal(crop.frames, full.frames[:20, 285:435, 335:535])
    assert crop.image_frame == "CroppedImage"
    for i in (0, 11):
        p_crop = crop.image_to_reference(i) @ [10, 20, 0, 1]
        p_full = full.image_to_reference(i) @ [345, 305, 0, 1]
        np.testing.assert_allclose(p_crop, p_full, atol=1e-9)


def test_tracker_only_real_file(shared_data):
    sweep = read_sequence(shared_data("plus", "sequences",
                                      "EightLandmarkPointsTrackedForPhantomRegistration.igs.mha"))
    assert not sweep.has_images and sweep.fan_mask is None
    assert sweep.statuses["StylusToTracker"].sum() > 900


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("name,compress", [("s.igs.mha", False), ("s.seq.mha", True),
                                           ("s.mhd", False), ("s.mhd", True)])
def test_round_trip_synthetic(tmp_path, name, compress):
    sweep = make_sweep(image_valid=np.array([1, 1, 1, 0, 1, 1], bool))
    out = tmp_path / name
    write_sequence(sweep, out, compress=compress)
    back = read_sequence(out)
    assert_same(sweep, back)
    np.testing.assert_array_equal(back.calibration["ImageToProbe"], sweep.calibration["ImageToProbe"])
    _, valid = back.image_to_reference_all()
    np.testing.assert_array_equal(valid, [1, 1, 0, 0, 1, 1])
    img = sitk.ReadImage(str(out))
    assert img.GetSize() == (30, 20, 6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), sweep.frames)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_round_trip_tracker_only(tmp_path):
    full = make_sweep()
    sweep = Sweep(np.zeros((6, 0, 0), np.uint8), full.timestamps, full.transforms, full.statuses)
    out = tmp_path / "tracker.igs.mha"
    write_sequence(sweep, out)
    assert "DimSize = 0 0 6" in out.read_text(encoding="latin-1")
    assert_same(sweep, read_sequence(out))
    assert sitk.ReadImage(str(out)).GetSize() == (0, 0, 6)


def test_round_trip_real_cropped_and_compressed(shared_data, tmp_path):
    src = read_sequence(shared_data("plus", "sequences", "NwirePhantomFreehandCropped.igs.mha"))
    out = tmp_path / "crop.igs.mha"
    write_sequence(src, out, compress=True)
    back = read_sequence(out)
    assert_same(src, back)
    assert back.image_frame == "CroppedImage"
    assert back.metadata["frame_fields"].keys() == src.metadata["frame_fields"].keys()


def test_round_trip_real_mhd(shared_data, tmp_path):
    src = read_sequence(shared_data("plus", "sequences", "Prostate10_video.igs.mhd"))
    write_sequence(src, tmp_path / "p.mhd")
    assert (tmp_path / "p.raw").stat().st_size == 640 * 480 * 10
    assert_same(src, read_sequence(tmp_path / "p.mhd"))


def test_writer_rejects_non_uint8_and_bad_extension(tmp_path):
    sweep = make_sweep()
    sweep.frames = sweep.frames.astype(np.float32)
    with pytest.raises(InputError, match="uint8"):
        write_sequence(sweep, tmp_path / "a.mha")
    with pytest.raises(InputError, match=".mha or .mhd"):
        write_sequence(make_sweep(), tmp_path / "a.nii")


# ----------------------------------------------------------------------------- header variants
def _rewrite(path, fn):
    data = path.read_bytes()
    cut = data.index(b"ElementDataFile")
    path.write_bytes(fn(data[:cut].decode("latin-1")).encode("latin-1") + data[cut:])


@pytest.mark.parametrize("orient,flip_rows,flip_cols", [("MF", False, False), ("MFA", False, False),
                                                         ("UF", False, True), ("MN", True, False),
                                                         ("UN", True, True)])
def test_orientation_is_flipped_into_mf(tmp_path, orient, flip_rows, flip_cols):
    """The stored array is taken as written; UF = x towards the unmarked side, so MF reverses columns."""
    sweep = make_sweep()
    out = tmp_path / "o.mha"
    write_sequence(sweep, out)
    _rewrite(out, lambda h: h.replace("UltrasoundImageOrientation = MF", f"UltrasoundImageOrientation = {orient}"))
    back = read_sequence(out)
    expected = sweep.frames
    if flip_rows:
        expected = expected[:, ::-1, :]
    if flip_cols:
        expected = expected[:, :, ::-1]
    np.testing.assert_array_equal(back.frames, expected)
    assert any("converted to MF" in n for n in back.metadata["notes"]) == (flip_rows or flip_cols)
    if orient == "UF":   # the pixel stored first (unmarked, near corner) lands at MF (row 0, last column)
        assert back.frames[0, 0, -1] == sweep.frames[0, 0, 0]


@pytest.mark.parametrize("orient,flip_rows,flip_cols", [("FM", False, False), ("NU", True, True)])
def test_transposed_orientations(tmp_path, orient, flip_rows, flip_cols):
    sweep = make_sweep()
    out = tmp_path / "t.mha"
    write_sequence(sweep, out)
    _rewrite(out, lambda h: h.replace("UltrasoundImageOrientation = MF", f"UltrasoundImageOrientation = {orient}"))
    back = read_sequence(out)
    expected = sweep.frames.transpose(0, 2, 1)     # FM: the stored x axis runs along the beam
    if flip_rows:
        expected = expected[:, ::-1, :]
    if flip_cols:
        expected = expected[:, :, ::-1]
    assert back.frames.shape == (6, 30, 20)
    np.testing.assert_array_equal(back.frames, expected)


def test_unknown_orientation_is_input_error(tmp_path):
    out = tmp_path / "o.mha"
    write_sequence(make_sweep(), out)
    _rewrite(out, lambda h: h.replace("UltrasoundImageOrientation = MF", "UltrasoundImageOrientation = QQ"))
    with pytest.raises(InputError, match="UltrasoundImageOrientation"):
        read_sequence(out)


def test_any_frame_number_width(tmp_path):
    sweep = make_sweep()
    out = tmp_path / "w.mha"
    write_sequence(sweep, out)
    _rewrite(out, lambda h: re.sub(r"Seq_Frame0*(\d)", r"Seq_Frame\1", h))
    assert b"Seq_Frame3_Timestamp" in out.read_bytes()
    assert_same(sweep, read_sequence(out))


def test_rgb_frames_become_grey_with_note(tmp_path):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = True\nCompressedData = False\n"
              "DimSize = 5 4 2\nElementNumberOfChannels = 3\nElementType = MET_UCHAR\n"
              "UltrasoundImageOrientation = MF\nSeq_Frame0000_Timestamp = 1\n"
              "Seq_Frame0001_Timestamp = 2\nElementDataFile = LOCAL\n")
    out = tmp_path / "rgb.mha"
    out.write_bytes(header.encode() + rgb.tobytes())
    sweep = read_sequence(out)
    grey = np.rint(rgb.astype(float) @ [0.299, 0.587, 0.114])
    np.testing.assert_allclose(sweep.frames, grey, atol=1)
    assert any("RGB" in n for n in sweep.metadata["notes"])


def test_image_status_invalid_excludes_frame(tmp_path):
    sweep = make_sweep()
    out = tmp_path / "s.mha"
    write_sequence(sweep, out)
    _rewrite(out, lambda h: h.replace("Seq_Frame0004_ImageStatus = OK", "Seq_Frame0004_ImageStatus = INVALID"))
    back = read_sequence(out, calibration={"ImageToProbe": sweep.calibration["ImageToProbe"]})
    assert back.image_to_reference(4) is None and back.image_to_reference(5) is not None


# ----------------------------------------------------------------------------- bad input
@pytest.fixture
def good_file(tmp_path):
    out = tmp_path / "good.igs.mha"
    write_sequence(make_sweep(), out)
    return out


def test_truncated_binary_data(good_file):
    good_file.write_bytes(good_file.read_bytes()[:-100])
    with pytest.raises(InputError, match="good.igs.mha: pixel data has .*truncated"):
        read_sequence(good_file)


def test_truncated_compressed_data(tmp_path):
    out = tmp_path / "c.mha"
    write_sequence(make_sweep(), out, compress=True)
    out.write_bytes(out.read_bytes()[:-50])
    with pytest.raises(InputError, match="c.mha: CompressedDataSize .*truncated"):
        read_sequence(out)


def test_header_claims_more_frames_than_present(good_file):
    _rewrite(good_file, lambda h: h.replace("DimSize = 30 20 6", "DimSize = 30 20 7"))
    with pytest.raises(InputError, match="DimSize"):
        read_sequence(good_file)


def test_non_numeric_matrix(good_file):
    _rewrite(good_file, lambda h: re.sub(r"(Seq_Frame0001_ProbeToTrackerTransform = \S+) \S+",
                                         r"\1 abc", h))
    with pytest.raises(InputError, match="Seq_Frame0001_ProbeToTrackerTransform is not numeric: .*abc.*; write"):
        read_sequence(good_file)


def test_fifteen_number_matrix(good_file):
    _rewrite(good_file, lambda h: re.sub(r"(Seq_Frame0002_ReferenceToTrackerTransform = .*) \S+\n",
                                         r"\1\n", h))
    with pytest.raises(InputError, match="Seq_Frame0002_ReferenceToTrackerTransform has 15 numbers, not 16"):
        read_sequence(good_file)


def test_missing_element_data_file(good_file):
    data = good_file.read_bytes()
    good_file.write_bytes(data.replace(b"ElementDataFile = LOCAL\n", b""))
    with pytest.raises(InputError, match="no ElementDataFile"):
        read_sequence(good_file)


def test_missing_raw_beside_mhd(tmp_path):
    write_sequence(make_sweep(), tmp_path / "a.mhd")
    (tmp_path / "a.raw").unlink()
    with pytest.raises(InputError, match="a.mhd: cannot read the data file a.raw"):
        read_sequence(tmp_path / "a.mhd")


def test_config_without_needed_transform(tmp_path):
    sweep = dataclasses.replace(make_sweep(), calibration={})
    good_file = tmp_path / "uncalibrated.mha"
    write_sequence(sweep, good_file)
    cfg = tmp_path / "cfg.xml"
    cfg.write_text('<PlusConfiguration><CoordinateDefinitions><Transform From="Phantom" To="Reference" '
                   'Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"/></CoordinateDefinitions></PlusConfiguration>')
    with pytest.raises(InputError, match=r"cfg.xml: no ImageToProbe transform .*--calibration"):
        read_sequence(good_file, calibration=cfg)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_sequence(tmp_path / "nope.mha")
    with pytest.raises(InputError, match="unknown sweep file type"):
        load_sweep(tmp_path / "x.avi")


def test_load_sweep_dispatch_and_cli_summary(good_file, capsys):
    sweep = load_sweep(good_file, calibration={"ImageToProbe": np.diag([0.2, 0.2, 1, 1])})
    assert sweep.valid.sum() == 5
    assert main([str(good_file)]) == 0
    assert "frames=6" in capsys.readouterr().out
    assert main([str(good_file) + ".missing.mha"]) == 2


def test_sweep_frame_graph_and_summary_report_invalid_parts():
    sweep = make_sweep(image_valid=np.array([1, 1, 1, 1, 0, 1], bool))
    g, ok = sweep.frame_graph(0)
    assert ok and g.has("Image", "Reference")
    g, ok = sweep.frame_graph(2)                    # ProbeToTracker INVALID at frame 2
    assert not ok and not g.has("Image", "Reference")
    assert not sweep.frame_graph(4)[1]              # image INVALID at frame 4
    s = sweep.summary()
    assert s["valid_frames"] == 4 and s["image_invalid_frames"] == 1 and s["image_frame"] == "Image"
    sub = sweep.subset([3, 4])
    assert sub.image_valid.tolist() == [True, False] and sub.valid.tolist() == [True, False]


def test_with_calibration_returns_a_new_sweep_and_leaves_the_old_one_alone():
    sweep = make_sweep()
    sweep.metadata["notes"] = ["from the file"]
    old_chain, old_valid = sweep.chain, sweep.valid
    mats_before = sweep.image_to_reference_all()[0]
    new_cal = np.diag([0.5, 0.5, 1.0, 1.0])
    other = sweep.with_calibration({"ImageToProbe": new_cal, "ProbeToTracker": np.eye(4)})
    assert other is not sweep
    # the original keeps its calibration, notes and its (cached) chain
    np.testing.assert_array_equal(sweep.calibration["ImageToProbe"], make_sweep().calibration["ImageToProbe"])
    assert sweep.metadata["notes"] == ["from the file"] and "ProbeToTracker" not in sweep.calibration
    np.testing.assert_array_equal(sweep.image_to_reference_all()[0], mats_before)
    # the new one uses the new calibration; per-frame ProbeToTracker wins over the static one
    assert other.chain == old_chain and other.valid.tolist() == old_valid.tolist()
    f = 0
    expected = (np.linalg.inv(other.transforms["ReferenceToTracker"][f])
                @ other.transforms["ProbeToTracker"][f] @ new_cal)
    np.testing.assert_allclose(other.image_to_reference(f), expected, atol=1e-9)
    assert other.metadata["notes"][0] == "from the file"
    assert "ProbeToTracker is both per frame" in other.metadata["notes"][1]
    # containers are not shared: changing one sweep's dicts does not reach the other
    other.transforms.pop("ReferenceToTracker")
    assert "ReferenceToTracker" in sweep.transforms
    with pytest.raises(InputError, match="ImageToProbe is not affine"):
        sweep.with_calibration({"ImageToProbe": np.ones((4, 4))})
    masked = sweep.with_fan_mask(np.ones((20, 30), bool))
    assert sweep.fan_mask is None and masked.fan_mask.all() and masked.chain == old_chain
    with pytest.raises(InputError, match="fan mask shape"):
        sweep.with_fan_mask(np.ones((3, 3), bool))


def test_merge_calibration_returns_a_new_sweep_and_names_what_is_missing(tmp_path):
    from registration.io.sweep_calibration import merge_calibration
    sweep = dataclasses.replace(make_sweep(), calibration={}, source=str(tmp_path / "s.mha"))
    merged = merge_calibration(sweep, {"ImageToProbeTransform": np.diag([0.2, 0.2, 1, 1])})
    assert "ImageToProbe" in merged.calibration and not sweep.calibration
    assert merged.valid.sum() == 5 and sweep.chain == []
    cfg = tmp_path / "cfg.xml"
    cfg.write_text('<PlusConfiguration><CoordinateDefinitions><Transform From="Phantom" To="Reference" '
                   'Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"/></CoordinateDefinitions></PlusConfiguration>')
    with pytest.raises(InputError) as exc:
        merge_calibration(sweep, cfg)
    text = str(exc.value)
    assert text.startswith(f"{cfg}: no ImageToProbe transform to link Image to Reference in the sequence s.mha")
    assert "transforms known: PhantomToReference, ProbeToTracker, ReferenceToTracker" in text
    # the sweep itself raises the same message, naming its own file
    with pytest.raises(InputError, match=r"s.mha: no ImageToProbe transform to link Image to Reference "
                                         r"\(transforms known: ProbeToTracker"):
        sweep.require_image_to_reference()
