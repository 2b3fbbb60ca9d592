"""Guidance states from a live OpenIGTLink stream or a recorded sequence, one per tracked frame.

Live (:class:`GuidanceFeed`, used by :class:`LiveGuidance` here and by the GUI's
own client): a ``LiveClient`` hands every TRANSFORM to the feed
on its receiver thread as it arrives; a ``<Tool>ToReference`` sample is
turned into a state at once (no polling: the lag from arrival to state is
the compute time) and queued; an image frame while the needle is missing or
stale queues a hidden state saying why; the frame's ``image_to_reference``
gives the needle's offset from the image plane. A ``<Tool>TipTo<Tool>``
TRANSFORM from the server (PlusServer can send its calibration; ``ctus
replay --needle-path`` does) is used as the needle calibration when none was
given.

Recorded (:func:`sweep_states`): ``<Tool>ToReference`` per frame
(``registration.tracking.needle_tool.tool_to_reference``), time stamps from
the file; staleness is judged on those time stamps.
"""
from __future__ import annotations

import json
import queue
import time
from typing import Callable, Iterator, Optional

import numpy as np

from registration.live.igtl_client import LiveClient, LiveFrame
from registration.live.tool_transforms import TransformSample
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.tracking.needle_tool import NeedleCalibration, tool_to_reference

from .guidance_state import GuidanceState
from .needle_guide import NeedleGuide


def missing_calibration_error(tool: str, source: Optional[str] = None) -> InputError:
    """The error when no needle calibration is known: names each way to supply one."""
    return InputError(f"no {tool} calibration (tip offset and shaft axis in the {tool} frame)", path=source,
                      fix=f"pass --calibration PLUS_CONFIG.xml with <Transform From=\"{tool}Tip\" To=\"{tool}\" "
                          f"Matrix=\"...\"/>, or --pivot-recording SEQ.mha (the {tool} pivoting about its tip), "
                          f"or have the server send {tool}TipTo{tool}")


def write_state(state: GuidanceState, out, *, as_json: bool, live: bool = True) -> Optional[float]:
    """Write one guidance line; live: returns the lag (ms) from the transform's arrival to the line."""
    lag = None
    if live:
        lag = (time.time() - state.received) * 1e3
        state = state.with_lag(lag)
    out.write((json.dumps(state.to_json()) if as_json else state.line()) + "\n")
    out.flush()
    return lag


class GuidanceFeed:
    """Turns a live link's TRANSFORMs and image frames into :class:`GuidanceState` objects, handed to ``put``.

    No socket of its own: ``on_transform`` and ``on_frame`` are a ``LiveClient``'s
    callbacks (its receiver thread), so ``ctus guide`` (:class:`LiveGuidance`) and the
    GUI (which already has a client for the images) share one rule. ``tool_tracking``
    is the client's ``tool_tracking(device, now)`` (why a tool is missing or stale).
    """

    def __init__(self, guide: NeedleGuide, put: Callable[[GuidanceState], None],
                 tool_tracking: Callable[[str, float], tuple], *, tool: str = "Needle",
                 reference: str = "Reference", needle_axis: str = "auto", calibration_wait_s: float = 2.0):
        self.guide = guide
        self.put = put
        self.tool_tracking = tool_tracking
        self.tool = tool
        self.device = f"{tool}To{reference}"
        self.calibration_device = f"{tool}TipTo{tool}"
        self.needle_axis = needle_axis
        self.calibration_wait_s = calibration_wait_s
        self._frame: Optional[LiveFrame] = None
        self._first_needle: Optional[float] = None
        self._last_needle: Optional[float] = None
        self.calibration_error: Optional[InputError] = None

    def on_transform(self, s: TransformSample) -> None:
        if s.device == self.calibration_device and s.ok and self.guide.calibration is None:
            self.guide.calibration = NeedleCalibration.from_tip_to_tool(
                s.matrix, axis=self.needle_axis, tool=self.tool, source=f"{self.calibration_device} from the server")
            return
        if s.device != self.device:
            return
        self._first_needle = s.received if self._first_needle is None else self._first_needle
        self._last_needle = s.received
        if self.guide.calibration is None and s.received - self._first_needle > self.calibration_wait_s:
            self.calibration_error = missing_calibration_error(self.tool)
        frame = self._frame
        i2r = shape = None
        if frame is not None and frame.image_to_reference is not None \
                and abs(frame.timestamp - s.timestamp) <= self.guide.stale_after_s:
            i2r, shape = frame.image_to_reference, frame.image.shape
        self.put(self.guide.update(s.matrix, ok=s.ok, timestamp=s.timestamp, received=s.received,
                                   image_to_reference=i2r, image_shape=shape, device=self.device))

    def on_frame(self, frame: LiveFrame) -> None:
        self._frame = frame
        if self._last_needle is None or frame.received - self._last_needle > self.guide.stale_after_s:
            ok, why = self.tool_tracking(self.device, frame.received)
            self.put(self.guide.missing(timestamp=frame.timestamp, received=frame.received, reason=why))


