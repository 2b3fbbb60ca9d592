"""PLUS sequence metafiles (``.mha``, ``.igs.mha``, ``.seq.mha``, ``.mhd`` + ``.raw``).

Format (DESIGN.md section 5): a MetaImage header with ``DimSize = cols rows
frames`` and ``Kinds = domain domain list``, per-frame fields
``Seq_Frame<N>_<Name> = value`` (``<From>To<To>Transform`` = 16 numbers
row-major, ``..TransformStatus`` = OK|INVALID, ``..Timestamp`` in seconds,
``..ImageStatus``, others kept as text), then ``ElementDataFile = LOCAL`` as
the last header line followed by the pixels (x fastest, then y, then frame),
or the name of a data file beside the header. ``CompressedData = True`` means
one zlib stream of all frames.

What the reader does with it:

* frames become ``uint8 [n, rows, cols]`` in MF orientation. If
  ``UltrasoundImageOrientation`` is UF the columns are flipped, MN the rows,
  UN both; the transposed codes FM, FU, NM, NU are transposed first (like
  PLUS, which converts pixels into MF when it reads a file; the transforms in
  the file are taken as they are, because PLUS defines calibration and
  per-frame transforms for the MF image). A third letter (MFA, MFD: volume
  slice direction) is ignored for 2D frames. XX or no orientation: taken as
  MF, with a note.
* RGB frames (``ElementNumberOfChannels = 3``) become grey (ITU-R 601 luma,
  rounded) with a note in ``metadata['notes']``.
* ``ImageStatus = INVALID`` excludes the frame (``Sweep.image_valid``), as
  does a transform status other than OK.
* ``ImageToCroppedImage`` means the stored pixels are a crop of the calibrated
  Image frame (PLUS stores ``ImageToCroppedImage`` = translation by minus the
  crop origin). The sweep's pixel frame is then ``CroppedImage`` and
  ``image_to_reference`` maps the stored pixels:
  ``image_to_reference @ inv(image_to_cropped_image)``.
* Header-level fields named ``<From>To<To>Transform`` (16 numbers) are static
  calibration (our writer stores ``Sweep.calibration`` this way).
* A frame with no fields at all (a gap in the numbering, as in PLUS's own
  Prostate10_video) gets an interpolated timestamp and is excluded
  (image status INVALID), with a note.
* ``DimSize = 0 0 N`` (tracker only): ``frames`` is ``[N, 0, 0]``, no fan mask.

``ElementSpacing`` is usually a dummy ``1 1 1``: the pixel spacing comes from
``ImageToProbe`` (per frame or from the PLUS config passed as ``calibration``).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import zlib
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import InputError
from .sweep import Sweep, split_transform_name
from .transforms import atomic_write_bytes, format_matrix

log = logging.getLogger(__name__)

_EDF = re.compile(rb"(?m)^[ \t]*ElementDataFile[ \t]*=[ \t]*([^\r\n]*)(\r?\n|\Z)")
_FRAME = re.compile(r"Seq_Frame(\d+)_(.+)")
# PLUS orientation letters: 1st = direction of the image x axis (columns), 2nd = y axis (rows);
# M/U = marked/unmarked side of the transducer, F/N = far from/near the transducer.
# Value: (transpose, flip rows, flip columns) applied in that order to reach MF.
_ORIENT = {"MF": (False, False, False), "UF": (False, False, True), "MN": (False, True, False),
           "UN": (False, True, True), "FM": (True, False, False), "FU": (True, False, True),
           "NM": (True, True, False), "NU": (True, True, True)}
_MAX_TRACKER_FRAMES = 10_000_000
_FIX_HEADER = "check the header against the PLUS sequence metafile format or export the sequence again"


# --------------------------------------------------------------------------- header
def _split_header(data: bytes, path: str):
    """(fields {key: value}, frame_fields {name: {index: value}}, data_file, data_offset)."""
    m = _EDF.search(data)
    if m is None:
        raise InputError("no ElementDataFile line (the header must end with 'ElementDataFile = "
                         "LOCAL' or the name of the data file)", path=path, fix=_FIX_HEADER)
    header = data[:m.start()].decode("latin-1")
    fields: Dict[str, str] = {}
    frame_fields: Dict[str, Dict[int, str]] = {}
    for lineno, line in enumerate(header.splitlines(), start=1):
        if not line.strip():
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise InputError(f"header line {lineno} is not 'Key = Value': '{line.strip()[:60]}'",
                             path=path, fix=_FIX_HEADER)
        key, value = key.strip(), value.strip()
        fm = _FRAME.fullmatch(key)
        if fm:
            frame_fields.setdefault(fm.group(2), {})[int(fm.group(1))] = value
        else:
            fields[key] = value  # duplicated keys occur in real files (Kinds): last wins
    return fields, frame_fields, m.group(1).decode("latin-1").strip(), m.end()


def _ints(fields: Dict[str, str], key: str, count: int, path: str, default=None) -> List[int]:
    if key not in fields:
        if default is not None:
            return list(default)
        raise InputError(f"the header has no {key}", path=path, fix=_FIX_HEADER)
    parts = fields[key].split()
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"{key} = '{fields[key][:60]}' is not {count} whole numbers",
                         path=path, fix=_FIX_HEADER) from None
    if len(values) != count or any(v < 0 for v in values):
        raise InputError(f"{key} = '{fields[key][:60]}' must be {count} non-negative whole numbers",
                         path=path, fix=_FIX_HEADER)
    return values


def _is_true(fields, key, path, default=False) -> bool:
    value = fields.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise InputError(f"{key} = '{value[:40]}' is not True or False", path=path, fix=_FIX_HEADER)


def _parse_matrices(values: Dict[int, str], n: int, name: str, path: str):
    """{index: '16 numbers'} -> ([n,4,4] NaN where absent, bool [n] present)."""
    mats = np.full((n, 4, 4), np.nan)
    present = np.zeros(n, bool)
    if not values:
        return mats, present
    idx = np.fromiter(values.keys(), dtype=np.int64, count=len(values))
    tokens = [v.split() for v in values.values()]
    for i, tok in zip(idx, tokens):
        if len(tok) != 16:
            raise InputError(f"Seq_Frame{i:04d}_{name} has {len(tok)} numbers, not 16", path=path,
                             fix="write each transform as 16 numbers, row-major")
    try:
        flat = np.array([t for tok in tokens for t in tok], dtype=float)
    except ValueError:
        for i, tok in zip(idx, tokens):
            try:
                [float(t) for t in tok]
            except ValueError:
                raise InputError(f"Seq_Frame{i:04d}_{name} is not numeric: "
                                 f"'{' '.join(tok)[:60]}'", path=path,
                                 fix="write each transform as 16 numbers, row-major") from None
        raise
    mats[idx] = flat.reshape(-1, 4, 4)
    present[idx] = True
    return mats, present


def _status(values: Dict[int, str], n: int, default: np.ndarray) -> np.ndarray:
    out = default.copy()
    for i, v in values.items():
        out[i] = v.strip().upper() == "OK"
    return out


def _floats(values: Dict[int, str], n: int, name: str, path: str) -> Tuple[np.ndarray, np.ndarray]:
    out = np.full(n, np.nan)
    present = np.zeros(n, bool)
    for i, v in values.items():
        try:
            out[i] = float(v)
        except ValueError:
            raise InputError(f"Seq_Frame{i:04d}_{name} = '{v[:40]}' is not a number", path=path,
                             fix=f"write {name} in seconds as a number") from None
        present[i] = True
    if not np.all(np.isfinite(out[present])):
        raise InputError(f"{name} contains a non-finite value", path=path,
                         fix=f"write {name} in seconds as a finite number")
    return out, present


# --------------------------------------------------------------------------- pixels
def _pixel_bytes(data: bytes, offset: int, fields, data_file: str, path: str,
                 expected: int) -> bytes:
    if data_file.upper() == "LOCAL":
        blob = data[offset:]
    else:
        if data_file.upper() == "LIST" or "%" in data_file:
            raise InputError(f"ElementDataFile = {data_file} (a file list) is not supported",
                             path=path, fix="save the sequence as one .mha or an .mhd with one .raw")
        raw_path = os.path.join(os.path.dirname(os.path.abspath(path)), data_file)
        try:
            with open(raw_path, "rb") as f:
                blob = f.read()
        except OSError as exc:
            raise InputError(f"cannot read the data file {data_file} named by ElementDataFile "
                             f"({exc.strerror})", path=path,
                             fix="keep the .raw file beside the .mhd header") from None
    if _is_true(fields, "CompressedData", path):
        size = blob.__len__()
        if "CompressedDataSize" in fields:
            size = _ints(fields, "CompressedDataSize", 1, path)[0]
            if size > len(blob):
                raise InputError(f"CompressedDataSize is {size} bytes but only {len(blob)} follow "
                                 "the header (truncated file)", path=path,
                                 fix="copy or export the sequence again")
        try:
            d = zlib.decompressobj()
            raw = d.decompress(blob[:size], expected + 1)
        except zlib.error as exc:
            raise InputError(f"compressed pixel data is corrupt ({exc})", path=path,
                             fix="copy or export the sequence again") from None
        if len(raw) != expected or (not d.eof and expected > 0):
            raise InputError(f"compressed pixel data holds {len(raw)}{'+' if not d.eof else ''} "
                             f"bytes but DimSize needs {expected} (truncated file, or the header "
                             "claims more frames than present)", path=path,
                             fix="copy or export the sequence again")
        return raw
    if len(blob) > expected and data_file.upper() != "LOCAL" and not _is_true(fields, "CompressedData", path):
        # A separate .raw may run past the frames its header lists: a live recording
        # (registration.live_recorder) appends pixels before it rewrites the header, so an
        # interrupted one has trailing bytes. ITK's MetaIO reads the prefix too.
        log.warning("%s: %s has %d bytes after the %d frames the header lists (interrupted "
                    "recording?); they are ignored", path, data_file, len(blob) - expected,
                    int(fields.get("DimSize", "0 0 0").split()[-1]))
        return blob[:expected]
    if len(blob) != expected:
        raise InputError(f"pixel data has {len(blob)} bytes but DimSize/ElementType need "
                         f"{expected} (truncated file, or the header claims more frames than "
                         "present)", path=path, fix="copy or export the sequence again")
    return blob


def _frames(data, offset, fields, data_file, path, n, rows, cols, notes) -> np.ndarray:
    if rows * cols == 0:
        return np.zeros((n, rows, cols), np.uint8)
    etype = fields.get("ElementType", "")
    if etype != "MET_UCHAR":
        raise InputError(f"ElementType = '{etype[:30]}' is not supported (ultrasound frames are "
                         "MET_UCHAR)", path=path, fix="export 8-bit B-mode frames")
    if not _is_true(fields, "BinaryData", path, default=True):
        raise InputError("BinaryData = False (ASCII pixels) is not supported", path=path,
                         fix="save the sequence with binary pixel data")
    channels = _ints(fields, "ElementNumberOfChannels", 1, path, default=[1])[0]
    if channels not in (1, 3):
        raise InputError(f"ElementNumberOfChannels = {channels} is not supported (1 grey or 3 RGB)",
                         path=path, fix="export grey or RGB frames")
    expected = n * rows * cols * channels
    raw = _pixel_bytes(data, offset, fields, data_file, path, expected)
    pixels = np.frombuffer(raw, dtype=np.uint8)
    if channels == 3:
        rgb = pixels.reshape(n, rows, cols, 3).astype(np.float32)
        grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        notes.append("RGB frames converted to grey (0.299 R + 0.587 G + 0.114 B)")
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    return pixels.reshape(n, rows, cols).copy()


def _orient(frames: np.ndarray, fields, path, notes) -> np.ndarray:
    """Frames ``[n, rows, cols]`` as stored -> MF (columns towards the marked side, rows away from
    the transducer). UF: columns reversed; MN: rows reversed; UN: both. The transposed PLUS codes
    (FM, FU, NM, NU: x axis along the beam) are transposed first, then flipped the same way.
    A third letter (volume slice direction, e.g. MFA) does not change a 2D frame."""
    text = fields.get("UltrasoundImageOrientation", "").strip().upper()
    has_pixels = frames.shape[1] * frames.shape[2] > 0
    key = text[:2]
    if key not in _ORIENT:
        if not has_pixels or text in ("", "XX"):
            if has_pixels:
                notes.append(f"UltrasoundImageOrientation '{text or 'missing'}': assumed MF")
            return frames
        raise InputError(f"UltrasoundImageOrientation = '{text[:20]}' is not one of MF, UF, MN, UN "
                         "(or FM, FU, NM, NU)", path=path,
                         fix="set the orientation PLUS recorded (usually MF)")
    transpose, flip_rows, flip_cols = _ORIENT[key]
    if transpose:
        frames = frames.transpose(0, 2, 1)
    if flip_rows:
        frames = frames[:, ::-1, :]
    if flip_cols:
        frames = frames[:, :, ::-1]
    done = [w for w, f in (("transposed", transpose), ("rows reversed (near<->far)", flip_rows),
                           ("columns reversed (marked<->unmarked)", flip_cols)) if f]
    if done:
        notes.append(f"image orientation {key} converted to MF: {', '.join(done)}")
    return np.ascontiguousarray(frames)


# --------------------------------------------------------------------------- reader
def read_sequence(path, calibration=None) -> Sweep:
    """Read a PLUS sequence metafile into a :class:`Sweep`.

    ``calibration``: a PLUS device-set config XML path or a dict ``{name: 4x4}``
    (e.g. ``{'ImageToProbe': m}``), merged into ``sweep.calibration``. When
    given, the sweep must then have a chain from its pixels to Reference, or an
    InputError names the missing transform. Sets ``sweep.fan_mask`` (detected
    from the frames) unless there are no images.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise InputError(f"cannot read the sequence file ({exc.strerror})", path=path,
                         fix="check the path") from None
    fields, frame_fields, data_file, offset = _split_header(data, path)
    if fields.get("NDims", "3").strip() != "3":
        raise InputError(f"NDims = '{fields['NDims'][:20]}' but a sequence needs 3 (cols rows frames)",
                         path=path, fix=_FIX_HEADER)
    cols, rows, n = _ints(fields, "DimSize", 3, path)
    notes: List[str] = []
    if frame_fields:
        top = max(max(v) for v in frame_fields.values())
        if top >= n:
            raise InputError(f"per-frame fields go up to Seq_Frame{top:04d} but DimSize has {n} "
                             "frames", path=path, fix=_FIX_HEADER)
        if top + 1 < n and rows * cols == 0:
            raise InputError(f"DimSize claims {n} frames but per-frame fields stop at frame {top}",
                             path=path, fix=_FIX_HEADER)
    elif rows * cols == 0 and n > 0:
        raise InputError(f"DimSize = {cols} {rows} {n}: no pixels and no per-frame fields", path=path,
                         fix=_FIX_HEADER)
    if rows * cols == 0 and n > _MAX_TRACKER_FRAMES:
        raise InputError(f"DimSize claims {n} frames", path=path, fix=_FIX_HEADER)

    frames = _frames(data, offset, fields, data_file, path, n, rows, cols, notes)
    frames = _orient(frames, fields, path, notes)

    seen = np.zeros(n, bool)
    for values in frame_fields.values():
        seen[list(values)] = True
    if n and not seen.all():
        notes.append(f"{int((~seen).sum())} frame(s) have no per-frame fields "
                     f"(e.g. frame {int(np.argmin(seen))}): timestamp interpolated, frame excluded")

    timestamps, have_t = _floats(frame_fields.pop("Timestamp", {}), n, "Timestamp", path)
    if n and not have_t.all():
        if have_t.any():
            t_idx = np.flatnonzero(have_t)
            timestamps = np.interp(np.arange(n), t_idx, timestamps[t_idx])
            if have_t.sum() == 1:
                timestamps = timestamps + (np.arange(n) - t_idx[0])  # 1 s apart around the one known
        else:
            timestamps = np.arange(n, dtype=float)
            notes.append("no timestamps in the file: frame index used as seconds")

    image_valid = _status(frame_fields.pop("ImageStatus", {}), n, np.ones(n, bool)) & seen

    transforms: Dict[str, np.ndarray] = {}
    statuses: Dict[str, np.ndarray] = {}
    for name in [k for k in frame_fields if k.endswith("Transform")]:
        try:
            split_transform_name(name)
        except InputError:
            continue  # a field that merely ends in "Transform": keep as text below
        mats, present = _parse_matrices(frame_fields.pop(name), n, name, path)
        transforms[name[:-len("Transform")]] = mats
        statuses[name[:-len("Transform")]] = _status(frame_fields.pop(name + "Status", {}), n, present) & present

    calib: Dict[str, np.ndarray] = {}
    for key in [k for k in fields if k.endswith("Transform") and k != "Transform"]:
        try:
            split_transform_name(key)
        except InputError:
            continue
        mats, _ = _parse_matrices({0: fields[key]}, 1, key, path)
        calib[key[:-len("Transform")]] = mats[0]

    metadata = {
        "format": "plus-sequence-metafile",
        "header": fields,
        "orientation_in_file": fields.get("UltrasoundImageOrientation"),
        "element_spacing": fields.get("ElementSpacing"),
        "frame_fields": {k: [v.get(i) for i in range(n)] for k, v in frame_fields.items()},
        "notes": notes,
    }
    all_names = set(transforms) | set(calib)
    image_frame = "CroppedImage" if "ImageToCroppedImage" in all_names else "Image"
    sweep = Sweep(frames, timestamps, transforms, statuses, calib, None, metadata, path, image_valid=image_valid,
                  image_frame=image_frame)
    if calibration is not None:
        merge_calibration(sweep, calibration)
    if sweep.has_images and rows > 1 and cols > 1:
        from .fan_mask import detect_fan_mask
        sweep.fan_mask = detect_fan_mask(sweep.frames)
    return sweep


