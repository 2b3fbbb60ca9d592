"""OpenIGTLink framing on top of pyigtl's message classes.

pyigtl packs and unpacks the message bodies (IMAGE, TRANSFORM, STRING...);
this module adds what a clinical link needs and pyigtl's transport lacks:
an incremental, non-blocking stream parser that verifies the CRC-64, bounds
BODY_SIZE (a corrupt header must not make us allocate gigabytes), skips
unknown or malformed messages with a logged reason instead of dying, and a
STATUS message (not in pyigtl).

Conventions (DESIGN section 5): big-endian 58-byte header; IMAGE position is
the image centre (pyigtl converts to/from our ``ijk_to_world`` whose last
column is voxel (0,0,0)); TRANSFORM is column-ordered 3x4; device names are
cut at 20 bytes. Header version 2 carries metadata; we use it like PlusServer
for ``TransformStatus`` = ``OK`` / ``INVALID``.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np
from pyigtl.messages import CRC64, ImageMessage, MessageBase, StringMessage, TransformMessage, _igtl_frac_to_nanosec

log = logging.getLogger(__name__)

HEADER_SIZE = MessageBase.IGTL_HEADER_SIZE  # 58
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024   # a 4k RGB frame is ~25 MB
_HEADER = struct.Struct("> H 12s 20s I I Q Q")


class ProtocolError(Exception):
    """The byte stream cannot be parsed any further: drop the connection."""


class StatusMessage(MessageBase):
    """OpenIGTLink STATUS: code (1 = OK), subcode, error name, status string."""

    CODE_OK = 1

    def __init__(self, code: int = 1, subcode: int = 0, error_name: str = "",
                 status_string: str = "", timestamp=None, device_name=None):
        MessageBase.__init__(self, timestamp=timestamp, device_name=device_name)
        self._message_type = "STATUS"
        self.code = int(code)
        self.subcode = int(subcode)
        self.error_name = error_name
        self.status_string = status_string
        self._valid_message = True

    @property
    def ok(self) -> bool:
        return self.code == self.CODE_OK

    def _pack_content(self):
        return (struct.pack("> H q 20s", self.code, self.subcode, self.error_name.encode("ascii", "replace")[:20])
                + self.status_string.encode("utf-8") + b"\0")

    def _unpack_content(self, content):
        if len(content) < 30:
            raise ValueError(f"STATUS body of {len(content)} bytes is shorter than 30")
        self.code, self.subcode, name = struct.unpack("> H q 20s", content[:30])
        self.error_name = name.rstrip(b"\0").decode("ascii", "replace")
        self.status_string = content[30:].split(b"\0", 1)[0].decode("utf-8", "replace")


_TYPES = {"IMAGE": ImageMessage, "TRANSFORM": TransformMessage, "STRING": StringMessage,
          "STATUS": StatusMessage}


@dataclass
class SkippedMessage:
    """A message that was framed correctly but could not be used (logged, counted)."""
    message_type: str
    device_name: str
    reason: str


def pack(message: MessageBase, metadata: Optional[dict] = None) -> bytes:
    """Bytes on the wire; metadata (header v2) such as {'TransformStatus': 'OK'}."""
    if metadata:
        message.header_version = 2
        message.metadata = {str(k): str(v) for k, v in metadata.items()}
    return message.pack()


def image_message(frame: np.ndarray, ijk_to_world: np.ndarray, timestamp: float, device_name: str,
                  status_ok: bool = True) -> bytes:
    """IMAGE for a 2D uint8 frame [rows, cols]; ``ijk_to_world`` maps (col, row, 0) -> mm.

    The coordinate flag is RAS like PlusServer's default; the numbers are sent
    unchanged (tracker frames such as Reference have no anatomical axes, and
    PlusServer does not flip them either).
    """
    msg = ImageMessage(np.ascontiguousarray(frame)[None, :, :], ijk_to_world_matrix=ijk_to_world,
                       world_coordinate_system="ras", timestamp=timestamp, device_name=device_name[:20])
    return pack(msg, {"TransformStatus": "OK" if status_ok else "INVALID"})


def transform_message(matrix: np.ndarray, timestamp: float, device_name: str, status_ok: bool = True) -> bytes:
    msg = TransformMessage(np.asarray(matrix, dtype=np.float32), timestamp=timestamp, device_name=device_name[:20])
    return pack(msg, {"TransformStatus": "OK" if status_ok else "INVALID"})


def status_message(ok: bool, device_name: str, text: str = "", timestamp: Optional[float] = None) -> bytes:
    return pack(StatusMessage(1 if ok else 13, 0, "" if ok else "TRACKING", text, timestamp=timestamp,
                              device_name=device_name[:20]))


class StreamParser:
    """Incremental OpenIGTLink parser: ``feed(bytes)`` -> complete messages.

    Returns pyigtl message objects (with ``.metadata``) or :class:`SkippedMessage`
    for CRC errors, unknown types and bodies that do not unpack. Raises
    :class:`ProtocolError` when the stream cannot be resynchronised (a header
    that is not text, or a BODY_SIZE above ``max_body_bytes``).
    """

    def __init__(self, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.max_body_bytes = int(max_body_bytes)
        self._buf = bytearray()
        self._header = None
        self.crc_errors = 0
        self.skipped = 0

    def feed(self, data: bytes) -> List[Union[MessageBase, SkippedMessage]]:
        self._buf += data
        out: List[Union[MessageBase, SkippedMessage]] = []
        while True:
            if self._header is None:
                if len(self._buf) < HEADER_SIZE:
                    break
                self._header = self._parse_header(bytes(self._buf[:HEADER_SIZE]))
                del self._buf[:HEADER_SIZE]
            h = self._header
            if len(self._buf) < h["body_size"]:
                break
            body = bytes(self._buf[:h["body_size"]])
            del self._buf[:h["body_size"]]
            self._header = None
            out.append(self._decode(h, body))
        return out

    def _parse_header(self, raw: bytes) -> dict:
        version, mtype, device, sec, frac, body_size, crc = _HEADER.unpack(raw)
        try:
            mtype_s = mtype.rstrip(b"\0 ").decode("ascii")
            device_s = device.split(b"\0", 1)[0].decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("header is not OpenIGTLink (type/device name not text)") from None
        if version not in (1, 2, 3) or not mtype_s or not mtype_s.replace("_", "").isalnum():
            raise ProtocolError(f"header is not OpenIGTLink (version {version}, type {mtype_s!r})")
        if body_size > self.max_body_bytes:
            raise ProtocolError(f"{mtype_s} '{device_s}' announces a body of {body_size} bytes "
                                f"(limit {self.max_body_bytes})")
        # Our own field dict rather than pyigtl's parse_header, which decodes all 20 name
        # bytes and so raises on junk after the terminating NUL.
        return {"header_version": version, "message_type": mtype_s, "device_name": device_s,
                "timestamp": sec + _igtl_frac_to_nanosec(frac) * 1e-9, "body_size": body_size,
                "crc": crc}

    def _decode(self, h: dict, body: bytes):
        mtype, device = h["message_type"], h["device_name"]
        if CRC64(body) != h["crc"]:
            self.crc_errors += 1
            self.skipped += 1
            return SkippedMessage(mtype, device, "CRC mismatch")
        cls = _TYPES.get(mtype)
        if cls is None:
            self.skipped += 1
            return SkippedMessage(mtype, device, "unsupported message type")
        msg = cls()
        try:
            msg.unpack(h, body)
        except Exception as exc:  # malformed body from a peer: never let it kill the link
            self.skipped += 1
            return SkippedMessage(mtype, device, f"body does not unpack ({type(exc).__name__}: {exc})")
        return msg


def transform_status(message: MessageBase) -> bool:
    """True unless the message's metadata says the transform is not OK."""
    st = (getattr(message, "metadata", None) or {}).get("TransformStatus", "OK")
    return str(st).upper() == "OK"
