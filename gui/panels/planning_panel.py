"""Planning panel: lesions with visibility and recommendation, candidate needle paths, live edits.

Everything comes from the planner (:func:`planner.plan.plan_case`, run in a
worker); the panel shows it and never invents a number. All points are CT
LPS mm. A selected path is drawn on the three slice views and on the US view
(projected; solid where it lies within ``NEAR_MM`` of the displayed plane)
by transparent overlay children, and sent to the 3D view. Entry and target
are edited in spin boxes or by dragging their markers in a slice view; the
edited path is re-checked with the planner's own constraint evaluation
(:func:`planner.trajectories.evaluate` on the lesion's planning maps).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
from PyQt5.QtCore import QEvent, QObject, QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPen
from PyQt5.QtWidgets import (QAbstractItemView, QDockWidget, QDoubleSpinBox, QGridLayout, QGroupBox, QHBoxLayout,
                             QHeaderView, QLabel, QListWidget, QPushButton, QScrollArea, QTableWidget, QTableWidgetItem,
                             QVBoxLayout, QWidget)

from registration.errors import InputError

from ..qimage import gray_to_qimage, window_level

# Guidance second: it is the answer, and must stay visible in a narrow dock.
COLUMNS = ("lesion", "guidance", "size mm", "depth mm", "type", "B-mode predicted", "B-mode measured")
NEAR_MM = 3.0          # a path point this close to the shown plane is "in plane"
PATH_COLOURS = {"us": QColor(0, 220, 255), "ct": QColor(255, 120, 255)}


# ---------------------------------------------------------------------------- path checking
def constraints_of(plan: dict):
    """planner Constraints from a plan's ``constraints`` block (the ones it was planned with)."""
    from planner.trajectories import Constraints
    c = plan.get("constraints", {})
    keys = ("max_length_mm", "vessel_margin_mm", "min_liver_mm", "max_capsule_angle_deg", "needle_gauge",
            "step_mm", "patient_position")
    return Constraints(**{k: c[k] for k in keys if k in c})


def build_lesion_maps(result, name: str):
    """Planning maps of one lesion of a PlanResult (slow part of a check; run in a worker)."""
    from planner.trajectories import build_maps
    mask = result.lesion_masks.get(name)
    others = None
    for n, m in result.lesion_masks.items():
        if n != name:
            others = m.copy() if others is None else (others | m)
    return build_maps(result.anatomy, mask, constraints_of(result.plan), others)


def check_path(maps, entry, target, guidance: str, lesion_mask=None) -> dict:
    """The planner's constraints on the straight path target -> entry (continued to the skin).

    Returns ``{"ok", "violations": [str], "record": trajectory dict (plan schema)}``.
    """
    from planner.trajectories import REJECT_REASONS, evaluate, path_record
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    d = entry - target
    if np.linalg.norm(d) < 1.0:
        return {"ok": False, "violations": ["entry and target coincide"], "record": None}
    d = d / np.linalg.norm(d)
    res = evaluate(maps, target, d[None])
    bad = [r.replace("_", " ") for r in REJECT_REASONS if bool(res[r][0])]
    if lesion_mask is not None:
        kji = np.rint(maps.to_kji(target[None])[:, 0]).astype(int)
        inside = np.all(kji >= 0) and np.all(kji < np.array(lesion_mask.shape))
        if not inside or not lesion_mask[tuple(kji)]:
            bad.insert(0, "target outside the lesion")
    record = path_record(maps, res, 0, target, guidance) if np.isfinite(res["length_mm"][0]) else None
    if record is not None:
        record["edited_by_user"] = True
    return {"ok": not bad, "violations": bad, "record": record}


# ---------------------------------------------------------------------------- view overlays
class _Follow(QObject):
    """Keeps an overlay child the size of its parent view."""

    def eventFilter(self, obj, ev):  # noqa: N802
        if ev.type() == QEvent.Resize:
            for child in obj.findChildren(PathOverlay):
                child.setGeometry(obj.rect())
        return False


