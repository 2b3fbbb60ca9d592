"""The lesion table of the planning panel and the selected lesion's details (reasons, candidate paths).

Everything shown comes from the planner's plan (``PlanResult.plan``): size and
depth in mm, the recommended guidance in words, the predicted B-mode visibility
and the one measured on the registered sweep. The panel never invents a number.
Rows are in the plan's rank order (``accessibility_rank``: the lesion to biopsy
first on top); the columns fit a narrow dock without horizontal scrolling (the
advice wraps onto a second line rather than being cut). States are told apart
by words and colour: conditional advice ("US with fusion if TRE <= x mm",
amber), no safe path ("no safe path", red), and in the path list an unsafe
least-risk path ("UNSAFE", red, with its violations in mm). Selecting a lesion
moves the crosshair of every view to its target (centring zoomed views on it).
"""
from __future__ import annotations

from html import escape
from typing import Optional

import numpy as np
from PyQt5.QtCore import QPointF, Qt
from PyQt5.QtGui import QBrush, QColor
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListWidgetItem,
    QTableWidget,
    QTableWidgetItem,
)

from registration.spatial.errors import InputError

# Rank first (the order of the rows), the advice third: it is the answer and may wrap.
COLUMNS = ("#", "lesion", "advice", "size", "depth", "B-mode")
COLUMN_TIPS = ("rank: the lesion to biopsy first is 1", "lesion label",
               "recommended guidance (conditional advice in amber, no safe path in red)",
               "equivalent diameter (mm)", "depth of the acoustic window (mm)",
               "B-mode visibility: predicted (from size, depth, type) and, with a registered sweep, measured")
ADVICE_COLUMN = 2
#: The table shows this many rows before it scrolls.
MAX_VISIBLE_ROWS = 10
#: The planner's guidance codes in words (plan.json ``recommendation.guidance``).
GUIDANCE_WORDS = {"us": "ultrasound", "us_fusion": "US with fusion", "ceus": "contrast US (CEUS)",
                  "ct": "CT-guided", "none": "no safe path"}
#: Background of the advice cell: conditional advice amber, no safe path red.
CONDITIONAL_BG, NONE_BG = QColor(255, 214, 140), QColor(255, 170, 170)
UNSAFE_FG = QColor(200, 20, 20)