class LiveGuidance:
    """Needle guidance on a live stream: ``states()`` yields one :class:`GuidanceState` per tracked frame."""

    def __init__(self, guide: NeedleGuide, host: str, port: int, *, tool: str = "Needle",
                 reference: str = "Reference", needle_axis: str = "auto", calibration_wait_s: float = 2.0,
                 **client_options):
        self.guide = guide
        self._queue: "queue.Queue[GuidanceState]" = queue.Queue(maxsize=1000)
        self._ever_connected = False
        self.feed = GuidanceFeed(guide, self._put, lambda device, now: self.client.tool_tracking(device, now),
                                 tool=tool, reference=reference, needle_axis=needle_axis,
                                 calibration_wait_s=calibration_wait_s)
        self.device = self.feed.device
        self.client = LiveClient(host, port, on_transform=self._on_transform, on_frame=self.feed.on_frame,
                                 stale_after_s=guide.stale_after_s, **client_options)

    @property
    def calibration_error(self) -> Optional[InputError]:
        return self.feed.calibration_error

    def start(self) -> "LiveGuidance":
        self.client.start()
        return self

    def stop(self) -> None:
        self.client.stop()

    def _put(self, state: GuidanceState) -> None:
        try:
            self._queue.put_nowait(state)
        except queue.Full:  # nobody reads: keep the newest
            try:
                self._queue.get_nowait()
            except queue.Empty:
                pass
            self._queue.put_nowait(state)

    def _on_transform(self, s: TransformSample) -> None:
        self._ever_connected = True
        self.feed.on_transform(s)

    def states(self, *, duration_s: Optional[float] = None, exit_on_disconnect: bool = False,
               idle_s: float = 1.0) -> Iterator[GuidanceState]:
        """Yield states as they come; a hidden state every ``idle_s`` while nothing arrives."""
        t_end = None if duration_s is None else time.monotonic() + duration_s
        while t_end is None or time.monotonic() < t_end:
            if self.calibration_error is not None:
                raise self.calibration_error
            try:
                yield self._queue.get(timeout=idle_s if t_end is None else min(idle_s, max(t_end - time.monotonic(), 0.0)))
                continue
            except queue.Empty:
                pass
            self._ever_connected |= self.client.connected
            if exit_on_disconnect and self._ever_connected and not self.client.connected:
                return
            now = time.time()
            ok, why = self.client.tool_tracking(self.device, now)
            yield self.guide.missing(timestamp=now, received=now, reason=why)


def sweep_states(sweep: Sweep, guide: NeedleGuide, *, tool: str = "Needle") -> Iterator[GuidanceState]:
    """One state per frame of a recorded sequence with ``<tool>ToReference`` (or via the Tracker)."""
    mats, ok = tool_to_reference(sweep, tool)
    i2r, valid = sweep.image_to_reference_all()
    shape = sweep.image_shape if sweep.has_images else None
    for i in range(len(sweep)):
        image = i2r[i] if valid[i] else None
        yield guide.update(mats[i] if ok[i] else np.full((4, 4), np.nan), ok=bool(ok[i]),
                           timestamp=float(sweep.timestamps[i]), received=float(sweep.timestamps[i]),
                           image_to_reference=image, image_shape=shape, device=f"{tool}To{sweep.reference_frame}")
