"""PLUS sequence metafile pixels: bytes after the header (or in the ``.raw``) to MF frames.

Pixels are stored x fastest, then y, then frame (``DimSize = cols rows
frames``), ``MET_UCHAR``, optionally one zlib stream of all frames
(``CompressedData = True``). Frames come out ``uint8 [n, rows, cols]`` in MF
orientation (columns towards the marked side of the transducer, rows away
from it): the ``UltrasoundImageOrientation`` of the file is undone here, RGB
frames become grey (ITU-R 601 luma, rounded), each with a note appended to
``notes``.
"""
from __future__ import annotations

import logging
import os
import zlib

import numpy as np

from registration.spatial.errors import InputError, check_choice, read_bytes

from .seq_mha_header import _ints, _is_true

# Logger name kept from before the split (this code was in registration.io.sequence_io),
# so that logging configuration and filters on that name still see the warning.
log = logging.getLogger("registration.io.sequence_io")

# PLUS orientation letters: 1st = direction of the image x axis (columns), 2nd = y axis (rows);
# M/U = marked/unmarked side of the transducer, F/N = far from/near the transducer.
# Value: (transpose, flip rows, flip columns) applied in that order to reach MF.
_ORIENT = {"MF": (False, False, False), "UF": (False, False, True), "MN": (False, True, False),
           "UN": (False, True, True), "FM": (True, False, False), "FU": (True, False, True),
           "NM": (True, True, False), "NU": (True, True, True)}
_ELEMENT_TYPES = ("MET_UCHAR",)     # 8-bit B-mode frames
_CHANNELS = (1, 3)                  # grey, or RGB converted to grey
# ITU-R BT.601 luma weights (R, G, B): the usual RGB -> grey conversion.
LUMA_WEIGHTS_BT601 = (0.299, 0.587, 0.114)


def rgb_to_grey(rgb: np.ndarray, notes) -> np.ndarray:
    """uint8 grey ``[...]`` from uint8 RGB ``[..., 3]`` (BT.601 luma, rounded), with a note."""
    grey = rgb.astype(np.float32) @ np.array(LUMA_WEIGHTS_BT601, np.float32)
    r, g, b = LUMA_WEIGHTS_BT601
    notes.append(f"RGB frames converted to grey ({r} R + {g} G + {b} B)")
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


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
        blob = read_bytes(raw_path, f"cannot read the data file {data_file} named by ElementDataFile",
                          path=path, fix="keep the .raw file beside the .mhd header")
    if _is_true(fields, "CompressedData", path):
        size = len(blob)
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
    if len(blob) > expected and data_file.upper() != "LOCAL":   # (compressed data returned above)
        # A separate .raw may run past the frames its header lists: a live recording
        # (registration.live.live_recorder) appends pixels before it rewrites the header, so an
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
    check_choice(fields.get("ElementType", ""), _ELEMENT_TYPES, "ElementType", path=path,
                 fix="export 8-bit B-mode frames")
    if not _is_true(fields, "BinaryData", path, default=True):
        raise InputError("BinaryData = False (ASCII pixels) is not supported", path=path,
                         fix="save the sequence with binary pixel data")
    channels = _ints(fields, "ElementNumberOfChannels", 1, path, default=[1])[0]
    check_choice(channels, _CHANNELS, "ElementNumberOfChannels", path=path, fix="export grey or RGB frames")
    expected = n * rows * cols * channels
    raw = _pixel_bytes(data, offset, fields, data_file, path, expected)
    pixels = np.frombuffer(raw, dtype=np.uint8)
    if channels == 3:
        return rgb_to_grey(pixels.reshape(n, rows, cols, 3), notes)
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
        check_choice(text, _ORIENT, "UltrasoundImageOrientation", path=path,
                     fix="set the orientation PLUS recorded (usually MF)")   # raises: not a choice
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