class LesionTableMixin:
    """Lesion-table methods of :class:`.planning_panel.PlanningPanel` (a mixin: it uses the panel's
    ``window``, ``result``, ``maps``, ``planned_registration``, ``status``, ``paths``,
    ``_show_path()`` and ``_show_no_path()``)."""

    def _build_lesion_table(self) -> None:
        """The lesion table and the label with the selected lesion's reasons."""
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("lesion_table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(True)
        self.table.setTextElideMode(Qt.ElideNone)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(ADVICE_COLUMN, QHeaderView.Stretch)
        header.setMinimumSectionSize(24)
        # the advice wraps within its column: rows take the height of their wrapped text
        header.sectionResized.connect(lambda *_: self._fit_table())
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
        for r, les in enumerate(ranked(lesions)):
            rec = les.get("recommendation", {})
            vis = les.get("visibility", {})
            rank = les.get("accessibility_rank")
            cells = ["" if rank is None else str(rank), les["name"], guidance_text(rec),
                     _mm(les.get("diameter_mm")), "no window" if les.get("depth_mm") is None else _mm(les["depth_mm"]),
                     bmode_text(vis.get("predicted"), vis.get("measured"))]
            tip = "\n".join(map(str, rec.get("reasons", [])))
            for c, text in enumerate(cells):
                it = QTableWidgetItem(text)
                it.setToolTip(tip)
                if c == ADVICE_COLUMN and rec.get("condition"):
                    it.setBackground(QBrush(CONDITIONAL_BG))
                elif c == ADVICE_COLUMN and rec.get("guidance") == "none":
                    it.setBackground(QBrush(NONE_BG))
                if c != ADVICE_COLUMN:
                    it.setTextAlignment(Qt.AlignLeft | Qt.AlignVCenter)
                self.table.setItem(r, c, it)
        self.table.resizeColumnsToContents()
        self._fit_table()
        if lesions:
            self.table.selectRow(0)

    def _fit_table(self) -> None:
        """Rows as tall as their wrapped text; the table as tall as its rows (up to
        ``MAX_VISIBLE_ROWS``, then it scrolls), so no empty space pushes the details down."""
        t = self.table
        t.resizeRowsToContents()
        rows = min(t.rowCount(), MAX_VISIBLE_ROWS)
        h = t.horizontalHeader().height() + sum(t.rowHeight(r) for r in range(rows)) + 2 * t.frameWidth()
        t.setFixedHeight(max(h, t.horizontalHeader().height() + 2 * t.frameWidth() + 30))

    # ------------------------------------------------------------ selection
    def lesion(self) -> Optional[dict]:
        """The selected lesion's plan.json entry (found by the name in its row), or None."""
        rows = {i.row() for i in self.table.selectedIndexes()}
        if self.result is None or not rows:
            return None
        item = self.table.item(min(rows), 1)
        name = None if item is None else item.text()
        return next((l for l in self.result.plan["lesions"] if l["name"] == name), None)

    def select_lesion(self, name: str) -> None:
        """Select lesion ``name``; InputError without a plan or for a name not in it."""
        if self.result is None:
            raise InputError(f"no plan yet: lesion {name!r} cannot be selected", fix="press 'Plan all lesions' first")
        rows = [self.table.item(r, 1).text() if self.table.item(r, 1) else None for r in range(self.table.rowCount())]
        if name not in rows:
            raise InputError(f"no lesion {name!r} in the plan",
                             fix=f"choose one of {', '.join(l['name'] for l in self.result.plan['lesions'])}")
        self.table.selectRow(rows.index(name))

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
            self._show_no_path(None)
            return
        rec = les.get("recommendation", {})
        self._show_reasons(les, rec)
        for n, t in enumerate(les.get("trajectories", []), 1):
            item = QListWidgetItem(path_text(t, n))
            if t.get("safe", True) is False:
                item.setForeground(QBrush(UNSAFE_FG))
                item.setToolTip("\n".join(v["text"] for v in t.get("violations", [])))
            self.paths.addItem(item)
        has_safe = any(t.get("safe", True) is not False for t in les.get("trajectories", []))
        if not has_safe:       # after the paths: list rows stay trajectory indices
            self.paths.addItem("no safe path found (why: see 'Why no safe path' above)")
        # CT recommendation: show the CT plan of the best CT path straight away.
        ct_paths = [i for i, t in enumerate(les.get("trajectories", [])) if t["guidance"] == "ct"
                    and t.get("safe", True) is not False]
        first = ct_paths[0] if (rec.get("guidance") == "ct" and ct_paths) else 0
        if has_safe:
            self.paths.setCurrentRow(first)
        else:
            self._show_path(None)       # only an unsafe path (or none): nothing is selected as a plan
        self._show_no_path(None if has_safe else les)
        # the views go to the lesion: the crosshair at its target, zoomed views centred on it
        centre_views(self.window, np.asarray(les["target_ct"], float))

    def _show_reasons(self, les: dict, rec: dict) -> None:
        """The lesion's advice, condition, reasons and advisories in rich text, each said once
        (every planner text escaped: "<= 2.7 mm" is not a tag). Without any safe path the counts
        of rejected candidates are left to the 'Why no safe path' box."""
        vis = les.get("visibility", {})
        depth = "no acoustic window" if les.get("depth_mm") is None else f"{les['depth_mm']:.0f} mm deep"
        lines = [f"<b>{escape(les['name'])}: {escape(guidance_text(rec))}</b>",
                 escape(f"{_mm(les.get('diameter_mm'))}, {depth}, {vis.get('lesion_type', '?')}; B-mode "
                        f"predicted {predicted_text(vis.get('predicted'))}, measured: "
                        f"{measured_text(vis.get('measured'))}")]
        if rec.get("condition"):
            lines.append(f"<span style='color:#a05a00'><b>conditional:</b> {escape(rec['condition']['text'])}</span>")
        codes = rec.get("reason_codes") or [None] * len(rec.get("reasons", []))
        for code, x in zip(codes, rec.get("reasons", [])):
            if code == "no_us_path" and les.get("no_us_path_code") == "no_safe_needle_path":
                x = "no US-guided path: no safe needle path at all (why: see 'Why no safe path' above)"
            colour = "#c0221b" if code == "least_risk_path" else None
            lines.append(f"&bull; <span style='color:{colour}'>{escape(x)}</span>" if colour else f"&bull; {escape(x)}")
        lines += [f"<i>advisory ({escape(str(a.get('kind')))}):</i> {escape(str(a.get('text')))} "
                  f"<small>[{escape(str(a.get('evidence')))}]</small>"
                  for a in rec.get("advisories", [])]
        if les.get("no_us_path_reason") and "no_us_path" not in codes:
            lines.append(f"<i>no US path:</i> {escape(les['no_us_path_reason'])}")
        self.reasons.setText("<br>".join(lines))


def ranked(lesions: list) -> list:
    """The plan's lesions in rank order (``accessibility_rank``; unranked ones last, in plan order)."""
    return sorted(lesions, key=lambda l: (l.get("accessibility_rank") is None, l.get("accessibility_rank") or 0))


def centre_views(window, lps: np.ndarray) -> None:
    """Move every view's crosshair to ``lps`` (CT LPS mm) and pan each zoomed slice view so that
    the point sits at its centre (an unzoomed view shows the whole slice already)."""
    window.set_cursor(lps)
    for view in window.views.values():
        if getattr(view, "display", None) is None or view.zoom <= 1.0:
            continue
        p = view.lps_to_widget(lps)
        view.pan = view.pan + QPointF(view.width() / 2.0 - p.x(), view.height() / 2.0 - p.y())
        view.update()


def guidance_text(rec: dict) -> str:
    """The recommended guidance in words; conditional advice with its condition."""
    code = str(rec.get("guidance", "?"))
    g = GUIDANCE_WORDS.get(code, code)
    cond = rec.get("condition")
    return f"{g} if TRE \u2264 {cond['max_tre_rms_mm']:g} mm" if cond else g


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


def bmode_text(pred: Optional[dict], meas: Optional[dict]) -> str:
    """The table's B-mode cell: the predicted category and, when measured on a registered sweep,
    whether it was seen ("likely, seen"); the numbers are in the details."""
    text = (pred or {}).get("category", "not predicted")
    if meas and meas.get("seen") is not None:
        text += ", seen" if meas["seen"] else ", not seen"
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


def _mm(v) -> str:
    return "?" if v is None else f"{v:.0f} mm"
