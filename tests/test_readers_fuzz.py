"""Random and damaged bytes fed to every CT / label-map reader: only InputError may come out.

Inputs are either random bytes or a valid small file of the right format
with bytes overwritten and/or cut off (much more likely to reach the
parsers' deeper paths than pure noise). The size guard is lowered so that
a damaged header can never make a test allocate much memory.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registration.io import ct_io
from registration.io.dicom_series import list_dicom_series
from registration.io.ct_io import load_ct
from registration.io.dicom_write import write_dicom_series
from registration.spatial.errors import InputError
from registration.io.labelmap_io import load_labels
from registration.spatial.volume import Volume

from pathlib import Path

# same location rule as tests/conftest.py (needed at import time, before fixtures exist)
SHARED_DATA = Path(os.environ.get("CTUS_SHARED_DATA",
                                  Path(__file__).resolve().parents[2] / "shared" / "data"))

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom complains about damaged values

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _seed_files() -> dict:
    """Small valid files of every format, as bytes, keyed by extension."""
    vol = Volume(np.arange(60, dtype=np.int16).reshape(3, 4, 5) % 7, (0.7, 0.8, 2.0), (1.0, 2.0, 3.0))
    seeds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".nrrd", ".nii", ".nii.gz", ".mha"):
            p = os.path.join(tmp, "v" + suffix)
            sitk.WriteImage(vol.to_sitk(), p, False)
            seeds[suffix] = open(p, "rb").read()
        (dcm,) = write_dicom_series(Volume(vol.array[:1]), os.path.join(tmp, "d"),
                                    series_description="seed", file_names=["s.dcm"])
        seeds[".dcm"] = open(dcm, "rb").read()
    seg = ("NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
           "sizes: 5 4 3\nspace directions: (1,0,0) (0,1,0) (0,0,2)\nkinds: domain domain domain\n"
           "encoding: raw\nspace origin: (0,0,0)\nSegment0_Name:=liver\nSegment0_LabelValue:=1\n"
           "Segment0_Layer:=0\n\n").encode() + bytes(np.arange(60) % 2)
    seeds[".seg.nrrd"] = seg
    real_seg = SHARED_DATA / "ct" / "liver-3slice" / "liver_seg.dcm"
    if real_seg.exists():
        seeds["seg.dcm"] = real_seg.read_bytes()
    return seeds


SEEDS = _seed_files()


@st.composite
def damaged(draw, seed: bytes):
    """A seed with a few bytes overwritten (mostly in the header) and maybe cut short."""
    data = bytearray(seed)
    header = min(len(data), 4096)
    for _ in range(draw(st.integers(0, 6))):
        pos = draw(st.integers(0, header - 1))
        data[pos] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


def inputs(key: str):
    return st.one_of(st.binary(max_size=1024), damaged(SEEDS[key]))


@pytest.fixture(autouse=True)
def _small_size_guard(monkeypatch):
    monkeypatch.setattr(ct_io, "MAX_VOXELS", 2_000_000)


_ROOT = {"dir": None}


@pytest.fixture(autouse=True)
def _fuzz_root(tmp_path):
    _ROOT["dir"] = str(tmp_path)     # every example's files live under the test's tmp_path


def _write(data: bytes, name: str) -> str:
    folder = tempfile.mkdtemp(prefix="ex_", dir=_ROOT["dir"])
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _only_input_error(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except InputError:
        pass   # the only acceptable failure; any other exception fails the test


@pytest.mark.parametrize("suffix", [".nrrd", ".nii", ".nii.gz", ".mha"])
def test_load_ct_image_files(suffix):
    @FUZZ
    @given(data=inputs(suffix))
    def run(data):
        _only_input_error(load_ct, _write(data, "ct" + suffix))
    run()


def test_load_ct_dicom_file_and_folder():
    @FUZZ
    @given(data=inputs(".dcm"))
    def run(data):
        path = _write(data, "slice.dcm")
        _only_input_error(load_ct, path)
        _only_input_error(load_ct, os.path.dirname(path))
        _only_input_error(list_dicom_series, os.path.dirname(path))
    run()


@pytest.mark.parametrize("suffix", [".nrrd", ".nii", ".nii.gz", ".seg.nrrd"])
def test_load_labels_files(suffix):
    @FUZZ
    @given(data=inputs(suffix), explicit_names=st.booleans())
    def run(data, explicit_names):
        _only_input_error(load_labels, _write(data, "labels" + suffix),
                          {} if explicit_names else None)
    run()


@pytest.mark.parametrize("key", ["seg.dcm", ".dcm"])
def test_load_labels_dicom_seg(key):
    if key not in SEEDS:
        pytest.skip("real DICOM SEG not available in ../shared/data")

    @FUZZ
    @given(data=inputs(key))
    def run(data):
        _only_input_error(load_labels, _write(data, "seg.dcm"))
    run()


def test_names_files():
    @FUZZ
    @given(text=st.one_of(st.text(max_size=200),
                          st.dictionaries(st.text(max_size=8), st.integers(-3, 300), max_size=4)
                          .map(lambda d: __import__("json").dumps(d))),
           suffix=st.sampled_from([".json", ".txt"]))
    def run(text, suffix):
        names = _write(text.encode("utf-8", "surrogatepass"), "names" + suffix)
        labels = _write(SEEDS[".nrrd"], "labels.nrrd")
        _only_input_error(load_labels, labels, names)
    run()
