"""Build and load the project's small C libraries (compiled kernels called through ctypes).

A kernel is one C file beside the Python module that loads it. It is compiled
once with the system C compiler (``$CC``, else Python's ``CC``, ``cc``, ``gcc``
or ``clang``, the first found; gcc is a set-up requirement) with IEEE arithmetic
as numpy's (no fast-math, no fused multiply-add contraction), into the first
writable of ``__pycache__`` beside the source and ``$CTUS_CACHE_DIR/native``
(default ``~/.cache/ctus/native``; an installed, read-only source tree uses that
one). The file name holds a hash of the source, the flags and the machine type,
so a changed source is rebuilt and never confused with an old build, and the
library appears by an atomic rename, so concurrent first imports are safe.
``scripts/setup.sh`` builds every kernel; otherwise the first import does (a few
tenths of a second of CPU per kernel). ctypes releases the GIL during each call,
so Python threads run kernels in parallel. Without a compiler :func:`load_library`
returns None and the reason, and each caller uses its numpy/scipy form.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

#: IEEE arithmetic as numpy's: no fast-math, no fused multiply-add contraction.
FLAGS = ("-O3", "-fPIC", "-shared", "-fno-fast-math", "-ffp-contract=off", "-std=c99")


def compilers() -> List[str]:
    """C compilers to try, in order: ``$CC``, Python's ``CC``, cc, gcc, clang (those on the PATH)."""
    names = [os.environ.get("CC", ""), (sysconfig.get_config_var("CC") or "").split(" ")[0], "cc", "gcc", "clang"]
    out: List[str] = []
    for name in names:
        found = shutil.which(name.split()[0]) if name.strip() else None
        if found and found not in out:
            out.append(found)
    return out


def cache_folders(source: Path) -> List[Path]:
    """Where the library of ``source`` may live, in order of preference (see the module docstring)."""
    root = os.environ.get("CTUS_CACHE_DIR")
    return [source.with_name("__pycache__"), (Path(root) if root else Path.home() / ".cache" / "ctus") / "native"]


def library_name(source: Path, flags: Sequence[str] = FLAGS) -> str:
    """File name of the built library: the source's stem, keyed by the source, the flags and the machine."""
    tag = hashlib.sha256(source.read_bytes() + repr(tuple(flags)).encode() + platform.machine().encode())
    return f"{source.stem}-{tag.hexdigest()[:16]}{sysconfig.get_config_var('SHLIB_SUFFIX') or '.so'}"


def build_library(source: Path, folders: Optional[Sequence[Path]] = None, cc: Optional[Sequence[str]] = None,
                  flags: Sequence[str] = FLAGS) -> Tuple[Optional[Path], str]:
    """(path of the built library, "") when it is cached or could be compiled into one of ``folders``
    (default :func:`cache_folders`), else (None, why not). ``cc``: compilers to try (default
    :func:`compilers`)."""
    if not source.is_file():
        return None, f"{source} is missing"
    folders = cache_folders(source) if folders is None else list(folders)
    name = library_name(source, flags)
    for folder in folders:
        if (folder / name).is_file():
            return folder / name, ""
    cc = compilers() if cc is None else list(cc)
    if not cc:
        return None, "no C compiler found (install gcc, e.g. 'apt-get install gcc', or set CC)"
    why: List[str] = []
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=folder)
            os.close(fd)
        except OSError as exc:            # read-only: try the next folder
            why.append(f"{folder} not writable ({exc.strerror or exc})")
            continue
        try:
            for compiler in cc:
                try:
                    run = subprocess.run([compiler, *flags, "-o", tmp, str(source), "-lm"], capture_output=True,
                                         text=True, timeout=120)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    why.append(f"{compiler}: {exc}")
                    continue
                if run.returncode == 0:
                    os.replace(tmp, folder / name)
                    _remove_older_builds(folder, source, name)
                    return folder / name, ""
                why.append(f"{compiler} failed: {run.stderr.strip()[-300:]}")
            return None, "; ".join(why)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return None, "; ".join(why) or "no folder to build in"


def _remove_older_builds(folder: Path, source: Path, keep: str) -> None:
    """Delete this kernel's libraries of other source versions in ``folder`` (a process still using
    one keeps its mapping; a tree of that version rebuilds it)."""
    for old in folder.glob(f"{source.stem}-*{sysconfig.get_config_var('SHLIB_SUFFIX') or '.so'}"):
        if old.name != keep:
            try:
                old.unlink()
            except OSError:
                pass


def load_library(source: Path) -> Tuple[Optional[ctypes.CDLL], str]:
    """(the loaded library of ``source``, "") or (None, why it is not available)."""
    path, why = build_library(source)
    if path is None:
        return None, why
    try:
        return ctypes.CDLL(str(path)), ""
    except OSError as exc:
        return None, f"cannot load {path}: {exc}"
