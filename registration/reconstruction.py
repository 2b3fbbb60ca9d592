"""Freehand ultrasound volume reconstruction, following PLUS's conventions.

Pixel nearest-neighbour insertion (PLUS ``vtkPlusPasteSliceIntoVolume``,
``Interpolation="NEAREST_NEIGHBOR"``) with MEAN / MAXIMUM / LATEST
compounding, then optional hole filling (:mod:`registration.hole_filling`).

Geometry conventions (those of ``vtkPlusVolumeReconstructor``; a voxel-by-voxel
comparison with PLUS's own output relies on them):

* The output grid is axis-aligned in the **Reference** frame (mm); it is
  returned as a :class:`Volume` with identity direction, its "LPS" coordinates
  being Reference mm.
* ``output_origin`` is the position of voxel index (0, 0, 0) -- the *centre*
  of that voxel (VTK image data and MetaImage/NRRD/ITK all define the origin
  as the first voxel's centre, so no half-voxel shift appears anywhere).
* ``output_extent`` is PLUS's ``OutputExtent`` ``i0 i1 j0 j1 k0 k1``:
  inclusive index bounds, so the size along i is ``i1 - i0 + 1``; voxel
  (i, j, k) lies at ``origin + (i, j, k) * spacing``. When i0 != 0 the
  returned Volume's origin is the centre of voxel (i0, j0, k0).
* Without origin/extent (PLUS's ``SetOutputExtentFromFrameList``): the four
  corners (0, 0), (0, maxY), (maxX, 0), (maxX, maxY) of every valid frame, in
  pixel-index units (maxX = cols - 1, or ``min(cols-1, clipX + clipW)`` with a
  clip rectangle), go through ``image_to_reference``; origin = their minimum
  per axis, extent = ``[0, ceil((max - min) / spacing)]`` per axis. (Only when
  there is no clip rectangle but a fan mask, the fan's outline pixels replace
  the corners -- a tighter box PLUS does not have.)
* A pixel (x = column, y = row of the stored frame) goes to the continuous
  voxel index ``((image_to_reference @ [x, y, 0, 1]) - origin) / spacing`` and
  is inserted at ``floor(index + 0.5)`` if that lies in the extent.
* Clip rectangle ``(x0, y0, w, h)`` in pixels keeps columns
  ``ceil(x0) .. floor(x0 + w)`` and rows ``ceil(y0) .. floor(y0 + h)``
  (both ends included, clamped to the image) -- PLUS's ``GetClipExtent``.
* Frames whose tracking (or image status) is INVALID are skipped and counted.
* Compounding: MEAN = running mean of every pixel that hit the voxel (PLUS
  weights each pixel 1, also several pixels of one frame); MAXIMUM = largest;
  LATEST = the last pixel in file order, raster order within a frame.

MEAN values: PLUS keeps the MEAN of ``uint8`` voxels as an integer running
mean truncated at every insertion (and saturates after 255 hits); by default
the mean here is exact (integer sums) and rounded half-up once, so values can
differ from PLUS's by a few grey levels; ``plus_running_mean=True`` reproduces
PLUS's arithmetic (:func:`plus_running_mean_update`). Inserted-voxel positions
are the same either way, except that PLUS's FULL optimization computes indices
in fixed point, so a pixel within a hair of a rounding boundary can land in the
neighbouring voxel. Hole filling implements PLUS's GAUSSIAN and STICK elements.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import CancelledError, InputError
from .hole_filling import DEFAULT_ELEMENTS, apply_elements
from .sweep import Sweep
from .volume import Volume

COMPOUNDING = ("mean", "max", "latest")
_ALIASES = {"mean": "mean", "max": "max", "maximum": "max", "latest": "latest"}
MAX_VOXELS = 400_000_000  # ~2.4 GB of buffers: refuse rather than swap

ProgressFn = Callable[[float], Optional[bool]]


@dataclass
class ReconstructionResult:
    """A reconstructed volume and how it was made.

    ``volume``: values in the Reference frame (uint8 for uint8 frames unless
    ``output_dtype`` says otherwise), 0 where nothing was inserted or filled.
    ``weights``: uint32 ``[k, j, i]`` number of pixels inserted per voxel
    (PLUS's accumulation buffer / 256, without its cap). ``filled``: bool
    ``[k, j, i]``, voxels set by hole filling. ``timings`` in seconds.
    """
    volume: Volume
    weights: np.ndarray
    filled: np.ndarray
    n_frames_used: int
    n_frames_invalid: int
    n_frames_total: int
    n_pixels_inserted: int
    output_extent: Tuple[int, int, int, int, int, int]
    compounding: str
    timings: Dict[str, float] = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def hit_fraction(self) -> float:
        """Fraction of grid voxels that received at least one pixel."""
        return float(np.count_nonzero(self.weights)) / self.weights.size

    @property
    def filled_fraction(self) -> float:
        """Fraction of grid voxels that hold data after hole filling (inserted + filled)."""
        return float(np.count_nonzero(self.weights) + np.count_nonzero(self.filled)) / self.weights.size

    def summary(self) -> dict:
        v = self.volume
        return {
            "frames_used": self.n_frames_used, "frames_invalid": self.n_frames_invalid,
            "frames_total": self.n_frames_total, "size_ijk": list(v.shape_ijk),
            "spacing_mm": [float(s) for s in v.spacing], "origin_mm": [float(o) for o in v.origin],
            "output_extent": list(self.output_extent), "compounding": self.compounding,
            "hit_fraction": self.hit_fraction, "filled_fraction": self.filled_fraction,
            "pixels_inserted": self.n_pixels_inserted,
            "timings_s": dict(self.timings), "notes": list(self.notes),
        }


# ----------------------------------------------------------------------------- pixel masks
def clip_rectangle_mask(shape: Tuple[int, int], clip_rectangle) -> np.ndarray:
    """bool ``[rows, cols]`` for PLUS's ClipRectangleOrigin (x0, y0) + ClipRectangleSize (w, h), pixels."""
    rows, cols = shape
    x0, y0, w, h = (float(v) for v in clip_rectangle)
    if w <= 0 or h <= 0:
        return np.ones(shape, bool)
    c0, c1 = max(math.ceil(x0), 0), min(math.floor(x0 + w), cols - 1)
    r0, r1 = max(math.ceil(y0), 0), min(math.floor(y0 + h), rows - 1)
    m = np.zeros(shape, bool)
    if c0 <= c1 and r0 <= r1:
        m[r0:r1 + 1, c0:c1 + 1] = True
    return m


def plus_fan_mask(shape: Tuple[int, int], origin_px, angles_deg, radius_start_px: float = 0.0,
                  radius_stop_px: float = 500.0) -> np.ndarray:
    """bool ``[rows, cols]``: PLUS's fan clipping for unit pixel spacing.

    Row y keeps columns x with ``ceil(tan(a0) * dy + ox + 1) <= x <=
    floor(tan(a1) * dy + ox - 1)`` (dy = y - oy), inside the stop radius and
    outside the start radius (same +-1 pixel margins as PLUS).
    """
    rows, cols = shape
    ox, oy = (float(v) for v in origin_px)
    a0, a1 = (math.radians(float(a)) for a in angles_deg)
    y = np.arange(rows, dtype=float)[:, None] - oy
    x = np.arange(cols, dtype=float)[None, :]
    m = (x >= np.ceil(math.tan(a0) * y + ox + 1)) & (x <= np.floor(math.tan(a1) * y + ox - 1))
    d_stop = radius_stop_px ** 2 - y * y
    half = np.sqrt(np.clip(d_stop, 0, None))
    m &= (d_stop >= 0) & (x >= np.ceil(ox - half + 1)) & (x <= np.floor(ox + half - 1))
    d_start = radius_start_px ** 2 - y * y
    inner = np.sqrt(np.clip(d_start, 0, None))
    m &= ~((d_start > 0) & (x >= np.ceil(ox - inner + 1)) & (x <= np.floor(ox + inner - 1)))
    return m


# ----------------------------------------------------------------------------- geometry
def extent_from_frames(image_to_reference: np.ndarray, valid: np.ndarray, image_shape,
                       spacing, clip_rectangle=None, pixel_mask=None
                       ) -> Tuple[np.ndarray, Tuple[int, ...]]:
    """Automatic output box: (origin (3,) mm = centre of voxel 0, extent i0 i1 j0 j1 k0 k1).

    PLUS's rule: the clip-rectangle (or whole-image) corners of every valid frame.
    Without a clip rectangle but with a ``pixel_mask`` (a detected fan), the outline
    pixels of the mask are used instead, so the box hugs the fan rather than the
    blank corners of the image (PLUS has no such mask; give a clip rectangle for
    PLUS's exact box).
    """
    rows, cols = image_shape
    mats = image_to_reference[np.asarray(valid, bool)]
    spacing = np.asarray(spacing, float)
    if clip_rectangle is None and pixel_mask is not None and np.asarray(pixel_mask).any():
        m = np.asarray(pixel_mask, bool)
        inner = np.zeros_like(m)
        inner[1:-1, 1:-1] = (m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:])
        ys, xs = np.nonzero(m & ~inner)        # the extremes of an affine map lie on the outline
        outline = np.stack([xs, ys, np.zeros_like(xs), np.ones_like(xs)], axis=-1).astype(float)
        lo = np.full(3, np.inf)
        hi = np.full(3, -np.inf)
        for mat in mats:
            p = outline @ mat[:3].T
            lo, hi = np.minimum(lo, p.min(axis=0)), np.maximum(hi, p.max(axis=0))
        n = np.ceil((hi - lo) / spacing).astype(int)
        return lo, (0, int(n[0]), 0, int(n[1]), 0, int(n[2]))
    min_x, max_x, min_y, max_y = 0.0, float(cols - 1), 0.0, float(rows - 1)
    if clip_rectangle is not None and clip_rectangle[2] > 0 and clip_rectangle[3] > 0:
        min_x = max(min_x, float(clip_rectangle[0]))
        max_x = min(max_x, float(clip_rectangle[0]) + float(clip_rectangle[2]))
        min_y = max(min_y, float(clip_rectangle[1]))
        max_y = min(max_y, float(clip_rectangle[1]) + float(clip_rectangle[3]))
    corners = np.array([[min_x, min_y, 0, 1], [min_x, max_y, 0, 1],
                        [max_x, min_y, 0, 1], [max_x, max_y, 0, 1]], float)
    pts = np.einsum("nij,cj->nci", mats, corners)[..., :3].reshape(-1, 3)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    n = np.ceil((hi - lo) / spacing).astype(int)
    return lo, (0, int(n[0]), 0, int(n[1]), 0, int(n[2]))


