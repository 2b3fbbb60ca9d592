"""'Refine near this lesion': the target-focused refinement of the registration panel.

Under organ deformation no rigid pose fits the whole sweep; one fits the region
around a lesion better. The button runs
:func:`registration.align.focus.refine_near_target` in the window's worker (the
panel's progress bar and Cancel) on the automatic result shown (the candidate
waiting for Accept, else the accepted / loaded one) for the lesion chosen in
"Error at". The focused result is kept beside that result, never instead of it:
for a candidate it goes into the RESULT document on Accept, for an accepted one at
once, as ``focused_targets[lesion]``
(:func:`registration.align.result_document.focused_entry`); the planner then uses
that lesion's focused error (:meth:`ResultRecord.tre_at`), the other lesions keep
the whole-sweep one. A line under the verdict says the focused error at the lesion
next to the whole-sweep one.
"""
from __future__ import annotations

import time
from typing import Dict

import numpy as np
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QPushButton, QSizePolicy

from gui.core.session import RegistrationState
from gui.core.verdict_text import VERDICT_COLOURS, RunFacts, mm_text, target_verdict
from registration.align.assessment import Assessment, TargetEstimate
from registration.align.result_document import entry_dispute_mm, focused_entry, raised_tre_mm
from registration.align.uncertainty import RADIUS_95_PER_RMS
from registration.spatial.errors import InputError


