"""The lesion table of the planning panel and the selected lesion's details (reasons, candidate paths).

Everything shown comes from the planner's plan (``PlanResult.plan``): size and
depth in mm, the recommended guidance, the predicted B-mode visibility and
the one measured on the registered sweep. The panel never invents a number.
States are told apart by words and colour: conditional advice ("US_FUSION if
TRE <= x mm", amber), no safe path ("NONE", red), and in the path list an
unsafe least-risk path ("UNSAFE", red, with its violations in mm).
"""
from __future__ import annotations

from html import escape
from typing import Optional

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QBrush, QColor
from PyQt5.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QListWidgetItem, QTableWidget, QTableWidgetItem

from registration.spatial.errors import InputError

# Guidance second: it is the answer, and must stay visible in a narrow dock.
COLUMNS = ("lesion", "guidance", "size mm", "depth mm", "type", "B-mode predicted", "B-mode measured")
#: Background of the guidance cell: conditional advice amber, no safe path red.
CONDITIONAL_BG, NONE_BG = QColor(255, 214, 140), QColor(255, 170, 170)
UNSAFE_FG = QColor(200, 20, 20)


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
        self._plan_status = escape(f"{len(lesions)} lesion(s) planned in {result.plan['timing']['total_s']:.0f} s. "
                                   + "; ".join(map(str, case.get("reasons", [])[:2])))
        self.status.setText(self._plan_status)
        self.table.clearSelection()          # so that selecting row 0 below refreshes the details
        self.table.setRowCount(len(lesions))
        for r, les in enumerate(lesions):
            vis = les.get("visibility", {})
            pred = vis.get("predicted", {})
            meas = vis.get("measured")
            rec = les.get("recommendation", {})
            cells = [les["name"], guidance_text(rec), _num(les.get("diameter_mm")),
                     _num(les.get("depth_mm")), vis.get("lesion_type", "?"),
                     predicted_text(pred), measured_text(meas)]
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setToolTip("\n".join(map(str, rec.get("reasons", []))))
                if c == 1 and rec.get("condition"):
                    it.setBackground(QBrush(CONDITIONAL_BG))
                elif c == 1 and rec.get("guidance") == "none":
                    it.setBackground(QBrush(NONE_BG))
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
        # rich text: every planner text is escaped ("<= 2.7 mm" is not a tag)
        lines = [f"<b>{escape(les['name'])}: {escape(guidance_text(rec))}</b>"]
        if rec.get("condition"):
            lines.append(f"<span style='color:#a05a00'><b>conditional:</b> {escape(rec['condition']['text'])}</span>")
        for code, x in zip(rec.get("reason_codes") or [None] * len(rec.get("reasons", [])), rec.get("reasons", [])):
            colour = "#c0221b" if code == "least_risk_path" else None
            lines.append(f"&bull; <span style='color:{colour}'>{escape(x)}</span>" if colour else f"&bull; {escape(x)}")
        lines += [f"<i>advisory ({escape(str(a.get('kind')))}):</i> {escape(str(a.get('text')))} "
                  f"<small>[{escape(str(a.get('evidence')))}]</small>"
                  for a in rec.get("advisories", [])]
        if les.get("no_us_path_reason"):
            lines.append(f"<i>no US path:</i> {escape(les['no_us_path_reason'])}")
        self.reasons.setText("<br>".join(lines))
        for n, t in enumerate(les.get("trajectories", []), 1):
            item = QListWidgetItem(path_text(t, n))
            if t.get("safe", True) is False:
                item.setForeground(QBrush(UNSAFE_FG))
                item.setToolTip("\n".join(v["text"] for v in t.get("violations", [])))
            self.paths.addItem(item)
        has_safe = any(t.get("safe", True) is not False for t in les.get("trajectories", []))
        if not has_safe:       # after the paths: list rows stay trajectory indices
            self.paths.addItem("no safe path found (see the reasons above)")
        # CT recommendation: show the CT plan of the best CT path straight away.
        ct_paths = [i for i, t in enumerate(les.get("trajectories", [])) if t["guidance"] == "ct"
                    and t.get("safe", True) is not False]
        first = ct_paths[0] if (rec.get("guidance") == "ct" and ct_paths) else 0
        if has_safe:
            self.paths.setCurrentRow(first)
        else:
            self._show_path(None)       # only an unsafe path (or none): nothing is selected as a plan


def guidance_text(rec: dict) -> str:
    """The recommended guidance in capitals; conditional advice with its condition."""
    g = str(rec.get("guidance", "?")).upper()
    cond = rec.get("condition")
    return f"{g} if TRE <= {cond['max_tre_rms_mm']:g} mm" if cond else g


def path_text(t: dict, n: int) -> str:
    """One line of the path list: guidance, length, clearance, capsule angle; an unsafe least-risk
    path says UNSAFE and its first violation, a double-oblique CT path says so."""
    extra = " (edited)" if t.get("edited_by_user") else ""
    clear = t.get("min_hard_clearance_mm")
    text = (f"{t['guidance'].upper()} {n}{extra}: {t['length_mm']:.0f} mm, clearance "
            f"{float('nan') if clear is None else clear:.1f} mm, capsule {t.get('capsule_angle_deg', float('nan')):.0f} deg")
    if (t.get("ct") or {}).get("double_oblique"):
        text += ", double oblique"
    if t.get("safe", True) is False:
        v = t.get("violations") or [{"text": "breaks a hard rule"}]
        return f"UNSAFE least-risk {text}: {v[0]['text']}" + (f" (+{len(v) - 1} more)" if len(v) > 1 else "")
    if t.get("cautions"):
        text += f"; caution: {t['cautions'][0]['text']}"
    return text


def predicted_text(pred: Optional[dict]) -> str:
    """The planner's predicted B-mode visibility: category (probability 0-1; 'score' in plans
    before format 1.2)."""
    if not pred:
        return "not predicted"
    p = pred.get("probability", pred.get("score"))
    return f"{pred.get('category', '?')}" + ("" if p is None else f" ({p:.2f})")


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

