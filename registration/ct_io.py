"""CT input: DICOM folders (any file names, several series), NRRD, NIfTI, MetaImage.

Every loader returns a :class:`~registration.volume.Volume` in HU, LPS mm,
array ``[k, j, i]``. DICOM slices are ordered by their position along the
slice normal (``cross(row, column)`` of ImageOrientationPatient), never by
file name. Listing reads headers only (pydicom ``stop_before_pixels``);
pixels are decoded slice by slice by SimpleITK's GDCM reader (it handles
compressed transfer syntaxes and applies RescaleSlope/RescaleIntercept,
checked in tests/test_ct_io.py) into one preallocated array.

Non-uniform slice spacing (including a missing slice) is resampled to the
median spacing by linear interpolation between neighbouring slices; gantry
tilt (slices stepping off the normal) is resampled onto an orthogonal grid.
Both are stated in ``volume.metadata['warnings']``.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np
import pydicom
import SimpleITK as sitk

from .errors import CancelledError, InputError
from .volume import Volume

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], Optional[bool]]   # (fraction 0..1, message) -> False cancels


def _report(progress: Optional[ProgressFn], fraction: float, message: str) -> None:
    if progress is not None and progress(float(fraction), message) is False:
        raise CancelledError("CT loading cancelled")

IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
_SPACING_RTOL = 0.01      # neighbouring-slice distances may differ by 1 % before we resample
_MAX_GAP_STEPS = 3.0      # a gap wider than 3 usual steps means missing slices: refuse
_TILT_TOL_DEG = 0.05      # slice step this far off the normal counts as gantry tilt
_FIX_FORMAT = "give a DICOM folder or a .nrrd/.nii/.nii.gz/.mha/.mhd file"


@dataclass
class SeriesInfo:
    """One image series found in a DICOM folder (from headers, no pixels read).

    ``size`` and ``spacing`` are ``(i, j, k)`` (mm); the k spacing is the
    median distance between neighbouring slices along the slice normal.
    ``files`` are sorted by position along the normal (ascending).
    ``time_from_first_s``: acquisition time minus that of the earliest series
    in the folder (None when times are missing); ``time_from_injection_s``:
    acquisition time minus ContrastBolusStartTime. ``phase_hint`` is one of
    'non-contrast', 'arterial', 'portal venous', 'delayed',
    'contrast, phase unknown', 'unknown'; ``phase_reason`` says why.
    """

    series_uid: str
    series_description: str
    modality: str
    n_files: int
    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    contrast_agent: Optional[str]
    acquisition_time: str
    time_from_first_s: Optional[float]
    phase_hint: str
    files: List[str]
    phase_reason: str = ""
    series_number: Optional[int] = None
    time_from_injection_s: Optional[float] = None   # AcquisitionTime - ContrastBolusStartTime
    positions: np.ndarray = field(default=None, repr=False)       # (n, 3) LPS mm, sorted
    orientation: np.ndarray = field(default=None, repr=False)     # (6,) row dir, column dir
    _when: Optional[_dt.datetime] = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """Plain JSON-ready fields for listings (no file list, positions or private fields)."""
        return dict(series_uid=self.series_uid, series_description=self.series_description,
                    modality=self.modality, n_files=self.n_files, size=list(self.size),
                    spacing=[float(s) for s in self.spacing], contrast_agent=self.contrast_agent,
                    acquisition_time=self.acquisition_time,
                    time_from_first_s=self.time_from_first_s, phase_hint=self.phase_hint,
                    phase_reason=self.phase_reason, series_number=self.series_number,
                    time_from_injection_s=self.time_from_injection_s)

    def summary(self) -> str:
        t = "" if self.time_from_first_s is None else f", t={self.time_from_first_s:+.0f} s"
        return (f"{self.series_uid} '{self.series_description}' {self.modality} "
                f"{self.size[0]}x{self.size[1]}x{self.size[2]}, phase: {self.phase_hint}{t}")


# --------------------------------------------------------------------------- scanning
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
            day = _dt.datetime.strptime(d, "%Y%m%d") if d else _dt.datetime(2000, 1, 1)
        except ValueError:
            day = _dt.datetime(2000, 1, 1)
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


def _dicom_files(folder: str):
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and name.upper() != "DICOMDIR":
                yield os.path.join(root, name)


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
            or min(np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])) < 0.5
            or abs(iop[:3] @ iop[3:]) > 1e-3):
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


def _scan(folder: str, progress: Optional[ProgressFn] = None):
    """Group image headers of a folder by series. Returns (groups, n_files, n_skipped)."""
    groups = {}
    n_files = n_skipped = 0
    paths = list(_dicom_files(folder))
    for path in paths:
        n_files += 1
        if n_files % 20 == 0:
            _report(progress, 0.2 * n_files / len(paths), f"reading headers {n_files}/{len(paths)}")
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
        key = (r["shape"], tuple(np.round(r["iop"], 3)), tuple(np.round(r["ps"], 4)))
        parts.setdefault(key, []).append(r)
    ordered = sorted(parts.values(), key=len, reverse=True)
    return [(uid if n == 0 else f"{uid}#{n + 1}", part) for n, part in enumerate(ordered)]


def _series_info(uid: str, records) -> SeriesInfo:
    r0 = records[0]
    normal = np.cross(r0["iop"][:3], r0["iop"][3:])
    for r in records:
        if (r["shape"] != r0["shape"] or not np.allclose(r["iop"], r0["iop"], atol=1e-4)
                or not np.allclose(r["ps"], r0["ps"], rtol=1e-4)):
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


_KEYWORDS = (  # checked in this order on the lower-case SeriesDescription
    ("non-contrast", (r"non[- ]?con", r"\bnative?\b", r"\bplain\b", r"\bunenhanced\b",
                      r"\bw/?o\b", r"\bwithout\b", r"\bnc\b", r"\bpre\b", r"\bnativ\b")),
    ("arterial", (r"arter", r"\bart\b", r"\bhat\b", r"\blate art")),
    ("portal venous", (r"portal", r"\bpv\b", r"venous", r"\bven\b", r"\bpvp\b")),
    ("delayed", (r"delay", r"equilib", r"\blate\b")),
)
_CONTRAST_PHASES = ("arterial", "portal venous", "delayed")
_NO_AGENT = {"none", "no", "nil", "n/a", "na", "0"}


def _phase_from_injection(seconds: Optional[float]) -> Optional[str]:
    """Pancreatic protocol (DESIGN section 1): late arterial at 40-50 s, portal venous ~70 s."""
    if seconds is None or seconds < 15:
        return None
    if seconds < 60:
        return "arterial"
    if seconds <= 120:
        return "portal venous"
    return "delayed"


def _assign_phases(series: List[SeriesInfo]) -> None:
    """Phase hints, in order of trust: SeriesDescription keywords, time since the
    injection (ContrastBolusStartTime), then times relative to the other series.

    Relative times follow the pancreatic protocol (DESIGN section 1): late
    arterial at 40-50 s and portal venous at ~70 s after injection, so a
    contrast series 15-90 s after the first contrast series is portal venous
    and the first is arterial; more than 120 s after it is delayed.
    """
    times = [s._when for s in series if s._when is not None]
    first = min(times) if times else None
    for s in series:
        if first is not None and s._when is not None:
            s.time_from_first_s = (s._when - first).total_seconds()
    enhanced = []
    for s in series:
        desc = s.series_description.lower()
        for phase, patterns in _KEYWORDS:
            if any(re.search(p, desc) for p in patterns):
                s.phase_hint, s.phase_reason = phase, f"series description '{s.series_description}'"
                break
        else:
            agent = (s.contrast_agent or "").strip().lower()
            if agent in _NO_AGENT and s.contrast_agent is not None:
                s.phase_hint, s.phase_reason = "non-contrast", f"ContrastBolusAgent '{s.contrast_agent}'"
            elif s.contrast_agent or s.time_from_injection_s is not None:
                s.phase_hint = "contrast, phase unknown"
                s.phase_reason = (f"ContrastBolusAgent '{s.contrast_agent}'" if s.contrast_agent
                                  else "ContrastBolusStartTime")
                enhanced.append(s)
                by_injection = _phase_from_injection(s.time_from_injection_s)
                if by_injection:
                    s.phase_hint = by_injection
                    s.phase_reason += (f"; {s.time_from_injection_s:.0f} s after the contrast "
                                       "injection (ContrastBolusStartTime)")
    # every contrast series (tagged or named) anchors the timing; only untyped ones get a phase
    contrast = [s for s in series if s in enhanced or s.phase_hint in _CONTRAST_PHASES]
    timed = sorted((s for s in contrast if s.time_from_first_s is not None),
                   key=lambda s: s.time_from_first_s)
    if len(timed) >= 2:
        t0 = timed[0].time_from_first_s
        for s in (x for x in timed if x in enhanced and x.phase_hint == "contrast, phase unknown"):
            dt = s.time_from_first_s - t0
            if dt == 0:
                if not any(15 <= o.time_from_first_s - t0 <= 90 for o in timed):
                    continue
                s.phase_hint = "arterial"
            elif 15 <= dt <= 90:
                s.phase_hint = "portal venous"
            elif dt > 120:
                s.phase_hint = "delayed"
            else:
                continue
            s.phase_reason += f"; {dt:.0f} s after the first contrast series"
    # an untagged series acquired before every contrast series is the plain scan
    first_contrast = min((s._when for s in contrast if s._when is not None), default=None)
    for s in series:
        if (s.phase_hint == "unknown" and s.contrast_agent is None and s._when is not None
                and first_contrast is not None and s._when < first_contrast):
            s.phase_hint = "non-contrast"
            s.phase_reason = "no ContrastBolusAgent, acquired before the contrast series"


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


# --------------------------------------------------------------------------- loading
def _read_pixels(files: List[str], progress: Optional[ProgressFn] = None) -> np.ndarray:
    """Decode slices with GDCM (rescale applied) into one [k, j, i] array."""
    out = None
    for k, path in enumerate(files):
        if k % 10 == 0:
            _report(progress, 0.2 + 0.75 * k / len(files), f"decoding slice {k + 1}/{len(files)}")
        try:
            img = sitk.ReadImage(path)
        except RuntimeError as exc:
            raise InputError(f"cannot decode the pixels ({str(exc).strip().splitlines()[-1][:120]})",
                             path=path, fix="re-export the series uncompressed") from None
        a = sitk.GetArrayViewFromImage(img)
        a = a.reshape(a.shape[-2:]) if a.ndim == 3 and a.shape[0] == 1 else a
        if a.ndim != 2 or img.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"not a single grayscale slice (pixel array {a.shape}, "
                             f"{img.GetNumberOfComponentsPerPixel()} samples per pixel)", path=path,
                             fix="give a CT series (one grayscale image per file)")
        if out is None:
            integral = np.issubdtype(a.dtype, np.integer)
            out = np.empty((len(files),) + a.shape, np.int16 if integral else np.float32)
        if a.shape != out.shape[1:]:
            raise InputError(f"slice is {a.shape}, others are {out.shape[1:]}", path=path,
                             fix="remove the odd file from the series folder")
        if out.dtype == np.int16 and (not np.issubdtype(a.dtype, np.integer)
                                      or a.min() < -32768 or a.max() > 32767):
            out = out.astype(np.float32)
        out[k] = a
    return out


def _uniform_along(array: np.ndarray, t: np.ndarray, step: float):
    """Resample slices at positions t (mm, ascending) onto t[0] + step * n by linear interpolation."""
    n = int(np.floor((t[-1] - t[0]) / step + 1e-6)) + 1
    targets = t[0] + step * np.arange(n)
    out = np.empty((n,) + array.shape[1:], np.float32)
    hi = np.clip(np.searchsorted(t, targets, side="left"), 1, len(t) - 1)
    for m, (z, h) in enumerate(zip(targets, hi)):
        w = (z - t[h - 1]) / (t[h] - t[h - 1])
        out[m] = (1 - w) * array[h - 1] + w * array[h]
    return out


def _deshear(array: np.ndarray, ijk_to_lps: np.ndarray, default: float):
    """Resample a volume whose k axis is oblique to its slices onto an orthogonal grid."""
    r, c = ijk_to_lps[:3, 0], ijk_to_lps[:3, 1]
    sx, sy = np.linalg.norm(r), np.linalg.norm(c)
    n = np.cross(r / sx, c / sy)
    step = ijk_to_lps[:3, 2]
    d = np.column_stack([r / sx, c / sy, n])
    dims = np.array(array.shape[::-1]) - 1
    corners = np.array([[a, b, e, 1] for a in (0, dims[0]) for b in (0, dims[1]) for e in (0, dims[2])])
    local = (corners @ ijk_to_lps.T)[:, :3] @ d              # corner coordinates along d's axes
    spacing = np.array([sx, sy, abs(step @ n)])
    lo, hi = local.min(axis=0), local.max(axis=0)
    size = np.floor((hi - lo) / spacing + 1e-6).astype(int) + 1
    ref = sitk.Image([int(s) for s in size], sitk.sitkFloat32)
    ref.SetSpacing(tuple(spacing))
    ref.SetOrigin(tuple(d @ lo))
    ref.SetDirection(tuple(d.reshape(-1)))
    src = sitk.GetImageFromArray(array.astype(np.float32, copy=False))  # physical = index
    lps_to_ijk = np.linalg.inv(ijk_to_lps)
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(lps_to_ijk[:3, :3].reshape(-1)))
    tx.SetTranslation(tuple(lps_to_ijk[:3, 3]))
    out = sitk.Resample(src, ref, tx, sitk.sitkLinear, float(default), sitk.sitkFloat32)
    return sitk.GetArrayFromImage(out), d @ lo, spacing, d


def _load_series(info: SeriesInfo, source: str, progress: Optional[ProgressFn] = None) -> Volume:
    iop = info.orientation
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    pos = info.positions
    warnings: List[str] = []
    n_voxels = float(np.prod(info.size, dtype=np.float64))
    if n_voxels > MAX_VOXELS:
        raise InputError(f"series {info.series_uid} claims {info.size} voxels", path=source,
                         fix="check the DICOM headers (Rows, Columns) are not damaged")
    array = _read_pixels(info.files, progress)
    sx, sy = info.spacing[0], info.spacing[1]
    origin = pos[0]
    if len(pos) == 1:
        dz = info.spacing[2]
        step_vec = normal * dz
    else:
        t = (pos - pos[0]) @ normal
        steps = np.diff(t)
        if np.any(steps < 1e-3):
            raise InputError(f"series {info.series_uid} has two slices at the same position",
                             path=source, fix="the folder mixes acquisitions: pick the series "
                             "explicitly or remove the duplicate slices")
        # direction of travel: fit the slice positions on a line through the first one
        travel = pos[-1] - pos[0]
        travel /= np.linalg.norm(travel)
        off_line = np.linalg.norm((pos - pos[0]) - np.outer((pos - pos[0]) @ travel, travel), axis=1)
        if off_line.max() > 0.1 * min(sx, sy, float(np.median(steps))):
            raise InputError(f"series {info.series_uid}: slice positions do not lie on a line "
                             f"({off_line.max():.2f} mm off)", path=source,
                             fix="re-export the series; it may mix two acquisitions")
        dz = float(np.median(steps))
        worst = int(np.argmax(steps))
        if steps[worst] > _MAX_GAP_STEPS * dz:
            # interpolating across several missing slices could invent or hide a lesion
            z0, z1 = (pos[worst] @ normal), (pos[worst + 1] @ normal)
            raise InputError(f"series {info.series_uid}: {steps[worst]:.1f} mm gap between slices "
                             f"at {z0:.1f} and {z1:.1f} mm along the slice normal (usual spacing "
                             f"{dz:.2f} mm): slices are missing", path=source,
                             fix="copy the complete series from the PACS")
        if np.max(np.abs(steps - dz)) > _SPACING_RTOL * dz:
            array = _uniform_along(array, t, dz)
            warnings.append(f"non-uniform slice spacing ({steps.min():.3f}..{steps.max():.3f} mm): "
                            f"resampled to uniform {dz:.3f} mm by linear interpolation")
        step_vec = travel * dz / float(travel @ normal)
    tilt_deg = float(np.degrees(np.arccos(np.clip(abs(step_vec @ normal) / np.linalg.norm(step_vec), -1, 1))))
    if tilt_deg > _TILT_TOL_DEG:
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = row * sx, col * sy, step_vec, origin
        array, origin, spacing, direction = _deshear(array, m, -1024.0)
        warnings.append(f"gantry tilt {tilt_deg:.2f} deg: resampled onto an orthogonal grid "
                        "(linear interpolation, -1024 HU outside)")
    else:
        spacing, direction = (sx, sy, abs(float(step_vec @ normal))), np.column_stack([row, col, normal])
    array = _integral_hu(array)
    if info.modality and info.modality != "CT":
        warnings.append(f"modality is {info.modality}, not CT: values may not be HU")
    meta = dict(source=source, format="dicom", series_uid=info.series_uid,
                series_description=info.series_description, phase_hint=info.phase_hint,
                phase_reason=info.phase_reason, modality=info.modality,
                patient_id=_patient_id(info.files[0]), contrast_agent=info.contrast_agent,
                acquisition_time=info.acquisition_time, n_files=info.n_files, warnings=warnings)
    return Volume(array, spacing, origin, direction, meta)


def _patient_id(path: str) -> str:
    """PatientID goes to Volume.metadata only (never into listings or logs)."""
    ds = _read_header(path)
    try:
        return _text(ds, "PatientID") if ds is not None else ""
    except Exception:  # a damaged optional field must not block loading the images
        return ""


def _integral_hu(array: np.ndarray) -> np.ndarray:
    """int16 when the values are whole HU that fit, else float32."""
    if array.dtype == np.int16:
        return array
    a = np.asarray(array)
    if np.issubdtype(a.dtype, np.integer) or np.all(np.mod(a, 1) == 0):
        if a.size and a.min() >= -32768 and a.max() <= 32767:
            return a.astype(np.int16)
    return a.astype(np.float32, copy=False)


MAX_VOXELS = 1 << 30   # refuse headers claiming more (random or hostile files)


def read_image_checked(path: str, what: str = "image") -> sitk.Image:
    """sitk.ReadImage with the header checked first (size, dimension); errors -> InputError."""
    try:
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        reader.ReadImageInformation()
        size = reader.GetSize()
        n = int(np.prod(size, dtype=np.float64)) * reader.GetNumberOfComponents()
        if not size or n <= 0 or n > MAX_VOXELS:
            raise InputError(f"header claims {' x '.join(map(str, size)) or 'no'} voxels", path=path,
                             fix=f"check the {what} file is not damaged")
        return reader.Execute()
    except RuntimeError as exc:
        last = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else "unreadable"
        raise InputError(f"cannot read the {what} ({last})", path=path,
                         fix="check the file is complete and not corrupted") from None


def _load_image_file(path: str) -> Volume:
    img = read_image_checked(path, "image")
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a 3D scalar image, got {img.GetDimension()}D with "
                         f"{img.GetNumberOfComponentsPerPixel()} component(s) per voxel", path=path,
                         fix="give a single 3D CT volume (not a sequence or a colour image)")
    try:
        vol = Volume.from_sitk(img)
    except InputError as exc:
        raise InputError(str(exc), path=path, fix="fix the image header geometry") from None
    vol.array = _integral_hu(vol.array)
    warnings = []
    if vol.array.min() >= 0 and vol.array.max() > 1000:
        # air is about -1000 HU: a CT with no negative value was probably saved without its
        # RescaleIntercept (raw scanner values, usually HU + 1024)
        warnings.append(f"no negative values (range {vol.array.min()}..{vol.array.max()}): the file "
                        "may hold raw values without the -1024 HU intercept")
    vol.metadata.update(source=path, format=_suffix(path).lstrip("."), series_description="",
                        phase_hint="unknown", modality="CT", patient_id="", warnings=warnings)
    return vol


def _suffix(path: str) -> str:
    low = path.lower()
    for s in IMAGE_SUFFIXES:
        if low.endswith(s):
            return s
    return os.path.splitext(low)[1]


def load_ct(path, series_uid: Optional[str] = None, *,
            progress: Optional[ProgressFn] = None) -> Volume:
    """Load a CT (HU, LPS mm) from a DICOM folder, one of its files, or an image file.

    A DICOM folder with several series needs ``series_uid`` (the error lists
    them); a single ``.dcm`` file loads the series it belongs to. NRRD and
    NIfTI are converted to LPS by SimpleITK; MetaImage is taken as LPS.

    Resampling and other warnings are in ``metadata['warnings']`` and are logged.
    ``progress(fraction, message)`` is called while reading; returning False
    cancels (CancelledError).
    """
    vol = _load_ct(path, series_uid, progress)
    _report(progress, 1.0, "CT loaded")
    for w in vol.metadata.get("warnings", []):
        log.warning("%s: %s", vol.metadata.get("source", path), w)
    return vol


def _load_ct(path, series_uid: Optional[str], progress: Optional[ProgressFn]) -> Volume:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("path not found", path=path, fix=_FIX_FORMAT)
    if os.path.isfile(path) and _suffix(path) in IMAGE_SUFFIXES:
        return _load_image_file(path)
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if os.path.isfile(path):
        if _read_header(path) is None:
            raise InputError("not a DICOM file nor a supported image format", path=path, fix=_FIX_FORMAT)
    series = list_dicom_series(folder, progress=progress)
    if os.path.isfile(path):
        series = [s for s in series if os.path.abspath(path) in map(os.path.abspath, s.files)]
        if not series:
            raise InputError("this DICOM file is not an image slice", path=path,
                             fix="give the CT series folder")
    if series_uid is not None:
        chosen = [s for s in series if s.series_uid == series_uid]
        if not chosen:
            raise InputError(f"series {series_uid} is not in the folder; found: "
                             + "; ".join(s.summary() for s in series), path=folder,
                             fix="pass one of the listed series UIDs")
        return _load_series(chosen[0], folder, progress)
    if len(series) > 1:
        raise InputError(f"{len(series)} series found: " + "; ".join(s.summary() for s in series),
                         path=folder, fix="choose one by its series UID (--series UID)")
    return _load_series(series[0], folder, progress)
