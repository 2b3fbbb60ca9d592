"""Freehand ultrasound volume reconstruction, following PLUS's conventions.

Pixel nearest-neighbour insertion (PLUS ``vtkPlusPasteSliceIntoVolume``,
``Interpolation="NEAREST_NEIGHBOR"``) with MEAN / MAXIMUM / LATEST
compounding, then optional hole filling (:mod:`registration.ultrasound.hole_filling`).
A voxel-by-voxel comparison with PLUS's own output relies on following its
conventions exactly; each is stated once, where it is implemented:

* the output grid (axis-aligned in the **Reference** frame, mm; origin = centre
  of voxel (0, 0, 0); PLUS's inclusive ``OutputExtent``; the automatic box
  from the frame corners) and where a pixel lands:
  :mod:`registration.ultrasound.reconstruction_grid`;
* which pixels are inserted (clip rectangle, PLUS fan clipping):
  :mod:`registration.ultrasound.clip_masks`;
* compounding and PLUS's integer MEAN arithmetic:
  :mod:`registration.ultrasound.compounding`.

The volume is returned as a :class:`Volume` with identity direction, its "LPS"
coordinates being Reference mm, inside a
:class:`~registration.ultrasound.reconstruction_result.ReconstructionResult`.
Frames whose tracking (or image status) is INVALID are skipped and counted.
Inserted-voxel positions are PLUS's, except that PLUS's FULL optimization
computes indices in fixed point, so a pixel within a hair of a rounding
boundary can land in the neighbouring voxel. A plain-loop reference for the
insertion is :mod:`registration.ultrasound.reference_insertion`.

Stages of :func:`reconstruct`: check the inputs, build the pixel mask, lay out
the output grid, insert the frames into accumulation buffers, turn the buffers
into voxel values, fill holes, cast to the output type.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from registration.spatial.errors import CancelledError, InputError, check_choice
from registration.spatial.sweep import Sweep
from registration.spatial.volume import Volume

from .clip_masks import DEFAULT_FAN_RADIUS_STOP_PX, clip_rectangle_mask, plus_fan_mask
from .compounding import COMPOUNDING_ALIASES
from .hole_filling import apply_elements
from .hole_filling_elements import DEFAULT_ELEMENTS
from .insertion import insert_frames, inserted_values, new_buffers
from .reconstruction_grid import OutputGrid, extent_from_frames
from .reconstruction_result import ReconstructionResult

MAX_VOXELS = 400_000_000  # ~2.4 GB of buffers: refuse rather than swap
DEFAULT_SPACING_MM = 0.5
# Shares of the progress bar: insertion (most of the time for typical sweeps), then hole
# filling; they add up to 1.
INSERT_PROGRESS_SHARE = 0.8
FILL_PROGRESS_SHARE = 0.2

ProgressFn = Callable[[float], Optional[bool]]


@dataclass(frozen=True)
class ReconstructionOptions:
    """How to reconstruct (the keyword arguments of :func:`reconstruct`, as plain data).

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
    hole_elements : the hole-filling element list
    output_dtype : numpy dtype of the volume; default uint8 for uint8 frames
    plus_running_mean : MEAN exactly as PLUS computes it for integer frames (see
        :func:`plus_running_mean_update`) instead of the exact rounded mean
    skip_interval : insert frames 0, s, 2s, ... only (PLUS's SkipInterval); the output box
        still covers every valid frame, as in PLUS
    """
    spacing_mm: object = DEFAULT_SPACING_MM
    compounding: str = "mean"
    output_origin: object = None
    output_extent: object = None
    fill_holes: bool = True
    clip_rectangle: object = None
    fan_mask: Optional[np.ndarray] = None
    use_sweep_fan_mask: bool = True
    fan_geometry: Optional[dict] = None
    hole_elements: Sequence = DEFAULT_ELEMENTS
    output_dtype: object = None
    plus_running_mean: bool = False
    skip_interval: int = 1


def reconstruct(sweep: Sweep, *, spacing_mm=DEFAULT_SPACING_MM, compounding: str = "mean",
                output_origin=None, output_extent=None, fill_holes: bool = True,
                clip_rectangle=None, fan_mask=None, use_sweep_fan_mask: bool = True,
                fan_geometry: Optional[dict] = None,
                hole_elements: Sequence = DEFAULT_ELEMENTS,
                output_dtype=None, plus_running_mean: bool = False, skip_interval: int = 1,
                progress: Optional[ProgressFn] = None) -> ReconstructionResult:
    """Reconstruct a tracked sweep into a volume in its Reference frame.

    ``sweep`` needs images and an Image->Reference chain; the other keywords are
    described in :class:`ReconstructionOptions`. ``progress(fraction)`` returning
    False cancels (CancelledError). Bad input raises InputError.
    """
    options = ReconstructionOptions(
        spacing_mm=spacing_mm, compounding=compounding, output_origin=output_origin,
        output_extent=output_extent, fill_holes=fill_holes, clip_rectangle=clip_rectangle,
        fan_mask=fan_mask, use_sweep_fan_mask=use_sweep_fan_mask, fan_geometry=fan_geometry,
        hole_elements=hole_elements, output_dtype=output_dtype,
        plus_running_mean=plus_running_mean, skip_interval=skip_interval)
    return reconstruct_with(sweep, options, progress)


def reconstruct_with(sweep: Sweep, options: ReconstructionOptions,
                     progress: Optional[ProgressFn] = None) -> ReconstructionResult:
    """:func:`reconstruct` with its settings as a :class:`ReconstructionOptions`."""
    t_start, c_start = time.perf_counter(), time.process_time()
    mode, spacing = _checked_mode_and_spacing(sweep, options)
    mats, valid = sweep.require_image_to_reference()
    shape = sweep.image_shape
    pixel_mask = _pixel_mask(sweep, options)
    grid = _output_grid(mats, valid, shape, spacing, options, pixel_mask)
    if int(options.skip_interval) < 1:
        raise InputError(f"skip interval must be >= 1, got {options.skip_interval}",
                         fix="use SkipInterval >= 1")
    frames = sweep.frames
    integer = np.issubdtype(frames.dtype, np.integer)
    output_dtype = options.output_dtype
    if output_dtype is None:
        output_dtype = frames.dtype if integer else np.float32
    buffers = new_buffers(frames.dtype, grid.n_voxels, mode, options.plus_running_mean)
    insert_frames(frames, mats, valid, grid, pixel_mask, mode, buffers, options.skip_interval,
                  progress, INSERT_PROGRESS_SHARE)
    t_insert, c_insert = time.perf_counter() - t_start, time.process_time() - c_start

    hit, inserted = inserted_values(buffers, mode, integer, output_dtype)
    plus_mode = buffers.plus_state is not None
    buffers.acc = buffers.plus_state = None         # free the accumulation buffers now
    known = (buffers.count > 0).reshape(grid.vshape)
    t_fill0 = time.perf_counter()
    values, filled = _fill_holes(hit, inserted, known, grid, options, plus_mode, progress)
    t_fill = time.perf_counter() - t_fill0

    out = _cast(hit, inserted, values, filled, grid.vshape, output_dtype, truncate_filled=plus_mode)
    volume = Volume(out, grid.spacing, grid.grid_origin, np.eye(3),
                    metadata={"frame": sweep.reference_frame, "source": sweep.source,
                              "compounding": mode, "output_extent": list(grid.extent)})
    if progress is not None and progress(1.0) is False:
        raise CancelledError("reconstruction cancelled at the end")
    timings = {"insert_s": t_insert, "insert_cpu_s": c_insert, "fill_s": t_fill,
               "total_s": time.perf_counter() - t_start,
               "frames_per_s": buffers.n_used / t_insert if t_insert > 0 else float("inf")}
    n_total = len(sweep)
    return ReconstructionResult(volume, buffers.count.reshape(grid.vshape), filled, buffers.n_used,
                                n_total - int(valid.sum()), n_total, buffers.n_pixels,
                                tuple(grid.extent), mode, timings)


def _checked_mode_and_spacing(sweep: Sweep, options: ReconstructionOptions):
    """(compounding mode 'mean'|'max'|'latest', spacing (3,) mm), or InputError."""
    mode = check_choice(str(options.compounding).lower(), COMPOUNDING_ALIASES, "compounding",
                        fix="use mean, max or latest")
    if not sweep.has_images:
        raise InputError("the sweep has no image frames (tracker-only sequence)", path=sweep.source,
                         fix="reconstruct a sequence that holds ultrasound images")
    spacing = np.broadcast_to(np.asarray(options.spacing_mm, float).reshape(-1), (3,)).copy()
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"output spacing must be positive, got {options.spacing_mm}",
                         fix="pass --spacing > 0")
    return mode, spacing


def _pixel_mask(sweep: Sweep, options: ReconstructionOptions) -> Optional[np.ndarray]:
    """bool [rows, cols] of pixels to insert: explicit or sweep fan mask, clip rectangle and
    PLUS fan geometry combined; None when every pixel is inserted."""
    shape = sweep.image_shape
    mask = np.ones(shape, bool)
    if options.fan_mask is not None:
        fm = np.asarray(options.fan_mask, bool)
        if fm.shape != shape:
            raise InputError(f"fan mask shape {fm.shape} does not match frames {shape}")
        mask &= fm
    elif options.use_sweep_fan_mask and sweep.fan_mask is not None:
        mask &= sweep.fan_mask
    if options.clip_rectangle is not None:
        mask &= clip_rectangle_mask(shape, options.clip_rectangle)
    fg = options.fan_geometry
    if fg and fg.get("FanAnglesDeg") and any(float(a) != 0 for a in fg["FanAnglesDeg"]):
        mask &= plus_fan_mask(shape, fg.get("FanOriginPixel", (0, 0)), fg["FanAnglesDeg"],
                              float(fg.get("FanRadiusStartPixel", 0.0)),
                              float(fg.get("FanRadiusStopPixel", DEFAULT_FAN_RADIUS_STOP_PX)))
    return None if mask.all() else mask


def _output_grid(mats, valid, shape, spacing, options: ReconstructionOptions, pixel_mask) -> OutputGrid:
    """The grid from the options' origin + extent, or PLUS's automatic box around the frames."""
    if (options.output_origin is None) != (options.output_extent is None):
        raise InputError("output origin and extent must be given together",
                         fix="give both OutputOrigin and OutputExtent, or neither")
    if options.output_origin is None:
        origin, extent = extent_from_frames(mats, valid, shape, spacing, options.clip_rectangle,
                                            pixel_mask)
    else:
        origin = np.asarray(options.output_origin, float).reshape(3)
        extent = tuple(int(v) for v in np.asarray(options.output_extent).reshape(6))
        if any(extent[2 * a + 1] < extent[2 * a] for a in range(3)):
            raise InputError(f"output extent {extent} has an upper bound below its lower bound",
                             fix="OutputExtent is i0 i1 j0 j1 k0 k1 with i1 >= i0 etc.")
    lo = np.array(extent[0::2], float)
    dims = tuple(int(extent[2 * a + 1] - extent[2 * a] + 1) for a in range(3))   # (ni, nj, nk)
    if dims[0] * dims[1] * dims[2] > MAX_VOXELS:
        raise InputError(f"output grid {dims[0]}x{dims[1]}x{dims[2]} voxels is too large",
                         fix="use a larger --spacing or a smaller extent")
    return OutputGrid(extent, dims, origin + lo * spacing, spacing)   # centre of the first stored voxel


def _fill_holes(hit, inserted, known, grid: OutputGrid, options: ReconstructionOptions, plus_mode: bool,
                progress: Optional[ProgressFn]):
    """(values ``[k, j, i]`` or None, filled bool ``[k, j, i]``) after the hole-filling elements."""
    if not (options.fill_holes and options.hole_elements):
        return None, np.zeros(grid.vshape, bool)
    values = np.zeros(grid.n_voxels, np.float32)
    values[hit] = inserted
    sub = None if progress is None else (
        lambda fr: progress(INSERT_PROGRESS_SHARE + FILL_PROGRESS_SHARE * fr))
    return apply_elements(values.reshape(grid.vshape), known, options.hole_elements, sub,
                          integer_values=plus_mode)


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
