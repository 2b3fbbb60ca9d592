"""Tracked-needle guidance in the GUI: one ``NeedleGuide``, fed by the live link or by the played sweep.

The numbers come from the engine only (``planner.guidance``): the set-up
(:func:`planner.guidance.needle_guide.guide_for_plan`, distance maps of the
risk structures, a few seconds) runs in a :class:`~gui.core.workers.Worker`;
live, the window's own ``LiveClient`` hands each TRANSFORM to a
:class:`planner.guidance.guidance_stream.GuidanceFeed` on its receiver thread,
which computes the :class:`~planner.guidance.guidance_state.GuidanceState`
there (about a millisecond) and passes it to the GUI thread through a queued
signal; a recorded sweep's states are computed once
(:func:`planner.guidance.guidance_stream.sweep_states`) and shown with the
player's frame. :attr:`NeedleGuidance.state_changed` carries the state to
show; a hidden state (needle missing, INVALID, stale > 200 ms, no
calibration) carries no numbers, only why, so nothing old is shown as current.

``lags_ms``: for each live state shown, our clock from the transform's arrival
to the moment every ``state_changed`` slot (the guidance panel) has run. When
the GUI thread is behind, the newest state is shown and older ones are
dropped (``skipped``), so the lag cannot grow into a backlog.
"""
from __future__ import annotations

import collections
import os
import threading
import time
from typing import Deque, List, Optional

from PyQt5.QtCore import QObject, QTimer, pyqtSignal

from planner.guidance.guidance_state import GuidanceState
from planner.guidance.guidance_stream import GuidanceFeed, sweep_states
from planner.guidance.needle_guide import NeedleGuide, guide_for_plan
from registration.spatial.errors import InputError
from registration.tracking.needle_tool import NeedleCalibration, calibration_in_sweep, tool_to_reference

from .workers import Worker

STALE_POLL_MS = 40      # how often the live state is checked for staleness (the watchdog is 200 ms)


def missing_calibration_text(tool: str = "Needle") -> str:
    """What to supply when no needle calibration is known (the GUI's words for the CLI's flags)."""
    return (f"no {tool} calibration (tip and shaft in the {tool} marker frame): open a PLUS config with "
            f"{tool}Tip -> {tool} (<Transform From=\"{tool}Tip\" To=\"{tool}\" Matrix=\"...\"/>) or a pivot "
            f"recording of the {tool} (Guidance > Needle calibration...), or have the server send "
            f"{tool}TipTo{tool}")


