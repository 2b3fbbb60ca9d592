"""Slicer .seq.nrrd: round trip, list axis found by kind, SimpleITK agreement, bad input."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.io.seq_nrrd import read_seq_nrrd
from registration.io.seq_nrrd_write import write_seq_nrrd
from registration.io.sequence_io import load_sweep
from registration.io.seq_mha_read import read_sequence
from registration.spatial.sweep import Sweep
from _helpers import assert_same, make_sweep


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress):
    sweep = make_sweep(image_valid=np.array([1, 0, 1, 1, 1, 1], bool))
    sweep.metadata["frame_fields"] = {"FrameNumber": [str(10 + i) for i in range(6)]}
    out = tmp_path / "s.seq.nrrd"
    write_seq_nrrd(sweep, out, compress=compress)
    back = read_seq_nrrd(out)
    assert_same(sweep, back)
    np.testing.assert_array_equal(back.calibration["ImageToProbe"], sweep.calibration["ImageToProbe"])
    assert back.metadata["frame_fields"]["FrameNumber"][3] == "13"
    np.testing.assert_array_equal(back.metadata["ijk_to_lps"], np.eye(4))
    # via load_sweep (dispatch by extension) the chain works as for the .mha
    m, valid = load_sweep(out).image_to_reference_all()
    np.testing.assert_array_equal(valid, [1, 0, 0, 1, 1, 1])


def test_simpleitk_reads_the_same_pixels(tmp_path):
    sweep = make_sweep()
    out = tmp_path / "s.seq.nrrd"
    write_seq_nrrd(sweep, out)
    img = sitk.ReadImage(str(out))
    # ITK's NRRD reader turns the (non-spatial) list axis into 6 components per pixel.
    assert img.GetSize() == (30, 20, 1) and img.GetNumberOfComponentsPerPixel() == 6
    arr = sitk.GetArrayFromImage(img)           # [k, j, i, item]
    np.testing.assert_array_equal(np.moveaxis(arr[0], -1, 0), sweep.frames)


def _hand_written(tmp_path, frames, list_first: bool, times):
    """A Slicer-style file written independently of our writer (old layout: list axis first)."""
    n, rows, cols = frames.shape
    if list_first:
        sizes, kinds = f"{n} {cols} {rows} 1", "list domain domain domain"
        dirs = "none (-0.3,0,0) (0,-0.3,0) (0,0,1)"
        data = np.transpose(frames, (1, 2, 0))   # numpy [j, i, n]: n fastest in memory
        axis = 0
    else:
        sizes, kinds = f"{cols} {rows} 1 {n}", "domain domain domain list"
        dirs = "(-0.3,0,0) (0,-0.3,0) (0,0,1) none"
        data = frames
        axis = 3
    header = (f"NRRD0005\ntype: uint8\ndimension: 4\nspace: right-anterior-superior\nsizes: {sizes}\n"
              f"space directions: {dirs}\nkinds: {kinds}\nlabels: \"\" \"\" \"\" \"\"\n"
              'units: "ms" "" "" ""\n' if list_first else
              f"NRRD0005\ntype: uint8\ndimension: 4\nspace: right-anterior-superior\nsizes: {sizes}\n"
              f"space directions: {dirs}\nkinds: {kinds}\n")
    header += ("endian: little\nencoding: gzip\nspace origin: (10,20,30)\n"
               f"axis {axis} index type:=numeric\n"
               f"axis {axis} index values:={' '.join(str(t) for t in times)}\n"
               f"axis {axis} item 1 ProbeToReferenceTransform:=1 0 0 5 0 1 0 6 0 0 1 7 0 0 0 1\n\n")
    path = tmp_path / ("old.seq.nrrd" if list_first else "new.seq.nrrd")
    path.write_bytes(header.encode() + gzip.compress(np.ascontiguousarray(data).tobytes()))
    return path


@pytest.mark.parametrize("list_first", [True, False])
def test_list_axis_found_by_kind(tmp_path, list_first):
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (4, 7, 9), dtype=np.uint8)
    times = [0, 40, 80, 120] if list_first else [0.0, 0.04, 0.08, 0.12]
    sweep = read_seq_nrrd(_hand_written(tmp_path, frames, list_first, times))
    np.testing.assert_array_equal(sweep.frames, frames)
    np.testing.assert_allclose(sweep.timestamps, [0.0, 0.04, 0.08, 0.12])   # ms converted
    assert sweep.metadata["list_axis"] == (0 if list_first else 3)
    assert sweep.statuses["ProbeToReference"].tolist() == [False, True, False, False]
    # RAS (-0.3, -0.3) directions and origin (10, 20, 30) -> LPS (+0.3, +0.3), (-10, -20, 30)
    m = sweep.metadata["ijk_to_lps"]
    np.testing.assert_allclose(m[:3, 3], [-10, -20, 30])
    np.testing.assert_allclose(np.diag(m)[:3], [0.3, 0.3, 1])


def test_real_sequence_converts_to_seq_nrrd_and_back(shared_data, tmp_path):
    src = read_sequence(shared_data("plus", "sequences", "NwirePhantomFreehandCropped.igs.mha"))
    out = tmp_path / "crop.seq.nrrd"
    write_seq_nrrd(src, out)
    back = load_sweep(out)
    assert_same(src, back)
    assert back.image_frame == "CroppedImage"


def test_bad_input(tmp_path):
    good = tmp_path / "g.seq.nrrd"
    write_seq_nrrd(make_sweep(), good)
    data = good.read_bytes()
    cases = {
        "truncated": (data[:-40], "corrupt|truncated"),
        "two list axes": (data.replace(b"kinds: domain domain domain list", b"kinds: domain domain list list"),
                          "exactly one 'list'"),
        "short type": (data.replace(b"type: unsigned char", b"type: short"), "not supported"),
        "not nrrd": (b"hello" + data, "not an NRRD"),
        "bad matrix": (data.replace(b"axis 3 item 2 ProbeToTrackerTransform:=", b"axis 3 item 2 ProbeToTrackerTransform:=x "),
                       "not numeric"),
        "index count": (data.replace(b"axis 3 index values:=", b"axis 3 index values:=7 "), "values for 6 items"),
        # Our own messages are not rewrapped by the broader ValueError handlers around them
        # (InputError is a ValueError): the missing field and the encoding are named as such.
        "no sizes": (data.replace(b"\nsizes:", b"\nsize_s:"), r"^(?!.*whole numbers).*no 'sizes' field"),
        "hex encoding": (data.replace(b"encoding: gzip", b"encoding: hex"),
                         r"^(?!.*corrupt).*encoding 'hex' is not supported"),
    }
    for name, (blob, pattern) in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.seq.nrrd"
        bad.write_bytes(blob)
        with pytest.raises(InputError, match=pattern):
            read_seq_nrrd(bad)
    with pytest.raises(InputError, match="tracker-only|image frame"):
        write_seq_nrrd(Sweep(np.zeros((3, 0, 0), np.uint8), [0, 1, 2]), tmp_path / "t.seq.nrrd")
