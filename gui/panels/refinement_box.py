"""The automatic refinement part of the registration panel: LC2 run, progress, convergence, verdict.

"Refine automatically" runs
:func:`registration.align.intensity_registration.register_sweep` (LC2) in a worker
from the window's registration (``reference_to_ct``: Reference mm -> CT LPS
mm); its result is only a *candidate* until the user accepts it, shown with
its verdict and numbers (never a bare "good"): the engine's TRE estimate
(mm), its 95 % bound and the hit probability at the chosen target. Accepting
it stores the same RESULT document ``ctus register`` writes
(:func:`registration.align.result_document.result_document`).
"""
from __future__ import annotations

from typing import Optional

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QProgressBar, QPushButton

from gui.core.session import RegistrationState
from registration.align.assessment import Assessment
from registration.align.result_document import result_document

from .convergence_plot import ConvergencePlot

VERDICT_COLOURS = {"good": "#1b7f2a", "check": "#b36b00", "poor": "#c0221b"}


class RefinementMixin:
    """Refinement methods of :class:`.registration_panel.RegistrationPanel` (a mixin: it uses the
    panel's ``window``, ``landmarks``, ``targets``, ``candidate``, ``candidate_context``,
    ``previous``, ``worker``, ``refine_options``, ``target()`` and ``_update_buttons()``)."""

    def _build_refinement(self) -> None:
        """Refine / Cancel, progress bar and text, convergence plot, verdict, Accept / Revert."""
        self.refine_button = QPushButton("Refine automatically (LC2)")
        self.refine_button.setObjectName("refine_button")
        self.refine_button.clicked.connect(self.refine)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("refine_cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_refine)
        self.progress = QProgressBar()
        self.progress.setObjectName("refine_progress")
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress_text = QLabel("")
        self.progress_text.setObjectName("refine_progress_text")
        self.plot = ConvergencePlot()
        self.verdict = QLabel("No automatic refinement yet.")
        self.verdict.setObjectName("refine_verdict")
        self.verdict.setWordWrap(True)
        self.verdict.setTextFormat(Qt.RichText)
        self.accept_button = QPushButton("Accept")
        self.accept_button.setObjectName("refine_accept")
        self.accept_button.clicked.connect(self.accept)
        self.revert_button = QPushButton("Revert")
        self.revert_button.setObjectName("refine_revert")
        self.revert_button.clicked.connect(self.revert)

    # ------------------------------------------------------------ automatic refinement
    def refine(self) -> None:
        w = self.window
        missing = [what for what, ok in (("a CT", w.ct is not None), ("a sweep", w.sweep is not None),
                                         ("a starting registration (>= 3 landmarks or a loaded one)",
                                          w.registration is not None)) if not ok]
        if missing:
            self.progress_text.setText("Refinement needs " + ", ".join(missing) + ".")
            return
        if self.worker is not None:
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
        self.plot.set_history([], message="running...")
        self.verdict.setText("Refinement running...")
        self.progress.setValue(0)
        self.worker = w.run_worker("Refine registration (LC2)", work, self._refine_done)
        self.worker.progress.connect(self._on_progress)
        self.worker.failed.connect(self._refine_failed)
        self.worker.finished.connect(self._worker_finished)
        self._update_buttons()

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(round(100 * fraction)))
        self.progress_text.setText(message)

    def cancel_refine(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            self.progress_text.setText("cancelling...")

    def _refine_failed(self, exc, tb) -> None:
        from registration.spatial.errors import CancelledError
        if isinstance(exc, CancelledError):
            self.verdict.setText("Refinement cancelled; the registration is unchanged.")
        else:
            self.verdict.setText(f"Refinement failed: {exc}")
        self.plot.set_history([], message="no result")

    def _worker_finished(self) -> None:
        self.worker = None
        self._update_buttons()

    def _refine_done(self, result) -> None:
        self.candidate = result
        self.plot.set_history(result.history, result.method.upper(),
                              f"finest level {result.metric_initial:.3f} -> {result.metric_final:.3f}")
        self.progress.setValue(100)
        self.progress_text.setText(f"{result.iterations} evaluations in {result.wall_time_s:.1f} s")
        self._show_verdict(result.uncertainty)
        self._update_buttons()

    def _show_verdict(self, u: Assessment) -> None:
        """The verdict, and the numbers at the chosen target (never a bare verdict)."""
        name = self.target()[0]
        t = u.target(name)
        if t is None:
            numbers = f"{name} was not assessed (it was not loaded when the refinement ran)"
        else:
            numbers = (f"registration TRE est. {_mm(t.tre_registration_mm)} "
                       f"(95 %: {_mm(t.tre_registration_95_mm)}), total error {_mm(t.tre_total_mm)}")
            if t.hit_probability is not None:
                numbers += f", hit probability {100 * t.hit_probability:.0f} % (lesion radius {t.radius_mm:.1f} mm)"
            if t.verdict and t.verdict != u.verdict:
                own = VERDICT_COLOURS.get(t.verdict, "#c0221b")
                numbers += (f"; this target's own verdict: <b style='color:{own}'>{t.verdict.upper()}</b> "
                            f"({'; '.join(t.why)})")
        colour = VERDICT_COLOURS.get(u.verdict, "#c0221b")
        self.verdict.setText(f"<b style='color:{colour}'>Verdict: {u.verdict.upper()}</b> ({len(u.targets)} target(s) "
                             f"assessed); at {name}: {numbers}.<br><small>{'; '.join(u.reasons)}</small>")

    def accept(self) -> None:
        """Make the candidate the window's registration, with the RESULT document ``ctus register``
        writes (plus the chosen TRE target); the one it replaces can be restored with Revert."""
        if self.candidate is None:
            return
        r = self.candidate
        name = self.target()[0]
        row = r.uncertainty.target(name)
        doc = result_document(r, **self.candidate_context)
        doc["tre_target"] = name
        self.previous.append(self.window.registration)
        self.window.set_registration(RegistrationState(r.reference_to_ct, "lc2", tre_mm=None if row is None
                                                       else row.tre_registration_mm, raw=doc,
                                                       verdict=r.uncertainty.verdict))
        self.candidate = None
        self.verdict.setText(self.verdict.text().replace("Verdict:", "Accepted, verdict:", 1))
        self._update_buttons()

    def revert(self) -> None:
        """Drop a pending candidate, else go back to the registration before the last Accept."""
        if self.candidate is not None:
            self.candidate = None
            self.verdict.setText("Refinement discarded; the registration is unchanged.")
        elif self.previous:
            self.window.set_registration(self.previous.pop())
            self.verdict.setText("Reverted to the registration before the last Accept.")
        self._update_buttons()


def _mm(v: Optional[float]) -> str:
    return "unknown" if v is None else f"{v:.1f} mm"