def merge_calibration(sweep: Sweep, calibration) -> None:
    """Add static transforms (config XML path or {name: 4x4}) to ``sweep.calibration``.

    Raises InputError naming the missing transform when the sweep has images
    but still no chain from its pixels to Reference.
    """
    source = None
    if isinstance(calibration, dict):
        items = calibration
    else:
        from .plus_config import read_plus_config
        source = os.fspath(calibration)
        items = read_plus_config(source)["transforms"]
    for name, m in items.items():
        base = name[:-len("Transform")] if name.endswith("Transform") else name
        sweep.calibration[base] = np.asarray(m, dtype=float)
        if base in sweep.transforms:
            sweep.metadata.setdefault("notes", []).append(
                f"{base} is both per frame in the file and in the calibration: the per-frame "
                "values are used")
    sweep.__post_init__()  # validate the new matrices, reset caches
    if sweep.has_images:
        _, _, chain = sweep._derive()
        if not chain:
            have = sorted(set(sweep.transforms) | set(sweep.calibration))
            missing = "ImageToProbe" if "ImageToProbe" not in have else \
                f"a chain from {sweep.image_frame} to {sweep.reference_frame}"
            raise InputError(
                f"no {missing} transform for the sequence {os.path.basename(sweep.source or '')} "
                f"(transforms known: {', '.join(have)})", path=source or sweep.source,
                fix="pass --calibration with the PLUS device-set config that defines "
                    "<Transform From=\"Image\" To=\"Probe\" .../> for this probe")


