"""The Guidance panel's set-up: the plan to guide along and the needle calibration.

A mixin of :class:`gui.panels.guidance_panel.GuidancePanel` (it uses the panel's
``window``, ``guidance``, ``plan_label``, ``path_box`` and ``start_button``). The plan is a
``ctus plan`` / Export folder (``plan.json`` and the label map it keeps,
``labels.nrrd``) or the plan in the window (Planning panel) with the window's
labels; ``reference_to_ct`` is the window's registration, else the plan's. The
calibration is a PLUS config (``NeedleTip`` -> ``Needle``, read at once) or a pivot
recording (calibrated in a worker); without either, the server's
``NeedleTipToNeedle`` is used when it sends one.
"""
from __future__ import annotations

import os

from PyQt5.QtWidgets import QDockWidget, QFileDialog

from registration.spatial.errors import InputError


class GuidanceSetupMixin:
    # ------------------------------------------------------------ plan
    def _ask_plan_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Plan folder (ctus plan --out, or Export)")
        if path:
            self.open_plan_folder(path)

    def open_plan_folder(self, folder) -> None:
        """A plan folder: plan.json and the label map it keeps (``labels.nrrd``)."""
        from planner.export.plan_files import plan_labels_path
        from planner.guidance.planned_path import read_plan
        with self.window.reporter.action("Open plan for guidance"):
            plan, path = read_plan(folder)
            labels = plan_labels_path(os.path.dirname(path))
            self._set_plan(plan, path, labels, f"{path} (labels: {os.path.basename(labels)})")

    def use_current_plan(self) -> None:
        """The plan shown in the Planning panel (or the last exported one) with the window's labels."""
        with self.window.reporter.action("Use the current plan for guidance"):
            dock = getattr(self.window, "panel_docks", {}).get("planning")
            result = getattr(dock.widget(), "result", None) if dock is not None else None
            plan = result.plan if result is not None else self.window.plan
            if plan is None or self.window.labels is None:
                raise InputError("there is no plan in the window", fix="plan in the Planning panel, or open a "
                                                                        "plan folder")
            self._set_plan(plan, None, self.window.labels, "the plan in the window")

    def _set_plan(self, plan: dict, path, labels, text: str) -> None:
        self.plan, self.plan_path, self.labels = plan, path, labels
        self.plan_label.setText(f"Plan: {text}")
        self.path_box.clear()
        first = (plan.get("recommendation") or {}).get("biopsy_first")
        for les in plan.get("lesions", []):
            for i, t in enumerate(les.get("trajectories") or [], start=1):
                unsafe = "  UNSAFE (least-risk only)" if t.get("safe", True) is False else ""
                self.path_box.addItem(f"{les['name']} path {i} ({t.get('guidance', '')}, "
                                      f"{float(t.get('length_mm', 0)):.0f} mm){unsafe}", (les["name"], i))
                if les["name"] == first and i == 1:
                    self.path_box.setCurrentIndex(self.path_box.count() - 1)
        self.start_button.setEnabled(self.path_box.count() > 0)
        if not self.path_box.count():
            self.plan_label.setText(f"Plan: {text}: no lesion has a path to guide along")

    def select_path(self, lesion: str, trajectory: int = 1) -> None:
        i = next((k for k in range(self.path_box.count())
                  if tuple(self.path_box.itemData(k)) == (lesion, trajectory)), -1)
        if i < 0:
            raise InputError(f"no path {trajectory} of {lesion} in the plan", fix="choose one of the list")
        self.path_box.setCurrentIndex(i)

    def start(self) -> None:
        """Set up guidance along the selected path (off the GUI thread)."""
        from planner.guidance.planned_path import plan_reference_to_ct
        with self.window.reporter.action("Start needle guidance"):
            if self.plan is None or self.path_box.currentData() is None:
                raise InputError("no plan path selected", fix="open a plan folder or use the current plan")
            lesion, trajectory = self.path_box.currentData()
            reg = self.window.registration
            r2c = reg.reference_to_ct if reg is not None else plan_reference_to_ct(self.plan, path=self.plan_path)
            self.guidance.start_setup(self.plan, self.labels, r2c, lesion=lesion, trajectory=trajectory,
                                      plan_path=self.plan_path, on_error=lambda e, tb: self.window.reporter.report(
                                          "Set up needle guidance", e, tb))
            dock = self.parentWidget()
            if isinstance(dock, QDockWidget):
                dock.raise_()

    # ------------------------------------------------------------ calibration
    def _ask_calibration(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Needle calibration", "",
                                              "PLUS config or pivot recording (*.xml *.mha *.mhd)")
        if path:
            self.load_calibration(path)

    def load_calibration(self, path) -> None:
        """A PLUS config (``NeedleTip`` -> ``Needle``) at once; a pivot recording in a worker."""
        from registration.tracking.needle_tool import calibration_from_config, calibration_from_pivot_recording
        tool = self.guidance.tool
        with self.window.reporter.action("Needle calibration"):
            if str(path).lower().endswith(".xml"):
                self.guidance.set_calibration(calibration_from_config(path, tool=tool))
                return
            self.window.run_worker("Pivot calibration of the needle",
                                   lambda progress: calibration_from_pivot_recording(path, tool=tool)[0],
                                   self.guidance.set_calibration)

