"""A listed DICOM series -> one :class:`~registration.spatial.volume.Volume` (HU, LPS mm, array ``[k, j, i]``).

Pixels are decoded slice by slice into one preallocated array: uncompressed
16-bit grayscale slices straight from their pixel bytes with the rescale applied
as GDCM applies it (checked against GDCM in tests/test_ct_io.py), any other by
SimpleITK's GDCM reader (it handles compressed transfer syntaxes and applies
RescaleSlope/RescaleIntercept), in the order of the slice positions along the slice
normal. Non-uniform slice spacing (including a missing slice) is resampled to
the median spacing by linear interpolation between neighbouring slices;
gantry tilt (slices stepping off the normal) is resampled onto an orthogonal
grid. Both are stated in ``volume.metadata['warnings']``.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

from .ct_progress import DECODE_SHARE, DECODE_START, ProgressFn, _report
from .series_info import SeriesInfo

_SPACING_RTOL = 0.01      # neighbouring-slice distances may differ by 1 % before we resample
_MAX_GAP_STEPS = 3.0      # a gap wider than 3 usual steps means missing slices: refuse
_TILT_TOL_DEG = 0.05      # slice step this far off the normal counts as gantry tilt
_SAME_POSITION_MM = 1e-3  # slices closer than this along the normal are at the same position
_OFF_LINE_FRACTION = 0.1  # slice positions may leave their line by this fraction of a voxel
_FLOOR_EPS = 1e-6         # floor((a - b) / step + eps): an exact multiple is not lost to rounding
AIR_HU = -1024.0          # value outside the data when a tilted series is resampled
_REPORT_EVERY_SLICES = 10
_INT16 = np.iinfo(np.int16)


#: Transfer syntaxes whose pixels are stored as plain little-endian words (no compression).
_PLAIN_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def _read_pixels(files: List[str], progress: Optional[ProgressFn] = None) -> np.ndarray:
    """Decode slices into one [k, j, i] array (rescale applied): uncompressed 16-bit grayscale
    series straight from their pixel bytes (:func:`_read_plain_pixels`), any other with GDCM."""
    plain = _read_plain_pixels(files, progress)
    return plain if plain is not None else _read_pixels_gdcm(files, progress)


def _plain_slice(path: str):
    """(stored values, slope, intercept) of an uncompressed 16-bit MONOCHROME2 single-frame slice
    whose every stored bit is used, else None (GDCM decodes it)."""
    import pydicom
    try:
        ds = pydicom.dcmread(path)
        meta = getattr(ds, "file_meta", None)
        syntax = str(getattr(meta, "TransferSyntaxUID", "")) if meta is not None else ""
        if (syntax not in _PLAIN_SYNTAXES or int(ds.get("SamplesPerPixel", 1)) != 1
                or int(ds.get("BitsAllocated", 0)) != 16 or int(ds.get("BitsStored", 0)) != 16
                or str(ds.get("PhotometricInterpretation", "")).strip() != "MONOCHROME2"
                or int(ds.get("NumberOfFrames", 1) or 1) != 1 or "PixelData" not in ds):
            return None
        rows, cols = int(ds.Rows), int(ds.Columns)
        data = ds.PixelData
        if len(data) != rows * cols * 2:
            return None
        dtype = "<i2" if int(ds.get("PixelRepresentation", 0)) == 1 else "<u2"
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
        return np.frombuffer(data, dtype).reshape(rows, cols), slope, intercept
    except Exception:  # anything unusual: leave it to GDCM, whose errors are reported
        return None


def _read_plain_pixels(files: List[str], progress: Optional[ProgressFn] = None) -> Optional[np.ndarray]:
    """The series as GDCM would decode it (stored value * slope + intercept; whole numbers that fit
    as int16, else float32), read from the pixel bytes: 5-10x faster than a GDCM reader per file.
    None as soon as one slice is not plain (compressed, other bit depth, colour...)."""
    out = None
    for k, path in enumerate(files):
        if k % _REPORT_EVERY_SLICES == 0:
            _report(progress, DECODE_START + DECODE_SHARE * k / len(files),
                    f"decoding slice {k + 1}/{len(files)}")
        got = _plain_slice(path)
        if got is None or (out is not None and got[0].shape != out.shape[1:]):
            return None
        raw, slope, intercept = got
        if slope == int(slope) and intercept == int(intercept):
            hu = raw.astype(np.int32) * int(slope) + int(intercept)
        else:
            hu = raw.astype(np.float64) * slope + intercept
        if out is None:
            out = np.empty((len(files),) + raw.shape, np.int16 if hu.dtype == np.int32 else np.float32)
        if out.dtype == np.int16 and (hu.dtype != np.int32 or hu.min() < _INT16.min or hu.max() > _INT16.max):
            out = out.astype(np.float32)
        out[k] = hu
    return out


def _read_pixels_gdcm(files: List[str], progress: Optional[ProgressFn] = None) -> np.ndarray:
    """Decode slices with GDCM (rescale applied) into one [k, j, i] array."""
    out = None
    for k, path in enumerate(files):
        if k % _REPORT_EVERY_SLICES == 0:
            _report(progress, DECODE_START + DECODE_SHARE * k / len(files),
                    f"decoding slice {k + 1}/{len(files)}")
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
                                      or a.min() < _INT16.min or a.max() > _INT16.max):
            out = out.astype(np.float32)
        out[k] = a
    return out


def _uniform_along(array: np.ndarray, t: np.ndarray, step: float):
    """Resample slices at positions t (mm, ascending) onto t[0] + step * n by linear interpolation."""
    n = int(np.floor((t[-1] - t[0]) / step + _FLOOR_EPS)) + 1
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
    size = np.floor((hi - lo) / spacing + _FLOOR_EPS).astype(int) + 1
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


def _load_series(info: SeriesInfo, source: str, progress: Optional[ProgressFn] = None, *,
                 max_voxels: float) -> Volume:
    # max_voxels is ct_io.MAX_VOXELS, read by the caller at call time (tests lower it)
    iop = info.orientation
    row, col = iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])
    normal = np.cross(row, col)
    pos = info.positions
    warnings: List[str] = []
    n_voxels = float(np.prod(info.size, dtype=np.float64))
    if n_voxels > max_voxels:
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
        if np.any(steps < _SAME_POSITION_MM):
            raise InputError(f"series {info.series_uid} has two slices at the same position",
                             path=source, fix="the folder mixes acquisitions: pick the series "
                             "explicitly or remove the duplicate slices")
        # direction of travel: fit the slice positions on a line through the first one
        travel = pos[-1] - pos[0]
        travel /= np.linalg.norm(travel)
        off_line = np.linalg.norm((pos - pos[0]) - np.outer((pos - pos[0]) @ travel, travel), axis=1)
        if off_line.max() > _OFF_LINE_FRACTION * min(sx, sy, float(np.median(steps))):
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
        array, origin, spacing, direction = _deshear(array, m, AIR_HU)
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
    from .dicom_header import _read_header, _text   # pydicom: imported for DICOM input only
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
        if a.size and a.min() >= _INT16.min and a.max() <= _INT16.max:
            return a.astype(np.int16)
    return a.astype(np.float32, copy=False)
