"""The automatic refinement part of the registration panel: LC2 run, progress, convergence, verdict.

"Refine automatically" runs
:func:`registration.align.intensity_registration.register_sweep` (LC2) in a worker
from the window's registration (``reference_to_ct``: Reference mm -> CT LPS
mm); its result is only a *candidate* until the user accepts it, shown with
its verdict and numbers (never a bare "good"): the engine's TRE estimate
(mm), its 95 % bound and the hit probability at the chosen target.
"""
from __future__ import annotations

from typing import Dict

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QProgressBar, QPushButton

from gui.core.session import RegistrationState

from .convergence_plot import ConvergencePlot

VERDICT_COLOURS = {"good": "#1b7f2a", "check": "#b36b00", "poor": "#c0221b"}


class RefinementMixin:
    """Refinement methods of :class:`.registration_panel.RegistrationPanel` (a mixin: it uses the
    panel's ``window``, ``landmarks``, ``candidate``, ``candidate_targets``, ``previous``,
    ``worker``, ``refine_options``, ``target()`` and ``_update_buttons()``)."""

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
        ct, sweep, init = w.ct, w.sweep, w.registration.reference_to_ct.copy()
        self.candidate_targets = self._targets()
        targets, options = dict(self.candidate_targets), dict(self.refine_options)

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

    def _targets(self) -> Dict[str, dict]:
        """Every lesion and the CT centre (as ``ctus register --labels`` does): the engine's
        verdict covers all of them, and changing the TRE target afterwards only picks a row."""
        out = {}
        if self.window.display is not None:
            out["CT centre"] = {"point": [float(v) for v in self.window.display.center_lps()], "radius_mm": None}
        for les in self.window.us_view.engine.lesions:
            out[les.name] = {"point": [float(v) for v in les.centroid_lps], "radius_mm": float(les.radius_mm)}
        return out

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
        self._show_verdict(result.uncertainty or {})
        self._update_buttons()

    def target_row(self, u: dict) -> dict:
        """The engine's uncertainty row for the chosen TRE target ({} if it was not assessed)."""
        name = self.target()[0]
        return next((r for r in u.get("targets") or [] if r.get("name") == name), {})

    def _show_verdict(self, u: dict) -> None:
        verdict = u.get("verdict", "poor")
        t = self.target_row(u)
        n = len(u.get("targets") or [])

        def mm(v):
            return "unknown" if v is None else f"{v:.1f} mm"
        hp = t.get("hit_probability")
        numbers = (f"registration TRE est. {mm(t.get('tre_registration_mm'))} "
                   f"(95 %: {mm(t.get('tre_registration_95_mm'))}), total error {mm(t.get('tre_total_mm'))}")
        if hp is not None:
            numbers += f", hit probability {100 * hp:.0f} % (lesion radius {t['radius_mm']:.1f} mm)"
        colour = VERDICT_COLOURS.get(verdict, "#c0221b")
        reasons = "; ".join(u.get("reasons", []))
        if not t:
            numbers = f"{self.target()[0]} was not assessed (it was not loaded when the refinement ran)"
        own = t.get("verdict")
        if own and own != verdict:
            numbers += (f"; this target's own verdict: <b style='color:{VERDICT_COLOURS.get(own, '#c0221b')}'>"
                        f"{own.upper()}</b> ({'; '.join(t.get('why') or [])})")
        self.verdict.setText(f"<b style='color:{colour}'>Verdict: {verdict.upper()}</b> ({n} target(s) assessed); "
                             f"at {t.get('name', self.target()[0])}: {numbers}.<br><small>{reasons}</small>")

    def accept(self) -> None:
        if self.candidate is None:
            return
        r = self.candidate
        u = r.uncertainty or {}
        rows = u.get("targets") or []
        tre = self.target_row(u).get("tre_registration_mm")
        raw = r.to_dict()
        raw.update({"targets": rows, "verdict": u.get("verdict"), "tre_target": self.target()[0]})
        if self.landmarks.result is not None:
            raw["landmarks"] = self.landmarks.result.to_dict()
        self.previous.append(self.window.registration)
        self.window.set_registration(RegistrationState(r.reference_to_ct, "lc2", tre_mm=tre, raw=raw))
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
