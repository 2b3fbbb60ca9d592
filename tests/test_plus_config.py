"""PLUS device-set config XML: transforms with their attributes, reconstruction settings, errors."""
from __future__ import annotations

import numpy as np
import pytest

from registration.spatial.errors import InputError
from registration.io.plus_config import read_plus_config, require_transform

CFG_HEAD = '<PlusConfiguration version="2.1"><CoordinateDefinitions>'
CFG_TAIL = "</CoordinateDefinitions></PlusConfiguration>"


def test_spine_config(shared_data):
    cfg = read_plus_config(shared_data("plus", "configs",
                                       "PlusDeviceSet_SpinePhantomFreehandReconstructionOnly.xml"))
    m = require_transform(cfg, "ImageToProbe")
    np.testing.assert_allclose(m[0], [-0.00157821, 0.0785919, -0.00803285, 15.3978])
    np.testing.assert_allclose(m[3], [0, 0, 0, 1])
    assert set(cfg["transforms"]) == {"ImageToProbe", "PhantomToReference"}
    assert cfg["transform_info"]["ImageToProbe"] == {"Error": 1.68149, "Date": "022312_110631"}
    r = cfg["reconstruction"]
    assert r["OutputSpacing"] == [0.5, 0.5, 0.5]
    assert r["ClipRectangleOrigin"] == [0, 0] and r["ClipRectangleSize"] == [820, 616]
    assert r["Interpolation"] == "LINEAR" and r["CompoundingMode"] == "MEAN"
    assert r["FillHoles"] is True and r["NumberOfThreads"] == 1
    assert r["HoleFilling"][0]["Type"] == "STICK"
    assert cfg["image_to_reference_chain"] == []   # Probe->Reference is tracked per frame


def test_every_real_config_parses(shared_data):
    folder = shared_data("plus", "configs")
    seen = {}
    for path in sorted(folder.glob("*.xml")):
        cfg = read_plus_config(path)
        seen[path.name] = cfg
        for name, m in cfg["transforms"].items():
            assert m.shape == (4, 4) and np.allclose(m[3], [0, 0, 0, 1]), (path.name, name)
    assert seen["PlusDeviceSet_VolumeReconstructionOnly_SpinePhantom_LN_LATE.xml"]["reconstruction"][
        "CompoundingMode"] == "LATEST"
    assert seen["PlusDeviceSet_VolumeReconstructionOnly_SpinePhantom_LN_LATE.xml"]["reconstruction"][
        "FillHoles"] is False
    # calibration result files keep ImageToProbe in <CalibrationResults>, tab-separated
    fcal = seen["FreehandCalibration3NWires_fCal2.0.results.xml"]["transforms"]["ImageToProbe"]
    assert fcal[1, 3] == pytest.approx(48.4162)
    vr = seen["PlusDeviceSet_fCal_Sim_VolumeReconstruction.xml"]
    assert {"ImageToProbe", "ImageToTransducerOriginPixel", "TransducerOriginPixelToTransducerOrigin"} <= set(vr["transforms"])
    assert seen["PhantomRegistration.results.xml"]["transforms"]["ReferenceToTracker"][2, 3] == 700


def test_static_chain_when_config_covers_it(tmp_path):
    p = tmp_path / "c.xml"
    p.write_text(CFG_HEAD
                 + '<Transform From="Image" To="Probe" Matrix="0.1 0 0 0 0 0.1 0 0 0 0 1 0 0 0 0 1"/>'
                 + '<Transform From="Reference" To="Probe" Matrix="1 0 0 5 0 1 0 0 0 0 1 0 0 0 0 1"/>'
                 + CFG_TAIL)
    assert read_plus_config(p)["image_to_reference_chain"] == ["Image", "Probe", "Reference"]


@pytest.mark.parametrize("body,pattern", [
    ('<Transform From="Image" To="Probe" Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 1"/>', "has 15 numbers, not 16"),
    ('<Transform From="Image" To="Probe" Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 x 1"/>', "is not numeric"),
])
def test_bad_matrices(tmp_path, body, pattern):
    p = tmp_path / "bad.xml"
    p.write_text(CFG_HEAD + body + CFG_TAIL)
    with pytest.raises(InputError, match=f"bad.xml: Transform Image->Probe Matrix {pattern}"):
        read_plus_config(p)


def test_missing_transform_says_which_and_how(tmp_path):
    p = tmp_path / "nocal.xml"
    p.write_text(CFG_HEAD + '<Transform From="Phantom" To="Reference" '
                 'Matrix="1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1"/>' + CFG_TAIL)
    with pytest.raises(InputError, match=r'nocal.xml: no ImageToProbe transform .*found: PhantomToReference.*'
                                         r'--calibration .*From="Image" To="Probe"'):
        require_transform(read_plus_config(p), "ImageToProbe")


def test_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_plus_config(tmp_path / "none.xml")
    bad = tmp_path / "broken.xml"
    bad.write_text("<PlusConfiguration><CoordinateDefinitions>")
    with pytest.raises(InputError, match="broken.xml: not valid XML"):
        read_plus_config(bad)
    onoff = tmp_path / "onoff.xml"
    onoff.write_text('<PlusConfiguration><VolumeReconstruction FillHoles="MAYBE" OutputSpacing="0.5 a 1"/>'
                     "</PlusConfiguration>")
    with pytest.raises(InputError, match="onoff.xml: VolumeReconstruction attribute"):
        read_plus_config(onoff)


def test_reconstruction_attributes_are_typed(tmp_path):
    p = tmp_path / "recon.xml"
    p.write_text('<PlusConfiguration><VolumeReconstruction OutputSpacing="0.5 0.5 1" '
                 'OutputOrigin="-10.5 20 3" OutputExtent="0 99 0 79 0 49" FanAngles="-30 30" '
                 'FanOrigin="410 -20" FanDepth="500" Compounding="On" Calculation="weighted_average" '
                 'Interpolation="nearest_neighbor" FillHoles="off" Custom="kept"/></PlusConfiguration>')
    r = read_plus_config(p)["reconstruction"]
    assert r["OutputOrigin"] == [-10.5, 20.0, 3.0]
    assert r["OutputExtent"] == [0, 99, 0, 79, 0, 49]
    assert r["FanAngles"] == [-30.0, 30.0] and r["FanOrigin"] == [410.0, -20.0] and r["FanDepth"] == 500.0
    assert r["Compounding"] is True and r["FillHoles"] is False
    assert r["Calculation"] == "WEIGHTED_AVERAGE" and r["Interpolation"] == "NEAREST_NEIGHBOR"
    assert r["Custom"] == "kept"
