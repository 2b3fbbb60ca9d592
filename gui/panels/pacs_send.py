"""Export > Send to PACS: file the current plan's results into the CT's own study on the PACS.

What is sent is what ``ctus pacs send`` sends (:mod:`planner.export.pacs_results`):
the PDF report, the key views, a SEG of the label map and, when the plan has
a registration, the Spatial Registration (reference_to_ct). The engine
builds them from a plan folder (plan.json, plan.pdf, reference_to_ct.tfm),
the CT's DICOM folder and the label map file; this dialog supplies them:

* the plan folder is the exported one when its plan.json is the plan shown
  (so the PACS gets the very PDF that was exported), else the plan is
  written once into a temporary folder kept for the session: sending the
  same plan again sends the same files, hence the same UIDs, and the PACS
  keeps one copy;
* the plan's own registration is sent (the one it was computed with), with
  the window's sweep for the registered US key view.

Everything is built and checked before the association opens; Cancel stops
building (nothing sent) or sending (what was stored stays: sending again
completes it). :func:`unavailable` says why Send cannot act (no plan, no
DICOM CT, no label map file), for the menu action's tooltip.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PyQt5.QtWidgets import QDialogButtonBox, QLabel, QVBoxLayout

from registration.spatial.errors import InputError

from .pacs_common import PacsTaskDialog, ServerBox

_NEEDS_DICOM = ("results are filed into the CT's study by its DICOM UIDs: open the CT from the PACS "
                "(File > Open from PACS) or from its DICOM folder")


def _plan_source(window) -> Tuple[Optional[object], Optional[dict], object]:
    """(PlanResult or None, plan dict or None, the RegistrationState it was made with)."""
    panel = (getattr(window, "panel_docks", {}) or {}).get("planning")
    result = None if panel is None else panel.widget().result
    if result is not None:
        return result, result.plan, panel.widget().planned_registration
    return None, window.plan, window.registration


def ct_folder(window) -> Optional[str]:
    """The window CT's DICOM folder, None when it was not read from DICOM."""
    ct = window.ct
    if ct is None or ct.metadata.get("format") != "dicom" or not ct.metadata.get("source"):
        return None
    src = str(ct.metadata["source"])
    return src if os.path.isdir(src) else os.path.dirname(src)


def unavailable(window) -> str:
    """Why Send to PACS cannot act now ('' when it can): what is missing and how to get it."""
    if window.ct is None:
        return "Send to PACS: needs a CT opened from DICOM (File > Open from PACS or Open CT folder)"
    if ct_folder(window) is None:
        src = Path(str(window.ct.metadata.get("source") or "memory")).name
        return f"Send to PACS: the CT was not read from DICOM ({src}); {_NEEDS_DICOM}"
    if window.labels is None or not window.labels.metadata.get("source"):
        return "Send to PACS: needs the label map file the plan used (File > Open labels)"
    result, plan, _ = _plan_source(window)
    if plan is None:
        return "Send to PACS: needs a plan (Workflow > Plan all lesions, Ctrl+P)"
    if result is None and _exported_folder(window, plan) is None:
        return "Send to PACS: needs the plan's files: export the plan first (Ctrl+E)"
    # The plan.json records the CT's own spacing (its grid may be resampled for planning) and,
    # once written, the series it was made on; the engine refuses a mismatch, say it here first.
    spacing = (plan.get("ct") or {}).get("source_spacing_mm")
    planned_on = (plan.get("case") or {}).get("series_uid")
    series = window.ct.metadata.get("series_uid")
    if ((spacing is not None and not np.allclose(spacing, window.ct.spacing, atol=1e-3))
            or (planned_on and series and planned_on != series)):
        return "Send to PACS: the plan was made on another CT: plan again on this one (Ctrl+P)"
    return ""


def _comparable(plan: dict) -> dict:
    """The plan as its plan.json reads back, without what writing adds (case summary)."""
    d = json.loads(json.dumps(plan))
    d.pop("case", None)
    return d


def _exported_folder(window, plan: dict) -> Optional[str]:
    """The folder the window exported ``plan`` into (plan.json equal to it, plan.pdf there), or None."""
    ex = getattr(window, "exported", None) or {}
    if "plan.json" not in ex or "plan.pdf" not in ex or not os.path.isfile(ex["plan.pdf"]):
        return None
    try:
        on_disk = json.loads(Path(ex["plan.json"]).read_text())
    except (OSError, ValueError):
        return None
    ours = _comparable(plan)
    on_disk.pop("case", None)
    if not ours.get("registration"):            # write_outputs adds a bare one from the matrix
        on_disk.pop("registration", None)
        ours.pop("registration", None)
    return str(Path(ex["plan.json"]).parent) if on_disk == ours else None


