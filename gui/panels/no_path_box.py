"""'Why no safe path': the explanation of a lesion the planner found no safe needle path to.

A count of rejections per rule cannot be checked by a person; the few paths that
came closest can. For the selected lesion without a safe path the box says once,
in one sentence, how many of the straight paths checked broke each hard rule,
and lists the rejected paths that came closest (plan.json
``rejected_candidates``, from :mod:`planner.paths.rejected`): each lettered
(A, B, ...) with its length and every rule it breaks, the structure, the
clearance measured in mm and the margin it needed. The same letters label the
paths drawn on the slice views (dashed, amber: :mod:`.path_overlay`); clicking
a letter highlights that path there. The list is rich text that wraps (a
narrow dock cuts nothing off). The least-risk path (red) stays in the
panel's path list. Everything shown is the planner's; none of these paths is a plan.
"""
from __future__ import annotations

from html import escape
from typing import List, Optional

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import QCheckBox, QGroupBox, QLabel, QVBoxLayout

from planner.paths.rejected import candidate_label, rejection_counts_text, rule_text, short_text, view_label


class NoPathBox(QGroupBox):
    """The explanation of the selected lesion without a safe path (hidden for other lesions).

    ``changed`` is emitted when what the views should draw changes (the lesion, the
    highlighted candidate, the "draw" tick box); :meth:`drawn` gives it.
    """

    changed = pyqtSignal()

    def __init__(self, parent=None):
        super().__init__("Why no safe path", parent)
        self.setObjectName("no_path_box")
        self.lesion: Optional[dict] = None
        self.summary = QLabel()
        self.summary.setObjectName("no_path_summary")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.RichText)
        #: the listed paths, one paragraph each; a letter is a link that highlights its path
        self.list = QLabel()
        self.list.setObjectName("rejected_list")
        self.list.setWordWrap(True)
        self.list.setTextFormat(Qt.RichText)
        self.list.setTextInteractionFlags(Qt.LinksAccessibleByMouse | Qt.LinksAccessibleByKeyboard)
        self.list.linkActivated.connect(lambda href: self.highlight(int(href)))
        self.current = -1          # the highlighted candidate (-1: none)
        self.draw_check = QCheckBox("Draw these paths on the slice views (amber, dashed)")
        self.draw_check.setObjectName("draw_rejected")
        self.draw_check.setChecked(True)
        self.draw_check.toggled.connect(lambda _on: self.changed.emit())
        lay = QVBoxLayout(self)
        lay.addWidget(self.summary)
        lay.addWidget(self.list)
        lay.addWidget(self.draw_check)
        self.hide()

    def candidates(self) -> List[dict]:
        """The shown lesion's rejected candidates (plan.json dicts), best first."""
        return list((self.lesion or {}).get("rejected_candidates") or [])

    def set_lesion(self, les: Optional[dict], max_length_mm: float = 150.0) -> None:
        """Explain ``les`` (a plan.json lesion without a safe path), or hide the box (None)."""
        self.lesion = les
        self.current = -1
        if les is None:
            self.hide()
            self.changed.emit()
            return
        cand = les.get("candidates", {})
        lines = [escape(rejection_counts_text(cand.get("rejected_by", {}), cand.get("checked", 0),
                                              cand.get("safe", 0), max_length_mm))]
        lr = [t for t in les.get("trajectories", []) if t.get("safe", True) is False]
        if lr:
            lines.append("<span style='color:#c0221b'>The least-risk path (red, in the candidate paths below) "
                         f"{escape('; '.join(short_text(v) for v in lr[0].get('violations', [])))}.</span>")
        rejected = self.candidates()
        if rejected:
            lines.append(f"The {len(rejected)} other paths that came closest, lettered as on the slice views "
                         "(clearances: needle axis to the structure's nearest voxel centre):")
        else:
            lines.append("No other straight path from the skin comes close enough to list.")
        self.summary.setText("<br>".join(lines))
        self.list.setVisible(bool(rejected))
        self.draw_check.setVisible(bool(rejected))
        self._fill_list()
        self.show()
        self.changed.emit()

    def _fill_list(self) -> None:
        """One paragraph per listed path: its letter (a link; the highlighted one on amber), length,
        and every rule it breaks with the structure and the clearance against the margin."""
        rows = []
        for n, c in enumerate(self.candidates()):
            letter = candidate_label(n)
            plate = " style='background-color:#ffd27a'" if n == self.current else ""
            broken = "1 hard rule" if len(c["violations"]) == 1 else f"{len(c['violations'])} hard rules"
            rows.append(f"<p{plate}><a href='{n}'><b>{letter}</b></a>: {c['length_mm']:.0f} mm path, breaks {broken}:"
                        + "".join(f"<br>&nbsp;&nbsp;&bull; {escape(rule_text(v))}" for v in c["violations"]) + "</p>")
        self.list.setText("".join(rows))

    def highlight(self, n: int) -> None:
        """Highlight candidate ``n`` (0 = A) in the list and on the views; again: none."""
        self.current = -1 if n == self.current or not 0 <= n < len(self.candidates()) else n
        self._fill_list()
        self.changed.emit()

    def drawn(self) -> list:
        """What the slice views draw: [(entry, target, label, highlighted)], empty when hidden or
        unticked. Labels: letter and first violation ("A: crosses bone", "B: hepatic vein 2.7 < 3.8 mm")."""
        if self.lesion is None or not self.draw_check.isChecked():
            return []
        cur = self.current
        out = []
        for n, c in enumerate(self.candidates()):
            v = c["violations"]
            label = f"{candidate_label(n)}: {view_label(v[0])}" + (f" +{len(v) - 1}" if len(v) > 1 else "")
            out.append((c["entry_ct"], c["target_ct"], label, n == cur))
        return out