class PathOverlay(QWidget):
    """Transparent child of a SliceView or the USView drawing the selected needle path."""

    def __init__(self, view, window, kind: str):
        super().__init__(view)
        self.setObjectName(f"path_overlay_{kind}")
        self.setAttribute(Qt.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WA_NoSystemBackground)
        self.view, self.window, self.kind = view, window, kind
        self.path = None          # (entry, target, guidance)
        self.setGeometry(view.rect())
        self.show()

    def set_path(self, path) -> None:
        self.path = path
        self.update()

    def project(self, pts: np.ndarray):
        """(widget points [n, 2], distance from the shown plane mm [n]) or None."""
        v = self.view
        if self.kind == "us":
            w = self.window
            if w.sweep is None or w.registration is None or v.frame_index < 0:
                return None
            i2r = w.sweep.image_to_reference(v.frame_index)
            if i2r is None:
                return None
            m = w.registration.reference_to_ct @ i2r          # Image (pixels) -> CT
            x, y = m[:3, 0], m[:3, 1]
            n = np.cross(x, y)
            n /= np.linalg.norm(n)
            d = pts - m[:3, 3]
            col, row = d @ x / (x @ x), d @ y / (y @ y)
            xy = np.array([[q.x(), q.y()] for q in (v.pixel_to_widget(c, r) for c, r in zip(col, row))])
            return xy, d @ n
        if v.display is None:
            return None
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[v.view]
        plane = v.display.pixel_to_lps(v.view, v.slice_index)[ax, 3]
        xy = np.array([[p.x(), p.y()] for p in (v.lps_to_widget(q) for q in pts)])
        return xy, pts[:, ax] - plane

    def paintEvent(self, event):  # noqa: N802
        if self.path is None:
            return
        entry, target, guidance = self.path
        pts = target + np.linspace(0.0, 1.0, 60)[:, None] * (entry - target)
        proj = self.project(pts)
        if proj is None:
            return
        xy, dist = proj
        near = np.abs(dist) <= NEAR_MM
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        if self.kind == "us":
            # Only on the image, and only the part in this plane: a projection of a path far out
            # of the US plane would look like a needle where there is none.
            p.setClipRect(self.view.frame_rect())
        else:
            p.setClipRect(self.view.image_rect())
        colour = PATH_COLOURS.get(guidance, QColor(0, 220, 255))
        faint = QColor(colour)
        faint.setAlpha(110)
        for i in range(1, len(pts)):
            on = near[i] and near[i - 1]
            if self.kind == "us" and not on:
                continue
            p.setPen(QPen(colour if on else faint, 2.5 if on else 1.2, Qt.SolidLine if on else Qt.DashLine))
            p.drawLine(QPointF(*xy[i - 1]), QPointF(*xy[i]))
        for k, (sym, c) in enumerate((("target", QColor(255, 60, 60)), ("entry", QColor(60, 255, 90)))):
            i = 0 if k == 0 else len(pts) - 1
            if near[i]:
                p.setPen(QPen(c, 2))
                p.drawEllipse(QPointF(*xy[i]), 5, 5)
        p.end()


class _DragFilter(QObject):
    """Drag the selected path's entry or target in a slice view (grab within ``GRAB_PX`` of its
    marker on the shown slice). Other mouse use (W/L, zoom, clicks) is left to the view."""

    GRAB_PX = 8.0

    def __init__(self, panel):
        super().__init__(panel)
        self.panel = panel
        self.drag = None          # (view, "entry" | "target")

    def _grab(self, view, pos):
        if self.panel.path() is None or view.display is None:
            return None
        entry, target = self.panel.edited()
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[view.view]
        plane = view.display.pixel_to_lps(view.view, view.slice_index)[ax, 3]
        best = None
        for which, p in (("target", target), ("entry", entry)):
            if abs(p[ax] - plane) > NEAR_MM:
                continue
            q = view.lps_to_widget(p)
            d = float(np.hypot(q.x() - pos.x(), q.y() - pos.y()))
            if d <= self.GRAB_PX and (best is None or d < best[0]):
                best = (d, which)
        return None if best is None else best[1]

    def eventFilter(self, view, ev):  # noqa: N802
        t = ev.type()
        if t == QEvent.MouseButtonPress and ev.button() == Qt.LeftButton:
            which = self._grab(view, ev.pos())
            if which is None:
                return False
            self.drag = (view, which)
            return True
        if self.drag is not None and self.drag[0] is view and t in (QEvent.MouseMove, QEvent.MouseButtonRelease):
            self.panel.set_point(self.drag[1], view.widget_to_lps(ev.pos()))
            if t == QEvent.MouseButtonRelease:
                self.drag = None
            return True
        return False


