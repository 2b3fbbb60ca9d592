"""A 3D ultrasound volume (reconstructed, or from a 3D probe) as a sweep of its slices.

``ctus register --mr MR --sweep US.nii.gz`` (or ``.nrrd``/``.mha`` holding one 3D
scalar image, not a sequence): every slice k becomes a frame whose
``ImageToReference`` is the volume's voxel -> LPS mapping at that slice (pixel
(i, j) of frame k is voxel (i, j, k)), so the Reference frame is the volume's
own physical space (the MR's, when the volume was recorded by a navigation
system registered to it). Values are scaled to 0..255 (0 stays 0: outside the
imaged region); the registration keeps each slice's imaged region only
(:mod:`registration.align.volume_sweep`).
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.volume import Volume

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def is_volume_file(path) -> bool:
    """True for an image file holding one 3D scalar image (not a PLUS/Slicer sequence)."""
    p = os.fspath(path)
    low = p.lower()
    if not os.path.isfile(p) or not low.endswith(VOLUME_SUFFIXES) or low.endswith(".seq.nrrd"):
        return False
    if low.endswith((".mha", ".mhd")):
        with open(p, "rb") as f:
            head = f.read(65536)
        if b"Seq_Frame" in head or b"UltrasoundImageOrientation" in head:
            return False
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(p)
        reader.ReadImageInformation()
        if low.endswith((".nrrd", ".nhdr")) and any("kinds" in k and "list" in reader.GetMetaData(k)
                                                       for k in reader.GetMetaDataKeys()):
            return False
        return reader.GetDimension() == 3 and reader.GetNumberOfComponents() == 1 and min(reader.GetSize()) > 1
    except RuntimeError:
        return False


def sweep_from_volume(volume: Volume, source=None) -> Sweep:
    """The slices k of ``volume`` as frames [k, rows=j, cols=i] with their ImageToReference.

    An 8-bit volume (most ultrasound volumes) is used as it is; other values are scaled so the
    99.9th percentile of the imaged voxels is 254 (LC2 ignores the scale; 0 stays 0, imaged stays
    nonzero). Done in place in float32: a 0.3 mm iUS volume has ~20 M voxels."""
    a = volume.array
    if a.dtype == np.uint8:
        frames = np.ascontiguousarray(a)
    else:
        a = np.asarray(a, np.float32)
        imaged = a > 0
        hi = float(np.percentile(a[imaged], 99.9)) if imaged.any() else 1.0
        f = np.multiply(a, np.float32(254.0 / max(hi, 1e-6)), dtype=np.float32)
        np.rint(f, out=f)
        np.clip(f, 0, 255, out=f)
        frames = f.astype(np.uint8)
        del f
        frames[imaged & (frames == 0)] = 1       # imaged stays nonzero
    ijk_to_lps = volume.ijk_to_lps
    n = frames.shape[0]
    mats = np.repeat(ijk_to_lps[None], n, axis=0)
    mats[:, :3, 3] = ijk_to_lps[:3, 3][None] + np.arange(n)[:, None] * ijk_to_lps[:3, 2][None]
    mats[:, :3, 2] = np.cross(mats[:, :3, 0], mats[:, :3, 1]) / np.linalg.norm(
        np.cross(mats[:, :3, 0], mats[:, :3, 1]), axis=1, keepdims=True)
    return Sweep(frames, np.arange(n, dtype=float), transforms={"ImageToReference": mats},
                 metadata={"notes": ["slices of a 3D ultrasound volume"], "from_volume": True},
                 source=None if source is None else os.fspath(source))


def load_us_volume_as_sweep(path) -> Sweep:
    """Read a 3D ultrasound volume file and return :func:`sweep_from_volume` of it."""
    p = os.fspath(path)
    try:
        img = sitk.ReadImage(p)
        if img.GetPixelID() != sitk.sitkUInt8:      # 8-bit volumes are kept as they are (no float copy)
            img = sitk.Cast(img, sitk.sitkFloat32)
        vol = Volume.from_sitk(img)
    except (RuntimeError, InputError) as exc:
        raise InputError(f"cannot read the ultrasound volume ({str(exc).strip()[:160]})", path=p,
                         fix="give a 3D scalar ultrasound volume or a tracked sweep") from None
    return sweep_from_volume(vol, p)
