"""An OpenIGTLink server that streams a recorded sweep the way PlusServer does.

Why not ``pyigtl.OpenIGTLinkServer``: it serves one client at a time, shares
one outgoing queue between clients, installs signal handlers (main thread
only) and its ``send_message(wait=True)`` blocks forever without a client.
This server accepts any number of clients, gives each a bounded queue (a slow
client loses its oldest frames, counted, and never slows the others or the
producer), reads and validates what clients send (garbage, wrong CRC or an
absurd BODY_SIZE closes only that client, with a log line), and never blocks
the caller. pyigtl still packs every message (see ``igtl_protocol``).

Devices, like PlusServer with ``EmbeddedTransformToFrame="Reference"``:
IMAGE ``Image_Reference`` (ijk_to_world = image_to_reference, pixels -> mm),
TRANSFORM ``ProbeToReference`` (and ``ImageToReference``), each with
``TransformStatus`` metadata (OK / INVALID), one STATUS per second. Tracked
tools of the sweep (a needle or stylus: ``NeedleToReference``, composed from
``NeedleToTracker`` and ``ReferenceToTracker`` when needed) go out as
TRANSFORM ``<Tool>ToReference`` with every frame, as do extra per-frame
transforms (a simulated needle) and static ones (``NeedleTipToNeedle``, as a
PlusServer configured to send its calibration does).
"""
from __future__ import annotations

import collections
import logging
import select
import socket
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import invert
from registration.tracking.needle_tool import tool_to_reference, tracked_tools

from .igtl_protocol import ProtocolError, SkippedMessage, StreamParser, image_message, status_message, transform_message

log = logging.getLogger(__name__)

PLUS_PORT = 18944


class _Client:
    def __init__(self, sock: socket.socket, addr, max_queue: int):
        self.sock = sock
        self.addr = addr
        self.queue: "collections.deque[bytes]" = collections.deque()
        self.max_queue = max_queue
        self.dropped = 0
        self.parser = StreamParser()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.alive = True


