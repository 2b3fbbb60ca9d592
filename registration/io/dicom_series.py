"""Listing the image series of a DICOM folder, from headers only (no pixels read).

Files are found recursively under any name, grouped by SeriesInstanceUID
(split further when one UID mixes image sizes/orientations) and sorted by
their position along the slice normal (``cross(row, column)`` of
ImageOrientationPatient), never by file name. Sizes and spacings are
``(i, j, k)`` in mm; positions LPS mm. Each series gets a contrast phase hint
(:mod:`registration.io.contrast_phase`).
"""
from __future__ import annotations

import datetime as _dt
import os
from typing import List, Optional

import numpy as np

from registration.spatial.errors import InputError

from .contrast_phase import _assign_phases
from .ct_progress import HEADERS_SHARE, ProgressFn, _report
from .dicom_header import _read_header, _record
from .series_info import SeriesInfo

_FIX_FORMAT = "give a DICOM folder or a .nrrd/.nii/.nii.gz/.mha/.mhd file"
_REPORT_EVERY_FILES = 20     # progress while scanning headers
# Geometry keys of one part of a series: orientation rounded to 3 decimals, spacing to 4 (mm).
_IOP_DECIMALS, _SPACING_DECIMALS = 3, 4
_IOP_ATOL = 1e-4             # direction cosines of one series agree within this
_SPACING_RTOL = 1e-4         # pixel spacings of one series agree within this fraction


# --------------------------------------------------------------------------- scanning
def _dicom_files(folder: str):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.upper() != "DICOMDIR":
                yield os.path.join(root, name)


def _scan(folder: str, progress: Optional[ProgressFn] = None):
    """Group image headers of a folder by series. Returns (groups, n_files, n_skipped)."""
    groups = {}
    n_files = n_skipped = 0
    paths = list(_dicom_files(folder))
    for path in paths:
        n_files += 1
        if n_files % _REPORT_EVERY_FILES == 0:
            _report(progress, HEADERS_SHARE * n_files / len(paths), f"reading headers {n_files}/{len(paths)}")
        ds = _read_header(path)
        try:
            is_image = ds is not None and "ImagePositionPatient" in ds and "Rows" in ds
        except Exception:  # a damaged header is not an image we can use
            is_image = False
        if not is_image:
            n_skipped += 1          # not DICOM, or not an image slice (SEG, SR, RTSTRUCT...)
            continue
        rec = _record(path, ds)
        groups.setdefault(rec["uid"], []).append(rec)
    return groups, n_files, n_skipped


def _split_by_geometry(uid: str, records):
    """One series UID holding images of several sizes/orientations (e.g. a localizer kept in
    the series) -> the largest part keeps the UID, the others become ``<uid>#2``, ``#3``..."""
    parts = {}
    for r in records:
        key = (r["shape"], tuple(np.round(r["iop"], _IOP_DECIMALS)),
               tuple(np.round(r["ps"], _SPACING_DECIMALS)))
        parts.setdefault(key, []).append(r)
    ordered = sorted(parts.values(), key=len, reverse=True)
    return [(uid if n == 0 else f"{uid}#{n + 1}", part) for n, part in enumerate(ordered)]


def _series_info(uid: str, records) -> SeriesInfo:
    r0 = records[0]
    # Unit normal: orientation vectors a little off unit length (accepted by _geometry) must
    # not scale the slice spacing shown in listings (the loader normalises the same way).
    row, col = (np.asarray(r0["iop"][:3], float), np.asarray(r0["iop"][3:], float))
    normal = np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))
    normal /= np.linalg.norm(normal)
    for r in records:
        if (r["shape"] != r0["shape"] or not np.allclose(r["iop"], r0["iop"], atol=_IOP_ATOL)
                or not np.allclose(r["ps"], r0["ps"], rtol=_SPACING_RTOL)):
            raise InputError(f"series {uid} mixes image sizes, orientations or pixel spacings "
                             f"({os.path.basename(r0['path'])} vs {os.path.basename(r['path'])})",
                             path=r["path"],
                             fix="put each series in its own folder or remove the odd files")
    records = sorted(records, key=lambda r: float(r["ipp"] @ normal))
    along = np.array([float(r["ipp"] @ normal) for r in records])
    dz = float(np.median(np.diff(along))) if len(records) > 1 else r0["thickness"]
    rows, cols = r0["shape"]
    return SeriesInfo(
        series_uid=uid, series_description=r0["description"], modality=r0["modality"],
        n_files=len(records), size=(cols, rows, len(records)),
        spacing=(r0["ps"][1], r0["ps"][0], abs(dz)), contrast_agent=r0["agent"],
        acquisition_time=r0["time"], time_from_first_s=None, phase_hint="unknown",
        files=[r["path"] for r in records], series_number=r0["number"],
        time_from_injection_s=min((r["from_injection"] for r in records
                                   if r["from_injection"] is not None), default=None),
        positions=np.array([r["ipp"] for r in records]),
        orientation=r0["iop"],
        _when=min((r["when"] for r in records if r["when"] is not None), default=None))


def _check_folder(folder) -> str:
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise InputError("path not found", path=folder, fix=_FIX_FORMAT)
    if not os.path.isdir(folder):
        raise InputError("not a folder", path=folder, fix="give the folder holding the DICOM files")
    return folder


def list_dicom_series(folder, *, progress: Optional[ProgressFn] = None) -> List[SeriesInfo]:
    """All image series in a DICOM folder (recursive), earliest acquisition first.

    Reads headers only. Raises InputError for a missing or empty folder or
    one without DICOM images. ``progress(fraction, message)`` returning False
    cancels (CancelledError).
    """
    folder = _check_folder(folder)
    groups, n_files, n_skipped = _scan(folder, progress)
    if n_files == 0:
        raise InputError("the folder is empty", path=folder,
                         fix="give the folder that holds the CT's DICOM files")
    if not groups:
        raise InputError(f"none of the {n_files} files is a DICOM image", path=folder,
                         fix="give the folder that holds the CT's DICOM slice files")
    series = [_series_info(uid, part) for uid, items in groups.items()
              for uid, part in _split_by_geometry(uid, items)]
    _assign_phases(series)
    far = _dt.datetime.max
    series.sort(key=lambda s: (s._when or far, s.series_number or 0, s.series_uid))
    return series


def pick_series(series: List[SeriesInfo], folder: str, series_uid: Optional[str], *,
                missing_fix: str = "pass one of the listed series UIDs",
                several_fix: str = "choose one by its series UID (--series UID)",
                what: str = "") -> SeriesInfo:
    """The one series of a folder's listing to use: the one with ``series_uid``, or the only
    one. InputError listing what the folder holds when the UID is absent or when several
    series are found and none was chosen (``what`` names the wanted series in the message,
    e.g. " (the plan's CT)"; the fixes say how to choose)."""
    if series_uid is not None:
        chosen = [s for s in series if s.series_uid == series_uid]
        if not chosen:
            raise InputError(f"series {series_uid}{what} is not in the folder; found: "
                             + "; ".join(s.summary() for s in series), path=folder, fix=missing_fix)
        return chosen[0]
    if len(series) > 1:
        raise InputError(f"{len(series)} series found: " + "; ".join(s.summary() for s in series),
                         path=folder, fix=several_fix)
    return series[0]
