"""OpenIGTLink client for PlusServer (or ``ctus replay``): live tracked frames.

Receives IMAGE messages with their ``ijk_to_world`` (PlusServer's
``Image_Reference``: image pixels -> Reference mm), or plain images paired by
timestamp with a TRANSFORM such as ``ProbeToReference`` and the probe
calibration ``image_to_probe``. Runs in its own thread and never blocks the
caller: ``latest()`` is the newest frame (the display's "newest wins"),
``drain()`` returns every frame since the last call (the recorder's "lose
nothing", bounded at ``max_backlog``).

Tracking watchdog: tracking is *stale* when no valid transform update arrived
for ``stale_after_s`` (default 0.2 s), *invalid* when the latest transform
says ``TransformStatus`` INVALID or a STATUS message is not OK. The overlay
must be off in both cases; :meth:`tracking` says why.

Tracked tools (a needle: ``NeedleToReference``; static ones such as
``NeedleTipToNeedle``): every TRANSFORM is kept per device
(:mod:`.tool_transforms`), handed to ``on_transform`` as it arrives (the
guidance's low-lag path) and attached to each image frame
(``LiveFrame.transforms``, for the recorder) when within
``pair_tolerance_s`` of it; ``tool_tracking(device)`` says whether a tool is
usable (missing, INVALID, or stale after ``stale_after_s``).

Latency is receipt time minus the sender's timestamp: meaningful on loopback
or with synchronised clocks (PlusServer stamps with its system clock).

Why not ``pyigtl.OpenIGTLinkClient``: it keeps only the latest message per
device (frames are overwritten), does not notice a server that closed the
connection until it sends, and does not check CRCs.
"""
from __future__ import annotations

import collections
import logging
import select
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Tuple

import numpy as np
from pyigtl.messages import ImageMessage, TransformMessage

from .igtl_protocol import ProtocolError, SkippedMessage, StatusMessage, StreamParser, transform_status
from .tool_transforms import ToolTable, TransformSample

log = logging.getLogger(__name__)


@dataclass
class LiveFrame:
    index: int                              # running number since the client started
    image: np.ndarray                       # uint8 [rows, cols]
    timestamp: float                        # sender's time stamp (s since epoch)
    received: float                         # our time.time() at receipt
    image_to_reference: Optional[np.ndarray]  # 4x4, None when tracking was not valid
    tracking_ok: bool
    reason: str = ""                        # why tracking is not OK for this frame
    transforms: dict = field(default_factory=dict)  # device -> (4x4, ok) at pairing time

    @property
    def latency_ms(self) -> float:
        return (self.received - self.timestamp) * 1e3