# --------------------------------------------------------------------------- writer
_STANDARD_FRAME_FIELDS = {"Timestamp", "ImageStatus"}


def header_lines(sweep: Sweep, compressed_size: Optional[int] = None) -> List[str]:
    """Header lines (without ElementDataFile) that :func:`write_sequence` writes for ``sweep``."""
    n, rows, cols = sweep.frames.shape
    lines = [
        "ObjectType = Image", "NDims = 3", "AnatomicalOrientation = RAI", "BinaryData = True",
        "BinaryDataByteOrderMSB = False", "CenterOfRotation = 0 0 0",
        f"CompressedData = {'True' if compressed_size is not None else 'False'}",
    ]
    if compressed_size is not None:
        lines.append(f"CompressedDataSize = {compressed_size}")
    lines += [
        f"DimSize = {cols} {rows} {n}", "ElementNumberOfChannels = 1", "ElementSpacing = 1 1 1",
        "ElementType = MET_UCHAR", "Kinds = domain domain list", "Offset = 0 0 0",
        "TransformMatrix = 1 0 0 0 1 0 0 0 1",
        f"UltrasoundImageOrientation = {'MF' if rows * cols else 'XX'}",
        f"UltrasoundImageType = {'BRIGHTNESS' if rows * cols else 'XX'}",
    ]
    for name, m in sorted(sweep.calibration.items()):
        lines.append(f"{name}Transform = {format_matrix(m)}")
    extra = {}
    for name, values in sweep.metadata.get("frame_fields", {}).items():
        if (len(values) == n and name not in _STANDARD_FRAME_FIELDS
                and name[:-len("Transform")] not in sweep.transforms
                and not (name.endswith("TransformStatus") and name[:-len("TransformStatus")] in sweep.transforms)):
            extra[name] = values
    image_ok = sweep.image_valid if sweep.image_valid is not None else np.ones(n, bool)
    identity = format_matrix(np.eye(4))
    texts = {name: [format_matrix(m) if np.all(np.isfinite(m)) else identity for m in mats]
             for name, mats in sweep.transforms.items()}
    width = max(4, len(str(max(n - 1, 0))))
    for i in range(n):
        prefix = f"Seq_Frame{i:0{width}d}_"
        for name in sorted(sweep.transforms):
            lines.append(f"{prefix}{name}Transform = {texts[name][i]}")
            lines.append(f"{prefix}{name}TransformStatus = "
                         f"{'OK' if sweep.statuses[name][i] else 'INVALID'}")
        for name, values in extra.items():
            if values[i] is not None:
                value = str(values[i])
                if "\n" in value or "\r" in value:
                    raise InputError(f"per-frame field {name} of frame {i} contains a line break",
                                     path=sweep.source, fix="remove line breaks from metadata values")
                lines.append(f"{prefix}{name} = {value}")
        lines.append(f"{prefix}Timestamp = {float(sweep.timestamps[i])!r}")
        lines.append(f"{prefix}ImageStatus = {'OK' if image_ok[i] else 'INVALID'}")
    return lines


