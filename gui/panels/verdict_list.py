"""The registration verdict as a radiologist reads it: one line per lesion, plain words, one figure.

A header says whose verdict it is (an automatic result waiting for Accept, the accepted
one, a loaded file) and the overall verdict; below it one line per target from
:func:`gui.core.verdict_text.target_verdict` ("good: overlay within ~2 mm at lesion_1"),
the chosen target's line in bold, each line's numbers (RMS, 95 %, needle error, hit
probability, the engine's own reasons) in its tooltip. Lines wrap: long reasons never
widen the dock.
"""
from __future__ import annotations

from typing import List, Optional

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from gui.core.verdict_text import VERDICT_COLOURS, VERDICT_WORDS, RunFacts, TargetVerdict, target_verdict
from registration.align.assessment import Assessment


def _label(name: str) -> QLabel:
    lab = QLabel()
    lab.setObjectName(name)
    lab.setWordWrap(True)
    lab.setTextFormat(Qt.RichText)
    lab.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
    return lab


class VerdictList(QWidget):
    """Header + one wrapped line per target; :meth:`show_assessment` or :meth:`show_message`."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("verdict_list")
        self.header = _label("verdict_header")
        self.lines: List[QLabel] = []
        self.rows: List[TargetVerdict] = []
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.setSpacing(2)
        self._lay.addWidget(self.header)
        self.show_message("No automatic result yet.")

    def show_message(self, text: str) -> None:
        self.header.setText(text)
        self._set_rows([], None)

    def show_assessment(self, title: str, a: Assessment, run: RunFacts, chosen: Optional[str],
                        skip: tuple = ("CT centre",)) -> List[TargetVerdict]:
        """``title`` (whose result), the overall verdict, then a line per target (``skip``: targets
        not shown when lesions exist, e.g. the CT centre)."""
        targets = [t for t in a.targets if t.name not in skip] or list(a.targets)
        rows = [target_verdict(a, t, run) for t in targets]
        colour = VERDICT_COLOURS.get(a.verdict, "#c0221b")
        n_bad = sum(r.verdict != "good" for r in rows)
        tail = (f"{n_bad} of {len(rows)} need attention" if n_bad else
                f"all {len(rows)} target{'s' if len(rows) != 1 else ''} good")
        self.header.setText(f"{title}: <b style='color:{colour}'>{VERDICT_WORDS.get(a.verdict, a.verdict)}</b> "
                            f"({tail})")
        self.header.setToolTip("Overall verdict: the worst over the targets near the sweep.\n" + "\n".join(a.reasons))
        self._set_rows(rows, chosen)
        return rows

    def _set_rows(self, rows: List[TargetVerdict], chosen: Optional[str]) -> None:
        self.rows = rows
        while len(self.lines) < len(rows):
            lab = _label(f"verdict_line_{len(self.lines)}")
            self.lines.append(lab)
            self._lay.addWidget(lab)
        for lab, row in zip(self.lines, rows):
            colour = VERDICT_COLOURS.get(row.verdict, "#c0221b")
            body = row.text.replace(row.words, f"<b style='color:{colour}'>{row.words}</b>", 1)
            lab.setText(f"<b>{body}</b>" if row.name == chosen else body)
            lab.setToolTip(row.details)
            lab.show()
        for lab in self.lines[len(rows):]:
            lab.hide()
            lab.clear()

    def plain_text(self) -> str:
        """Everything shown, as plain text (header and lines)."""
        from PyQt5.QtGui import QTextDocument
        doc = QTextDocument()
        out = []
        for lab in [self.header] + [lab for lab in self.lines if not lab.isHidden()]:
            doc.setHtml(lab.text())
            out.append(doc.toPlainText())
        return "\n".join(out)
