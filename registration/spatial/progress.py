"""Progress of long work in named stages, each with its share of the run time.

Long engine functions take ``progress(fraction, message) -> bool | None``
(fraction 0..1; returning False cancels: :class:`StagedProgress` then raises
:class:`~registration.spatial.errors.CancelledError`). A bare evaluation count
against an upper bound is not a truthful fraction: optimisers stop early, and
the work after them (error estimates, reports) counts nothing, so a bar sits at
99 % for half the run. Here the run is split into :class:`Stage` s whose
``weight`` is their measured share of the time; inside a stage the fraction
follows its own steps against their expected number, and never reaches the
stage's end before the stage is over. The reported fraction never decreases, and
the message names the stage ("stage 4 of 7: level 2 of 3 (120 of 300
evaluations)"), so a person sees what runs and how far it is.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

from .errors import CancelledError

#: ``progress(fraction 0..1, message)``; returning False cancels the work.
ProgressFn = Callable[[float, str], Optional[bool]]
#: Share of a stage its steps may fill before the stage ends (the rest comes at its end):
#: an optimiser's evaluation count is an upper bound, so the bar must not claim the stage done.
STEP_CAP = 0.95
#: Least time (s) between two step reports (stage changes are always reported).
MIN_REPORT_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Stage:
    """One stage: ``key`` (as in timings), ``label`` (shown to a person), ``weight`` (its
    share of the run time, any positive scale: shares are normalised over the stages run),
    ``steps``: the steps it is expected to count (0: one block of work)."""
    key: str
    label: str
    weight: float
    steps: int = 0


class StagedProgress:
    """Reports ``fn(fraction, message)`` over ``stages`` run in order.

    :meth:`begin` enters a stage (with the number of steps it expects, 0 for one
    block of work), :meth:`step` counts one step of it (any thread; only ``report_thread``
    reports, so a GUI callback is called from one thread), :meth:`done` reports 1.0.
    A stage not begun is skipped: its share goes to the next stage begun."""

    def __init__(self, fn: Optional[ProgressFn], stages: Sequence[Stage], *, unit: str = "evaluations",
                 name: str = "work", numbered: bool = True):
        """``unit``: what a step is (in the message); ``name``: the work, in the CancelledError;
        ``numbered``: messages start with "stage i of n: " (off when the labels count themselves)."""
        if not stages or any(s.weight <= 0 for s in stages):
            raise ValueError("at least one stage, and stage weights must be positive")
        self.fn, self.stages, self.unit, self.name, self.numbered = fn, list(stages), unit, name, numbered
        total = sum(s.weight for s in self.stages) or 1.0
        self._start: List[float] = []
        acc = 0.0
        for s in self.stages:
            self._start.append(acc / total)
            acc += s.weight
        self._share = [s.weight / total for s in self.stages]
        self.index = -1
        self.expected = 0
        self.count = 0
        self.last_fraction = 0.0
        self._last_report = 0.0
        self._lock = threading.Lock()
        self.report_thread = threading.current_thread()

    @property
    def stage(self) -> Optional[Stage]:
        return self.stages[self.index] if 0 <= self.index < len(self.stages) else None

    def begin(self, key: str, expected_steps: Optional[int] = None, detail: str = "") -> None:
        """Enter stage ``key`` (not earlier in the list than the current one) and report its
        start; ``expected_steps`` overrides the stage's ``steps``."""
        keys = [s.key for s in self.stages]
        if key not in keys:
            raise KeyError(f"unknown stage {key!r} (stages: {', '.join(keys)})")
        with self._lock:
            self.index = max(self.index, keys.index(key))
            steps = self.stages[self.index].steps if expected_steps is None else expected_steps
            self.expected, self.count = max(int(steps), 0), 0
        self._report(self._start[self.index], detail, force=True)

    def step(self, detail: str = "", report: Optional[bool] = None) -> None:
        """Count one step of the current stage; report (throttled) when on ``report_thread``
        (or when ``report`` says so)."""
        with self._lock:
            self.count += 1
            count, expected = self.count, self.expected
        if report is None:
            report = threading.current_thread() is self.report_thread
        if not report or self.index < 0:
            return
        inside = STEP_CAP * min(count / expected, 1.0) if expected else 0.0
        text = detail or (f"{count} of {expected} {self.unit}" if expected else "")
        self._report(self._start[self.index] + self._share[self.index] * inside, text)

    def add_steps(self, n: int) -> None:
        """The current stage expects ``n`` more steps than it was begun with (work found needed
        inside it); the reported fraction never goes back (``_report`` keeps the maximum)."""
        with self._lock:
            self.expected += max(int(n), 0)

    def report_fraction(self, fraction: float, message: str) -> None:
        """Report ``fraction`` (0-1) of this progress with ``message`` as it is, unthrottled: for
        stages that run side by side (lesions planned by two threads), where the caller knows
        the share of the work done better than the order of the stages does."""
        self._report(fraction, message, force=True, raw=True)

    def done(self, message: str = "done") -> None:
        self.index = len(self.stages)
        self._report(1.0, message, force=True, raw=True)

    def nested(self, key: str, stages: Sequence[Stage], **kwargs) -> "StagedProgress":
        """Begin stage ``key`` and return a progress over ``stages`` that fills it (stages known
        only once this one has started, e.g. one per lesion found)."""
        self.begin(key)
        lo, share = self._start[self.index], self._share[self.index]
        kwargs.setdefault("name", self.name)
        return StagedProgress(lambda f, m: self._report(lo + share * f, m, force=True, raw=True), stages, **kwargs)

    def message(self, detail: str = "") -> str:
        s = self.stage
        if s is None:
            return detail
        text = f"stage {self.index + 1} of {len(self.stages)}: {s.label}" if self.numbered else s.label
        return f"{text} - {detail}" if detail else text

    def _report(self, fraction: float, detail: str, force: bool = False, raw: bool = False) -> None:
        if self.fn is None:
            return
        now = time.perf_counter()
        if not force and now - self._last_report < MIN_REPORT_INTERVAL_S:
            return
        self._last_report = now
        self.last_fraction = max(self.last_fraction, min(float(fraction), 1.0))
        if self.fn(self.last_fraction, detail if raw else self.message(detail)) is False:
            raise CancelledError(f"{self.name} cancelled")
