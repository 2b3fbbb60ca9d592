"""The MR dock (issue 18): the MR as a second image, its lesions carried into the CT plan,
MR -> ultrasound registration with progress and verdict, the MR overlaid on the ultrasound.

The work is the engine's (``registration.io.mr_io.load_mr``,
``registration.align.mr_us.register_mr_sweep``, ``planner.anatomy.mr_lesions``);
this module holds the widgets and their wiring:

* **Open MR**: loaded in a worker; shown in its own slice view
  (:class:`~gui.views.mr_view.MRSliceView`) with its own window/level (left-drag;
  initial from the MR's percentiles). Once MR -> CT is known, the MR view follows the
  CT crosshair through ``inv(mr_to_ct)``.
* **Open MR -> CT**: the ``ctus align`` result (``mr_to_ct``, its verdict).
* **Open MR lesions**: clicks on the MR (SEEDS.json) grown on the MR and carried onto
  the CT labels (the window's labels are replaced, so the CT views and the planner see
  them); the window's registration gains each lesion's combined error
  (:func:`~planner.anatomy.mr_lesions.with_mr_error`). The table and the MR view mark a
  lesion only the MR shows in magenta ("MR only").
* **Register MR to sweep**: from the window's registration chained through
  ``inv(mr_to_ct)``, in a worker with the window's progress bar and Cancel; the verdict
  and the TRE at each MR lesion are shown.
* **MR on US**: the ultrasound view overlays the MR (on the CT grid through
  ``mr_to_ct``) instead of the CT.
* **CT / MR beside the US**: what the fused view next to the ultrasound shows in the
  probe's plane (:meth:`gui.views.fused_view.FusedCTView.show_image`).
* **MR landmarks**: while the Registration panel picks landmarks, a click on the MR
  view gives the pair's first point (carried onto the CT through ``mr_to_ct``); the
  landmark fit then starts "Register MR to sweep" through ``inv(mr_to_ct)``.
* A DICOM study with several series is listed and one chosen
  (:mod:`.mr_series_dialog`: sequence, TR/TE, weighting, contrast phase).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt5.QtGui import QColor
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gui.views.display import DisplayVolume
from gui.views.mr_view import (
    MR_ONLY_COLOUR,
    MRSliceView,
    mr_window_level,
)
from registration.spatial.errors import InputError
from registration.spatial.transforms import apply, invert

from .docking import add_left_dock
from .mr_links import MRLinks

_COLUMNS = ("lesion", "seen on", "size mm", "MR->CT mm")


def _load_mr_for_display(path, series_uid=None, progress=None):
    """(MR Volume, DisplayVolume, (window, level)): everything off the GUI thread."""
    from registration.io.mr_io import load_mr
    mr = load_mr(path, series_uid, progress=progress)
    mr.metadata.setdefault("source", str(path))
    return mr, DisplayVolume(mr), mr_window_level(mr)


class MRPanel(MRLinks, QWidget):
    """Widgets of the MR dock; ``window`` is the MainWindow (ct, labels, sweep, registration)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("mr_panel")
        self.window = window
        self.mr = None
        self.mr_to_ct: Optional[np.ndarray] = None
        self.mr_to_ct_doc: Optional[dict] = None
        self.mr_import = None
        self.mr_result = None       # RegistrationResult of the last MR -> sweep registration
        self.view = MRSliceView("axial")
        self.view.setMinimumSize(200, 200)
        self.info = QLabel("no MR loaded")
        self.info.setObjectName("mr_info")
        self.info.setWordWrap(True)
        self.verdict = QLabel("")
        self.verdict.setObjectName("mr_verdict")
        self.verdict.setWordWrap(True)
        buttons = QGridLayout()      # 2 x 2: the dock shares the left column with the other panels
        self.open_button = QPushButton("Open MR...")
        self.align_button = QPushButton("Open MR->CT...")
        self.lesions_button = QPushButton("Open MR lesions...")
        self.register_button = QPushButton("Register MR to sweep")
        for n, b in enumerate((self.open_button, self.align_button, self.lesions_button, self.register_button)):
            buttons.addWidget(b, n // 2, n % 2)
        mr_files = "MR (*.nii *.nii.gz *.nrrd *.mha *.mhd *.dcm);;all (*)"
        self.open_button.clicked.connect(lambda: self._ask(self.open_mr, "Open MR", mr_files))
        self.align_button.clicked.connect(lambda: self._ask(self.open_mr_to_ct, "Open MR_TO_CT.json", "JSON (*.json)"))
        self.lesions_button.clicked.connect(lambda: self._ask(self.open_lesions, "Open MR lesion clicks",
                                                              "JSON (*.json)"))
        self.register_button.clicked.connect(lambda: self._act("Register MR to sweep", self.register))
        self.overlay_box = QCheckBox("MR on US (instead of the CT)")
        self.overlay_box.setObjectName("mr_on_us")
        self.overlay_box.toggled.connect(lambda on: self._act("MR on US", self.set_mr_on_us, on))
        self.fused_choice = QComboBox()
        self.fused_choice.setObjectName("mr_fused_choice")
        self.fused_choice.addItems(["CT beside the US", "MR beside the US"])
        self.fused_choice.currentIndexChanged.connect(
            lambda i: self._act("Image beside the US", self.show_beside_us, "MR" if i == 1 else "CT"))
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setObjectName("mr_lesion_table")
        self.table.setHorizontalHeaderLabels(list(_COLUMNS))
        self.table.setMaximumHeight(120)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        lay = QVBoxLayout(self)
        lay.addLayout(buttons)
        lay.addWidget(self.info)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.overlay_box)
        lay.addWidget(self.fused_choice)
        lay.addWidget(self.table)
        lay.addWidget(self.verdict)
        for v in window.views.values():
            v.cursor_moved.connect(self._follow_ct_cursor)
        self.view.point_clicked.connect(self._mr_clicked)
        self._update_buttons()

    # ------------------------------------------------------------ actions
    def _act(self, name: str, fn, *args) -> None:
        """A user action: a failure shows one dialog and is logged (the window's reporter)."""
        with self.window.reporter.action(name):
            fn(*args)

    def _ask(self, fn, title: str, filt: str) -> None:
        path, _ = QFileDialog.getOpenFileName(self, title, "", filt)
        if path:
            self._act(title, fn, path)

    def open_mr(self, path, series_uid: Optional[str] = None) -> None:
        """Load the MR in a worker and show it. A DICOM study with several series is listed
        first (a worker, headers only) and the user chooses one (:class:`MRSeriesDialog`)."""
        import os

        from registration.io.mr_io import is_image_file
        path = os.fspath(path)
        if series_uid is None and not is_image_file(path):
            from registration.io.mr_series import list_mr_series
            folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
            self.window.run_worker("List MR series", list_mr_series, lambda series: self._series_listed(
                path, folder, series), folder)
            return
        self.window.run_worker("Open MR", _load_mr_for_display, self._mr_loaded, path, series_uid)

    def _series_listed(self, path, folder, series) -> None:
        if len(series) <= 1:
            self.window.run_worker("Open MR", _load_mr_for_display, self._mr_loaded, path, None)
            return
        from .mr_series_dialog import MRSeriesDialog
        self.series_dialog = dlg = MRSeriesDialog(series, folder, self)
        dlg.accepted.connect(lambda: self._act("Open MR", self.open_mr, folder, dlg.chosen_uid()))
        dlg.open()

    def _mr_loaded(self, result) -> None:
        mr, display, (w, level) = result
        self.mr, self.mr_import, self.mr_result = mr, None, None
        self.view.set_display(display)
        self.view.set_window_level(w, level)
        self.view.set_lesions([])
        md = mr.metadata
        facts = [str(md[k]) for k in ("weighting", "mr_phase", "series_description")
                 if md.get(k) and md.get(k) != "unknown"]
        self.info.setText(f"MR {md.get('source', '')}: {mr.shape_ijk} voxels, "
                          f"{'x'.join(f'{s:.1f}' for s in mr.spacing)} mm" + (f"; {', '.join(facts)}" if facts else ""))
        self._update_buttons()

    def open_mr_to_ct(self, path) -> None:
        """Read a ``ctus align`` result (raises InputError on a bad file)."""
        from planner.anatomy.mr_lesions import read_mr_to_ct_doc
        doc = read_mr_to_ct_doc(path)
        self.mr_to_ct_doc, self.mr_to_ct = doc, np.asarray(doc["mr_to_ct"], float)
        tre = doc.get("tre_mm")
        self.info.setText(self.info.text().split("\nMR->CT")[0]
                          + f"\nMR->CT: verdict {doc.get('verdict', 'unknown')}"
                          + ("" if tre is None else f", error {tre:.1f} mm"))
        self._update_buttons()

    def open_lesions(self, path) -> None:
        """Grow the clicked MR lesions and carry them onto the CT labels (a worker)."""
        from planner.anatomy.mr_lesions import import_mr_lesions, read_seeds
        w = self.window
        if self.mr is None or self.mr_to_ct is None or w.ct is None or w.labels is None:
            raise InputError("MR lesions need the CT with its labels, the MR and MR->CT",
                             fix="open the CT and labels, then Open MR and Open MR->CT")
        seeds, polarity = read_seeds(path)
        w.run_worker("Carry MR lesions to the CT", import_mr_lesions, self._lesions_carried, self.mr,
                     self.mr_to_ct, w.ct, w.labels, seeds=seeds, polarity=polarity,
                     mr_to_ct_doc=self.mr_to_ct_doc, pass_progress=False)

    def _lesions_carried(self, imp) -> None:
        from gui.core.session import RegistrationState
        from planner.anatomy.mr_lesions import with_mr_error
        self.mr_import = imp
        w = self.window
        w.set_labels(imp.labels)
        if w.registration is not None and w.registration.raw is not None:
            r = w.registration
            doc = with_mr_error(r.raw, imp)
            w.set_registration(RegistrationState(r.reference_to_ct, method=r.method, tre_mm=r.tre_mm, fre_mm=r.fre_mm,
                                                 source=r.source, raw=doc, verdict=r.verdict))
        self.view.set_lesions([(les.centroid_mr, les.name, les.diameter_mm, les.seen_on == ["MR"])
                               for les in imp.lesions])
        self._fill_table()
        if imp.lesions:
            self.view.set_cursor(imp.lesions[0].centroid_mr)

    def _fill_table(self) -> None:
        lesions = [] if self.mr_import is None else self.mr_import.lesions
        self.table.setRowCount(len(lesions))
        for row, les in enumerate(lesions):
            only = les.seen_on == ["MR"]
            err = "unknown" if les.mr_ct_error_mm is None else f"{les.mr_ct_error_mm:.1f}"
            cells = (les.name, "MR only" if only else " + ".join(les.seen_on), f"{les.diameter_mm:.0f}", err)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if only:
                    item.setForeground(QColor(*MR_ONLY_COLOUR))
                self.table.setItem(row, col, item)

    def register(self) -> None:
        """MR -> sweep from the window's registration chained through inv(mr_to_ct)."""
        from registration.align.mr_us import register_mr_sweep
        w = self.window
        if self.mr is None or self.mr_to_ct is None or w.sweep is None or w.registration is None:
            raise InputError("MR registration needs the MR, MR->CT, a sweep and a start (a registration)",
                             fix="open them, and register the CT or place landmarks first for the start")
        init = invert(self.mr_to_ct) @ np.asarray(w.registration.reference_to_ct, float)
        targets = {les.name: {"point": les.centroid_mr, "radius_mm": les.diameter_mm / 2}
                   for les in (self.mr_import.lesions if self.mr_import else [])} or None
        self.verdict.setText("registering the MR to the sweep...")
        w.run_worker("Register MR to sweep", register_mr_sweep, self._registered, self.mr, w.sweep, init,
                     targets=targets)

    def _registered(self, res) -> None:
        self.mr_result = res
        u = res.uncertainty
        parts = [f"MR->US: {u.verdict}"]
        for les in (self.mr_import.lesions if self.mr_import else []):
            t = u.target(les.name)
            if t is not None and t.tre_registration_mm is not None:
                parts.append(f"{les.name}{' (MR only)' if les.seen_on == ['MR'] else ''}: "
                             f"TRE {t.tre_registration_mm:.1f} mm rms")
        self.verdict.setText("; ".join(parts))

    # ------------------------------------------------------------ state
    def _follow_ct_cursor(self, lps_ct) -> None:
        if self.mr is not None and self.mr_to_ct is not None:
            self.view.set_cursor(apply(invert(self.mr_to_ct), np.asarray(lps_ct, float)))

    def _update_buttons(self) -> None:
        self.align_button.setEnabled(self.mr is not None)
        self.lesions_button.setEnabled(self.mr is not None and self.mr_to_ct is not None)
        self.register_button.setEnabled(self.mr is not None and self.mr_to_ct is not None)
        self.overlay_box.setEnabled(self.mr is not None and self.mr_to_ct is not None)
        self.fused_choice.setEnabled(self.mr is not None and self.mr_to_ct is not None)


def install(window) -> QDockWidget:
    """Create the MR dock on ``window`` (a gui.window.main_window.MainWindow) and return it."""
    panel = MRPanel(window)
    # not raised: the workflow bar chooses which tab shows
    dock = add_left_dock(window, panel, "MR", "dock_mr", raise_dock=False)
    window.mr_panel = panel
    return dock
