"""A small QPainter plot of an optimiser's metric against the evaluation number.

Input is the ``history`` of a
:class:`~registration.align.registration_result.RegistrationResult`: a list of
``(evaluation, level, metric)`` (metric: LC2 or MI, higher = better). Each
resolution level gets its own colour; the best metric so far is drawn as a
line over the raw evaluations (points), so a reader sees both the noise of
the cost and whether the optimiser still gained anything at the end. Levels
resample the images differently, so the best-so-far line restarts per level.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPen
from PyQt5.QtWidgets import QSizePolicy, QWidget

from registration.align.lc2_stages import SECOND_SEARCH_LEVEL_IDS

LEVEL_COLOURS = [QColor(70, 140, 230), QColor(230, 120, 40), QColor(60, 170, 80), QColor(180, 70, 180)]
#: The registration's second search with small patches (its two pixel sizes): own colours and names.
SECOND_SEARCH_COLOURS = dict(zip(SECOND_SEARCH_LEVEL_IDS, (QColor(120, 120, 120), QColor(30, 30, 30))))


def level_colour(level: int) -> QColor:
    """The colour of a level's evaluations."""
    if level in SECOND_SEARCH_COLOURS:
        return SECOND_SEARCH_COLOURS[level]
    return LEVEL_COLOURS[level % len(LEVEL_COLOURS)]


def level_name(level: int) -> str:
    """The legend's name of a level id (``RegistrationResult.history``)."""
    if level in SECOND_SEARCH_LEVEL_IDS:
        return f"2nd search {SECOND_SEARCH_LEVEL_IDS.index(level) + 1}"
    return f"level {level + 1}"


def nice_ticks(lo: float, hi: float, n: int = 4) -> List[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** np.floor(np.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = np.ceil(lo / step) * step
    return [float(v) for v in np.arange(start, hi + 1e-9 * step, step)]


class ConvergencePlot(QWidget):
    """Metric vs evaluation; call :meth:`set_history` (empty list clears)."""

    def __init__(self, parent=None, metric_name: str = "LC2"):
        super().__init__(parent)
        self.setObjectName("convergence_plot")
        self.setMinimumSize(220, 140)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.metric_name = metric_name
        self.history: List[Tuple[int, int, float]] = []
        self.message = "no refinement run yet"

    def set_history(self, history: Sequence[Sequence[float]], metric_name: str = None,
                    message: str = "") -> None:
        self.history = [(int(e), int(lv), float(m)) for e, lv, m in history if np.isfinite(m)]
        if metric_name:
            self.metric_name = metric_name
        self.message = message
        self.update()

    def best_so_far(self) -> np.ndarray:
        """Running maximum of the metric within each resolution level (what the optimiser has
        achieved by each evaluation). Levels sample the images differently, so their metric
        values are not comparable: each level (id) keeps its own maximum, also where two levels'
        evaluations interleave (the second search's starts run side by side)."""
        m = np.array([h[2] for h in self.history], float)
        lv = np.array([h[1] for h in self.history], int)
        out = m.copy()
        best = {}
        for i in range(m.size):
            out[i] = best[lv[i]] = max(best.get(lv[i], -np.inf), m[i])
        return out

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        p = QPainter(self)
        p.setRenderHint(QPainter.Antialiasing)
        p.fillRect(self.rect(), QColor(250, 250, 250))
        f = QFont(self.font())
        f.setPointSize(8)
        p.setFont(f)
        p.setPen(QColor(60, 60, 60))
        if not self.history:
            p.drawText(self.rect(), Qt.AlignCenter, self.message or "no data")
            p.end()
            return
        plot = QRectF(48, 18, max(10, self.width() - 58), max(10, self.height() - 48))
        ev = np.array([h[0] for h in self.history], float)
        lv = np.array([h[1] for h in self.history], int)
        m = np.array([h[2] for h in self.history], float)
        x0, x1 = float(ev.min()), float(max(ev.max(), ev.min() + 1))
        # Robust y range: a few wild evaluations (fan leaving the CT) must not flatten the curve,
        # and every level (each on its own scale) must stay in view.
        y0 = min(np.percentile(m[lv == level], 2) for level in set(lv.tolist()))
        y1 = float(m.max())
        pad = 0.05 * max(y1 - y0, 1e-3)
        y0, y1 = y0 - pad, y1 + pad

        def to_px(x, y):
            return QPointF(plot.left() + (x - x0) / (x1 - x0) * plot.width(),
                           plot.bottom() - (np.clip(y, y0, y1) - y0) / (y1 - y0) * plot.height())

        p.setPen(QPen(QColor(200, 200, 200), 1))
        for t in nice_ticks(y0, y1):
            a = to_px(x0, t)
            p.drawLine(QPointF(plot.left(), a.y()), QPointF(plot.right(), a.y()))
            p.setPen(QColor(60, 60, 60))
            p.drawText(QRectF(0, a.y() - 7, 44, 14), Qt.AlignRight | Qt.AlignVCenter, f"{t:.3g}")
            p.setPen(QPen(QColor(200, 200, 200), 1))
        p.setPen(QColor(60, 60, 60))
        for t in nice_ticks(x0, x1, 5):
            a = to_px(t, y0)
            p.drawText(QRectF(a.x() - 20, plot.bottom() + 2, 40, 14), Qt.AlignCenter, f"{t:.0f}")
        p.drawRect(plot)
        p.drawText(QRectF(plot.left(), plot.bottom() + 15, plot.width(), 14), Qt.AlignCenter,
                   "cost evaluation" + (f"   ({self.message})" if self.message else ""))
        p.drawText(QRectF(plot.left(), 2, plot.width(), 14), Qt.AlignLeft, f"{self.metric_name} (higher = better)")
        for i in range(len(ev)):
            p.setPen(QPen(level_colour(int(lv[i])), 2.5))
            p.drawPoint(to_px(ev[i], m[i]))
        best = self.best_so_far()
        p.setPen(QPen(QColor(20, 20, 20), 1.5))
        last = {}
        for i in range(len(ev)):
            j = last.get(lv[i])
            if j is not None and j == i - 1:
                p.drawLine(to_px(ev[j], best[j]), to_px(ev[i], best[i]))
            last[lv[i]] = i
        # Legend: one entry per level present + the best-so-far line.
        x = plot.right() - 4
        for level in sorted(set(lv.tolist()), reverse=True):
            text = level_name(level)
            w = p.fontMetrics().width(text) + 14
            x -= w
            p.setPen(QPen(level_colour(level), 6))
            p.drawPoint(QPointF(x + 4, 10))
            p.setPen(QColor(60, 60, 60))
            p.drawText(QPointF(x + 10, 14), text)
        p.end()