# ---------------------------------------------------------------------------- CT-guided drawing
class CTPlanDrawing(QWidget):
    """Axial CT at the target with the needle, the vertical and the angle (radiological view)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("ct_plan_drawing")
        self.setMinimumSize(220, 190)
        self.window = window
        self.path: Optional[dict] = None

    def set_path(self, path: Optional[dict]) -> None:
        self.path = path
        self.update()

    def paintEvent(self, event):  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        disp = self.window.display
        if self.path is None or disp is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "no CT-guided path selected")
            p.end()
            return
        target = np.asarray(self.path["target_ct"], float)
        entry = np.asarray(self.path["entry_ct"], float)
        k = disp.slice_index("axial", target)
        img = gray_to_qimage(window_level(disp.slice("axial", k), 400.0, 40.0))
        sc, sr = disp.pixel_spacing("axial")
        scale = min(self.width() / (img.width() * sc), (self.height() - 34) / (img.height() * sr))
        r = QRectF((self.width() - img.width() * sc * scale) / 2, 0, img.width() * sc * scale,
                   img.height() * sr * scale)
        p.drawImage(r, img)

        def to_w(lps):
            col, row = disp.lps_to_pixel("axial", lps)
            return QPointF(r.left() + (col + 0.5) / img.width() * r.width(),
                           r.top() + (row + 0.5) / img.height() * r.height())
        t, e = to_w(target), to_w(entry)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(QColor(255, 255, 255, 160), 1, Qt.DashLine))
        p.drawLine(e, QPointF(e.x(), max(r.top(), e.y() - 0.5 * abs(t.y() - e.y()) - 20)))  # vertical (anterior)
        p.setPen(QPen(PATH_COLOURS["ct"], 2.5))
        p.drawLine(e, t)
        p.setPen(QPen(QColor(255, 60, 60), 2))
        p.drawEllipse(t, 4, 4)
        p.setPen(QPen(QColor(60, 255, 90), 2))
        p.drawEllipse(e, 4, 4)
        f = QFont(self.font())
        f.setPointSize(8)
        p.setFont(f)
        p.setPen(QColor(255, 220, 120))
        p.drawText(4, 12, "R")
        p.drawText(self.width() - 12, 12, "L")
        ct = self.path.get("ct", {})
        p.setPen(QColor(235, 235, 235))
        p.drawText(QRectF(4, self.height() - 32, self.width() - 8, 30), Qt.AlignLeft | Qt.TextWordWrap,
                   f"axial at z = {target[2]:.1f} mm, tilt {ct.get('gantry_tilt_deg', 0):+.1f} deg, "
                   f"{abs(ct.get('angle_from_vertical_deg', 0)):.0f} deg from vertical, "
                   f"depth {ct.get('depth_mm', self.path.get('length_mm', 0)):.0f} mm"
                   + ("  (tilted: axial projection)" if abs(ct.get("gantry_tilt_deg", 0)) > 0.05 else ""))
        p.end()


# ---------------------------------------------------------------------------- the panel
def _spin(name: str) -> QDoubleSpinBox:
    s = QDoubleSpinBox()
    s.setObjectName(name)
    s.setRange(-2000.0, 2000.0)
    s.setDecimals(1)
    s.setSingleStep(1.0)
    s.setSuffix(" mm")
    s.setKeyboardTracking(False)
    return s


class PlanningPanel(QWidget):
    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("planning_panel")
        self.setMinimumWidth(440)
        self.window = window
        self.result = None                 # planner.plan.PlanResult
        self.planned_registration = None   # the RegistrationState the plan was made with (None: none)
        self.maps: Dict[str, object] = {}  # lesion name -> PlanningMaps (for live checks)
        self.check: Optional[dict] = None
        self.worker = None
        self._maps_worker = None
        #: extra keyword arguments for plan_case (tests use fewer directions)
        self.plan_options: dict = {}
        self._build()
        self._follow = _Follow(self)
        self.overlays: List[PathOverlay] = []
        self._drag = _DragFilter(self)
        for name, view in list(window.views.items()) + [("us", window.us_view)]:
            self.overlays.append(PathOverlay(view, window, "us" if name == "us" else "slice"))
            view.installEventFilter(self._follow)
            if name != "us":
                view.installEventFilter(self._drag)
        window.player.frame_changed.connect(lambda _i: self._update_overlays())

    def _build(self) -> None:
        self.plan_button = QPushButton("Plan all lesions")
        self.plan_button.setObjectName("plan_button")
        self.plan_button.clicked.connect(self.run_plan)
        self.export_button = QPushButton("Export...")
        self.export_button.setObjectName("export_button")
        self.export_button.clicked.connect(self.open_export)
        self.status = QLabel("No plan yet: load the CT and labels, then 'Plan all lesions'.")
        self.status.setObjectName("plan_status")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.RichText)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("lesion_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._lesion_selected)
        self.reasons = QLabel()
        self.reasons.setObjectName("lesion_reasons")
        self.reasons.setWordWrap(True)
        self.reasons.setTextFormat(Qt.RichText)
        self.paths = QListWidget()
        self.paths.setObjectName("trajectory_list")
        self.paths.currentRowChanged.connect(self._path_selected)
        edit = QGroupBox("Selected path (CT LPS mm)")
        grid = QGridLayout(edit)
        self.entry_spins = [_spin(f"entry_{a}") for a in "xyz"]
        self.target_spins = [_spin(f"target_{a}") for a in "xyz"]
        for row, (label, spins) in enumerate((("entry", self.entry_spins), ("target", self.target_spins))):
            grid.addWidget(QLabel(label), row, 0)
            for c, s in enumerate(spins):
                grid.addWidget(s, row, c + 1)
                s.valueChanged.connect(lambda _v: self.recheck())
        self.check_label = QLabel("")
        self.check_label.setObjectName("path_check")
        self.check_label.setWordWrap(True)
        grid.addWidget(self.check_label, 2, 0, 1, 4)
        self.add_path_button = QPushButton("Keep edited path")
        self.add_path_button.setObjectName("keep_path")
        self.add_path_button.setEnabled(False)
        self.add_path_button.clicked.connect(self.keep_edited_path)
        grid.addWidget(self.add_path_button, 3, 0, 1, 4)
        self.ct_box = QGroupBox("CT-guided plan")
        self.ct_box.setObjectName("ct_plan_box")
        ct_lay = QVBoxLayout(self.ct_box)
        self.ct_text = QLabel()
        self.ct_text.setObjectName("ct_plan_text")
        self.ct_text.setWordWrap(True)
        self.ct_drawing = CTPlanDrawing(self.window)
        ct_lay.addWidget(self.ct_text)
        ct_lay.addWidget(self.ct_drawing, 1)
        self.ct_box.hide()
        self.table.setMinimumHeight(130)
        self.paths.setMinimumHeight(90)
        self.ct_drawing.setMinimumHeight(230)

        # Content in a scroll area: in a short dock nothing gets squashed to one row.
        self.content = content = QWidget()
        self.scroll = scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)
        lay = QVBoxLayout(content)
        row = QHBoxLayout()
        row.addWidget(self.plan_button, 1)
        row.addWidget(self.export_button)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.reasons)
        lay.addWidget(QLabel("Candidate paths (best first):"))
        lay.addWidget(self.paths, 1)
        lay.addWidget(edit)
        lay.addWidget(self.ct_box, 3)

    # ------------------------------------------------------------ planning
    def run_plan(self) -> None:
        w = self.window
        if w.ct is None or w.labels is None:
            self.status.setText("Planning needs the CT and its label map with lesions (File > Open).")
            return
        if self.worker is not None:
            return
        from planner.plan import plan_case
        ct, labels, reg = w.ct, w.labels, w.registration
        kwargs = dict(sweep=w.sweep if reg is not None else None,
                      reference_to_ct=None if reg is None else reg.reference_to_ct,
                      registration=None if reg is None else reg.to_dict(),
                      labels_path=labels.metadata.get("source"), ct_path=ct.metadata.get("source"))
        kwargs.update(self.plan_options)
        self.status.setText("Planning...")
        self.plan_button.setEnabled(False)
        self.worker = w.run_worker("Plan lesions", lambda progress: plan_case(ct, labels, progress=progress,
                                                                               **kwargs),
                                   lambda result: self.set_result(result, reg))

        def finished():
            self.worker = None
            self.plan_button.setEnabled(True)
            if self.result is None:
                self.status.setText("Planning did not finish (see the log).")
        self.worker.finished.connect(finished)

    def set_result(self, result, registration=None) -> None:
        """Show a planner.plan.PlanResult made with ``registration`` (a RegistrationState or None)."""
        self.result, self.maps, self.planned_registration = result, {}, registration
        self.window.plan = result.plan
        case = result.plan.get("recommendation", {})
        lesions = result.plan.get("lesions", [])
        self.status.setText(f"{len(lesions)} lesion(s) planned in {result.plan['timing']['total_s']:.0f} s. "
                            + "; ".join(map(str, case.get("reasons", [])[:2])))
        self.table.clearSelection()          # so that selecting row 0 below refreshes the details
        self.table.setRowCount(len(lesions))
        for r, les in enumerate(lesions):
            vis = les.get("visibility", {})
            pred = vis.get("predicted", {})
            meas = vis.get("measured")
            rec = les.get("recommendation", {})
            cells = [les["name"], rec.get("guidance", "?").upper(), _num(les.get("diameter_mm")),
                     _num(les.get("depth_mm")), vis.get("lesion_type", "?"),
                     predicted_text(pred), measured_text(meas)]
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setToolTip("\n".join(map(str, rec.get("reasons", []))))
                self.table.setItem(r, c, it)
        if lesions:
            self.table.selectRow(0)

    # ------------------------------------------------------------ selection
    def lesion(self) -> Optional[dict]:
        rows = {i.row() for i in self.table.selectedIndexes()}
        if self.result is None or not rows:
            return None
        return self.result.plan["lesions"][min(rows)]

    def select_lesion(self, name: str) -> None:
        names = [l["name"] for l in self.result.plan["lesions"]]
        if name not in names:
            raise InputError(f"no lesion {name!r} in the plan", fix=f"choose one of {', '.join(names)}")
        self.table.selectRow(names.index(name))

    def stale(self) -> bool:
        """True when the window's registration is not the one this plan was made with."""
        return self.result is not None and self.window.registration is not self.planned_registration

    def _lesion_selected(self) -> None:
        les = self.lesion()
        if self.stale():
            self.status.setText("<span style='color:#b36b00'>The registration changed since this plan was made: "
                                "press 'Plan all lesions' to use it (fusion, measured visibility).</span>")
        self.paths.blockSignals(True)
        self.paths.clear()
        self.paths.blockSignals(False)
        if les is None:
            return
        rec = les.get("recommendation", {})
        lines = [f"<b>{les['name']}: {rec.get('guidance', '?').upper()}</b>"]
        lines += [f"&bull; {x}" for x in rec.get("reasons", [])]
        lines += [f"<i>advisory ({a.get('kind')}):</i> {a.get('text')} <small>[{a.get('evidence')}]</small>"
                  for a in rec.get("advisories", [])]
        if les.get("no_us_path_reason"):
            lines.append(f"<i>no US path:</i> {les['no_us_path_reason']}")
        self.reasons.setText("<br>".join(lines))
        for n, t in enumerate(les.get("trajectories", []), 1):
            extra = " (edited)" if t.get("edited_by_user") else ""
            self.paths.addItem(f"{t['guidance'].upper()} {n}{extra}: {t['length_mm']:.0f} mm, clearance "
                               f"{t.get('min_hard_clearance_mm', float('nan')):.1f} mm, capsule "
                               f"{t.get('capsule_angle_deg', float('nan')):.0f} deg")
        if not les.get("trajectories"):
            self.paths.addItem("no safe path found (see the reasons above)")
        # CT recommendation: show the CT plan of the best CT path straight away.
        ct_paths = [i for i, t in enumerate(les.get("trajectories", [])) if t["guidance"] == "ct"]
        first = ct_paths[0] if (rec.get("guidance") == "ct" and ct_paths) else 0
        if les.get("trajectories"):
            self.paths.setCurrentRow(first)
        else:
            self._show_path(None)

    def path(self) -> Optional[dict]:
        les = self.lesion()
        i = self.paths.currentRow()
        if les is None or i < 0 or i >= len(les.get("trajectories", [])):
            return None
        return les["trajectories"][i]

    def _path_selected(self, _row: int) -> None:
        self._show_path(self.path())

    def _show_path(self, t: Optional[dict]) -> None:
        for spins, key in ((self.entry_spins, "entry_ct"), (self.target_spins, "target_ct")):
            for k, s in enumerate(spins):
                s.blockSignals(True)
                s.setValue(0.0 if t is None else float(t[key][k]))
                s.setEnabled(t is not None)
                s.blockSignals(False)
        path = None if t is None else (np.asarray(t["entry_ct"], float), np.asarray(t["target_ct"], float),
                                       t["guidance"])
        for o in self.overlays:
            o.set_path(path)
        w = self.window
        if t is not None:
            w.set_cursor(np.asarray(t["target_ct"], float))
            if w.view3d is not None:
                w.view3d.set_trajectories([(t["entry_ct"], t["target_ct"])])
        # The CT plan is shown for a CT path; a CT recommendation selects its best CT path.
        show_ct = t is not None and t["guidance"] == "ct"
        self.ct_box.setVisible(bool(show_ct))
        if show_ct:
            ct = t.get("ct", {})
            self.ct_text.setText(ct.get("text", "CT description not available for an edited path"))
            self.ct_drawing.set_path(t)
            self.scroll.ensureWidgetVisible(self.ct_box)
        self.check = None
        self.check_label.setText("" if t is None else "planner path: all constraints met")
        self.add_path_button.setEnabled(False)

    def _update_overlays(self) -> None:
        for o in self.overlays:
            o.update()

    # ------------------------------------------------------------ live check of an edited path
    def edited(self):
        return (np.array([s.value() for s in self.entry_spins]), np.array([s.value() for s in self.target_spins]))

    def set_point(self, which: str, lps) -> None:
        """Set the edited ``entry`` or ``target`` (CT LPS mm) and re-check once."""
        spins = self.entry_spins if which == "entry" else self.target_spins
        for s, v in zip(spins, np.asarray(lps, float)):
            s.blockSignals(True)
            s.setValue(float(v))
            s.blockSignals(False)
        self.recheck()

    def recheck(self) -> None:
        les, t = self.lesion(), self.path()
        if les is None or t is None:
            return
        name = les["name"]
        entry, target = self.edited()
        for o in self.overlays:
            o.set_path((entry, target, t["guidance"]))
        if name not in self.maps:
            self.check_label.setText("preparing the constraint maps of this lesion...")
            if self._maps_worker is None:
                result = self.result

                def done(maps, name=name, result=result):
                    if self.result is result:          # not a plan replaced meanwhile
                        self.maps[name] = maps
                        self.recheck()

                self._maps_worker = self.window.run_worker(f"Prepare path check ({name})",
                                                           lambda progress: build_lesion_maps(result, name), done)
                self._maps_worker.finished.connect(lambda: setattr(self, "_maps_worker", None))
            return
        self.check = check_path(self.maps[name], entry, target, t["guidance"], self.result.lesion_masks.get(name))
        rec = self.check["record"]
        if self.check["ok"]:
            self.check_label.setText(f"<span style='color:#1b7f2a'><b>OK</b></span>: {rec['length_mm']:.0f} mm to "
                                     f"the skin, clearance {rec['min_hard_clearance_mm']:.1f} mm, liver "
                                     f"{rec['liver_traverse_mm']:.0f} mm, capsule {rec['capsule_angle_deg']:.0f} deg")
        else:
            self.check_label.setText("<span style='color:#c0221b'><b>Violates</b></span>: "
                                     + ", ".join(self.check["violations"]))
        self.add_path_button.setEnabled(bool(self.check["ok"]))

    def keep_edited_path(self) -> None:
        """Add the checked edited path to the lesion's trajectories (it is exported with the plan)."""
        les = self.lesion()
        if les is None or self.check is None or not self.check["ok"]:
            return
        rec = dict(self.check["record"])
        if rec["guidance"] == "ct":
            from planner import ct_guidance
            rec["ct"] = ct_guidance.describe(self.result.anatomy, rec)
        les["trajectories"].append(rec)
        row = self.table.currentRow()
        self._lesion_selected()
        self.table.selectRow(row)
        self.paths.setCurrentRow(len(les["trajectories"]) - 1)

    # ------------------------------------------------------------ export
    def open_export(self):
        from ..export_dialog import ExportDialog
        self.export_dialog = ExportDialog(self.window, self)
        self.export_dialog.show()
        return self.export_dialog


