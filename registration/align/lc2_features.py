"""CT features of LC2 per resolution level (``p`` soft-tissue window, ``g`` gradient magnitude), with a cache.

Geometry: each level is an isotropic grid with the CT's direction; ``lps_to_ijk``
maps LPS mm to ``(i, j, k)``. Only the CT around the sweep is used: the box of the
fine level's fan samples under the start plus a margin, widened outwards to a
lattice of ``BOX_LATTICE`` voxels anchored at the CT's first voxel, so that starts
a few mm apart give the same box and hence the same features.

:class:`FeatureCache` keeps the levels of recent (CT, box, spacings) in memory (the
GUI registers the same CT again whenever the patient moves) and, when given a
folder, on disk (``ctus register --feature-cache DIR``: every process is new).
A cached entry is used only for the identical CT (its geometry and a digest of
its voxels) and the identical box and spacings, so a hit gives bit-identical
features, and the registration the same result.
"""
from __future__ import annotations

import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from registration.spatial.volume import Volume

from . import lc2_kernels
from .lc2 import GRADIENT_CLIP_HU, SOFT_TISSUE_WINDOW_HU, ct_feature_arrays

#: The crop box's corners are multiples of this many CT voxels (from voxel 0) on every axis.
BOX_LATTICE = 16
#: Smoothing below this sigma (mm) is skipped: ITK's recursive Gaussian is then the identity.
MIN_SIGMA_MM = 1e-3
#: Bump when the features' computation changes (invalidates the disk cache).
FEATURES_VERSION = 1


@dataclass
class FeatureLevel:
    """CT features resampled on an isotropic grid (same direction as the CT)."""
    p: np.ndarray             # float32 [k, j, i]
    g: np.ndarray             # float32 [k, j, i]
    lps_to_ijk: np.ndarray    # 4x4
    spacing_mm: float

    @property
    def pg(self) -> np.ndarray:
        """float32 [k, j, i, 2]: p and g interleaved (cached), for the compiled sampler's single gather."""
        if getattr(self, "_pg", None) is None:
            self._pg = np.ascontiguousarray(np.stack([self.p, self.g], axis=-1), dtype=np.float32)
        return self._pg


