"""The automatic refinement part of the registration panel: run, staged progress, verdict, Accept / Reject / Undo.

"Refine automatically" runs
:func:`registration.align.intensity_registration.register_sweep` (LC2) in a worker
from the window's registration (``reference_to_ct``: Reference mm -> CT LPS mm). It is
enabled only when a CT, a sweep and a start exist; its tooltip says what is missing.
Progress shows the engine's stage ("stage 4 of 8: level 2 of 3 - 120 of 304
evaluations"), the elapsed time and, once the fraction means something, the time
left. The result is only a *candidate* until accepted, shown per lesion in plain
words (:mod:`.verdict_list`). Three separate actions: *Accept result* stores the same
RESULT document ``ctus register`` writes
(:func:`registration.align.result_document.result_document`); *Reject result* drops
a candidate (the registration is unchanged); *Undo accept* restores the registration
an Accept replaced.
"""
from __future__ import annotations

import time
from typing import Optional

from PyQt5.QtWidgets import QLabel, QProgressBar, QPushButton, QSizePolicy

from gui.core.session import RegistrationState
from gui.core.verdict_text import RunFacts
from registration.align.assessment import Assessment
from registration.align.result_document import focused_entry, result_document, with_focus_disputes
from registration.spatial.errors import InputError

from .convergence_plot import ConvergencePlot
from .verdict_list import VerdictList

#: The remaining time is shown once this share is done and this many seconds passed.
ETA_MIN_FRACTION = 0.1
ETA_MIN_ELAPSED_S = 3.0