_header_lines = header_lines  # used by registration.live_recorder


def write_sequence(sweep: Sweep, path, *, compress: bool = False) -> None:
    """Write ``sweep`` as a PLUS sequence metafile (atomic: never half-written).

    ``.mha`` (any of .mha/.igs.mha/.seq.mha): header + pixels in one file.
    ``.mhd``: header, with the pixels in ``<stem>.raw`` (``.zraw`` when
    compressed) beside it. Frames are written as stored (MF orientation),
    ``DimSize = cols rows frames``; static calibration as header fields
    ``<Name>Transform``; invalid matrices that are not finite as identity with
    status INVALID. SimpleITK opens the result as a cols x rows x frames image.
    """
    path = os.fspath(path)
    frames = np.asarray(sweep.frames)
    if frames.dtype != np.uint8:
        raise InputError(f"frames are {frames.dtype}, a PLUS sequence needs uint8", path=path,
                         fix="convert the frames to uint8 before writing")
    pixels = np.ascontiguousarray(frames).tobytes()
    compressed_size = None
    if compress:
        pixels = zlib.compress(pixels, 6)
        compressed_size = len(pixels)
    lines = header_lines(sweep, compressed_size)
    lower = path.lower()
    if lower.endswith(".mhd"):
        raw_name = os.path.basename(path)[:-4] + (".zraw" if compress else ".raw")
        lines.append(f"ElementDataFile = {raw_name}")
        atomic_write_bytes(os.path.join(os.path.dirname(os.path.abspath(path)), raw_name), pixels)
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("latin-1"))
    elif lower.endswith(".mha"):
        lines.append("ElementDataFile = LOCAL")
        atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("latin-1") + pixels)
    else:
        raise InputError("a PLUS sequence file name must end in .mha or .mhd", path=path,
                         fix="use e.g. sweep.igs.mha")