class FocusRefineMixin:
    """Methods of :class:`.registration_panel.RegistrationPanel` for the focused refinement (uses
    the panel's ``window``, ``targets``, ``candidate``, ``worker``, ``progress``, ``target()``,
    ``has_automatic_result()``, ``_on_progress`` and ``_update_buttons()``)."""

    def _build_focus(self) -> None:
        self.candidate_focus: Dict[str, object] = {}    # lesion -> focused result of the candidate
        self.focus_button = QPushButton("Refine near this lesion")
        self.focus_button.setObjectName("refine_focus")
        self.focus_button.clicked.connect(self.refine_focus)
        self.focus_text = QLabel("")
        self.focus_text.setObjectName("focus_result")
        self.focus_text.setWordWrap(True)
        self.focus_text.setTextFormat(Qt.RichText)
        self.focus_text.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)

    def focus_blocker(self) -> str:
        """Why "Refine near this lesion" cannot run now ("" when it can)."""
        w = self.window
        if self.worker is not None:
            return "a refinement is running"
        if w.ct is None or w.sweep is None:
            return "needs a CT and a tracked sweep (File > Open)"
        if not self.has_automatic_result():
            return "needs an automatic result first (Refine automatically)"
        name, point, _ = self.target()
        if point is None or name not in self.targets or self.targets[name].get("radius_mm") is None:
            return "choose a lesion in 'Error at'"
        return ""

    def _update_focus_button(self) -> None:
        why = self.focus_blocker()
        self.focus_button.setEnabled(not why)
        name = self.target()[0]
        self.focus_button.setText(f"Refine near {name}" if not why else "Refine near this lesion")
        self.focus_button.setToolTip(
            f"register again on the part of the sweep within 30 mm of {name} (locally rigid holds where the "
            "whole liver moved): its error there, used by the plan for this lesion" if not why
            else f"Refine near this lesion: {why}")

    def _focus_base(self):
        """The whole-sweep result to refine: the candidate, else one rebuilt from the window's RESULT."""
        if self.candidate is not None:
            return self.candidate
        from registration.align.registration_result import RegistrationResult
        reg = self.window.registration
        raw = reg.raw or {}
        a = Assessment.from_dict(raw["uncertainty"], reg.source)
        center = raw.get("center_ct") or self.target()[1]
        return RegistrationResult(reg.reference_to_ct, str(raw.get("method") or "lc2"), 0.0, 0.0, 0, 0.0,
                                  np.asarray(center, float), uncertainty=a, breathing=raw.get("breathing"))

    def refine_focus(self) -> None:
        why = self.focus_blocker()
        if why:
            self.focus_text.setText(f"Refine near this lesion: {why}.")
            return
        w = self.window
        name, point, radius = self.target()
        ct, sweep, base, targets = w.ct, w.sweep, self._focus_base(), dict(self.targets)
        on_candidate = self.candidate is not None

        def work(progress):
            from registration.align.focus import refine_near_target
            return refine_near_target(ct, sweep, base, name, point, radius_target_mm=radius, targets=targets,
                                      progress=progress)

        def connect(worker):
            worker.progress.connect(self._on_progress)
            worker.failed.connect(self._focus_failed)
            worker.finished.connect(self._worker_finished)
        self.progress.setValue(0)
        self.progress.show()
        self._started_at = time.monotonic()
        self.progress_text.setText(f"refining near {name}...")
        self.worker = w.run_worker(f"Refine near {name}", work, lambda f: self._focus_done(f, on_candidate),
                                   before_start=connect)
        self._update_buttons()

    def _focus_failed(self, exc, tb) -> None:
        from registration.spatial.errors import CancelledError
        text = "cancelled; nothing changed" if isinstance(exc, CancelledError) else f"failed: {exc}"
        self.focus_text.setText(f"Refine near this lesion {text}.")
        self.progress_text.setText("cancelled" if isinstance(exc, CancelledError) else "failed")

    def _focus_done(self, focused, on_candidate: bool) -> None:
        name = focused.uncertainty.focus["name"]
        self.progress.setValue(100)
        self.progress_text.setText(f"refined near {name} in {focused.wall_time_s:.0f} s")
        if on_candidate and self.candidate is not None:
            self.candidate_focus[name] = focused
        elif self.window.registration is not None:
            reg = self.window.registration
            raw = dict(reg.raw or {})
            raw["focused_targets"] = dict(raw.get("focused_targets") or {}, **{name: focused_entry(focused)})
            self.window.set_registration(RegistrationState(reg.reference_to_ct, reg.method, reg.tre_mm, reg.fre_mm,
                                                           reg.source, raw, reg.verdict))
        self.show_focus()
        self._update_buttons()

    def focused_entries(self) -> dict:
        """``focused_targets`` of what the verdict shows: the candidate's (in memory), else the RESULT's."""
        if self.candidate is not None:
            return {n: focused_entry(f) for n, f in self.candidate_focus.items()}
        reg = self.window.registration
        entries = (reg.raw or {}).get("focused_targets") if reg is not None else None
        return entries if isinstance(entries, dict) else {}

    def show_focus(self) -> None:
        """The focused line of the chosen lesion (empty when it was not refined nearby)."""
        name = self.target()[0]
        entry = self.focused_entries().get(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("uncertainty"), dict):
            self.focus_text.setText("")
            self._update_focus_button()
            return
        try:
            a = Assessment.from_dict(entry["uncertainty"])
            disputed = entry_dispute_mm(entry, None, f"focused_targets.{name}")   # as ResultRecord.tre_at
        except InputError as exc:
            self.focus_text.setText(f"The focused result near {name} cannot be read: {exc}")
            return
        row = a.target(name) or TargetEstimate(name)
        line = target_verdict(a, row, RunFacts())
        whole = (entry.get("focus") or {}).get("whole_sweep_tre_mm")
        was = "" if whole is None else f"; whole sweep: within {mm_text(RADIUS_95_PER_RMS * whole)}"
        colour = VERDICT_COLOURS.get(line.verdict, "#c0221b")
        body = line.text.replace(line.words, f"<b style='color:{colour}'>{line.words}</b>", 1)
        uses = "" if line.verdict == "poor" else f" The plan uses this figure for {name}."
        if disputed and whole is not None:
            # the whole-sweep error there is raised to cover the disagreement
            raised = raised_tre_mm(whole, disputed)
            uses = (f" It moved {name} {mm_text(disputed)} from the whole-sweep result: one of the two is "
                    f"wrong, so the plan uses a whole-sweep error of {mm_text(raised)} RMS there "
                    f"(95 % within {mm_text(RADIUS_95_PER_RMS * raised)}).")
        self.focus_text.setText(f"Refined near {name}: {body}{was}.{uses}")
        self.focus_text.setToolTip(line.details)
        self._update_focus_button()
