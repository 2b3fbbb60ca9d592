"""Atomic file writes: a file is either absent or complete, never half-written.

Everything is written to a temporary name in the destination folder (same
file system, so ``os.replace`` is atomic) and renamed at the end; on any
failure the temporary file is removed. Saved files get the usual umask
permissions (``mkstemp`` alone would leave them 0600).
"""
from __future__ import annotations

import os
import tempfile

_IMAGE_SUFFIXES = (".seg.nrrd", ".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(path: str, suffix: str):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=suffix)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def atomic_write_bytes(path, data: bytes) -> None:
    path = os.fspath(path)
    fd, tmp = _temp_beside(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_image(image, path, *, compress: bool = True) -> None:
    """Write a SimpleITK image atomically; the file type follows ``path``'s extension.

    Single-file formats only (NRRD, NIfTI, MHA): a header+data pair (.mhd/.nhdr)
    cannot be swapped in one rename.
    """
    import SimpleITK as sitk
    path = os.fspath(path)
    suffix = next((s for s in _IMAGE_SUFFIXES if path.lower().endswith(s)), None)
    if suffix in (None, ".mhd", ".nhdr"):
        from .errors import InputError
        raise InputError("cannot write this image type atomically", path=path,
                         fix="use .nrrd, .nii, .nii.gz or .mha")
    fd, tmp = _temp_beside(path, suffix)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, compress)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
