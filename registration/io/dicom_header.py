"""One DICOM header (read without pixels) -> the plain values CT loading uses.

Geometry as in the header: ImageOrientationPatient ``(6,)`` = row direction,
column direction (LPS direction cosines); ImagePositionPatient ``(3,)`` LPS mm
of the first pixel; PixelSpacing ``(between rows, between columns)`` mm;
shape ``(Rows, Columns)``. Times are DICOM TM strings turned into seconds since
midnight; dates+times into :class:`datetime.datetime`. Malformed values raise
:class:`~registration.spatial.errors.InputError` naming the file.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Optional, Tuple

import numpy as np
import pydicom

from registration.spatial.errors import InputError

_MIN_DIRECTION_NORM = 0.5   # ImageOrientationPatient vectors shorter than this are damaged
_ORTHOGONAL_TOL = 1e-3      # |row . column| above this: not orthogonal
_UNKNOWN_DAY = _dt.datetime(2000, 1, 1)   # times without a (valid) date are put on one day


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword, None)
    return "" if value is None else str(value).strip()


def _parse_when(ds) -> Optional[_dt.datetime]:
    """Acquisition (else series, else content) date+time of a header, or None."""
    for tkw, dkw in (("AcquisitionTime", "AcquisitionDate"), ("SeriesTime", "SeriesDate"),
                     ("ContentTime", "ContentDate")):
        seconds = _tm_seconds(_text(ds, tkw))
        if seconds is None:
            continue
        d = _text(ds, dkw) or _text(ds, "StudyDate")
        try:
            day = _dt.datetime.strptime(d, "%Y%m%d") if d else _UNKNOWN_DAY
        except ValueError:
            day = _UNKNOWN_DAY
        return day + _dt.timedelta(seconds=seconds)
    return None


def _tm_seconds(text: str) -> Optional[float]:
    m = re.match(r"^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$", text.replace(":", ""))
    if not m:
        return None
    return (int(m.group(1)) * 3600 + int(m.group(2) or 0) * 60 + int(m.group(3) or 0)
            + float(m.group(4) or 0.0))


def _seconds_from_injection(ds) -> Optional[float]:
    """Acquisition time minus ContrastBolusStartTime (s), or None (missing, or past midnight)."""
    start = _tm_seconds(_text(ds, "ContrastBolusStartTime"))
    acq = _tm_seconds(_text(ds, "AcquisitionTime") or _text(ds, "SeriesTime"))
    if start is None or acq is None or acq < start:
        return None
    return acq - start


def _read_header(path: str):
    """pydicom header without pixels, or None when the file is not DICOM."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # pydicom raises many types on foreign bytes; all mean "not DICOM"
        return None


def _geometry(ds, path) -> Tuple[np.ndarray, np.ndarray, Tuple[float, float], Tuple[int, int]]:
    iop = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    ipp = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
    ps = [float(v) for v in ds.PixelSpacing]
    rows, cols = int(ds.Rows), int(ds.Columns)
    if (iop.shape != (6,) or ipp.shape != (3,) or len(ps) != 2 or min(ps) <= 0 or rows < 1
            or cols < 1 or not np.all(np.isfinite(np.concatenate([iop, ipp, ps])))
            or min(np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])) < _MIN_DIRECTION_NORM
            or abs(iop[:3] @ iop[3:]) > _ORTHOGONAL_TOL):
        raise InputError(f"invalid geometry (orientation {iop.tolist()}, position "
                         f"{ipp.tolist()}, spacing {ps}, {rows}x{cols})", path=path,
                         fix="export the series again from the scanner or PACS")
    return iop, ipp, (ps[0], ps[1]), (rows, cols)


def _record(path: str, ds) -> dict:
    """The header fields this module uses, as plain values (bad values -> InputError)."""
    try:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError("multi-frame (enhanced) DICOM images are not supported", path=path,
                             fix="export the series as classic single-frame CT images")
        iop, ipp, ps, shape = _geometry(ds, path)
        uid = _text(ds, "SeriesInstanceUID")
        if not uid:  # seen in anonymised data: group by what is left
            uid = "no-uid:" + "/".join([_text(ds, "SeriesNumber"), _text(ds, "SeriesDescription"),
                                        _text(ds, "FrameOfReferenceUID")])
        number = _text(ds, "SeriesNumber")
        thickness = _text(ds, "SliceThickness")
        return dict(path=path, uid=uid, iop=iop, ipp=ipp, ps=ps, shape=shape,
                    description=_text(ds, "SeriesDescription"), modality=_text(ds, "Modality"),
                    agent=_text(ds, "ContrastBolusAgent") or None,
                    time=_text(ds, "AcquisitionTime") or _text(ds, "SeriesTime"),
                    number=int(float(number)) if number else None,
                    thickness=float(thickness) if thickness else 1.0,
                    when=_parse_when(ds), from_injection=_seconds_from_injection(ds))
    except InputError:
        raise
    except Exception as exc:  # pydicom converts values lazily: malformed elements surface here
        raise InputError(f"DICOM image header cannot be read ({type(exc).__name__}: "
                         f"{str(exc)[:80]})", path=path,
                         fix="remove the damaged file or export the series again") from None
