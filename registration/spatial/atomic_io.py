"""Atomic file writes: a file is either absent or complete, never half-written.

Everything is written to a temporary name in the destination folder (same
file system, so ``os.replace`` is atomic) and renamed at the end; on any
failure the temporary file is removed. Saved files get the usual umask
permissions (``mkstemp`` alone would leave them 0600). Files that belong
together (an image and its names sidecar, a header and its data file) are
written with :func:`atomic_write_files`: all are complete before any is
renamed into place.
"""
from __future__ import annotations

import os
import tempfile
from typing import Callable, List, Sequence, Tuple

_IMAGE_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd")
_FILE_MODE = 0o666     # before the umask, as open() would create the file

# (final path, suffix of the temporary file, function writing the content to a given path)
FilePart = Tuple[str, str, Callable[[str], None]]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: str, suffix: str):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    os.fchmod(fd, _FILE_MODE & ~_umask())
    return fd, tmp


def atomic_write_bytes(path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    path = os.fspath(path)
    atomic_write_files([(path, ".tmp", bytes_writer(data))])


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` as UTF-8 to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def bytes_writer(data: bytes) -> Callable[[str], None]:
    """A writer for :func:`atomic_write_files`: ``data`` flushed to disk (fsync)."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return write


def image_part(image, path, *, compress: bool = True) -> FilePart:
    """A SimpleITK image as a part for :func:`atomic_write_files`; the file type follows
    ``path``'s extension. Single-file formats only (NRRD, NIfTI, MHA): a header+data pair
    (.mhd/.nhdr) cannot be swapped in one rename."""
    import SimpleITK as sitk
    path = os.fspath(path)
    suffix = next((s for s in _IMAGE_SUFFIXES if path.lower().endswith(s)), None)
    if suffix in (None, ".mhd", ".nhdr"):
        from .errors import InputError
        raise InputError("cannot write this image type atomically", path=path,
                         fix="use .nrrd, .nii, .nii.gz or .mha")
    return path, suffix, lambda tmp: sitk.WriteImage(image, tmp, compress)


def atomic_write_image(image, path, *, compress: bool = True) -> None:
    """Write a SimpleITK image atomically (see :func:`image_part` for the types)."""
    atomic_write_files([image_part(image, path, compress=compress)])


def atomic_write_files(parts: Sequence[FilePart]) -> None:
    """Write several files together: each to a temporary name beside it, then, once every
    one is complete, rename them in the order given.

    A failure while writing leaves every destination as it was (temporaries removed).
    Put the file others refer to first (an image before its names sidecar).
    """
    staged: List[Tuple[str, str]] = []
    try:
        for path, suffix, write in parts:
            path = os.fspath(path)
            fd, tmp = _temp_beside(path, suffix)
            os.close(fd)
            staged.append((tmp, path))
            write(tmp)
        for n, (tmp, path) in enumerate(staged):
            os.replace(tmp, path)
            staged[n] = ("", path)
    except BaseException:
        for tmp, _ in staged:
            if tmp:
                _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