def predicted_text(pred: Optional[dict]) -> str:
    """The planner's predicted B-mode conspicuity: category (score 0-1)."""
    if not pred:
        return "not predicted"
    score = pred.get("score")
    return f"{pred.get('category', '?')}" + ("" if score is None else f" ({score:.2f})")


def measured_text(meas: Optional[dict]) -> str:
    """Conspicuity measured on the registered sweep (CNR lesion vs liver ring), or why not."""
    if not meas:
        return "not measured"
    if meas.get("cnr") is None:
        return meas.get("note", "no registered frame cuts it")
    return (f"{'seen' if meas.get('seen') else 'not seen'}, CNR {meas['cnr']:.1f} "
            f"({meas.get('frames_cutting_lesion', '?')} frames)")


def _num(v) -> str:
    return "?" if v is None else f"{v:.0f}"


def install(window) -> QDockWidget:
    """Create the Planning dock on ``window`` (a gui.main_window.MainWindow) and return it."""
    panel = PlanningPanel(window)
    if hasattr(window, "registration_changed"):
        # the stale-plan warning appears as soon as the registration changes
        window.registration_changed.connect(lambda _reg: panel._lesion_selected() if panel.result is not None else None)
    dock = QDockWidget("Planning", window)
    dock.setObjectName("dock_planning")
    dock.setWidget(panel)
    window.addDockWidget(Qt.LeftDockWidgetArea, dock)
    dock.show()     # a dock added to an already visible window is not always shown by Qt
    _tabify_left(window, dock)
    return dock


def _tabify_left(window, dock: QDockWidget) -> None:
    """Share the left area as tabs (Registration / Planning) instead of halving its height."""
    for other in window.findChildren(QDockWidget):
        if other is not dock and window.dockWidgetArea(other) == Qt.LeftDockWidgetArea:
            window.tabifyDockWidget(other, dock)
            dock.raise_()
            return
