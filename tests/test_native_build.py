"""Building the C kernels: cached by source, into the first writable folder, a clear reason without a compiler."""
from __future__ import annotations

import shutil

import pytest

from registration.align import lc2_kernels
from registration.spatial import native_build


@pytest.mark.skipif(not native_build.compilers(), reason="no C compiler")
def test_library_builds_into_the_first_writable_folder_once_keyed_by_the_source(tmp_path):
    src = tmp_path / "src" / "lc2_kernels.c"
    src.parent.mkdir()
    shutil.copyfile(lc2_kernels._SOURCE, src)
    (tmp_path / "a_file").write_text("")
    locked, cache = tmp_path / "a_file" / "cache", tmp_path / "cache"   # cannot be created, even by root
    path, why = native_build.build_library(src, [locked, cache])
    assert why == "" and path == cache / native_build.library_name(src)
    assert [p.name for p in cache.iterdir()] == [path.name]            # no temporary file left
    mtime = path.stat().st_mtime_ns
    assert native_build.build_library(src, [locked, cache]) == (path, "")   # cached, not rebuilt
    assert path.stat().st_mtime_ns == mtime
    src.write_text(src.read_text() + "\n/* changed */\n")
    assert native_build.library_name(src) != path.name                   # a changed source is rebuilt
    new, why = native_build.build_library(src, [locked, cache])
    assert why == "" and new.name != path.name and [p.name for p in cache.iterdir()] == [new.name]


def test_without_a_compiler_there_is_no_library_and_the_reason_says_what_to_install(tmp_path):
    src = lc2_kernels._SOURCE
    path, why = native_build.build_library(src, [tmp_path], cc=[])
    assert path is None and "no C compiler" in why and "gcc" in why
    path, why = native_build.build_library(src, [tmp_path], cc=[str(tmp_path / "missing-cc")])
    assert path is None and "missing-cc" in why
    assert list(tmp_path.iterdir()) == []                                 # nothing half-built left


def test_a_source_that_does_not_compile_gives_the_compiler_message(tmp_path):
    if not native_build.compilers():
        pytest.skip("no C compiler")
    src = tmp_path / "broken.c"
    src.write_text("int f( {\n")
    path, why = native_build.build_library(src, [tmp_path / "out"])
    assert path is None and "failed" in why and "error" in why
    assert list((tmp_path / "out").iterdir()) == []