def index_coefficients(image_to_reference: np.ndarray, origin, spacing) -> np.ndarray:
    """3x3 rows (i, j, k): ``index + 0.5 = c[:, 0] * x + (c[:, 1] * y + c[:, 2])``.

    ``origin`` is the centre of the first stored voxel (mm), ``spacing`` (3,) mm;
    x = column, y = row of the frame. The 0.5 of the nearest-voxel rounding is
    folded into c[:, 2], so ``int(value)`` for value >= 0 is PLUS's
    ``floor(index + 0.5)``.
    """
    m = np.asarray(image_to_reference, float)
    origin = np.asarray(origin, float)
    spacing = np.asarray(spacing, float)
    c = np.empty((3, 3))
    c[:, 0] = m[:3, 0] / spacing
    c[:, 1] = m[:3, 1] / spacing
    c[:, 2] = (m[:3, 3] - origin) / spacing + 0.5
    return c


def voxel_indices(coef: np.ndarray, image_shape, dims_ijk, pixel_mask=None,
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Nearest voxels of a frame's pixels: (flat indices into ``[k, j, i]``, pixel selector).

    The selector is a bool ``[rows*cols]`` of the pixels that are in
    ``pixel_mask`` and land inside the grid; ``flat`` lists their voxels in
    raster order (row by row). Per axis the value is
    ``c0 * x + (c1 * y + c2)`` in float64, evaluated as a column term plus a
    row term, so a plain loop with the same expression gives identical voxels.
    """
    rows, cols = image_shape
    ni, nj, nk = dims_ijk
    x = np.arange(cols, dtype=np.float64)
    y = np.arange(rows, dtype=np.float64)
    sel = None if pixel_mask is None else np.asarray(pixel_mask, bool).reshape(-1)
    idx = []
    for a, n in enumerate((ni, nj, nk)):
        v = ((coef[a, 0] * x)[None, :] + (coef[a, 1] * y + coef[a, 2])[:, None]).reshape(-1)
        lo, hi = v.min(), v.max()
        if lo < 0 or hi >= n:   # some pixels fall outside: test them (skipped when all inside)
            ok = (v >= 0) & (v < n)
            sel = ok if sel is None else (sel & ok)
        idx.append(v)
    if sel is None:
        ii, jj, kk = (v.astype(np.int64) for v in idx)
        sel = np.ones(rows * cols, bool)
    else:
        ii, jj, kk = (v[sel].astype(np.int64) for v in idx)
    # Values are >= 0 here, so truncation is floor(index + 0.5).
    return (kk * nj + jj) * ni + ii, sel


# ----------------------------------------------------------------------------- main entry
def reconstruct(sweep: Sweep, *, spacing_mm=0.5, compounding: str = "mean",
                output_origin=None, output_extent=None, fill_holes: bool = True,
                clip_rectangle=None, fan_mask=None, use_sweep_fan_mask: bool = True,
                fan_geometry: Optional[dict] = None,
                hole_elements: Sequence = DEFAULT_ELEMENTS,
                output_dtype=None, plus_running_mean: bool = False, skip_interval: int = 1,
                progress: Optional[ProgressFn] = None) -> ReconstructionResult:
    """Reconstruct a tracked sweep into a volume in its Reference frame.

    Parameters
    ----------
    sweep : Sweep with images and an Image->Reference chain
    spacing_mm : float or 3 floats (i, j, k), output voxel size in mm
    compounding : 'mean' | 'max' (or 'maximum') | 'latest'
    output_origin : 3 floats, Reference mm of voxel index (0, 0, 0) (its centre)
    output_extent : 6 ints ``i0 i1 j0 j1 k0 k1`` (inclusive); both or neither
    fill_holes : run PLUS-style hole filling with ``hole_elements`` (GaussianElement /
        StickElement list from :mod:`registration.hole_filling`, tried in order)
    clip_rectangle : (x0, y0, width, height) pixels, or None
    fan_mask : bool ``[rows, cols]`` of pixels to insert; None = the sweep's own
        ``fan_mask`` (if ``use_sweep_fan_mask``), else every pixel
    fan_geometry : dict with PLUS's ``FanOriginPixel``, ``FanAnglesDeg``,
        ``FanRadiusStartPixel``, ``FanRadiusStopPixel`` (combined with the mask)
    output_dtype : numpy dtype of the volume; default uint8 for uint8 frames
    skip_interval : insert frames 0, s, 2s, ... only (PLUS's SkipInterval); the output box
        still covers every valid frame, as in PLUS
    plus_running_mean : MEAN exactly as PLUS computes it for integer frames (see
        :func:`plus_running_mean_update`) instead of the exact rounded mean
    progress : callable(fraction) -> False to cancel (raises CancelledError)
    """
    t_start, c_start = time.perf_counter(), time.process_time()
    mode = _ALIASES.get(str(compounding).lower())
    if mode is None:
        raise InputError(f"unknown compounding '{compounding}'", fix="use mean, max or latest")
    if not sweep.has_images:
        raise InputError("the sweep has no image frames (tracker-only sequence)", path=sweep.source,
                         fix="reconstruct a sequence that holds ultrasound images")
    spacing = np.broadcast_to(np.asarray(spacing_mm, float).reshape(-1), (3,)).copy()
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"output spacing must be positive, got {spacing_mm}", fix="pass --spacing > 0")
    mats, valid = sweep.require_image_to_reference()
    n_total = len(sweep)
    shape = sweep.image_shape

    # Pixels to insert: sweep/explicit fan mask, clip rectangle, PLUS fan geometry.
    mask = np.ones(shape, bool)
    if fan_mask is not None:
        fm = np.asarray(fan_mask, bool)
        if fm.shape != shape:
            raise InputError(f"fan mask shape {fm.shape} does not match frames {shape}")
        mask &= fm
    elif use_sweep_fan_mask and sweep.fan_mask is not None:
        mask &= sweep.fan_mask
    if clip_rectangle is not None:
        mask &= clip_rectangle_mask(shape, clip_rectangle)
    if fan_geometry:
        fg = fan_geometry
        if fg.get("FanAnglesDeg") and any(float(a) != 0 for a in fg["FanAnglesDeg"]):
            mask &= plus_fan_mask(shape, fg.get("FanOriginPixel", (0, 0)), fg["FanAnglesDeg"],
                                  float(fg.get("FanRadiusStartPixel", 0.0)),
                                  float(fg.get("FanRadiusStopPixel", 500.0)))
    pixel_mask = None if mask.all() else mask

    if (output_origin is None) != (output_extent is None):
        raise InputError("output origin and extent must be given together",
                         fix="give both OutputOrigin and OutputExtent, or neither")
    if output_origin is None:
        origin, extent = extent_from_frames(mats, valid, shape, spacing, clip_rectangle, pixel_mask)
    else:
        origin = np.asarray(output_origin, float).reshape(3)
        extent = tuple(int(v) for v in np.asarray(output_extent).reshape(6))
        if any(extent[2 * a + 1] < extent[2 * a] for a in range(3)):
            raise InputError(f"output extent {extent} has an upper bound below its lower bound",
                             fix="OutputExtent is i0 i1 j0 j1 k0 k1 with i1 >= i0 etc.")
    lo = np.array(extent[0::2], float)
    dims = tuple(int(extent[2 * a + 1] - extent[2 * a] + 1) for a in range(3))   # (ni, nj, nk)
    n_vox = dims[0] * dims[1] * dims[2]
    if n_vox > MAX_VOXELS:
        raise InputError(f"output grid {dims[0]}x{dims[1]}x{dims[2]} voxels is too large",
                         fix="use a larger --spacing or a smaller extent")
    grid_origin = origin + lo * spacing          # centre of the first stored voxel

    frames = sweep.frames
    integer = np.issubdtype(frames.dtype, np.integer)
    if output_dtype is None:
        output_dtype = frames.dtype if integer else np.float32
    count = np.zeros(n_vox, np.uint32)
    if mode == "mean":
        acc = np.zeros(n_vox, np.uint32 if integer else np.float64)  # exact below 8M hits/voxel
    elif mode == "max" and not np.issubdtype(frames.dtype, np.unsignedinteger):
        low = np.iinfo(frames.dtype).min if integer else -np.inf
        acc = np.full(n_vox, low, frames.dtype)     # signed/float frames: start below any value
    else:
        acc = np.zeros(n_vox, frames.dtype)
    plus_state = None
    if plus_running_mean and mode == "mean" and integer:
        # PLUS's running value (in the frames' dtype) and its hit counter (capped at 255).
        plus_state = (np.zeros(n_vox, frames.dtype), np.zeros(n_vox, np.int32))
    n_used = 0
    n_pixels = 0
    if int(skip_interval) < 1:
        raise InputError(f"skip interval must be >= 1, got {skip_interval}", fix="use SkipInterval >= 1")
    use = np.flatnonzero(valid[::int(skip_interval)]) * int(skip_interval)
    for step, f in enumerate(use):
        if progress is not None and progress(0.8 * step / max(len(use), 1)) is False:
            raise CancelledError(f"reconstruction cancelled after {step} of {len(use)} frames")
        coef = index_coefficients(mats[f], grid_origin, spacing)
        flat, sel = voxel_indices(coef, shape, dims, pixel_mask)
        n_used += 1
        if flat.size == 0:
            continue
        vals = frames[f].reshape(-1)[sel]
        n_pixels += flat.size
        np.add.at(count, flat, np.ones(flat.size, np.uint32))
        if mode == "mean" and plus_state is not None:
            plus_running_mean_update(plus_state[0], plus_state[1], flat, vals)
        elif mode == "mean":
            np.add.at(acc, flat, vals.astype(acc.dtype))
        elif mode == "max":
            np.maximum.at(acc, flat, vals)
        else:
            # Last pixel in raster order wins inside a frame, like PLUS's scan-line loop.
            rev = flat[::-1]
            uniq, first = np.unique(rev, return_index=True)
            acc[uniq] = vals[::-1][first]
    t_insert, c_insert = time.perf_counter() - t_start, time.process_time() - c_start

    # Post-processing works on the inserted voxels only (often < 1/4 of the grid) to keep
    # memory near two grid-sized buffers plus the output.
    vshape = (dims[2], dims[1], dims[0])
    hit = np.flatnonzero(count)
    known3 = (count > 0).reshape(vshape)
    want_int = np.issubdtype(np.dtype(output_dtype), np.integer)
    if plus_state is not None:
        inserted = plus_state[0][hit]
    elif mode == "mean":
        c = count[hit]
        if integer and want_int:
            # Half-up rounding of sum / count in integers: no float error on inserted voxels.
            inserted = (2 * acc[hit].astype(np.uint64) + c) // (2 * c)
        else:
            inserted = acc[hit] / c
    else:
        inserted = acc[hit]
    plus_mode = plus_state is not None
    del acc, plus_state                           # free the accumulation buffers
    filled = np.zeros(vshape, bool)
    values = None
    t_fill0 = time.perf_counter()
    if fill_holes and hole_elements:
        values = np.zeros(n_vox, np.float32)
        values[hit] = inserted
        sub = None if progress is None else (lambda fr: progress(0.8 + 0.2 * fr))
        values, filled = _fill(values.reshape(vshape), known3, hole_elements, sub, plus_mode)
    t_fill = time.perf_counter() - t_fill0

    out = _cast(hit, inserted, values, filled, vshape, output_dtype, truncate_filled=plus_mode)
    volume = Volume(out, spacing, grid_origin, np.eye(3),
                    metadata={"frame": sweep.reference_frame, "source": sweep.source,
                              "compounding": mode, "output_extent": list(extent)})
    if progress is not None and progress(1.0) is False:
        raise CancelledError("reconstruction cancelled at the end")
    timings = {"insert_s": t_insert, "insert_cpu_s": c_insert, "fill_s": t_fill,
               "total_s": time.perf_counter() - t_start,
               "frames_per_s": n_used / t_insert if t_insert > 0 else float("inf")}
    return ReconstructionResult(volume, count.reshape(vshape), filled, n_used,
                                n_total - int(valid.sum()), n_total, n_pixels, tuple(extent),
                                mode, timings)


def plus_running_mean_update(value: np.ndarray, hits: np.ndarray, flat: np.ndarray,
                             pixels: np.ndarray) -> None:
    """Insert one frame's pixels the way PLUS's MEAN does for integer voxels, in place.

    PLUS keeps a running value per voxel, updated pixel by pixel in raster order:
    ``v = (p * 256 + v * acc) // (acc + 256)`` with ``acc = 256 * hits`` (integer
    division, so ``v = (p + v * h) // (h + 1)``); once a voxel has 255 hits its
    accumulation buffer is saturated and PLUS switches to
    ``v = trunc(0.99609375 * p + 0.00390625 * v)`` ("bug: weights reversed?" in PLUS).
    Order matters, so the pixels of each voxel are applied in rounds: round r
    updates, at once, every voxel that receives an (r+1)-th pixel from this frame.
    """
    order = np.argsort(flat, kind="stable")            # group by voxel, keep raster order
    sf = flat[order]
    sv = pixels[order].astype(np.int64)
    starts = np.flatnonzero(np.r_[True, sf[1:] != sf[:-1]])
    rank = np.arange(sf.size) - np.repeat(starts, np.diff(np.r_[starts, sf.size]))
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    for r in range(len(bounds) - 1):
        idx = by_rank[bounds[r]:bounds[r + 1]]
        vox, p = sf[idx], sv[idx]
        h = hits[vox].astype(np.int64)
        v = value[vox].astype(np.int64)
        normal = h < 255
        new = np.where(normal, (p + v * h) // (h + 1),
                       np.trunc(0.99609375 * p + 0.00390625 * v).astype(np.int64))
        value[vox] = new.astype(value.dtype)
        hits[vox] = h + normal


def _fill(values, known, elements, progress, plus_integer=False):
    return apply_elements(values, known, elements, progress, integer_values=plus_integer)


def _cast(hit, inserted, values, filled, shape, dtype, truncate_filled=False) -> np.ndarray:
    """Final voxels: flat indices ``hit`` get ``inserted`` (exact integers when the output is
    integer), filled voxels get ``values`` rounded half up (truncated, as PLUS does, with
    ``truncate_filled``), all clipped to ``dtype``; 0 elsewhere."""
    dtype = np.dtype(dtype)
    out = np.zeros(int(np.prod(shape)), dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        ins = inserted if np.issubdtype(np.asarray(inserted).dtype, np.integer) else np.floor(inserted + 0.5)
        out[hit] = np.clip(ins, info.min, info.max)
        out = out.reshape(shape)
        if filled.any():
            f = values[filled]
            f = np.trunc(f) if truncate_filled else np.floor(f + 0.5)
            out[filled] = np.clip(f, info.min, info.max)
    else:
        out[hit] = inserted
        out = out.reshape(shape)
        if filled.any():
            out[filled] = values[filled]
    return out


def reference_insert(sweep: Sweep, spacing_mm, output_origin, output_extent, compounding="mean",
                     pixel_mask=None) -> Tuple[np.ndarray, np.ndarray]:
    """Plain-Python-loop insertion, one pixel at a time: the reference that tests and the
    benchmark compare :func:`reconstruct` (without hole filling) against.

    Returns (volume ``[k, j, i]`` uint8, hit counts ``[k, j, i]`` uint32). Slow: use on
    small frames only.
    """
    mode = _ALIASES[str(compounding).lower()]
    spacing = np.broadcast_to(np.asarray(spacing_mm, float).reshape(-1), (3,)).copy()
    ext = [int(v) for v in output_extent]
    ni, nj, nk = (ext[2 * a + 1] - ext[2 * a] + 1 for a in range(3))
    grid_origin = np.asarray(output_origin, float) + np.array(ext[0::2], float) * spacing
    mats, valid = sweep.image_to_reference_all()
    rows, cols = sweep.image_shape
    total = [[[0] * ni for _ in range(nj)] for _ in range(nk)]
    count = [[[0] * ni for _ in range(nj)] for _ in range(nk)]
    for f in range(len(sweep)):
        if not valid[f]:
            continue
        c = index_coefficients(mats[f], grid_origin, spacing).tolist()
        frame = sweep.frames[f].tolist()
        for y in range(rows):
            for x in range(cols):
                if pixel_mask is not None and not pixel_mask[y][x]:
                    continue
                v = [c[a][0] * float(x) + (c[a][1] * float(y) + c[a][2]) for a in range(3)]
                if not (0 <= v[0] < ni and 0 <= v[1] < nj and 0 <= v[2] < nk):
                    continue
                i, j, k = int(v[0]), int(v[1]), int(v[2])
                value = frame[y][x]
                if mode == "mean":
                    total[k][j][i] += value
                elif mode == "max":
                    total[k][j][i] = max(total[k][j][i], value)
                else:
                    total[k][j][i] = value
                count[k][j][i] += 1
    out = np.zeros((nk, nj, ni), np.uint8)
    for k in range(nk):
        for j in range(nj):
            for i in range(ni):
                n = count[k][j][i]
                if n:
                    out[k, j, i] = (2 * total[k][j][i] + n) // (2 * n) if mode == "mean" else total[k][j][i]
    return out, np.array(count, np.uint32)
