"""The lesion table of the planning panel and the selected lesion's details (reasons, candidate paths).

Everything shown comes from the planner's plan (``PlanResult.plan``): size and
depth in mm, the recommended guidance, the predicted B-mode conspicuity and
the one measured on the registered sweep. The panel never invents a number.
"""
from __future__ import annotations

from typing import Optional

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem

from registration.spatial.errors import InputError

# Guidance second: it is the answer, and must stay visible in a narrow dock.
COLUMNS = ("lesion", "guidance", "size mm", "depth mm", "type", "B-mode predicted", "B-mode measured")


class LesionTableMixin:
    """Lesion-table methods of :class:`.planning_panel.PlanningPanel` (a mixin: it uses the panel's
    ``window``, ``result``, ``maps``, ``planned_registration``, ``status``, ``paths`` and
    ``_show_path()``)."""

    def _build_lesion_table(self) -> None:
        """The lesion table and the label with the selected lesion's reasons."""
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

    def set_result(self, result, registration=None) -> None:
        """Show a planner.case.case_plan.PlanResult made with ``registration`` (a RegistrationState or None)."""
        self.result, self.maps, self.planned_registration = result, {}, registration
        self.window.plan = result.plan
        case = result.plan.get("recommendation", {})
        lesions = result.plan.get("lesions", [])
        self._plan_status = (f"{len(lesions)} lesion(s) planned in {result.plan['timing']['total_s']:.0f} s. "
                             + "; ".join(map(str, case.get("reasons", [])[:2])))
        self.status.setText(self._plan_status)
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
        """The selected lesion's plan.json entry, or None."""
        rows = {i.row() for i in self.table.selectedIndexes()}
        if self.result is None or not rows:
            return None
        return self.result.plan["lesions"][min(rows)]

    def select_lesion(self, name: str) -> None:
        """Select lesion ``name``; InputError without a plan or for a name not in it."""
        if self.result is None:
            raise InputError(f"no plan yet: lesion {name!r} cannot be selected", fix="press 'Plan all lesions' first")
        names = [l["name"] for l in self.result.plan["lesions"]]
        if name not in names:
            raise InputError(f"no lesion {name!r} in the plan", fix=f"choose one of {', '.join(names)}")
        self.table.selectRow(names.index(name))

    def stale(self) -> bool:
        """True when the window's registration is not the one this plan was made with."""
        return self.result is not None and self.window.registration is not self.planned_registration

    def _lesion_selected(self) -> None:
        """Show the selected lesion's reasons, advisories and paths (its CT path first for a CT
        recommendation), and warn when the plan's registration is not the window's."""
        les = self.lesion()
        if self.stale():
            self.status.setText("<span style='color:#b36b00'>The registration changed since this plan was made: "
                                "press 'Plan all lesions' to use it (fusion, measured visibility).</span>")
        elif getattr(self, "_plan_status", None):
            self.status.setText(self._plan_status)     # e.g. reverted to the planned registration
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

