"""The latest TRANSFORM of every device on a link, and the watchdog of a tracked tool.

A ``LiveClient`` keeps one :class:`ToolTable`: each TRANSFORM that arrives
(a needle's ``NeedleToReference``, a static ``NeedleTipToNeedle``, the probe)
replaces its device's :class:`TransformSample`. ``status(device)`` says
whether a tool can be used right now: missing, INVALID (the tracker did not
see its marker) or stale (no valid update for ``stale_after_s``).
``near(timestamp)`` gives the samples to attach to an image frame. Thread
safe: the receiver thread writes, any thread reads.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np


@dataclass
class TransformSample:
    """One TRANSFORM as received: device name, 4x4, status, sender's and our time stamps (s)."""
    device: str
    matrix: np.ndarray
    ok: bool
    timestamp: float
    received: float


class ToolTable:
    def __init__(self, stale_after_s: float = 0.2):
        self.stale_after_s = stale_after_s
        self._lock = threading.Lock()
        self._latest: Dict[str, TransformSample] = {}
        self._last_ok: Dict[str, float] = {}

    def add(self, sample: TransformSample) -> None:
        with self._lock:
            self._latest[sample.device] = sample
            if sample.ok:
                self._last_ok[sample.device] = sample.received

    def latest(self, device: str) -> Optional[TransformSample]:
        with self._lock:
            return self._latest.get(device)

    def status(self, device: str, now: float) -> Tuple[bool, str]:
        """(ok, reason) for ``device`` at our time ``now`` (s)."""
        with self._lock:
            sample, last_ok = self._latest.get(device), self._last_ok.get(device)
        if sample is None:
            return False, f"no {device} received (is the tool tracked and sent by the server?)"
        if not sample.ok:
            return False, f"{device} INVALID (marker not seen by the tracker)"
        age = now - (last_ok if last_ok is not None else sample.received)
        if age > self.stale_after_s:
            return False, f"{device} stale: no update for {age * 1e3:.0f} ms"
        return True, f"{device} OK"

    def near(self, timestamp: float, tolerance_s: float, exclude=()) -> Dict[str, Tuple[np.ndarray, bool]]:
        """{device: (4x4, ok)} of the samples stamped within ``tolerance_s`` of ``timestamp``."""
        with self._lock:
            return {d: (s.matrix, s.ok) for d, s in self._latest.items()
                    if d not in exclude and abs(s.timestamp - timestamp) <= tolerance_s}