def load_sweep(path, calibration=None) -> Sweep:
    """Open any supported sweep file by extension: .mha/.mhd (PLUS) or .seq.nrrd (Slicer)."""
    p = os.fspath(path)
    lower = p.lower()
    if lower.endswith(".seq.nrrd") or lower.endswith(".nrrd"):
        from .seq_nrrd import read_seq_nrrd
        sweep = read_seq_nrrd(p)
        if calibration is not None:
            merge_calibration(sweep, calibration)
        return sweep
    if lower.endswith(".mha") or lower.endswith(".mhd"):
        return read_sequence(p, calibration=calibration)
    raise InputError("unknown sweep file type", path=p,
                     fix="use a PLUS sequence (.mha, .igs.mha, .seq.mha, .mhd) or a Slicer .seq.nrrd")


# --------------------------------------------------------------------------- summary
def summary_row(sweep: Sweep) -> dict:
    """One line of facts about a sweep, for tables and logs."""
    _, valid, chain = sweep._derive()
    invalid = {name: int((~st).sum()) for name, st in sorted(sweep.statuses.items())}
    image_bad = 0 if sweep.image_valid is None else int((~sweep.image_valid).sum())
    return {
        "file": os.path.basename(sweep.source or ""),
        "frames": len(sweep),
        "size": f"{sweep.frames.shape[2]}x{sweep.frames.shape[1]}",
        "transforms": ", ".join(f"{k}({v} invalid)" if v else k for k, v in invalid.items()) or "-",
        "image_invalid": image_bad,
        "chain": "->".join(chain) if chain else "-",
        "valid_for_chain": int(valid.sum()) if chain else 0,
        "pixel_spacing_mm": sweep.pixel_spacing,
        "duration_s": round(float(np.ptp(sweep.timestamps)), 3) if len(sweep) else 0.0,
        "notes": "; ".join(sweep.metadata.get("notes", [])),
    }


def main(argv=None) -> int:
    """``python -m registration.sequence_io FILE... [--calibration CONFIG.xml]``: print a summary."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m registration.sequence_io",
                                     description="summarise tracked ultrasound sequence files")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--calibration", help="PLUS device-set config XML with ImageToProbe")
    args = parser.parse_args(argv)
    status = 0
    for f in args.files:
        try:
            row = summary_row(load_sweep(f, calibration=args.calibration))
        except InputError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            status = 2
            continue
        print("  ".join(f"{k}={v}" for k, v in row.items()))
    return status


if __name__ == "__main__":
    sys.exit(main())
