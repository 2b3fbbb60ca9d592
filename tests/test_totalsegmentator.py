"""TotalSegmentator outputs: the real multi-label file (header label table, label_names.txt),
the per-structure folder form, and the mapping of its names to the standard names."""
from __future__ import annotations

import gzip
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from planner.segmentation.totalsegmentator_names import standard_name, to_standard_names
from registration.io.ct_io import load_ct
from registration.io.totalsegmentator import header_label_table, load_totalsegmentator
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap


SHARED_DATA = Path(os.environ.get("CTUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def abdomen():
    """The real 20-slice CT and its TotalSegmentator output (skip when absent); the CT is loaded once."""
    folder = SHARED_DATA / "ct" / "abdomen-20slice"
    if not folder.exists():
        pytest.skip(f"real data not available: {folder}")
    return folder, load_ct(folder / "dicom")


def test_real_multilabel_names_from_its_header_and_resampled_by_physical_space(abdomen):
    folder, ct = abdomen
    lm = load_totalsegmentator(folder / "labels.nii.gz", reference=ct)
    assert lm.metadata["names_source"] == "NIfTI header extension"
    assert lm.same_grid(ct)
    assert lm.names["liver"] == 5 and lm.names["portal_vein_and_splenic_vein"] == 64
    assert "kidney_left" in lm.metadata["absent_names"]         # in the table, not in this scan
    liver_hu = float(ct.array[lm.mask("liver")].mean())
    assert 85.0 < liver_hu < 95.0                                # ~89 HU: enhanced liver, right place
    # by index the label image would be upside down in j (its direction differs): liver HU would drop
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labels.nii.gz")))
    assert float(ct.array[raw == 5].mean()) < 60.0


def test_header_table_equals_label_names_txt(abdomen):
    folder, _ = abdomen
    table = header_label_table(folder / "labels.nii.gz")
    txt = {}
    for line in (folder / "label_names.txt").read_text().splitlines():
        value, name = line.split()
        txt[name] = int(value)
    assert table == txt and len(table) == 117


def test_names_file_given_and_sidecar_found(abdomen, tmp_path):
    folder, ct = abdomen
    given = load_totalsegmentator(folder / "labels.nii.gz", names=folder / "label_names.txt")
    assert given.metadata["names_source"].endswith("label_names.txt") and given.names["liver"] == 5
    # a copy without the header extension: names come from label_names.txt beside it
    plain = tmp_path / "seg.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(folder / "labels.nii.gz")), str(plain), True)
    assert header_label_table(plain) == {}
    with pytest.raises(InputError, match="no label names"):
        load_totalsegmentator(plain)
    shutil.copy(folder / "label_names.txt", tmp_path / "label_names.txt")
    lm = load_totalsegmentator(plain, reference=ct)
    assert lm.metadata["names_source"].endswith("label_names.txt")
    assert lm.names["liver"] == 5 and lm.same_grid(ct)


def test_folder_of_masks_read_as_one_label_map(abdomen, tmp_path):
    folder, ct = abdomen
    img = sitk.ReadImage(str(folder / "labels.nii.gz"))
    arr = sitk.GetArrayFromImage(img)
    table = header_label_table(folder / "labels.nii.gz")
    out = tmp_path / "segmentations"
    out.mkdir()
    for name in ("liver", "spleen", "aorta", "rib_right_8", "kidney_left", "portal_vein_and_splenic_vein"):
        mask = sitk.GetImageFromArray((arr == table[name]).astype(np.uint8))
        mask.CopyInformation(img)
        sitk.WriteImage(mask, str(out / f"{name}.nii.gz"), True)
    (out / "statistics.json").write_text("{}")                   # other files are ignored
    lm = load_totalsegmentator(out, reference=ct)
    assert set(lm.names) == {"liver", "spleen", "aorta", "rib_right_8", "portal_vein_and_splenic_vein"}
    assert lm.metadata["absent_names"] == ["kidney_left"]        # empty mask in this scan
    assert 85.0 < float(ct.array[lm.mask("liver")].mean()) < 95.0
    ref = load_totalsegmentator(folder / "labels.nii.gz", reference=ct)
    for name in lm.names:
        assert np.array_equal(lm.mask(name), ref.mask(name)), name


def test_folder_errors(tmp_path, abdomen):
    folder, _ = abdomen
    with pytest.raises(InputError, match="no .nii.gz masks"):
        load_totalsegmentator(tmp_path)
    img = sitk.ReadImage(str(folder / "labels.nii.gz"))
    a = sitk.GetImageFromArray((sitk.GetArrayFromImage(img) == 5).astype(np.uint8))
    a.CopyInformation(img)
    sitk.WriteImage(a, str(tmp_path / "liver.nii.gz"))
    b = sitk.GetImageFromArray(np.ones((4, 5, 6), np.uint8))
    sitk.WriteImage(b, str(tmp_path / "spleen.nii.gz"))
    with pytest.raises(InputError, match="not on the grid of liver.nii.gz"):
        load_totalsegmentator(tmp_path)
    with pytest.raises(InputError, match="not found"):
        load_totalsegmentator(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("1 liver\n")
    with pytest.raises(InputError, match="not a NIfTI"):
        load_totalsegmentator(tmp_path / "x.txt")


def _with_extension(src_nii, dst_nii, xml: str) -> None:
    """Rewrite an uncompressed NIfTI-1 file with one header extension (ecode 0), as
    TotalSegmentator's add_label_map_to_nifti writes it."""
    data = bytearray(open(src_nii, "rb").read())
    vox_offset = int(struct.unpack("<f", data[108:112])[0])
    body = xml.encode("utf-8")
    size = (8 + len(body) + 15) // 16 * 16
    ext = struct.pack("<ii", size, 0) + body + b"\0" * (size - 8 - len(body))
    header = data[:348]
    header[108:112] = struct.pack("<f", float(352 + size))
    out = bytes(header) + b"\x01\0\0\0" + ext + bytes(data[vox_offset:])
    with gzip.open(dst_nii, "wb") as f:
        f.write(out)


def test_header_extension_written_like_totalsegmentator(tmp_path):
    arr = np.zeros((3, 4, 5), np.uint8)
    arr[1, 1:3, 1:4] = 2
    arr[2, 0, 0] = 7
    img = sitk.GetImageFromArray(arr)
    sitk.WriteImage(img, str(tmp_path / "plain.nii"))
    xml = ('<?xml version="1.0" encoding="UTF-8"?> <CaretExtension> <VolumeInformation Index="0"> <LabelTable>\n'
           '<Label Key="2" Red="0.0" Green="1.0" Blue="0.0" Alpha="1"><![CDATA[liver]]></Label>\n'
           '<Label Key="7" Red="1.0" Green="0.0" Blue="0.0" Alpha="1"><![CDATA[rib_left_3]]></Label>\n'
           '<Label Key="9" Red="1.0" Green="0.0" Blue="0.0" Alpha="1"><![CDATA[spleen]]></Label>\n'
           '</LabelTable> </VolumeInformation></CaretExtension>\n    ')
    _with_extension(tmp_path / "plain.nii", tmp_path / "ml.nii.gz", xml)
    assert header_label_table(tmp_path / "ml.nii.gz") == {"liver": 2, "rib_left_3": 7, "spleen": 9}
    lm = load_totalsegmentator(tmp_path / "ml.nii.gz")
    assert lm.names == {"liver": 2, "rib_left_3": 7} and lm.metadata["absent_names"] == {"spleen": 9}
    assert np.array_equal(lm.array, arr)


@pytest.mark.parametrize("ts, ours", [
    ("liver", "liver"), ("portal_vein_and_splenic_vein", "portal_vein"), ("inferior_vena_cava", "ivc"),
    ("aorta", "aorta"), ("rib_left_7", "bone"), ("rib_right_12", "bone"), ("vertebrae_L1", "bone"),
    ("vertebrae_S1", "bone"), ("sacrum", "bone"), ("hip_left", "bone"), ("sternum", "bone"),
    ("costal_cartilages", "bone"), ("lung_upper_lobe_left", "lung"), ("lung_middle_lobe_right", "lung"),
    ("gallbladder", "gallbladder"), ("kidney_left", "kidney"), ("kidney_cyst_right", "kidney"),
    ("spleen", "spleen"), ("pancreas", "pancreas"), ("stomach", "bowel"), ("small_bowel", "bowel"),
    ("colon", "bowel"), ("duodenum", "bowel"), ("heart", "heart"), ("heart_ventricle_left", "heart"),
    ("liver_vessels", "liver_vessel"),
    ("autochthon_left", "autochthon_left"), ("esophagus", "esophagus"), ("liver_tumor", "liver_tumor"),
])
def test_standard_names(ts, ours):
    assert standard_name(ts) == ours


def test_to_standard_names_merges_and_keeps_unknown():
    arr = np.array([[[0, 5, 97, 98], [64, 63, 86, 6]]], np.uint8)
    lm = LabelMap(arr, names={"liver": 5, "rib_left_6": 97, "rib_left_7": 98, "portal_vein_and_splenic_vein": 64,
                              "inferior_vena_cava": 63, "autochthon_left": 86, "stomach": 6})
    out, groups = to_standard_names(lm)
    assert set(out.names) == {"liver", "bone", "portal_vein", "ivc", "autochthon_left", "bowel"}
    assert groups["bone"] == ["rib_left_6", "rib_left_7"]
    assert np.array_equal(out.array == out.names["bone"], (arr == 97) | (arr == 98))
    assert np.array_equal(out.array == out.names["autochthon_left"], arr == 86)
    assert np.array_equal(out.array == 0, arr == 0)
    assert list(out.names)[:2] == ["liver", "portal_vein"]          # standard order first


def test_real_output_mapped(abdomen):
    folder, ct = abdomen
    out, groups = to_standard_names(load_totalsegmentator(folder / "labels.nii.gz", reference=ct))
    assert {"liver", "portal_vein", "ivc", "aorta", "bone", "bowel", "spleen", "pancreas"} <= set(out.names)
    assert {"autochthon_left", "spinal_cord", "adrenal_gland_right"} <= set(out.names)   # kept as they are
    assert set(groups["bowel"]) == {"stomach", "colon"}
    assert 85.0 < float(ct.array[out.mask("liver")].mean()) < 95.0
    assert float(ct.array[out.mask("bone")].mean()) > 200.0
