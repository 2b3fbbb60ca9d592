"""Slicer .seg.nrrd writer: round trip through our reader, Slicer's header fields, atomic writes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk

from registration.io.labelmap_io import load_labels
from registration.io.seg_nrrd_write import segment_color, write_seg_nrrd
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap


def _labels() -> LabelMap:
    rng = np.random.default_rng(3)
    arr = np.zeros((6, 7, 8), np.uint8)
    arr[1:4, 2:5, 3:7] = 2
    arr[2, 3, 4] = 21
    arr[5, 0:2, 0] = 22
    arr[rng.random(arr.shape) < 0.02] = 9
    direction = np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], float)      # oblique to the axes
    return LabelMap(arr, (0.7, 0.8, 2.5), (-10.0, 20.0, 30.0), direction,
                    {"liver": 2, "lesion_1": 21, "lesion_2": 22, "custom_thing": 9})


def test_round_trip_through_our_reader(tmp_path):
    lm = _labels()
    path = write_seg_nrrd(lm, tmp_path / "labels.seg.nrrd")
    back = load_labels(path)
    assert back.names == lm.names
    assert np.array_equal(back.array, lm.array)
    assert back.same_grid(lm)
    assert back.metadata["format"] == "seg.nrrd"


def test_slicer_header_fields(tmp_path):
    lm = _labels()
    path = write_seg_nrrd(lm, tmp_path / "labels.seg.nrrd", colors={"custom_thing": (0.1, 0.2, 0.3)})
    img = sitk.ReadImage(path)
    meta = {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()}
    # segments in value order: liver (2), custom_thing (9), lesion_1 (21), lesion_2 (22)
    assert [meta[f"Segment{n}_Name"] for n in range(4)] == ["liver", "custom_thing", "lesion_1", "lesion_2"]
    assert meta["Segment0_LabelValue"] == "2" and meta["Segment0_Layer"] == "0"
    assert meta["Segment1_Color"] == "0.1 0.2 0.3"
    assert meta["Segment0_Color"] == " ".join(f"{c:g}" for c in segment_color("liver"))
    assert meta["Segment2_Color"] != meta["Segment3_Color"]                 # two lesions, two shades
    # extent: inclusive i0 i1 j0 j1 k0 k1 of the voxels
    assert meta["Segment2_Extent"] == "4 4 3 3 2 2"
    assert meta["Segment3_Extent"] == "0 0 0 1 5 5"
    assert meta["Segment0_Tags"] == "Segmentation.Status:inprogress|"
    assert meta["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert "Segmentation_ContainedRepresentationNames" in meta
    text = open(path, "rb").read(4096)
    assert b"space: left-posterior-superior" in text and b"encoding: gzip" in text


def test_empty_segment_extent_and_colours_stable(tmp_path):
    lm = LabelMap(np.zeros((2, 2, 2), np.uint8), names={})
    lm.names["liver"] = 3                      # named but absent
    path = write_seg_nrrd(lm, tmp_path / "e.seg.nrrd")
    img = sitk.ReadImage(path)
    assert img.GetMetaData("Segment0_Extent") == "0 -1 0 -1 0 -1"
    assert segment_color("adrenal_gland_left") == segment_color("adrenal_gland_left")
    assert all(0.0 <= c <= 1.0 for c in segment_color("adrenal_gland_left"))


def test_bad_names_and_no_half_written_file(tmp_path, monkeypatch):
    lm = _labels()
    with pytest.raises(InputError, match="must end in .seg.nrrd"):
        write_seg_nrrd(lm, tmp_path / "labels.nrrd")
    with pytest.raises(InputError, match="unknown segment status"):
        write_seg_nrrd(lm, tmp_path / "labels.seg.nrrd", status="done")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")
    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(RuntimeError):
        write_seg_nrrd(lm, tmp_path / "labels.seg.nrrd")
    assert os.listdir(tmp_path) == []
