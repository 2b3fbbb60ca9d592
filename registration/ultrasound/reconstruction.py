"""Freehand ultrasound volume reconstruction, following PLUS's conventions.

Pixel nearest-neighbour insertion (PLUS ``vtkPlusPasteSliceIntoVolume``,
``Interpolation="NEAREST_NEIGHBOR"``) with MEAN / MAXIMUM / LATEST
compounding, then optional hole filling (:mod:`registration.ultrasound.hole_filling`).

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

Layout: this module is the entry (:func:`reconstruct`); the output grid and
pixel-to-voxel mapping are in :mod:`registration.ultrasound.reconstruction_grid`, pixel
masks in :mod:`registration.ultrasound.clip_masks`, compounding modes and PLUS's MEAN
arithmetic in :mod:`registration.ultrasound.compounding`, the result type in
:mod:`registration.ultrasound.reconstruction_result` and the plain-loop reference in
:mod:`registration.ultrasound.reference_insertion`; their public names are re-exported here.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import numpy as np

from registration.spatial.errors import CancelledError, InputError
from registration.spatial.sweep import Sweep
from registration.spatial.volume import Volume

from .clip_masks import clip_rectangle_mask, plus_fan_mask
from .compounding import COMPOUNDING_ALIASES, plus_running_mean_update
from .hole_filling import apply_elements
from .hole_filling_elements import DEFAULT_ELEMENTS
from .reconstruction_grid import extent_from_frames, index_coefficients, voxel_indices
from .reconstruction_result import ReconstructionResult

MAX_VOXELS = 400_000_000  # ~2.4 GB of buffers: refuse rather than swap

ProgressFn = Callable[[float], Optional[bool]]


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
        StickElement list from :mod:`registration.ultrasound.hole_filling`, tried in order)
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
    mode = COMPOUNDING_ALIASES.get(str(compounding).lower())
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
        # Exact sums: uint32 for 8-bit unsigned frames (below 16M hits/voxel), int64 for other
        # integer frames (signed values and 16/32-bit sums would wrap a uint32), else float64.
        small = integer and np.dtype(frames.dtype).itemsize == 1 and not np.issubdtype(frames.dtype,
                                                                                     np.signedinteger)
        acc = np.zeros(n_vox, np.uint32 if small else (np.int64 if integer else np.float64))
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
            inserted = (2 * acc[hit].astype(np.int64) + c) // (2 * c)   # floor: half up
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