def _smoothed_resampled(img: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Gaussian (sigma^2 = (s/2)^2 - (s_in/2)^2 per axis) then linear resampling to ``spacing_mm``."""
    sp_in = np.asarray(img.GetSpacing(), float)
    # Integer block averaging first (cheap), so the Gaussian runs on a smaller image.
    shrink = np.maximum(np.floor(spacing_mm / sp_in + 1e-6).astype(int), 1)
    if np.any(shrink > 1):
        img = sitk.BinShrink(img, [int(v) for v in shrink])
        sp_in = np.asarray(img.GetSpacing(), float)
    sigma = np.sqrt(np.maximum((spacing_mm / 2.0) ** 2 - (sp_in / 2.0) ** 2, 0.0))
    # One recursive Gaussian per axis that needs one (the same filter SmoothingRecursiveGaussian
    # chains; an axis already at the level's resolution is left alone).
    for axis, s in enumerate(sigma):
        if s > MIN_SIGMA_MM:
            f = sitk.RecursiveGaussianImageFilter()
            f.SetSigma(float(s))
            f.SetDirection(axis)
            f.SetOrder(0)
            f.SetNormalizeAcrossScale(False)
            img = f.Execute(img)
    size_out = np.maximum(np.round(np.asarray(img.GetSize()) * sp_in / spacing_mm).astype(int), 1)
    res = sitk.ResampleImageFilter()
    res.SetOutputSpacing([float(spacing_mm)] * 3)
    res.SetSize([int(v) for v in size_out])
    res.SetOutputOrigin(img.GetOrigin())
    res.SetOutputDirection(img.GetDirection())
    res.SetInterpolator(sitk.sitkLinear)
    res.SetDefaultPixelValue(-1000.0)
    return res.Execute(img)


def _features(img: sitk.Image, spacing_mm: float) -> FeatureLevel:
    """(p, g) of a resampled level image (:func:`registration.align.lc2.ct_feature_arrays`)."""
    vol = Volume.from_sitk(img)
    if lc2_kernels.AVAILABLE:
        pg = np.empty(vol.array.shape + (2,), np.float32)
        lc2_kernels.feature_pairs(np.ascontiguousarray(vol.array, dtype=np.float32), float(spacing_mm),
                                  *SOFT_TISSUE_WINDOW_HU, *GRADIENT_CLIP_HU, pg)
        level = FeatureLevel(pg[..., 0], pg[..., 1], vol.lps_to_ijk, float(spacing_mm))
        level._pg = pg
        return level
    p, g = ct_feature_arrays(vol.array, (spacing_mm,) * 3, smooth_mm=0.0)
    return FeatureLevel(p, g, vol.lps_to_ijk, float(spacing_mm))


def ct_feature_level(ct: Volume, spacing_mm: float) -> FeatureLevel:
    """Smooth (sigma = spacing/2), resample to ``spacing_mm`` and compute (p, g)."""
    return ct_feature_levels(ct, [spacing_mm])[0]


def ct_feature_levels(ct: Volume, spacings_mm: Sequence[float]) -> List[FeatureLevel]:
    """Feature levels, computed fine to coarse, each from the previous (smoothed) one:
    the expensive smoothing of the full-resolution CT happens once."""
    order = np.argsort(spacings_mm)
    img = sitk.Cast(ct.to_sitk(), sitk.sitkFloat32)
    out: List[Optional[FeatureLevel]] = [None] * len(spacings_mm)
    for k in order:
        sp = float(spacings_mm[k])
        img = _smoothed_resampled(img, sp)
        out[k] = _features(img, sp)
    return out  # type: ignore[return-value]


def crop_box(ct: Volume, points_ct: np.ndarray, margin_mm: float,
             lattice: int = BOX_LATTICE) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """(lo, hi) voxel indices (i, j, k), hi exclusive: the box of ``points_ct`` (LPS mm) plus
    ``margin_mm``, widened to multiples of ``lattice`` voxels and clipped to the CT."""
    a = np.linalg.inv(ct.direction * ct.spacing[None, :])
    p = np.asarray(points_ct, float)
    ijk_min, ijk_max = np.empty(3), np.empty(3)
    for ax in range(3):   # row by row, elementwise: no BLAS call (its threads stall under load)
        v = a[ax, 0] * (p[:, 0] - ct.origin[0]) + a[ax, 1] * (p[:, 1] - ct.origin[1]) \
            + a[ax, 2] * (p[:, 2] - ct.origin[2])
        ijk_min[ax], ijk_max[ax] = v.min(), v.max()
    m = margin_mm / np.asarray(ct.spacing, float)
    lo = np.floor(ijk_min - m).astype(int)
    hi = np.ceil(ijk_max + m).astype(int) + 1
    if lattice > 1:
        lo = (lo // lattice) * lattice
        hi = -((-hi) // lattice) * lattice
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.asarray(ct.shape_ijk))
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi)


def crop(ct: Volume, box) -> Volume:
    """The CT restricted to ``box`` (from :func:`crop_box`); the whole CT if the box is degenerate."""
    lo, hi = np.asarray(box[0]), np.asarray(box[1])
    if np.any(hi - lo < 2):
        return ct
    arr = ct.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    return Volume(arr, ct.spacing, ct.index_to_lps(lo.astype(float)), ct.direction, dict(ct.metadata))


def crop_to_points(ct: Volume, points_ct: np.ndarray, margin_mm: float) -> Volume:
    """The CT restricted to the bounding box of ``points_ct`` (LPS mm) plus ``margin_mm`` (no lattice)."""
    return crop(ct, crop_box(ct, points_ct, margin_mm, lattice=1))


_DIGESTS: dict = {}     # id(array) -> (weakref to the array, digest): a CT is hashed once


def ct_digest(ct: Volume) -> str:
    """sha256 of the CT's voxels, shape, dtype and geometry (remembered per array object)."""
    arr = ct.array
    geometry = repr((arr.shape, arr.dtype.str, ct.spacing.tolist(), ct.origin.tolist(), ct.direction.tolist()))
    known = _DIGESTS.get(id(arr))
    if known is not None and known[0]() is arr and known[1] == geometry:
        return known[2]
    h = hashlib.sha256(geometry.encode())
    h.update(memoryview(np.ascontiguousarray(arr)).cast("B"))
    digest = h.hexdigest()
    for k in [k for k, v in _DIGESTS.items() if v[0]() is None]:
        del _DIGESTS[k]
    _DIGESTS[id(arr)] = (weakref.ref(arr), geometry, digest)
    return digest


class FeatureCache:
    """Feature levels by (CT digest, box, spacings): the last ``max_entries`` in memory, and
    every entry in ``folder`` (``.npz``, uncompressed) when one is given."""

    def __init__(self, max_entries: int = 4, folder: Optional[str] = None):
        self.max_entries, self.folder = int(max_entries), folder
        self._mem: "OrderedDict[tuple, List[FeatureLevel]]" = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @contextmanager
    def settings(self, *, folder: Optional[str], max_entries: int):
        """Use ``folder`` and ``max_entries`` inside the ``with`` block, then the previous settings."""
        old = self.folder, self.max_entries
        self.folder, self.max_entries = folder, int(max_entries)
        try:
            yield self
        finally:
            self.folder, self.max_entries = old

    def levels(self, ct: Volume, box, spacings_mm: Sequence[float]) -> List[FeatureLevel]:
        """The levels of ``ct`` cropped to ``box``, computed on a miss (always, when the cache
        keeps nothing: no memory entries and no folder, and then the CT is not hashed)."""
        if self.max_entries <= 0 and not self.folder:
            return ct_feature_levels(crop(ct, box), spacings_mm)
        key = (ct_digest(ct), tuple(box[0]), tuple(box[1]), tuple(float(s) for s in spacings_mm))
        with self._lock:
            found = self._mem.get(key)
            if found is not None:
                self._mem.move_to_end(key)
                self.hits += 1
                return found
        found = self._load(key)
        if found is None:
            self.misses += 1
            found = ct_feature_levels(crop(ct, box), spacings_mm)
            self._save(key, found)
        else:
            self.hits += 1
        with self._lock:
            self._mem[key] = found
            while len(self._mem) > max(self.max_entries, 0):
                self._mem.popitem(last=False)
        return found

    def _path(self, key) -> Optional[str]:
        if not self.folder:
            return None
        name = hashlib.sha1(repr((FEATURES_VERSION,) + key).encode()).hexdigest()
        return os.path.join(self.folder, f"lc2-features-{name}.npz")

    def _load(self, key) -> Optional[List[FeatureLevel]]:
        path = self._path(key)
        if path is None or not os.path.isfile(path):
            return None
        try:
            with np.load(path) as z:
                out = []
                for k in range(int(z["n"])):
                    level = FeatureLevel(None, None, z[f"m{k}"], float(z[f"s{k}"]))   # type: ignore[arg-type]
                    level._pg = z[f"pg{k}"]
                    level.p, level.g = level._pg[..., 0], level._pg[..., 1]
                    out.append(level)
                return out
        except (OSError, ValueError, KeyError):
            return None      # unreadable or from other code: computed again and rewritten

    def _save(self, key, levels: List[FeatureLevel]) -> None:
        path = self._path(key)
        if path is None:
            return
        from registration.spatial.atomic_io import atomic_write_bytes
        import io
        buf = io.BytesIO()
        arrays = {"n": np.array(len(levels))}
        for k, lev in enumerate(levels):
            arrays.update({f"pg{k}": lev.pg, f"m{k}": lev.lps_to_ijk, f"s{k}": np.array(lev.spacing_mm)})
        np.savez(buf, **arrays)
        os.makedirs(self.folder, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())


#: The process's cache (memory only unless ``folder`` is set, e.g. by ``ctus register --feature-cache``).
FEATURE_CACHE = FeatureCache()