def plan_folder(window, result, plan: dict, reg, progress) -> str:
    """A folder with this plan's plan.json + plan.pdf (+ .tfm): exported, written earlier, or written now."""
    folder = _exported_folder(window, plan)
    if folder is not None:
        return folder
    ref_to_ct = None if reg is None else np.asarray(reg.reference_to_ct, float)
    key = hashlib.sha256(json.dumps(plan, sort_keys=True).encode()
                         + (b"" if ref_to_ct is None else ref_to_ct.tobytes())).hexdigest()[:16]
    cache = getattr(window, "_pacs_plan_dirs", None)
    if cache is None:
        cache = window._pacs_plan_dirs = {}
    if key in cache and os.path.isfile(os.path.join(cache[key], "plan.pdf")):
        return cache[key]
    if result is None:
        raise InputError("the plan's files are not at hand", fix="export the plan first (Ctrl+E)")
    from planner.export.plan_files import write_outputs
    if progress(0.02, "writing the plan and its PDF report") is False:
        from registration.spatial.errors import CancelledError
        raise CancelledError("Send to PACS cancelled")
    tmp = getattr(window, "_pacs_plan_tmp", None)
    if tmp is None:                 # removed when the window goes (or at exit)
        tmp = window._pacs_plan_tmp = tempfile.TemporaryDirectory(prefix="ctus-send-")
    folder = os.path.join(tmp.name, key)
    write_outputs(result, folder, force=True, ct_metadata=window.ct.metadata, reference_to_ct=ref_to_ct)
    cache[key] = folder
    return folder


class SendDialog(PacsTaskDialog):
    """Server, what will be sent, Send; afterwards one line per series stored."""

    def __init__(self, window, parent=None):
        super().__init__(window, parent)
        self.setObjectName("pacs_send_dialog")
        self.setWindowTitle("Send to PACS")
        self.report = None
        self.results = None
        self.server_box = ServerBox(self, move_port=False)
        self.what = QLabel()
        self.what.setObjectName("pacs_send_what")
        self.what.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.send_button = self.buttons.addButton("Send", QDialogButtonBox.AcceptRole)
        self.send_button.setObjectName("pacs_send_run")
        self.send_button.setDefault(True)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.RejectRole)
        self.send_button.clicked.connect(self.send)
        lay = QVBoxLayout(self)
        lay.addWidget(self.server_box)
        lay.addWidget(self.what)
        lay.addWidget(self.progress_bar)
        lay.addWidget(self.status, 1)
        lay.addWidget(self.buttons)
        self.refresh()
        self.resize(760, 420)

    def refresh(self) -> None:
        """Say what would be sent, or why nothing can be."""
        why = unavailable(self.window)
        self.send_button.setEnabled(not why and self.worker is None)
        self.send_button.setToolTip(why or "build the objects, check them, then store them on the PACS")
        if why:
            self.what.setText(why)
            return
        _, plan, reg = _plan_source(self.window)
        labels = Path(str(self.window.labels.metadata["source"])).name
        items = ["the plan report (PDF)", "key views (Secondary Capture)", f"the label map {labels} (SEG)"]
        items.append("the registration tracker -> CT (Spatial Registration)" if reg is not None
                     else "no registration (the plan has none)")
        stale = reg is not self.window.registration
        self.what.setText("Into the CT's own study on the PACS: " + ", ".join(items) + "."
                          + (" The plan's own registration is sent: the window's changed since it was made."
                             if stale and reg is not None else ""))

    def send(self) -> None:
        if self.worker is not None:
            return
        why = unavailable(self.window)
        try:
            if why:
                raise InputError(why.split(": ", 1)[1])
            pacs = self.server_box.server().pacs()
        except ValueError as exc:
            self._failed("Send to PACS", exc, "")
            return
        w = self.window
        result, plan, reg = _plan_source(w)
        ct_dir, labels = ct_folder(w), str(w.labels.metadata["source"])
        series_uid = w.ct.metadata.get("series_uid")        # the folder may hold other series
        names = w.session.label_names_path
        sweep = w.sweep.source if reg is not None and w.sweep is not None and w.sweep.source else None
        self.server_box.remember()
        self.stored_before = 0

        def work(progress):
            from planner.export.pacs_results import build_plan_results, send_results
            folder = plan_folder(w, result, plan, reg, progress)
            objects = build_plan_results(folder, ct_dir, labels, label_names=names, sweep_path=sweep,
                                         series_uid=series_uid,
                                         progress=lambda f, m: progress(0.05 + 0.45 * f, m))

            def store_progress(f, m):
                if m.startswith("sending "):
                    self.stored_before = int(m.split()[1].split("/")[0]) - 1
                return progress(0.5 + 0.5 * f, m)
            return objects, send_results(pacs, objects, progress=store_progress)

        self.run_task("Send to PACS", work, lambda r: self._sent(str(pacs), *r))

    def _sent(self, server: str, results, report) -> None:
        self.results, self.report = results, report
        lines = [f"Stored {report.stored} instances on {server} in the CT's study {results.study_uid}:"]
        for line in results.series:
            number = int(line.split()[0])
            sent, listed = report.listed.get(number, (None, None))
            lines.append(f"  \u2022 series {line}; the PACS lists {'?' if listed is None else listed}")
        lines += [f"  note: {n}" for n in results.notes] + [f"  warning: {x}" for x in report.warnings]
        self.set_status("\n".join(lines), error=bool(report.warnings))
        for line in lines:
            self.window.reporter.info(line)
        self.window.statusBar().showMessage(f"Sent {report.stored} instances to {server}", 15000)

    def cancelled_text(self, name: str) -> str:
        if self.stored_before:
            return (f"Sending stopped after {self.stored_before} stored instances: they stay on the PACS; "
                    "send again to complete (the same instances, no duplicates).")
        return "Sending stopped: nothing was sent."

    def set_busy(self, busy: bool) -> None:
        self.server_box.setEnabled(not busy)
        if busy:
            self.send_button.setEnabled(False)
        else:
            self.refresh()
