"""Label maps with names: real NIfTI / NRRD / DICOM SEG, Slicer .seg.nrrd, names rules, round trips."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from registration.io.ct_io import load_ct
from registration.spatial.errors import InputError
from registration.io.labelmap_io import load_labels, write_labels
from registration.io.label_names import read_names_file, save_names_json, sidecar_names_path
from registration.spatial.volume import LabelMap, Volume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


# --------------------------------------------------------------------------- real data
def test_abdomen_labels_land_on_the_liver_only_by_physical_space(shared_data):
    d = shared_data("ct", "abdomen-20slice")
    ct = load_ct(d / "dicom")
    names = d / "label_names.txt"
    raw = load_labels(d / "labels.nii.gz", names)
    # precondition: same physical grid, different direction (j axis flipped)
    assert raw.array.shape == ct.array.shape
    assert not np.allclose(raw.direction, ct.direction)
    assert raw.names["liver"] == 5 and "label_names.txt" not in raw.names

    lm = load_labels(d / "labels.nii.gz", names, reference=ct)
    assert lm.same_grid(ct) and lm.metadata["resampled_to_reference"]
    liver = lm.mask("liver")
    assert liver.sum() == raw.mask("liver").sum()          # same grid up to a flip: no voxel lost
    mean_physical = float(ct.array[liver].mean())
    assert 40 <= mean_physical <= 200                       # enhanced liver parenchyma
    # the same label array copied by index (what a naive reader does) misses the liver
    mean_by_index = float(ct.array[raw.array == 5].mean())
    assert not 40 <= mean_by_index <= 200
    # names absent from these 20 slices are recorded, not silently dropped
    assert "urinary_bladder" in lm.metadata["absent_names"]


def test_dicom_seg_agrees_with_nrrd(shared_data):
    d = shared_data("ct", "liver-3slice")
    ct = load_ct(d / "dicom")
    seg = load_labels(d / "liver_seg.dcm", reference=ct)
    assert seg.names == {"liver": 1}
    assert seg.metadata["segment_labels"] == {1: "Liver"}
    assert seg.metadata["referenced_series_uids"] == [ct.metadata["series_uid"]]
    assert seg.metadata["warnings"] == []
    other = ct.with_array(ct.array, series_uid="1.2.3")
    assert any("references series" in w for w in
               load_labels(d / "liver_seg.dcm", reference=other).metadata["warnings"])
    nrrd = load_labels(d / "liver_spine_seg.nrrd", {"liver": 1, "spine": 2}, reference=ct)
    liver_seg, liver_nrrd = seg.mask("liver"), nrrd.mask("liver")
    assert liver_seg.sum() > 10000
    assert dice(liver_seg, liver_nrrd) > 0.95
    assert not np.any(liver_seg & nrrd.mask("spine"))
    assert -20 < float(ct.array[liver_seg].mean()) < 120


def test_dicom_seg_on_its_own_grid_matches_ct_geometry(shared_data):
    d = shared_data("ct", "liver-3slice")
    ct = load_ct(d / "dicom")
    seg = load_labels(d / "liver_seg.dcm")
    assert seg.same_grid(ct)


def test_dicom_seg_with_bad_pixel_spacing_says_so(shared_data, tmp_path):
    import pydicom
    d = shared_data("ct", "liver-3slice")
    ds = pydicom.dcmread(d / "liver_seg.dcm")
    fg = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    seq = (fg if fg is not None and "PixelMeasuresSequence" in fg
           else ds.PerFrameFunctionalGroupsSequence[0]).PixelMeasuresSequence[0]
    seq.PixelSpacing = [0.0, 0.7]
    bad = tmp_path / "bad_seg.dcm"
    ds.save_as(bad)
    with pytest.raises(InputError, match="PixelSpacing .* is not two positive numbers"):
        load_labels(bad)


# --------------------------------------------------------------------------- Slicer .seg.nrrd
def _write_seg_nrrd(path, arr_kji_layers, fields, space="left-posterior-superior",
                    origin=(0, 0, 0), spacing=(1, 1, 2)):
    k, j, i, n_layers = arr_kji_layers.shape
    sx, sy, sz = spacing
    lines = ["NRRD0004", "type: unsigned char"]
    if n_layers == 1:
        lines += ["dimension: 3", f"space: {space}", f"sizes: {i} {j} {k}",
                  f"space directions: ({sx},0,0) (0,{sy},0) (0,0,{sz})", "kinds: domain domain domain"]
    else:
        lines += ["dimension: 4", f"space: {space}", f"sizes: {n_layers} {i} {j} {k}",
                  f"space directions: none ({sx},0,0) (0,{sy},0) (0,0,{sz})",
                  "kinds: list domain domain domain"]
    lines += ["encoding: raw", f"space origin: ({origin[0]},{origin[1]},{origin[2]})"]
    lines += [f"{key}:={value}" for key, value in fields.items()]
    data = arr_kji_layers.astype(np.uint8)
    path.write_bytes(("\n".join(lines) + "\n\n").encode() + (data[..., 0] if n_layers == 1 else data).tobytes())


def test_slicer_seg_single_layer(tmp_path):
    arr = np.zeros((4, 5, 6, 1), np.uint8)
    arr[1, 2, 3, 0] = 3
    arr[2, 1:3, 1:3, 0] = 7
    path = tmp_path / "Segmentation.seg.nrrd"
    _write_seg_nrrd(path, arr, {"Segment0_ID": "Segment_1", "Segment0_Name": "lesion_1",
                                "Segment0_LabelValue": 3, "Segment0_Layer": 0,
                                "Segment1_Name": "Liver tissue", "Segment1_LabelValue": 7,
                                "Segment1_Layer": 0}, space="right-anterior-superior",
                    origin=(10, 20, 30))
    lm = load_labels(path)
    assert lm.names == {"lesion_1": 3, "Liver tissue": 7}          # unknown names kept as they are
    assert lm.array[1, 2, 3] == 3 and (lm.array == 7).sum() == 4
    assert lm.origin == pytest.approx([-10, -20, 30])             # RAS header -> LPS
    assert lm.index_to_lps([3, 2, 1]) == pytest.approx([-13, -22, 32])


def test_slicer_seg_overlapping_layers_reuse_values(tmp_path):
    arr = np.zeros((3, 4, 5, 2), np.uint8)
    arr[1, 1:3, 1:3, 0] = 1            # layer 0: liver, value 1
    arr[1, 2, 2, 1] = 1                # layer 1: lesion inside the liver, also value 1
    path = tmp_path / "two_layers.seg.nrrd"
    _write_seg_nrrd(path, arr, {"Segment0_Name": "liver", "Segment0_LabelValue": 1,
                                "Segment0_Layer": 0, "Segment1_Name": "lesion_1",
                                "Segment1_LabelValue": 1, "Segment1_Layer": 1})
    lm = load_labels(path)
    assert lm.names["liver"] == 1 and lm.names["lesion_1"] not in (0, 1)
    assert lm.array[1, 2, 2] == lm.names["lesion_1"] and (lm.array == 1).sum() == 3
    assert any("overlaps" in w for w in lm.metadata["warnings"])


def test_seg_nrrd_without_segment_fields(tmp_path):
    arr = np.zeros((2, 3, 4, 1), np.uint8)
    path = tmp_path / "plain.seg.nrrd"
    _write_seg_nrrd(path, arr, {})
    with pytest.raises(InputError, match="no Segment<N>_Name fields") as exc:
        load_labels(path)
    assert str(path) in str(exc.value) and "--label-names" in str(exc.value)


# --------------------------------------------------------------------------- names rules
@pytest.fixture
def small_labels(tmp_path):
    arr = np.zeros((4, 6, 8), np.uint8)
    arr[1, 1:3, 1:4] = 5
    arr[2, 3:5, 4:6] = 9
    path = tmp_path / "labels.nii.gz"
    sitk.WriteImage(LabelMap(arr, (1, 1, 2)).to_sitk(), str(path))
    return path


def test_label_map_without_names_is_an_error(small_labels):
    with pytest.raises(InputError, match="no structure names") as exc:
        load_labels(small_labels)
    assert str(small_labels) in str(exc.value) and "--label-names" in str(exc.value)


def test_names_json_value_not_present(small_labels, tmp_path):
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"liver": 5, "lesion_1": 7}))
    with pytest.raises(InputError, match="'lesion_1' has value 7, which does not occur") as exc:
        load_labels(small_labels, names)
    assert str(names) in str(exc.value) and "correct the value" in str(exc.value)


def test_names_json_malformed(small_labels, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"liver": "five"}')
    with pytest.raises(InputError, match="label values must be integers"):
        load_labels(small_labels, bad)
    dup = tmp_path / "dup.json"
    dup.write_text('{"liver": 5, "spleen": 5}')
    with pytest.raises(InputError, match="share label value 5"):
        load_labels(small_labels, dup)
    with pytest.raises(InputError, match="not valid JSON"):
        (tmp_path / "t.json").write_text("{liver: 5")
        load_labels(small_labels, tmp_path / "t.json")


def test_explicit_empty_names_and_unnamed_values(small_labels):
    lm = load_labels(small_labels, {})
    assert lm.names == {"label_5": 5, "label_9": 9}
    lm = load_labels(small_labels, {"liver": 5, "my_custom_thing": 9})
    assert lm.names == {"liver": 5, "my_custom_thing": 9}
    lm = load_labels(small_labels, {"liver": 5})
    assert lm.names == {"liver": 5, "label_9": 9}
    assert any("label_<v>" in w for w in lm.metadata["warnings"])


def test_names_txt_parser(tmp_path):
    p = tmp_path / "label_names.txt"
    p.write_text("# TotalSegmentator\n1\tspleen\n5 liver\n\n12\tlung_upper_lobe_right\n")
    names, strict = read_names_file(p)
    assert names == {"spleen": 1, "liver": 5, "lung_upper_lobe_right": 12} and strict is False
    p.write_text("liver five\n")
    with pytest.raises(InputError, match="line 1 is not '<value> <name>'"):
        read_names_file(p)


# --------------------------------------------------------------------------- resampling, writing
def test_resample_by_physical_space_known_case():
    """Labels on a mirrored, finer grid land on the same physical voxels of the reference."""
    ref = Volume(np.zeros((6, 10, 12), np.int16), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    # labels: i axis flipped (direction -x), half the in-plane spacing, same physical box
    n_i, n_j = 24, 20
    lm_arr = np.zeros((6, n_j, n_i), np.uint8)
    lab = LabelMap(lm_arr, (0.5, 0.5, 2.0), (11.5, -0.25, 0.0), np.diag([-1.0, 1.0, 1.0]),
                   {"lesion_1": 4})
    # physical box x in [2, 4], y in [3, 5], z = 4 -> in label index space:
    k, j, i = np.indices(lm_arr.shape)
    p = lab.index_to_lps(np.stack([i, j, k], -1))
    inside = (p[..., 0] > 1.6) & (p[..., 0] < 4.4) & (p[..., 1] > 2.6) & (p[..., 1] < 5.4) & (p[..., 2] == 4)
    lab.array[inside] = 4
    from registration.io.label_resample import resample_labels_to
    out = resample_labels_to(lab, ref)
    expected = np.zeros(ref.array.shape, bool)
    expected[2, 3:6, 2:5] = True                 # x 2..4, y 3..5, z = 4 in the reference
    assert np.array_equal(out.array == 4, expected)
    assert not np.array_equal(out.array, lab.array[:, ::2, ::2])   # index copy would differ


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".nii"])
def test_write_labels_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 4, size=(5, 6, 7)).astype(np.uint8)
    arr[0, 0, 0] = 3
    lm = LabelMap(arr, (0.7, 0.8, 2.0), (1.0, -2.0, 3.0), np.diag([1.0, -1.0, -1.0]),
                  {"liver": 1, "lesion_1": 2, "portal_vein": 3})
    path = tmp_path / f"labels{suffix}"
    names_path = write_labels(lm, path)
    assert names_path == sidecar_names_path(path) == str(tmp_path / "labels.names.json")
    back = load_labels(path)                                  # names found beside the image
    assert back.names == lm.names and np.array_equal(back.array, arr)
    assert np.allclose(back.direction, lm.direction) and np.allclose(back.origin, lm.origin)
    assert sorted(os.listdir(tmp_path)) == sorted([f"labels{suffix}", "labels.names.json"])


def test_write_labels_failure_leaves_no_names_for_a_missing_or_older_image(tmp_path, monkeypatch):
    import SimpleITK
    lm = LabelMap(np.array([[[0, 1], [2, 0]]], np.uint8), names={"liver": 1, "lesion_1": 2})
    path = tmp_path / "labels.nrrd"
    real_write = SimpleITK.WriteImage

    def disk_full(image, file_name, *args):
        real_write(image, file_name, *args)              # a partial image on disk ...
        raise RuntimeError("disk full")                  # ... then the write fails

    monkeypatch.setattr(SimpleITK, "WriteImage", disk_full)
    with pytest.raises(RuntimeError, match="disk full"):
        write_labels(lm, path)
    assert os.listdir(tmp_path) == []                     # no names file, no image, no temporaries
    monkeypatch.setattr(SimpleITK, "WriteImage", real_write)
    write_labels(lm, path)
    before = path.read_bytes(), (tmp_path / "labels.names.json").read_bytes()
    monkeypatch.setattr(SimpleITK, "WriteImage", disk_full)
    renamed = LabelMap(lm.array, names={"liver": 2, "lesion_1": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        write_labels(renamed, path)
    # the old pair is intact: the new names never describe the old image
    assert (path.read_bytes(), (tmp_path / "labels.names.json").read_bytes()) == before
    assert sorted(os.listdir(tmp_path)) == ["labels.names.json", "labels.nrrd"]
    monkeypatch.setattr(SimpleITK, "WriteImage", real_write)
    with pytest.raises(InputError, match="share label value 1"):    # bad names: nothing written
        write_labels(LabelMap(lm.array, names={"liver": 1, "lesion_1": 1}), tmp_path / "other.nrrd")
    assert sorted(os.listdir(tmp_path)) == ["labels.names.json", "labels.nrrd"]


def test_save_names_json_sorted_and_validated(tmp_path):
    p = tmp_path / "n.json"
    save_names_json({"lesion_2": 8, "liver": 1}, p)
    assert list(json.loads(p.read_text()).items()) == [("liver", 1), ("lesion_2", 8)]
    with pytest.raises(InputError, match="label values must be integers > 0"):
        save_names_json({"bad": 0}, p)


def test_missing_label_file(tmp_path):
    with pytest.raises(InputError, match="file not found") as exc:
        load_labels(tmp_path / "nope.nrrd")
    assert str(tmp_path / "nope.nrrd") in str(exc.value)


def test_truncated_label_nrrd(tmp_path):
    path = tmp_path / "labels.nrrd"
    sitk.WriteImage(sitk.Image([30, 30, 30], sitk.sitkUInt8), str(path), False)
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(InputError, match="cannot read the label map") as exc:
        load_labels(path, {})
    assert str(path) in str(exc.value)


def test_float_label_image_rejected(tmp_path):
    path = tmp_path / "prob.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.full((2, 3, 4), 0.5, np.float32)), str(path))
    with pytest.raises(InputError, match="not a label map"):
        load_labels(path, {})


def test_non_seg_dicom_rejected(shared_data):
    f = shared_data("ct", "liver-3slice", "dicom", "01.dcm")
    with pytest.raises(InputError, match="is not a segmentation"):
        load_labels(f)


def test_dicom_seg_frames_placed_by_position_not_order(shared_data, tmp_path):
    """Reversed frame order and a dropped frame: voxels still land where the positions say."""
    import pydicom
    d = shared_data("ct", "liver-3slice")
    ct = load_ct(d / "dicom")
    original = load_labels(d / "liver_seg.dcm", reference=ct)
    ds = pydicom.dcmread(d / "liver_seg.dcm")
    frame_bytes = ds.Rows * ds.Columns // 8                 # binary SEG: 1 bit per pixel
    frames = [ds.PixelData[f * frame_bytes:(f + 1) * frame_bytes] for f in range(ds.NumberOfFrames)]
    keep = [2, 1]                                             # reversed, first frame dropped
    ds.PerFrameFunctionalGroupsSequence = [ds.PerFrameFunctionalGroupsSequence[f] for f in keep]
    ds.PixelData = b"".join(frames[f] for f in keep)
    ds.NumberOfFrames = len(keep)
    path = tmp_path / "reordered_seg.dcm"
    ds.save_as(path)
    own = load_labels(path)
    assert own.shape_ijk == (512, 512, 2) and own.origin[2] == pytest.approx(ct.origin[2] + 1.0)
    moved = load_labels(path, reference=ct)
    assert np.array_equal(moved.array[1:], original.array[1:])
    assert not moved.array[0].any() and original.array[0].any()


def test_picture_labels_physical_vs_index(shared_data, artifacts_dir):
    """Saves a picture for a person: liver label resampled by physical space vs copied by index."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    d = shared_data("ct", "abdomen-20slice")
    ct = load_ct(d / "dicom")
    names = d / "label_names.txt"
    good = load_labels(d / "labels.nii.gz", names, reference=ct)
    raw = load_labels(d / "labels.nii.gz", names)
    k = 10
    fig, axes = plt.subplots(1, 2, figsize=(10, 5))
    for ax, liver, title in ((axes[0], good.mask("liver")[k], "resampled by physical space"),
                             (axes[1], raw.array[k] == 5, "copied by index (wrong)")):
        # display convention: row j down (towards P), column i right (towards L) = radiological view
        ax.imshow(ct.array[k], cmap="gray", vmin=-160, vmax=240)
        ax.contour(liver, levels=[0.5], colors="yellow", linewidths=1)
        ax.set_title(f"{title}\nliver mean {ct.array[k][liver].mean():.0f} HU")
        ax.axis("off")
    out = artifacts_dir / "labels_physical_vs_index.png"
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    assert out.stat().st_size > 10000
