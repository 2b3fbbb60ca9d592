"""Hypothesis-mutated headers of real PLUS files: the reader returns a Sweep or raises InputError, nothing else."""
from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registration.spatial.errors import InputError
from registration.io.seq_mha_read import read_sequence
from registration.spatial.sweep import Sweep

JUNK = ["", "x", "-1", "0", "1e999", "nan", "99999999999", "1.5", "OK", "--", "0x10", " "]

mutation = st.tuples(
    st.sampled_from(["delete", "duplicate", "junk", "truncate", "swap"]),
    st.integers(min_value=0, max_value=10 ** 6),    # which line (modulo the line count)
    st.integers(min_value=0, max_value=10 ** 6),    # which number / where to cut / other line
    st.sampled_from(JUNK),
)


def mutate(header: str, mutations) -> str:
    lines = header.split("\n")[:-1]  # header ends with a newline before ElementDataFile
    for kind, a, b, junk in mutations:
        if not lines:
            break
        i = a % len(lines)
        if kind == "delete":
            del lines[i]
        elif kind == "duplicate":
            lines.insert(b % (len(lines) + 1), lines[i])
        elif kind == "junk":
            numbers = list(re.finditer(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?", lines[i]))
            if numbers:
                m = numbers[b % len(numbers)]
                lines[i] = lines[i][:m.start()] + junk + lines[i][m.end():]
        elif kind == "truncate":
            lines[i] = lines[i][:b % (len(lines[i]) + 1)]
        elif kind == "swap":
            j = b % len(lines)
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines) + "\n"


def _fuzz(path, tmp_path, mutations):
    data = path.read_bytes()
    cut = data.index(b"ElementDataFile")
    header = mutate(data[:cut].decode("latin-1"), mutations)
    out = tmp_path / "mutated.igs.mha"
    out.write_bytes(header.encode("latin-1") + data[cut:])
    try:
        sweep = read_sequence(out)
    except InputError as exc:
        assert str(exc).startswith(str(out)), "the message must name the file"
        return
    assert isinstance(sweep, Sweep)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_compressed_image_sequence(shared_data, tmp_path, mutations):
    _fuzz(shared_data("plus", "sequences", "NwirePhantomFreehandCropped.igs.mha"), tmp_path, mutations)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_uncompressed_tracker_sequence(shared_data, tmp_path, mutations):
    _fuzz(shared_data("plus", "sequences", "Prostate10_tracker.igs.mha"), tmp_path, mutations)


@pytest.mark.parametrize("mutations", [
    [("junk", 0, 0, "x")],                                  # first number of the first line
    [("delete", 10 ** 6 - 1, 0, "")],                       # some line gone
])
def test_fixed_examples_still_checked(shared_data, tmp_path, mutations):
    _fuzz(shared_data("plus", "sequences", "NwirePhantomFreehandCropped.igs.mha"), tmp_path, mutations)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_seq_nrrd_header(shared_data, tmp_path, mutations):
    from registration.io.seq_nrrd import read_seq_nrrd
    from registration.io.seq_nrrd_write import write_seq_nrrd
    src = tmp_path / "src.seq.nrrd"
    if not src.exists():
        write_seq_nrrd(read_sequence(shared_data("plus", "sequences", "NwirePhantomFreehandCropped.igs.mha")), src)
    data = src.read_bytes()
    cut = data.index(b"\n\n") + 1
    out = tmp_path / "mutated.seq.nrrd"
    out.write_bytes(mutate(data[:cut].decode("latin-1"), mutations).encode("latin-1") + data[cut:])
    try:
        sweep = read_seq_nrrd(out)
    except InputError as exc:
        assert str(exc).startswith(str(out))
        return
    assert isinstance(sweep, Sweep)