class RefinementMixin:
    """Refinement methods of :class:`.registration_panel.RegistrationPanel` (a mixin: it uses the
    panel's ``window``, ``landmarks``, ``targets``, ``candidate``, ``candidate_context``,
    ``previous``, ``worker``, ``refine_options``, ``target()`` and ``_update_buttons()``)."""

    def _build_refinement(self) -> None:
        """Refine / Cancel, progress bar and text, verdict lines, Accept / Reject / Undo, convergence plot."""
        self.refine_button = QPushButton("Refine automatically")
        self.refine_button.setObjectName("refine_button")
        self.refine_button.clicked.connect(self.refine)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("refine_cancel")
        self.cancel_button.setToolTip("stop the automatic refinement (the registration stays as it is)")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_refine)
        self.progress = QProgressBar()
        self.progress.setObjectName("refine_progress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("refine_progress_text")
        self.progress_text.setWordWrap(True)
        self.progress_text.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.plot = ConvergencePlot()
        self.plot.hide()
        self.plot_button = QPushButton("Show convergence")
        self.plot_button.setObjectName("show_convergence")
        self.plot_button.setCheckable(True)
        self.plot_button.setToolTip("the matching score of every step of the automatic search")
        self.plot_button.toggled.connect(self._toggle_plot)
        self.verdict = VerdictList()
        self.accept_button = QPushButton("Accept result")
        self.accept_button.setObjectName("refine_accept")
        self.accept_button.clicked.connect(self.accept)
        self.reject_button = QPushButton("Reject result")
        self.reject_button.setObjectName("refine_reject")
        self.reject_button.clicked.connect(self.reject)
        self.undo_accept_button = QPushButton("Undo accept")
        self.undo_accept_button.setObjectName("refine_undo_accept")
        self.undo_accept_button.clicked.connect(self.undo_accept)
        self._started_at: Optional[float] = None

    def _toggle_plot(self, on: bool) -> None:
        self.plot.setVisible(on)
        self.plot_button.setText("Hide convergence" if on else "Show convergence")

    # ------------------------------------------------------------ what is possible, and why not
    def refine_blocker(self) -> str:
        """Why "Refine automatically" cannot run now ("" when it can)."""
        w = self.window
        if self.worker is not None:
            return "the automatic refinement is running"
        missing = [what for what, ok in (("a CT", w.ct is not None), ("a tracked sweep", w.sweep is not None))
                   if not ok]
        if missing:
            return f"needs {' and '.join(missing)} (File > Open)"
        if w.registration is None:
            return ("needs a starting registration: pick at least 3 landmark pairs (P) or load one "
                    "(File > Load registration)")
        return ""

    def has_automatic_result(self) -> bool:
        """An automatic result exists: a candidate, or the window's registration is one."""
        reg = self.window.registration
        return self.candidate is not None or (reg is not None and reg.method not in ("landmarks",)
                                              and (reg.raw or {}).get("uncertainty") is not None)

    # ------------------------------------------------------------ automatic refinement
    def refine(self) -> None:
        w = self.window
        why = self.refine_blocker()
        if why:
            self.progress_text.setText(f"Refinement {why}.")
            return
        ct, sweep, start = w.ct, w.sweep, w.registration
        init = start.reference_to_ct.copy()
        targets, options = dict(self.targets), dict(self.refine_options)
        from_landmarks = start.method == "landmarks"
        # What the RESULT document of this run needs besides the result (see accept()).
        self.candidate_context = dict(
            ct_path=ct.metadata.get("source"), sweep_path=sweep.source,
            calibration_path=w.session.calibration_path, init_source="landmarks" if from_landmarks else "init",
            init_file=start.source, landmarks=self.landmarks.result if from_landmarks else None, targets=targets)

        def work(progress):
            from registration.align.intensity_registration import register_sweep
            return register_sweep(ct, sweep, init, method="lc2", progress=progress, targets=targets, **options)

        self.candidate = None
        self.candidate_focus = {}
        self.plot.set_history([], message="running...")
        self.verdict.show_message("Automatic refinement running: the verdict follows when it is done.")
        self.progress.setValue(0)
        self.progress.show()
        self._started_at = time.monotonic()
        self.progress_text.setText("starting...")
        def connect(worker):
            worker.progress.connect(self._on_progress)
            worker.failed.connect(self._refine_failed)
            worker.finished.connect(self._worker_finished)
        self.worker = w.run_worker("Refine registration", work, self._refine_done, before_start=connect)
        self._update_buttons()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(100 * fraction))
        elapsed = time.monotonic() - (self._started_at or time.monotonic())
        timing = f"{elapsed:.0f} s"
        if fraction >= ETA_MIN_FRACTION and elapsed >= ETA_MIN_ELAPSED_S and fraction < 1.0:
            timing += f", about {elapsed * (1.0 - fraction) / fraction:.0f} s left"
        self.progress_text.setText(f"{message} ({timing})")

    def cancel_refine(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_text.setText("cancelling...")

    def _refine_failed(self, exc, tb) -> None:
        from registration.spatial.errors import CancelledError
        if isinstance(exc, CancelledError):
            self.verdict.show_message("Refinement cancelled; the registration is unchanged.")
            self.progress_text.setText("cancelled")
        else:
            self.verdict.show_message(f"Refinement failed: {exc}")
        self.plot.set_history([], message="no result")

    def _worker_finished(self) -> None:
        self.worker = None
        self._update_buttons()

    def _refine_done(self, result) -> None:
        self.candidate = result
        self.plot.set_history(result.history, "matching score",
                              f"finest level {result.metric_initial:.3f} -> {result.metric_final:.3f}")
        self.progress.setValue(100)
        self.progress_text.setText(f"done in {result.wall_time_s:.0f} s: check the overlay at each lesion, "
                                   "then Accept (Ctrl+Return) or Reject.")
        self.show_verdict()
        self._show_quality()
        self._update_buttons()
        self.show_section("verify")

    def show_verdict(self) -> None:
        """The candidate's verdict, else the window's accepted/loaded automatic one, else a hint; then
        the chosen lesion's focused line (:mod:`.focus_box`)."""
        self._show_verdict()
        show_focus = getattr(self, "show_focus", None)
        if callable(show_focus):
            show_focus()

    def _show_verdict(self) -> None:
        name = self.target()[0]
        reg = self.window.registration
        entries = getattr(self, "focused_entries", None)      # the focused refinements kept (.focus_box)
        if self.candidate is not None:
            a = self.candidate.uncertainty
            if a is not None and callable(entries):
                a = with_focus_disputes(a, entries())       # rows a focused refinement disputed, raised
            self.verdict.show_assessment("Automatic result, waiting for Accept", a,
                                         RunFacts.of_result(self.candidate), name)
            return
        unc = None if reg is None else (reg.raw or {}).get("uncertainty")
        if isinstance(unc, dict) and reg.method != "landmarks":
            try:
                a = with_focus_disputes(Assessment.from_dict(unc, reg.source), (reg.raw or {}).get("focused_targets"),
                                        reg.source)
            except InputError as exc:
                self.verdict.show_message(f"The registration's verdict cannot be read: {exc}")
                return
            title = "Accepted automatic result" if reg.method in ("lc2", "mi") and reg.source is None \
                else "Loaded registration"
            self.verdict.show_assessment(title, a, RunFacts.of_document(reg.raw or {}), name)
            return
        self.verdict.show_message("No automatic result yet." if reg is None or reg.method == "landmarks"
                                  else "This registration has no verdict: refine automatically to get one.")

    def accept(self) -> None:
        """Make the candidate the window's registration, with the RESULT document ``ctus register``
        writes (plus the chosen TRE target); Undo accept restores the one it replaces."""
        if self.candidate is None:
            return
        r = self.candidate
        name = self.target()[0]
        row = r.uncertainty.target(name)
        doc = result_document(r, **self.candidate_context)
        doc["tre_target"] = name
        if self.candidate_focus:       # "refine near this lesion" run on this candidate (.focus_box)
            doc["focused_targets"] = {n: focused_entry(f) for n, f in self.candidate_focus.items()}
            self.candidate_focus = {}
        self.previous.append(self.window.registration)
        self.candidate = None
        self.window.set_registration(RegistrationState(r.reference_to_ct, "lc2", tre_mm=None if row is None
                                                       else row.tre_registration_mm, raw=doc,
                                                       verdict=r.uncertainty.verdict))
        self.show_verdict()
        self._show_quality()
        self.progress_text.setText("Accepted: the overlay and the plan use this registration.")
        self._update_buttons()

    def reject(self) -> None:
        """Drop the automatic result waiting for Accept; the registration is unchanged."""
        if self.candidate is None:
            return
        self.candidate = None
        self.candidate_focus = {}
        self.show_verdict()
        self._show_quality()
        self.progress_text.setText("Automatic result rejected; the registration is unchanged.")
        self._update_buttons()

    def undo_accept(self) -> None:
        """Go back to the registration before the last Accept."""
        if not self.previous:
            return
        self.window.set_registration(self.previous.pop())
        self.show_verdict()
        self._show_quality()
        self.progress_text.setText("Accept undone: the previous registration is back.")
        self._update_buttons()