class LiveClient:
    def __init__(self, host: str = "127.0.0.1", port: int = 18944, *,
                 image_device: str = "Image_Reference", transform_device: Optional[str] = None,
                 image_to_probe: Optional[np.ndarray] = None, stale_after_s: float = 0.2,
                 pair_tolerance_s: float = 0.1, reconnect: bool = True,
                 max_backoff_s: float = 2.0, max_reconnect_attempts: Optional[int] = None,
                 connect_timeout_s: float = 1.0, max_backlog: int = 10000,
                 on_frame: Optional[Callable[[LiveFrame], None]] = None,
                 on_transform: Optional[Callable[[TransformSample], None]] = None):
        if transform_device and image_to_probe is None:
            raise ValueError("pairing images with a TRANSFORM needs image_to_probe (the calibration)")
        self.host, self.port = host, int(port)
        self.image_device = image_device
        self.transform_device = transform_device
        self.image_to_probe = None if image_to_probe is None else np.asarray(image_to_probe, float)
        self.stale_after_s = stale_after_s
        self.pair_tolerance_s = pair_tolerance_s
        self.reconnect = reconnect
        self.max_backoff_s = max_backoff_s
        self.max_reconnect_attempts = max_reconnect_attempts
        self.connect_timeout_s = connect_timeout_s
        self.on_frame = on_frame
        self.on_transform = on_transform
        self.tools = ToolTable(stale_after_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._latest: Optional[LiveFrame] = None
        self._backlog: Deque[LiveFrame] = collections.deque(maxlen=max_backlog)
        self._transforms: Deque[Tuple[float, float, np.ndarray, bool]] = collections.deque(maxlen=200)
        self._last_valid_update: Optional[float] = None   # our clock, last OK tracking update
        self._last_tracking_ok = True
        self._last_status: Optional[StatusMessage] = None
        self._latencies: Deque[float] = collections.deque(maxlen=300)
        self._arrivals: Deque[float] = collections.deque(maxlen=300)
        self.state = "stopped"
        self.state_text = "not started"
        self.frames_received = 0
        self.frames_dropped_backlog = 0
        self.reconnects = 0
        self.skipped = 0
        self.events: Deque[str] = collections.deque(maxlen=200)

    # ------------------------------------------------------------------ control
    def start(self) -> "LiveClient":
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._set_state("connecting", f"connecting to {self.host}:{self.port}")
        self._thread = threading.Thread(target=self._run, name="igtl-client", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._set_state("stopped", "stopped by the user")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    def _set_state(self, state: str, text: str) -> None:
        if state != self.state or text != self.state_text:
            self.events.append(f"{state}: {text}")
            log.info("igtl client %s: %s", state, text)
        self.state, self.state_text = state, text

    # ------------------------------------------------------------------ data access
    def latest(self) -> Optional[LiveFrame]:
        with self._lock:
            return self._latest

    def drain(self) -> List[LiveFrame]:
        with self._lock:
            out = list(self._backlog)
            self._backlog.clear()
        return out

    def tracking(self, now: Optional[float] = None) -> Tuple[bool, str]:
        """(ok, reason) right now; the overlay must be off unless ok."""
        now = time.time() if now is None else now
        with self._lock:
            last, ok, status = self._last_valid_update, self._last_tracking_ok, self._last_status
        if self.state != "connected":
            return False, f"not connected ({self.state_text})"
        if status is not None and not status.ok:
            return False, f"tracker status {status.error_name or status.code}: {status.status_string}".strip()
        if not ok:
            return False, "tracking INVALID (probe or reference marker not seen)"
        if last is None:
            return False, "no tracking received yet"
        age = now - last
        if age > self.stale_after_s:
            return False, f"tracking stale: no update for {age * 1e3:.0f} ms"
        return True, "tracking OK"

    def latest_transform(self, device: str) -> Optional[TransformSample]:
        return self.tools.latest(device)

    def tool_tracking(self, device: str, now: Optional[float] = None) -> Tuple[bool, str]:
        """(ok, reason) for a tracked tool's TRANSFORM right now: missing, INVALID or stale."""
        if self.state != "connected":
            return False, f"not connected ({self.state_text})"
        return self.tools.status(device, time.time() if now is None else now)

    def stats(self) -> dict:
        with self._lock:
            lat = list(self._latencies)
            arr = list(self._arrivals)
        fps = (len(arr) - 1) / (arr[-1] - arr[0]) if len(arr) > 2 and arr[-1] > arr[0] else 0.0
        return {"state": self.state, "state_text": self.state_text, "frames": self.frames_received,
                "fps": fps, "latency_ms_median": statistics.median(lat) if lat else None,
                "latency_ms_max": max(lat) if lat else None, "reconnects": self.reconnects,
                "skipped_messages": self.skipped, "backlog_dropped": self.frames_dropped_backlog}

    # ------------------------------------------------------------------ thread
    def _run(self) -> None:
        attempt = 0
        backoff = 0.1
        while not self._stop.is_set():
            sock = None
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if attempt > 0:
                    self.reconnects += 1
                attempt, backoff = 0, 0.1
                self._set_state("connected", f"connected to {self.host}:{self.port}")
                reason = self._receive(sock)
                self._set_state("disconnected", reason)
            except ConnectionRefusedError:
                self._set_state("disconnected", f"connection refused by {self.host}:{self.port} "
                                                "(is PlusServer or ctus replay running?)")
            except (socket.timeout, TimeoutError):
                self._set_state("disconnected", f"no answer from {self.host}:{self.port} within "
                                                f"{self.connect_timeout_s:.1f} s")
            except OSError as exc:
                self._set_state("disconnected", f"{self.host}:{self.port}: {exc.strerror or exc}")
            finally:
                if sock is not None:
                    sock.close()
            if self._stop.is_set() or not self.reconnect:
                break
            attempt += 1
            if self.max_reconnect_attempts is not None and attempt > self.max_reconnect_attempts:
                self._set_state("disconnected", self.state_text + f"; gave up after {attempt - 1} retries")
                break
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff_s)
            if not self._stop.is_set():
                self._set_state("connecting", f"reconnecting to {self.host}:{self.port} (attempt {attempt})")

    def _receive(self, sock: socket.socket) -> str:
        parser = StreamParser()
        while not self._stop.is_set():
            r, _, _ = select.select([sock], [], [], 0.05)
            if not r:
                continue
            try:
                data = sock.recv(1 << 20)
            except OSError as exc:
                return f"connection lost ({exc.strerror or exc})"
            if not data:
                return "server closed the connection"
            try:
                messages = parser.feed(data)
            except ProtocolError as exc:
                return f"protocol error from server, reconnecting: {exc}"
            for m in messages:
                self._handle(m)
        return "stopped"

    def _handle(self, m) -> None:
        now = time.time()
        if isinstance(m, SkippedMessage):
            self.skipped += 1
            self.events.append(f"skipped {m.message_type} '{m.device_name}': {m.reason}")
            log.warning("igtl client skipped %s '%s': %s", m.message_type, m.device_name, m.reason)
            return
        if isinstance(m, StatusMessage):
            with self._lock:
                self._last_status = m
            return
        if isinstance(m, TransformMessage):
            ok = transform_status(m) and bool(np.all(np.isfinite(m.matrix)))
            sample = TransformSample(m.device_name, np.asarray(m.matrix, float), ok, float(m.timestamp), now)
            self.tools.add(sample)
            if self.on_transform is not None:
                self.on_transform(sample)
            if m.device_name == self.transform_device:
                with self._lock:
                    self._transforms.append((m.timestamp, now, np.asarray(m.matrix, float), ok))
                    self._last_tracking_ok = ok
                    if ok:
                        self._last_valid_update = now
            return
        if isinstance(m, ImageMessage) and m.device_name == self.image_device:
            self._handle_image(m, now)

    def _handle_image(self, m: ImageMessage, now: float) -> None:
        img = np.asarray(m.image)
        if img.ndim == 4:  # RGB(A): grey by luminance
            img = (img[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
        frame_img = img[0] if img.ndim == 3 else img
        i2r, ok, reason = None, False, ""
        if self.transform_device is None:
            ok = transform_status(m)
            if ok:
                i2r = np.asarray(m.ijk_to_world_matrix, float)
                with self._lock:
                    self._last_valid_update = now
                    self._last_tracking_ok = True
            else:
                reason = "tracking INVALID on this frame"
                with self._lock:
                    self._last_tracking_ok = False
        else:
            with self._lock:
                candidates = list(self._transforms)
            if not candidates:
                reason = f"no {self.transform_device} received yet"
            else:
                t, _, mat, tok = min(candidates, key=lambda c: abs(c[0] - m.timestamp))
                if abs(t - m.timestamp) > self.pair_tolerance_s:
                    reason = f"no {self.transform_device} within {self.pair_tolerance_s * 1e3:.0f} ms of the image"
                elif not tok:
                    reason = f"{self.transform_device} INVALID for this frame"
                else:
                    ok, i2r = True, mat @ self.image_to_probe
        if ok:
            track_ok, why = self.tracking(now)
            if not track_ok:
                ok, i2r, reason = False, None, why
        tools = self.tools.near(m.timestamp, self.pair_tolerance_s, (self.transform_device, "ImageToReference"))
        with self._lock:
            frame = LiveFrame(self.frames_received, frame_img, float(m.timestamp), now, i2r, ok, reason, tools)
            self.frames_received += 1
            self._latest = frame
            if len(self._backlog) == self._backlog.maxlen:
                self.frames_dropped_backlog += 1
            self._backlog.append(frame)
            self._latencies.append(frame.latency_ms)
            self._arrivals.append(now)
        if self.on_frame is not None:
            self.on_frame(frame)
