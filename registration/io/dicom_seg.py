"""Label maps read from a DICOM Segmentation object (SEG, binary or fractional).

:func:`_read_dicom_seg` takes the path and the pydicom dataset (already read
and checked to be of the SEG SOP class by :func:`registration.io.labelmap_io.load_labels`)
and returns a :class:`~registration.spatial.volume.LabelMap`: integer array ``[k, j, i]``
(value = SegmentNumber, 0 = background), geometry ``(i, j, k)`` in LPS mm with
i along the rows' direction (ImageOrientationPatient[:3]), j along the columns'
and k along their cross product. Frames are placed by their
ImagePositionPatient, never by their order in the file. Names are the
SegmentLabels, slugged (``"Lesion 1"`` -> ``lesion_1``).
"""
from __future__ import annotations

import re
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

from .label_names import _apply_names

_IOP_ATOL = 1e-4             # frame orientations agree within this (direction cosines)
_MIN_DIRECTION_NORM = 0.5    # shorter orientation vectors are damaged
_ORTHOGONAL_TOL = 1e-3       # |row . column| above this: not orthogonal
_TINY_NORM = 1e-12           # guards the normalisation of a zero vector (reported just after)
_POSITION_DECIMALS = 4       # slice positions (mm) rounded before finding the slice step
_DEFAULT_SLICE_MM = 1.0      # slice step of a single-slice SEG without SpacingBetweenSlices
_GRID_TOL_VOXELS = 0.05      # frame positions must lie this close to one voxel grid
_DEFAULT_MAX_FRACTIONAL = 255   # MaximumFractionalValue when the object omits it


class _SegElements(NamedTuple):
    """What the reader needs from a SEG object, read once (pydicom converts lazily)."""
    segments: Dict[int, str]           # SegmentNumber -> SegmentLabel
    iops: np.ndarray                   # (n, 6) ImageOrientationPatient per frame
    pixel_spacing: List[float]         # (between rows, between columns) mm
    between: Optional[object]          # SpacingBetweenSlices, if any
    ipp: np.ndarray                    # (n, 3) ImagePositionPatient per frame, LPS mm
    segment_of_frame: List[int]
    pixels: np.ndarray                 # (n, rows, cols)


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_") or "segment"


def _read_dicom_seg(path: str, ds) -> LabelMap:
    """DICOM SEG (binary or fractional): frames placed by their ImagePositionPatient."""
    el = _seg_elements(ds, path)
    pixels, ps = el.pixels, el.pixel_spacing
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.shape[0] != len(el.segment_of_frame):
        raise InputError(f"{pixels.shape[0]} frames of pixels for {len(el.segment_of_frame)} frame "
                         "descriptions", path=path, fix="export the segmentation again")
    if len(ps) != 2 or min(ps) <= 0:
        raise InputError(f"PixelSpacing {list(ps)} is not two positive numbers", path=path,
                         fix="export the segmentation again")
    d = _frame_axes(el.iops, path)
    local = el.ipp @ d                                  # (u, v, t) per frame, mm
    dz = _slice_step(local, el.between)
    lo = local.min(axis=0)
    idx = (local - lo) / np.array([ps[1], ps[0], dz])
    if np.max(np.abs(idx - np.round(idx))) > _GRID_TOL_VOXELS:
        raise InputError("frame positions do not lie on one voxel grid", path=path,
                         fix="export the segmentation again on the CT's grid")
    fractional = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    threshold = float(ds.get("MaximumFractionalValue", _DEFAULT_MAX_FRACTIONAL)) / 2 if fractional else 0
    out, warnings = _paint(pixels, np.round(idx).astype(int), el.segment_of_frame, threshold)
    names = {}
    for number, label in sorted(el.segments.items()):
        name = _slug(label)
        names[name if name not in names else f"{name}_{number}"] = number
    lm = LabelMap(out, (ps[1], ps[0], dz), d @ lo, d, None,
                  {"source": path, "format": "dicom-seg", "warnings": warnings,
                   "segment_labels": el.segments, "referenced_series_uids": _referenced_series(ds)})
    return _apply_names(lm, names, False, path, "the DICOM SEG")


