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
from typing import List

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap

from .label_names import _apply_names


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_") or "segment"


def _read_dicom_seg(path: str, ds) -> LabelMap:
    """DICOM SEG (binary or fractional): frames placed by their ImagePositionPatient."""
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
        iop = iops[0]
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
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.shape[0] != len(frames):
        raise InputError(f"{pixels.shape[0]} frames of pixels for {len(frames)} frame descriptions",
                         path=path, fix="export the segmentation again")
    if len(ps) != 2 or min(ps) <= 0:
        raise InputError(f"PixelSpacing {list(ps)} is not two positive numbers", path=path,
                         fix="export the segmentation again")
    if iops.shape[1:] != (6,) or not np.allclose(iops, iop, atol=1e-4):
        raise InputError("frames have different orientations", path=path,
                         fix="export the segmentation on the CT's (parallel) slices")
    norms = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
    row, col = iop[:3] / max(norms[0], 1e-12), iop[3:] / max(norms[1], 1e-12)
    if not (min(norms) > 0.5 and np.all(np.isfinite(iop)) and abs(row @ col) <= 1e-3):
        raise InputError(f"ImageOrientationPatient {iop.tolist()} is not orthogonal", path=path,
                         fix="export the segmentation again")
    normal = np.cross(row, col)
    d = np.column_stack([row, col, normal])
    local = ipp @ d                                  # (u, v, t) per frame, mm
    t = np.unique(np.round(local[:, 2], 4))
    if between is not None and float(between) > 0:
        dz = float(between)
    elif len(t) > 1:
        dz = float(np.min(np.diff(t)))
    else:
        dz = 1.0
    lo = local.min(axis=0)
    idx = (local - lo) / np.array([ps[1], ps[0], dz])
    if np.max(np.abs(idx - np.round(idx))) > 0.05:
        raise InputError("frame positions do not lie on one voxel grid", path=path,
                         fix="export the segmentation again on the CT's grid")
    idx = np.round(idx).astype(int)
    rows, cols = pixels.shape[1:]
    out = np.zeros((idx[:, 2].max() + 1, idx[:, 1].max() + rows, idx[:, 0].max() + cols), np.uint16)
    fractional = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    threshold = float(ds.get("MaximumFractionalValue", 255)) / 2 if fractional else 0
    warnings: List[str] = []
    for f, (i0, j0, k) in enumerate(idx):
        on = pixels[f] > threshold
        target = out[k, j0:j0 + rows, i0:i0 + cols]
        if np.any(target[on]):
            warnings.append(f"segments overlap in frame {f + 1}; the later segment wins")
        target[on] = seg_of_frame[f]
    names = {}
    for number, label in sorted(segs.items()):
        name = _slug(label)
        names[name if name not in names else f"{name}_{number}"] = number
    origin = d @ lo
    lm = LabelMap(out, (ps[1], ps[0], dz), origin, d, None,
                  {"source": path, "format": "dicom-seg", "warnings": warnings,
                   "segment_labels": segs, "referenced_series_uids": _referenced_series(ds)})
    return _apply_names(lm, names, False, path, "the DICOM SEG")


def _referenced_series(ds) -> List[str]:
    try:
        return [str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])]
    except Exception:  # optional information: a damaged reference must not block the labels
        return []