class NeedleGuidance(QObject):
    """Owns the guide and its feeds; emits the state to show. Lives on the GUI thread."""

    state_changed = pyqtSignal(object)       # GuidanceState to show now, or None (no guidance set up)
    setup_changed = pyqtSignal(str)          # what guidance is set up with, or what is missing
    _incoming = pyqtSignal(object)           # receiver thread -> GUI thread (queued)

    def __init__(self, parent=None, *, tool: str = "Needle", stale_poll_ms: int = STALE_POLL_MS):
        super().__init__(parent)
        self.tool = tool
        self.guide: Optional[NeedleGuide] = None
        self.user_calibration: Optional[NeedleCalibration] = None    # opened by the user
        self.state: Optional[GuidanceState] = None
        self.setup_text = "no guidance: open a plan"
        self.lags_ms: Deque[float] = collections.deque(maxlen=5000)
        self.recorded: Optional[List[GuidanceState]] = None
        self.recorded_text = ""
        self.live = None                      # the window's LiveController (gui.window.live)
        self.feed: Optional[GuidanceFeed] = None
        self.sweep = None
        self.frame_index = -1
        self._worker: Optional[Worker] = None
        self._states_worker: Optional[Worker] = None
        self._lock = threading.Lock()
        self._pending: Optional[GuidanceState] = None
        self._wake_sent = False
        self._described_calibration = None
        self.skipped = 0                      # live states superseded before the GUI thread showed them
        self._incoming.connect(self._on_incoming)
        self._timer = QTimer(self)
        self._timer.setInterval(stale_poll_ms)
        self._timer.timeout.connect(self._poll)

    # ------------------------------------------------------------ set-up
    @property
    def busy(self) -> bool:
        return self._worker is not None or self._states_worker is not None

    def start_setup(self, plan: dict, labels, reference_to_ct, *, lesion: Optional[str] = None,
                    trajectory: int = 1, plan_path=None, on_error=None) -> Worker:
        """Build the guide for ``lesion``'s ``trajectory`` of ``plan`` off the GUI thread.

        ``labels``: the LabelMap the plan was made with, or the path of its file (loaded in the
        worker, e.g. ``PLAN_DIR/labels.nrrd``).
        ``on_error(exception, traceback_text)`` (the window's error reporter) hears why a
        set-up failed (no such lesion, labels not covering the path); the set-up text says so too.
        """
        if reference_to_ct is None:
            raise InputError("guidance needs a registration (reference_to_ct) to put the needle in the CT",
                             fix="register the sweep (or open RESULT.json), or use a plan made with one")
        if self._worker is not None:
            self._worker.cancel()
        self.guide = None
        self.feed = None
        self._publish_setup("setting up guidance (distance maps of the risk structures)...")
        self._show(None)
        reason = missing_calibration_text(self.tool)

        def work():
            from registration.io.labelmap_io import load_labels
            label_map = load_labels(labels) if isinstance(labels, (str, os.PathLike)) else labels
            return guide_for_plan(plan, label_map, reference_to_ct, lesion=lesion, trajectory=trajectory,
                                  plan_path=plan_path, missing_calibration_reason=reason)

        w = Worker("Set up needle guidance", work, pass_progress=False)

        def failed(exc, tb):
            self._publish_setup(f"no guidance: set-up failed: {exc}")
            if on_error is not None:
                on_error(exc, tb)

        w.succeeded.connect(lambda guide, w=w: self._setup_done(guide) if w is self._worker else None)
        w.failed.connect(lambda exc, tb, w=w: failed(exc, tb) if w is self._worker else None)
        w.finished.connect(lambda w=w: setattr(self, "_worker", None) if w is self._worker else None)
        self._worker = w
        w.start()
        return w

    def _setup_done(self, guide: NeedleGuide) -> None:
        if self.user_calibration is not None:
            guide.calibration = self.user_calibration
        self.guide = guide
        self._new_feed()
        self._publish_setup()
        self.set_sweep(self.sweep)

    def set_calibration(self, calibration: Optional[NeedleCalibration]) -> None:
        """The needle calibration the user opened (replaces any other)."""
        self.user_calibration = calibration
        if self.guide is not None:
            self.guide.calibration = calibration
            self._new_feed()
        self._publish_setup()
        self.set_sweep(self.sweep)

    def set_reference_to_ct(self, reference_to_ct) -> None:
        """A new registration: the needle goes into the CT through it from now on."""
        if self.guide is not None and reference_to_ct is not None:
            self.guide.reference_to_ct = reference_to_ct
            self.set_sweep(self.sweep)

    def describe(self) -> str:
        g = self.guide
        if g is None:
            return self.setup_text
        p = g.path
        text = f"guiding to {p.lesion}, path {p.index} ({p.guidance or 'path'}, {p.length_mm:.0f} mm)"
        if not p.safe:
            text += "; PLANNED PATH UNSAFE (least-risk only)"
        if g.risk is not None:
            text += "; checking " + (", ".join(g.risk.names) or "no risk structure")
        cal = g.calibration
        text += "; needle calibration: " + (cal.source or "given") if cal is not None else \
            "; " + missing_calibration_text(self.tool)
        if self.recorded_text:
            text += "; " + self.recorded_text
        return text

    def _publish_setup(self, text: Optional[str] = None) -> None:
        self._described_calibration = None if self.guide is None else self.guide.calibration
        self.setup_text = text if text is not None else self.describe()
        self.setup_changed.emit(self.setup_text)

    # ------------------------------------------------------------ live
    def attach_live(self, live) -> None:
        """Listen to the window's LiveController (its client's TRANSFORMs and frames)."""
        self.live = live
        live.listeners.append(self)

    @property
    def live_active(self) -> bool:
        return self.live is not None and self.live.client is not None

    def _new_feed(self) -> None:
        client = self.live.client if self.live is not None else None
        if self.guide is None or client is None:
            self.feed = None
            return
        self.feed = GuidanceFeed(self.guide, self._put, client.tool_tracking, tool=self.tool)

    def _put(self, state: GuidanceState) -> None:      # receiver thread
        """Keep the newest state; wake the GUI thread once. When it is behind (painting frames),
        it shows the newest state, not a backlog of older ones (``skipped`` counts those)."""
        with self._lock:
            if self._pending is not None:
                self.skipped += 1
            self._pending = state
            wake = not self._wake_sent
            self._wake_sent = True
        if wake:
            self._incoming.emit(None)

    def live_started(self) -> None:
        self._new_feed()
        self._timer.start()

    def live_stopped(self) -> None:
        self.feed = None
        self._timer.stop()
        self.show_frame(self.frame_index)          # back to the recorded sweep's state (or none)

    def on_transform(self, sample) -> None:       # receiver thread
        feed = self.feed
        if feed is not None:
            feed.on_transform(sample)

    def on_frame(self, frame) -> None:             # receiver thread
        feed = self.feed
        if feed is not None:
            feed.on_frame(frame)

    def _on_incoming(self, _none=None) -> None:
        with self._lock:
            state, self._pending, self._wake_sent = self._pending, None, False
        if not self.live_active or self.feed is None or state is None:
            return
        if self.guide is not None and self.guide.calibration is not self._described_calibration:
            self._publish_setup()            # the server sent the calibration (NeedleTipToNeedle)
        self._show(state)
        if state.valid:
            self.lags_ms.append((time.time() - state.received) * 1e3)

    def _poll(self) -> None:
        """Live: hide the needle once no transform came for 200 ms, and say a missing calibration."""
        feed, guide = self.feed, self.guide
        if feed is None or guide is None:
            return
        if feed.calibration_error is not None and guide.calibration is None \
                and missing_calibration_text(self.tool) not in self.setup_text:
            self._publish_setup()
        current = guide.current()
        if current is not None and current is not self.state and current.stale:
            self._show(current)

    # ------------------------------------------------------------ recorded sweep
    def set_sweep(self, sweep) -> None:
        """The window's sweep: when it carries ``<Tool>ToReference``, its states per frame (worker)."""
        self.sweep = sweep
        self.recorded = None
        self.recorded_text = ""
        self._states_worker = None          # a running one's result is dropped
        if sweep is None or self.guide is None:
            if self.guide is not None:
                self._publish_setup()
            return
        try:
            tool_to_reference(sweep, self.tool)
        except InputError:
            self.recorded_text = f"the sweep has no {self.tool}ToReference (needle shown live only)"
            self._publish_setup()
            return
        g = self.guide
        cal = g.calibration or calibration_in_sweep(sweep, tool=self.tool)
        if cal is None:
            self.recorded_text = "the sweep's needle needs a calibration"
            self._publish_setup()
            return
        # Its own guide (shares the distance maps): the live guide's clock and last state stay untouched.
        replay = NeedleGuide(g.path, g.risk, g.reference_to_ct, cal, stale_after_s=g.stale_after_s, step_mm=g.step_mm)
        w = Worker("Needle of the recorded sweep", lambda: list(sweep_states(sweep, replay, tool=self.tool)),
                   pass_progress=False)
        w.succeeded.connect(lambda states, w=w: self._recorded_done(states) if w is self._states_worker else None)
        w.failed.connect(lambda exc, tb, w=w: self._recorded_failed(exc) if w is self._states_worker else None)
        w.finished.connect(lambda w=w: setattr(self, "_states_worker", None) if w is self._states_worker else None)
        self._states_worker = w
        w.start()

    def _recorded_done(self, states) -> None:
        self.recorded = states
        n = sum(s.valid for s in states)
        self.recorded_text = f"recorded needle in {n} of {len(states)} frames of the sweep"
        self._publish_setup()
        self.show_frame(self.frame_index)

    def _recorded_failed(self, exc) -> None:
        self.recorded_text = f"the sweep's needle could not be used: {exc}"
        self._publish_setup()

    def wait(self, timeout_ms: int = 60000) -> None:
        for w in (self._worker, self._states_worker):
            if w is not None:
                w.wait(timeout_ms)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Window closing: stop the poll and let running set-ups end (a QThread must not outlive it)."""
        self._timer.stop()
        self.feed = None
        for w in (self._worker, self._states_worker):
            if w is not None:
                w.cancel()
        self.wait(timeout_ms)

    def show_frame(self, index: int) -> None:
        """The player shows frame ``index`` of the sweep: its recorded needle (not while live)."""
        self.frame_index = int(index)
        if self.live_active:
            return
        rec = self.recorded
        self._show(rec[index] if rec is not None and 0 <= index < len(rec) else None)

    # ------------------------------------------------------------ out
    def _show(self, state: Optional[GuidanceState]) -> None:
        self.state = state
        self.state_changed.emit(state)
