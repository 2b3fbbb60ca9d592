"""Random bytes and damaged real files into the remaining readers: only InputError comes out
(.tfm, PLUS config XML, sweep files, landmark pairs / INIT / RESULT / targets JSON), and the
OpenIGTLink stream parser only ever raises ProtocolError."""
from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.cli.cmd_plan import load_registration
from planner.cli.cmd_register import read_init, read_targets
from registration.spatial.errors import InputError
from registration.live.igtl_protocol import ProtocolError, StreamParser, transform_message
from registration.align.landmarks import load_pairs
from registration.io.plus_config import read_plus_config
from registration.io.sequence_io import load_sweep
from registration.spatial.transforms import read_tfm

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_TMP = tempfile.mkdtemp(prefix="ctus-fuzz-")

TFM = (b"#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\n"
       b"Parameters: 1 0 0 0 1 0 0 0 1 10 20 30\nFixedParameters: 0 0 0\n")
XML = (b'<PlusConfiguration version="2.1"><CoordinateDefinitions>'
       b'<Transform From="Image" To="Probe" Matrix="0.1 0 0 1  0 0.1 0 2  0 0 1 0  0 0 0 1"/>'
       b'</CoordinateDefinitions></PlusConfiguration>')
PAIRS = (b'{"pairs": [{"name": "a", "ct": [0, 0, 0], "reference": [1, 2, 3]}, '
         b'{"name": "b", "ct": [10, 0, 0], "reference": [11, 2, 3]}, '
         b'{"name": "c", "ct": [0, 10, 0], "reference": [1, 12, 3]}]}')
INIT = b'{"reference_to_ct": [[1, 0, 0, 5], [0, 1, 0, 6], [0, 0, 1, 7], [0, 0, 0, 1]]}'


def _write(data: bytes, name: str) -> str:
    path = os.path.join(_TMP, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _only_input_error(fn, *args):
    try:
        fn(*args)
    except InputError:
        pass


def damaged(seed: bytes):
    """Random bytes, or the valid seed with a slice overwritten and/or cut off."""
    return st.one_of(
        st.binary(max_size=400),
        st.tuples(st.integers(0, len(seed)), st.binary(max_size=12), st.integers(0, len(seed))).map(
            lambda t: (seed[:t[0]] + t[1] + seed[t[0] + len(t[1]):])[:max(t[2], 1)]))


def test_seeds_are_valid():
    assert read_tfm(_write(TFM, "ok.tfm"))[0, 3] == 10
    assert "ImageToProbe" in read_plus_config(_write(XML, "ok.xml"))["transforms"]
    assert list(load_pairs(_write(PAIRS, "ok.json"))["names"]) == ["a", "b", "c"]
    assert read_init(_write(INIT, "init.json"))[0, 3] == 5


@SETTINGS
@given(damaged(TFM))
def test_tfm(data):
    _only_input_error(read_tfm, _write(data, "t.tfm"))


@SETTINGS
@given(damaged(XML))
def test_plus_config(data):
    _only_input_error(read_plus_config, _write(data, "c.xml"))


@SETTINGS
@given(st.binary(max_size=600), st.sampled_from([".igs.mha", ".mhd", ".seq.nrrd"]))
def test_sweep_random_bytes(data, suffix):
    _only_input_error(load_sweep, _write(data, "s" + suffix))


@SETTINGS
@given(damaged(PAIRS))
def test_landmark_pairs(data):
    _only_input_error(load_pairs, _write(data, "pairs.json"))


@SETTINGS
@given(damaged(INIT))
def test_init_result_targets_json(data):
    path = _write(data, "init.json")
    _only_input_error(read_init, path)
    _only_input_error(load_registration, path)
    _only_input_error(read_targets, path)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_igtl_parser_random_bytes(data):
    parser = StreamParser(max_body_bytes=10_000)
    try:
        parser.feed(data)
    except ProtocolError:
        pass


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.binary(min_size=1, max_size=8))
def test_igtl_parser_damaged_message(pos, junk):
    good = transform_message([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], 1.0, "ProbeToReference")
    pos = min(pos, len(good) - 1)
    bad = good[:pos] + junk + good[pos + len(junk):]
    try:
        StreamParser(max_body_bytes=10_000).feed(bad + good)
    except ProtocolError:
        pass


def test_tfm_with_non_utf8_bytes_is_input_error():
    with pytest.raises(InputError, match="not a readable ITK transform"):
        read_tfm(_write(b"Transform:\x80double", "bad.tfm"))