def _seg_elements(ds, path: str) -> _SegElements:
    """The SEG's segments, per-frame geometry and pixels (shared groups as fallback)."""
    try:
        segs = {int(s.SegmentNumber): str(s.get("SegmentLabel", f"segment {s.SegmentNumber}"))
                for s in ds.SegmentSequence}
        shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
        frames = ds.PerFrameFunctionalGroupsSequence

        def group(fg, name):
            if name in fg:
                return fg[name].value[0]
            if shared is not None and name in shared:
                return shared[name].value[0]
            raise KeyError(name)
        iops = np.array([[float(v) for v in group(f, "PlaneOrientationSequence").ImageOrientationPatient]
                         for f in frames])
        measures = group(frames[0], "PixelMeasuresSequence")
        ps = [float(v) for v in measures.PixelSpacing]
        between = measures.get("SpacingBetweenSlices", None)
        ipp = np.array([[float(v) for v in group(f, "PlanePositionSequence").ImagePositionPatient]
                        for f in frames])
        seg_of_frame = [int(group(f, "SegmentIdentificationSequence").ReferencedSegmentNumber)
                        for f in frames]
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom/numpy raise many types on malformed SEG objects
        raise InputError(f"malformed DICOM SEG ({type(exc).__name__}: {str(exc)[:100]})", path=path,
                         fix="export the segmentation again (e.g. with dcmqi or Slicer)") from None
    return _SegElements(segs, iops, ps, between, ipp, seg_of_frame, pixels)


def _frame_axes(iops: np.ndarray, path: str) -> np.ndarray:
    """3x3 direction (columns: row, column, normal in LPS) shared by every frame."""
    iop = iops[0]
    if iops.shape[1:] != (6,) or not np.allclose(iops, iop, atol=_IOP_ATOL):
        raise InputError("frames have different orientations", path=path,
                         fix="export the segmentation on the CT's (parallel) slices")
    norms = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
    row, col = iop[:3] / max(norms[0], _TINY_NORM), iop[3:] / max(norms[1], _TINY_NORM)
    if not (min(norms) > _MIN_DIRECTION_NORM and np.all(np.isfinite(iop))
            and abs(row @ col) <= _ORTHOGONAL_TOL):
        raise InputError(f"ImageOrientationPatient {iop.tolist()} is not orthogonal", path=path,
                         fix="export the segmentation again")
    return np.column_stack([row, col, np.cross(row, col)])


def _slice_step(local: np.ndarray, between) -> float:
    """Slice step (mm): SpacingBetweenSlices, else the smallest gap between frame positions."""
    t = np.unique(np.round(local[:, 2], _POSITION_DECIMALS))
    if between is not None and float(between) > 0:
        return float(between)
    if len(t) > 1:
        return float(np.min(np.diff(t)))
    return _DEFAULT_SLICE_MM


def _paint(pixels: np.ndarray, idx: np.ndarray, segment_of_frame: List[int], threshold: float):
    """uint16 ``[k, j, i]`` label array with each frame's segment painted at its grid index
    (i0, j0, k) where pixels > ``threshold``; later frames win overlaps (with a warning)."""
    rows, cols = pixels.shape[1:]
    out = np.zeros((idx[:, 2].max() + 1, idx[:, 1].max() + rows, idx[:, 0].max() + cols), np.uint16)
    warnings: List[str] = []
    for f, (i0, j0, k) in enumerate(idx):
        on = pixels[f] > threshold
        target = out[k, j0:j0 + rows, i0:i0 + cols]
        if np.any(target[on]):
            warnings.append(f"segments overlap in frame {f + 1}; the later segment wins")
        target[on] = segment_of_frame[f]
    return out, warnings


def _referenced_series(ds) -> List[str]:
    try:
        return [str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])]
    except Exception:  # optional information: a damaged reference must not block the labels
        return []
