"""Record a live stream to a PLUS sequence file, valid at every instant.

Layout while recording: ``NAME.igs.mhd`` (header) + ``NAME.igs.raw``
(pixels). Each frame's pixels are appended to the ``.raw`` and flushed; the
header is rewritten atomically (temp file + rename) every ``header_every_s``
with the frames that are completely on disk. If the app is killed, the
header on disk describes a prefix of the ``.raw``; the bytes of frames after
it are ignored by readers, as ITK's MetaIO does. :meth:`finish` writes the
final header (and, with ``to_mha``, one self-contained ``.igs.mha``).

Per frame we store ``ImageToReferenceTransform`` (pixels -> Reference mm,
status OK/INVALID) and the sender's timestamp, so the recording replays and
reconstructs like any PLUS file, and the tracked tools that came with the
frame (``NeedleToReference``, and ``NeedleTipToNeedle`` when the server sends
it) with their status; a tool absent from a frame is INVALID there.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Dict, List, Optional

import numpy as np

from registration.io.seq_mha_write import header_lines, write_sequence
from registration.spatial.atomic_io import atomic_write_bytes
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep


class SequenceRecorder:
    def __init__(self, path, *, header_every_s: float = 0.25, calibration: Optional[dict] = None):
        path = os.fspath(path)
        if not path.lower().endswith(".mhd"):
            raise InputError("a live recording is written as .mhd + .raw", path=path,
                             fix="name it e.g. recording.igs.mhd")
        if os.path.exists(path):
            raise InputError("file exists; a recording never overwrites", path=path,
                             fix="choose a new file name")
        self.path = path
        self.raw_path = path[:-4] + ".raw"
        self.header_every_s = header_every_s
        self.calibration = dict(calibration or {})
        self._raw = open(self.raw_path, "xb")
        self._shape: Optional[tuple] = None
        self._timestamps: List[float] = []
        self._mats: List[np.ndarray] = []
        self._ok: List[bool] = []
        self._tools: Dict[str, List[Optional[np.ndarray]]] = {}
        self._flushed = 0
        self._last_header = 0.0
        self._lock = threading.Lock()
        self.closed = False

    @property
    def n_frames(self) -> int:
        return len(self._timestamps)

    def add(self, image: np.ndarray, image_to_reference: Optional[np.ndarray], timestamp: float,
            tools: Optional[Dict[str, Optional[np.ndarray]]] = None) -> None:
        """Append a frame; ``tools`` {name like 'NeedleToReference': 4x4, or None if INVALID}."""
        img = np.ascontiguousarray(image, dtype=np.uint8)
        with self._lock:
            if self.closed:
                raise InputError("recording already finished", path=self.path, fix="start a new recording")
            if self._shape is None:
                self._shape = img.shape
            elif img.shape != self._shape:
                raise InputError(f"frame size changed from {self._shape} to {img.shape} during recording",
                                 path=self.path, fix="start a new recording after changing the imaging depth")
            self._raw.write(img.tobytes())
            self._raw.flush()
            ok = image_to_reference is not None
            self._mats.append(np.asarray(image_to_reference, float) if ok else np.eye(4))
            self._ok.append(ok)
            n = len(self._timestamps)
            for name, m in (tools or {}).items():
                self._tools.setdefault(name, [None] * n)
            for name, column in self._tools.items():
                m = (tools or {}).get(name)
                column.append(None if m is None else np.asarray(m, float))
            self._timestamps.append(float(timestamp))
            now = time.monotonic()
            if now - self._last_header >= self.header_every_s:
                self._write_header()
                self._last_header = now

    def add_frame(self, frame) -> None:
        """Add a :class:`registration.live.igtl_client.LiveFrame` with its tracked tools (not the probe)."""
        tools = {name: (m if ok else None) for name, (m, ok) in frame.transforms.items()
                 if not name.startswith(("Image", "Probe"))}
        self.add(frame.image, frame.image_to_reference, frame.timestamp, tools)

    def _sweep(self, n: int) -> Sweep:
        rows, cols = self._shape if self._shape is not None else (0, 0)
        frames = np.broadcast_to(np.zeros((1, rows, cols), np.uint8), (n, rows, cols))
        transforms = {"ImageToReference": np.array(self._mats[:n]).reshape(n, 4, 4)}
        statuses = {"ImageToReference": np.array(self._ok[:n], bool)}
        for name, column in self._tools.items():
            transforms[name] = np.array([np.eye(4) if m is None else m for m in column[:n]]).reshape(n, 4, 4)
            statuses[name] = np.array([m is not None for m in column[:n]], bool)
        return Sweep(frames, np.array(self._timestamps[:n]), transforms, statuses, dict(self.calibration),
                     source=self.path)

    def _write_header(self) -> None:
        os.fsync(self._raw.fileno())
        n = len(self._timestamps)
        lines = header_lines(self._sweep(n), None)  # the same header the writer produces
        lines.append(f"ElementDataFile = {os.path.basename(self.raw_path)}")
        atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode("latin-1"))
        self._flushed = n

    def finish(self, *, to_mha: Optional[str] = None) -> str:
        """Write the final header; optionally also one self-contained .mha. Returns the path."""
        with self._lock:
            if not self.closed:
                self._write_header()
                self._raw.close()
                self.closed = True
        if to_mha:
            from registration.io.seq_mha_read import read_sequence
            sweep = read_sequence(self.path)
            write_sequence(sweep, to_mha)
            return os.fspath(to_mha)
        return self.path