class IgtlServer:
    """Broadcast packed messages to every connected client; never blocks the caller."""

    def __init__(self, host: str = "127.0.0.1", port: int = PLUS_PORT, *, max_queue: int = 90):
        self.host = host
        self.max_queue = max_queue
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror})",
                             fix="choose another --port or stop the program using it") from None
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        self._clients: List[_Client] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.events: "collections.deque[str]" = collections.deque(maxlen=200)  # for tests and logs
        self._accept_thread = threading.Thread(target=self._accept_loop, name="igtl-accept", daemon=True)
        self._accept_thread.start()

    # ------------------------------------------------------------------ clients
    @property
    def n_clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def _event(self, text: str) -> None:
        self.events.append(text)
        log.info(text)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([self._sock], [], [], 0.1)
            except (OSError, ValueError):  # closed by close() while waiting
                return
            if not r:
                continue
            try:
                sock, addr = self._sock.accept()
            except OSError:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c = _Client(sock, addr, self.max_queue)
            with self._lock:
                self._clients.append(c)
            self._event(f"client {addr[0]}:{addr[1]} connected")
            threading.Thread(target=self._client_loop, args=(c,), name=f"igtl-client-{addr[1]}",
                             daemon=True).start()

    def _client_loop(self, c: _Client) -> None:
        reason = "closed"
        try:
            while not self._stop.is_set() and c.alive:
                with c.lock:
                    pending = c.queue.popleft() if c.queue else None
                if pending is not None:
                    c.sock.settimeout(2.0)
                    c.sock.sendall(pending)
                    continue
                r, _, _ = select.select([c.sock], [], [], 0.02)
                if r:
                    data = c.sock.recv(65536)
                    if not data:
                        reason = "client closed the connection"
                        break
                    for m in c.parser.feed(data):
                        if isinstance(m, SkippedMessage):
                            self._event(f"client {c.addr[1]}: skipped {m.message_type} '{m.device_name}': {m.reason}")
                else:
                    c.wake.wait(0.02)
                    c.wake.clear()
        except ProtocolError as exc:
            reason = f"protocol error, connection closed: {exc}"
        except (OSError, socket.timeout) as exc:
            reason = f"socket error: {exc}"
        finally:
            c.alive = False
            with self._lock:
                if c in self._clients:
                    self._clients.remove(c)
            try:
                c.sock.close()
            except OSError:
                pass
            self._event(f"client {c.addr[0]}:{c.addr[1]} disconnected ({reason}; {c.dropped} messages dropped)")

    def broadcast(self, data: bytes) -> int:
        """Queue ``data`` for every client; returns the number of clients. Never blocks."""
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            with c.lock:
                if len(c.queue) >= c.max_queue:
                    c.queue.popleft()
                    c.dropped += 1
                c.queue.append(data)
            c.wake.set()
        return len(clients)

    def close(self) -> None:
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        with self._lock:
            clients = list(self._clients)
        for c in clients:
            c.alive = False
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._accept_thread.join(timeout=1.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SweepStreamer:
    """Streams a :class:`Sweep` through an :class:`IgtlServer` at a fixed rate or in real time.

    ``fps`` sets a fixed rate; ``fps=None`` replays at the recorded timestamps.
    Message timestamps are the send time (``time.time()``) so receivers can
    measure latency, like a live PlusServer. Runs in its own thread.

    ``extra_transforms`` {device: ([n, 4, 4], ok [n])} are sent with frame i
    (before its image), after the sweep's own tracked tools
    (``<Tool>ToReference``); ``static_transforms`` {device: 4x4} with every
    frame. ``stop_tools`` stops only those (a needle leaving the tracker's view).
    """

    def __init__(self, sweep: Sweep, server: IgtlServer, *, fps: Optional[float] = 30.0,
                 loop: bool = False, image_device: str = "Image_Reference",
                 probe_device: str = "ProbeToReference", clock: Callable[[], float] = time.monotonic,
                 extra_transforms: Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]] = None,
                 static_transforms: Optional[Dict[str, np.ndarray]] = None):
        if not sweep.has_images:
            raise InputError("the sweep has no images (tracker-only sequence)", path=sweep.source,
                             fix="replay a sequence that contains ultrasound frames")
        self.sweep = sweep
        self.server = server
        self.fps = fps
        self.loop = loop
        self.image_device = image_device
        self.probe_device = probe_device
        self.clock = clock
        self.image_to_reference, self.valid = sweep.require_image_to_reference()
        itp = sweep.image_to_probe
        self.image_to_probe = itp
        self.tools: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        for tool in tracked_tools(sweep):
            mats, ok = tool_to_reference(sweep, tool)
            self.tools[f"{tool}To{sweep.reference_frame}"] = (np.where(ok[:, None, None], mats, np.eye(4)), ok)
        for device, (mats, ok) in (extra_transforms or {}).items():
            mats, ok = np.asarray(mats, float), np.asarray(ok, bool).reshape(-1)
            if mats.shape != (len(sweep), 4, 4) or ok.shape != (len(sweep),):
                raise InputError(f"{device}: {mats.shape[0] if mats.ndim == 3 else '?'} poses for "
                                 f"{len(sweep)} frames", fix="give one pose per frame of the sweep")
            self.tools[device] = (mats, ok)
        self.static_transforms = {k: np.asarray(v, float) for k, v in (static_transforms or {}).items()}
        self.sent_frames = 0
        self.stop_transforms = threading.Event()  # tests: keep images, stop tracking
        self.stop_tools = threading.Event()       # keep images and probe tracking, stop tools
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "SweepStreamer":
        self._thread = threading.Thread(target=self.run, name="igtl-replay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _due_times(self) -> np.ndarray:
        n = len(self.sweep)
        if self.fps:
            return np.arange(n) / float(self.fps)
        t = self.sweep.timestamps - self.sweep.timestamps[0]
        return np.maximum.accumulate(t)

    def messages_for(self, i: int, now: float) -> List[bytes]:
        ok = bool(self.valid[i])
        i2r = self.image_to_reference[i] if ok else np.diag([1.0, 1.0, 1.0, 1.0])
        out = []
        if not self.stop_transforms.is_set():
            if self.image_to_probe is not None:
                p2r = i2r @ invert(self.image_to_probe) if ok else np.eye(4)
                out.append(transform_message(p2r, now, self.probe_device, ok))
            out.append(transform_message(i2r, now, "ImageToReference", ok))
            if not self.stop_tools.is_set():
                for device, m in self.static_transforms.items():  # calibration before the poses
                    out.append(transform_message(m, now, device, True))
                for device, (mats, tool_ok) in self.tools.items():
                    out.append(transform_message(mats[i], now, device, bool(tool_ok[i])))
        out.append(image_message(self.sweep.frames[i], i2r, now, self.image_device,
                                 ok and not self.stop_transforms.is_set()))
        return out

    def run(self) -> None:
        due = self._due_times()
        period_end = (due[-1] + (1.0 / self.fps if self.fps else 0.05))
        t0 = self.clock()
        last_status = -1.0
        while not self._stop.is_set():
            for i in range(len(self.sweep)):
                while not self._stop.is_set():
                    wait = t0 + due[i] - self.clock()
                    if wait <= 0:
                        break
                    time.sleep(min(wait, 0.005))
                if self._stop.is_set():
                    return
                now = time.time()
                for msg in self.messages_for(i, now):
                    self.server.broadcast(msg)
                if now - last_status >= 1.0:
                    self.server.broadcast(status_message(True, "Server", "replaying", now))
                    last_status = now
                self.sent_frames += 1
            if not self.loop:
                return
            t0 += period_end
