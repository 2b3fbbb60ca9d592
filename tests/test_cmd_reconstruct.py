"""``ctus reconstruct``: output file geometry, PLUS config settings, overwrite and bad input."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from planner.cli.main import main
from registration.ultrasound.reconstruction import reconstruct
from registration.io.seq_mha_read import read_sequence
from registration.io.seq_mha_write import write_sequence
from registration.spatial.sweep import Sweep


def _synthetic_sweep_file(tmp_path: Path) -> Path:
    """Three parallel 0.5 mm-pixel frames 1 mm apart with an asymmetric pattern."""
    rng = np.random.default_rng(11)
    frames = rng.integers(20, 230, size=(3, 12, 16), dtype=np.uint8)
    mats = np.tile(np.diag([0.5, 0.5, 1.0, 1.0]), (3, 1, 1))
    mats[:, :3, 3] = [[5.0, -3.0, 2.0 * n] for n in range(3)]
    sweep = Sweep(frames, np.arange(3) * 0.1, {"ImageToReference": mats})
    path = tmp_path / "sweep.igs.mha"
    write_sequence(sweep, path)
    return path


def test_reconstruct_writes_nrrd_in_reference_frame(tmp_path, capsys):
    seq = _synthetic_sweep_file(tmp_path)
    out = tmp_path / "vol.nrrd"
    assert main(["reconstruct", "--sweep", str(seq), "--spacing", "0.5", "--no-fill",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "frames used 3 of 3 (0 invalid" in text and "16 x 12 x 9 voxels" in text
    img = sitk.ReadImage(str(out))
    assert img.GetSize() == (16, 12, 9)
    np.testing.assert_allclose(img.GetOrigin(), (5.0, -3.0, 0.0))    # centre of voxel 0
    np.testing.assert_allclose(img.GetSpacing(), (0.5, 0.5, 0.5))
    np.testing.assert_allclose(np.array(img.GetDirection()).reshape(3, 3), np.eye(3))
    arr = sitk.GetArrayFromImage(img)
    sweep = read_sequence(seq)
    fan = np.ones((12, 16), bool) if sweep.fan_mask is None else sweep.fan_mask   # detected by the reader
    for n in range(3):                     # frame n lands on slice k = 4 n, unflipped, inside the fan
        np.testing.assert_array_equal(arr[4 * n], np.where(fan, sweep.frames[n], 0))
    assert arr[1].max() == 0
    assert img.GetMetaData("ctus_frame") == "Reference"
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    seq = _synthetic_sweep_file(tmp_path)
    out = tmp_path / "vol.nrrd"
    out.write_bytes(b"keep me")
    assert main(["reconstruct", "--sweep", str(seq), "--out", str(out)]) == 2
    assert "output exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["reconstruct", "--sweep", str(seq), "--out", str(out), "--force"]) == 0
    assert sitk.ReadImage(str(out)).GetSize() == (16, 12, 9)


def test_bad_input_exit_2_and_nothing_written(tmp_path, capsys):
    seq = _synthetic_sweep_file(tmp_path)
    missing = tmp_path / "nope.igs.mha"
    assert main(["reconstruct", "--sweep", str(missing), "--out", str(tmp_path / "a.nrrd")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["reconstruct", "--sweep", str(seq), "--out", str(tmp_path / "no" / "a.nrrd")]) == 2
    assert main(["reconstruct", "--sweep", str(seq), "--out", str(tmp_path / "a.png")]) == 2
    assert main(["reconstruct", "--sweep", str(seq), "--spacing", "-1", "--out", str(tmp_path / "a.nrrd")]) == 2
    assert not (tmp_path / "a.nrrd").exists()


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    seq = _synthetic_sweep_file(tmp_path)
    out = tmp_path / "vol.nrrd"

    def broken(image, path, *a):
        Path(path).write_bytes(b"half")          # a writer that dies half way
        raise RuntimeError("disk full")
    monkeypatch.setattr(sitk, "WriteImage", broken)
    with pytest.raises(RuntimeError, match="disk full"):     # unexpected: main lets it through (exit 1)
        main(["reconstruct", "--sweep", str(seq), "--out", str(out)])
    assert not out.exists()
    assert os.listdir(tmp_path) == ["sweep.igs.mha"]


def test_spine_phantom_with_plus_reconstruction_config(shared_data, tmp_path, capsys):
    seq = shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha")
    config = shared_data("plus", "configs", "PlusDeviceSet_VolumeReconstructionOnly_SpinePhantom_NN_MAXI.xml")
    out = tmp_path / "spine.nrrd"
    assert main(["reconstruct", "--sweep", str(seq), "--calibration", str(config), "--no-fill",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "compounding max" in text and "clip/fan from config" in text
    img = sitk.ReadImage(str(out))
    # Same as the API with PLUS's settings from that file (0.5 mm, clip 820x616, MAXIMUM).
    sweep = read_sequence(seq, calibration=config)
    ref = reconstruct(sweep, spacing_mm=0.5, compounding="max", clip_rectangle=(0, 0, 820, 616),
                      use_sweep_fan_mask=False, fill_holes=False)
    np.testing.assert_allclose(img.GetOrigin(), ref.volume.origin)
    assert img.GetSize() == ref.volume.shape_ijk
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), ref.volume.array)


@pytest.mark.slow
def test_spine_phantom_mean_config_reproduces_plus_running_mean(shared_data, tmp_path, capsys):
    seq = shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha")
    config = shared_data("plus", "configs", "PlusDeviceSet_VolumeReconstructionOnly_SpinePhantom_NN_MEAN.xml")
    out = tmp_path / "spine.nrrd"
    assert main(["reconstruct", "--sweep", str(seq), "--calibration", str(config), "--no-fill",
                 "--out", str(out)]) == 0
    assert "compounding mean (PLUS running mean)" in capsys.readouterr().out
    sweep = read_sequence(seq, calibration=config)
    ref = reconstruct(sweep, spacing_mm=0.5, clip_rectangle=(0, 0, 820, 616), use_sweep_fan_mask=False,
                      fill_holes=False, plus_running_mean=True)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out))), ref.volume.array)


def test_settings_from_plus_config_attributes():
    from argparse import Namespace
    from planner.cli.cmd_reconstruct import settings_from_config
    from registration.spatial.errors import InputError
    from registration.ultrasound.hole_filling_elements import GaussianElement
    recon = {"OutputSpacing": [0.2, 0.2, 0.2], "OutputOrigin": [1.0, 2.0, 3.0],
             "OutputExtent": [0, 9, 0, 19, 0, 4], "CompoundingMode": "MAXIMUM",
             "ClipRectangleOrigin": [5, 6], "ClipRectangleSize": [100, 50],
             "FanAnglesDeg": [-30.0, 30.0], "FanOriginPixel": [50.0, 0.0], "FanRadiusStopPixel": 80.0,
             "FillHoles": True, "SkipInterval": 2, "Interpolation": "LINEAR",
             "HoleFilling": [{"Type": "GAUSSIAN", "Size": "5", "Stdev": "1", "MinimumKnownVoxelsRatio": "0.2"}]}
    args = Namespace(spacing=None, compounding=None, no_fill=False, calibration="c.xml")
    notes = []
    kw = settings_from_config(recon, args, notes)
    assert kw["spacing_mm"] == [0.2, 0.2, 0.2] and kw["output_origin"] == [1.0, 2.0, 3.0]
    assert kw["output_extent"] == [0, 9, 0, 19, 0, 4] and kw["compounding"] == "max"
    assert kw["clip_rectangle"] == [5, 6, 100, 50] and kw["use_sweep_fan_mask"] is False
    assert kw["fan_geometry"]["FanRadiusStopPixel"] == 80.0 and kw["skip_interval"] == 2
    assert kw["hole_elements"] == [GaussianElement(5, 1.0, 0.2)] and "plus_running_mean" not in kw
    assert any("LINEAR" in n for n in notes)
    # flags win; --spacing drops the config's voxel-based origin/extent
    args = Namespace(spacing=1.0, compounding="mean", no_fill=True, calibration="c.xml")
    kw = settings_from_config(recon, args, notes := [])
    assert kw["spacing_mm"] == 1.0 and "output_origin" not in kw and kw["fill_holes"] is False
    assert kw["compounding"] == "mean" and kw["plus_running_mean"] is True
    assert any("OutputOrigin" in n for n in notes)
    with pytest.raises(InputError, match="IMPORTANCEMASK"):
        settings_from_config({"CompoundingMode": "IMPORTANCEMASK"},
                             Namespace(spacing=None, compounding=None, no_fill=False, calibration="c.xml"), [])
    # no config: plain defaults, the sweep's own fan mask
    kw = settings_from_config({}, Namespace(spacing=None, compounding=None, no_fill=False, calibration=None), [])
    assert kw == {"spacing_mm": 0.5, "compounding": "mean", "fill_holes": True}
