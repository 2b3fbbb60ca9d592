"""The planning view on the demo case at the two screen sizes of issue 20: the lesion table in words
and rank order with nothing cut off, a click on a lesion moves the views to it, and a lesion
without a safe path is explained: the counts once, the closest rejected paths listed with their
violations and drawn on the slice views. Screenshots go to tests/artifacts.
"""
from __future__ import annotations

from html import escape

import numpy as np
import pytest
from PyQt5.QtCore import QPointF, QRect, Qt
from PyQt5.QtGui import QFontMetrics

from _gui_helpers import make_window, open_demo
from gui.panels.lesion_table import ADVICE_COLUMN, GUIDANCE_WORDS
from planner.paths.rejected import candidate_label, rule_text, view_label

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def _cut_off_cells(table) -> list:
    """Cells (and headers) whose text does not fit: wider than its column where it cannot wrap,
    taller than its row where it wraps (the text margin is Qt's: focus-frame margin + 1 a side)."""
    from PyQt5.QtWidgets import QStyle
    margin = table.style().pixelMetric(QStyle.PM_FocusFrameHMargin, None, table) + 1
    fm = QFontMetrics(table.font())
    bad = []
    for c in range(table.columnCount()):
        width = table.columnWidth(c) - 2 * margin
        head = table.horizontalHeaderItem(c).text()
        if QFontMetrics(table.horizontalHeader().font()).horizontalAdvance(head) > width:
            bad.append(("header", head))
        for r in range(table.rowCount()):
            text = table.item(r, c).text()
            if max(fm.horizontalAdvance(w) for w in text.split()) > width:
                bad.append((r, c, text))
            elif fm.boundingRect(QRect(0, 0, width, 10000), Qt.TextWordWrap, text).height() > table.rowHeight(r):
                bad.append((r, c, text, "rows"))
    return bad


def _amber_pixels(view) -> int:
    img = view.grab().toImage()
    n = 0
    for y in range(0, img.height(), 2):
        for x in range(0, img.width(), 2):
            c = img.pixelColor(x, y)
            n += c.red() > 200 and 120 < c.green() < 215 and c.blue() < 90
    return n


def _click_row(qtbot, table, row: int) -> None:
    rect = table.visualItemRect(table.item(row, 1))
    qtbot.mouseClick(table.viewport(), Qt.LeftButton, pos=rect.center())


def test_lesion_table_and_no_path_explanation_on_the_demo(qtbot, artifacts_dir):
    w = make_window(qtbot, size=(1366, 768), panels=True)
    open_demo(qtbot, w)
    dock = w.panel_docks["planning"]
    dock.raise_()
    panel = dock.widget()
    panel.plan_options = dict(n_directions=1000)
    qtbot.mouseClick(panel.plan_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=600000)
    assert w.reporter.history == [], w.reporter.history
    plan = panel.result.plan
    t = panel.table

    # Words and rank order: the row order is the plan's ranking, the advice is words, never a code.
    ranking = plan["recommendation"]["ranking"]
    assert [t.item(r, 1).text() for r in range(t.rowCount())] == ranking
    assert [t.item(r, 0).text() for r in range(t.rowCount())] == [str(i) for i in range(1, len(ranking) + 1)]
    by_name = {l["name"]: l for l in plan["lesions"]}
    for r in range(t.rowCount()):
        les = by_name[t.item(r, 1).text()]
        advice = t.item(r, ADVICE_COLUMN).text()
        assert advice.startswith(GUIDANCE_WORDS[les["recommendation"]["guidance"]])
        assert not any(code in advice for code in ("US_FUSION", "NONE", "CEUS ", "_"))

    def no_cut_text(size):
        qtbot.waitUntil(lambda: w.width() == size[0], timeout=5000)
        qtbot.wait(100)
        assert t.horizontalScrollBar().maximum() == 0, "the lesion table scrolls sideways"
        assert t.horizontalHeader().length() <= t.viewport().width()
        assert panel.scroll.horizontalScrollBar().maximum() == 0, "the planning panel scrolls sideways"
        assert _cut_off_cells(t) == []

    no_cut_text((1366, 768))

    # A click on a row moves the views to the lesion: crosshair at its centre within a voxel, the
    # zoomed axial view centred on it.
    axial = w.views["axial"]
    axial.zoom, axial.pan = 3.0, QPointF(150.0, -120.0)
    voxel = float(np.linalg.norm(w.display.grid.spacing))
    for row in (1, t.rowCount() - 1):
        _click_row(qtbot, t, row)
        les = panel.lesion()
        assert les["name"] == t.item(row, 1).text()
        centre = np.asarray(les["centroid_ct"], float)
        for view in w.views.values():
            assert np.linalg.norm(view.cursor_lps - centre) <= voxel
        assert axial.slice_index == w.display.slice_index("axial", centre)
        p = axial.lps_to_widget(centre)
        assert abs(p.x() - axial.width() / 2) <= 3 * voxel and abs(p.y() - axial.height() / 2) <= 3 * voxel

    # The demo's lesion_4 has no safe path: the last row (rank 6), explained.
    assert t.item(t.rowCount() - 1, 1).text() == "lesion_4"
    les = panel.lesion()
    assert les["recommendation"]["guidance"] == "none" and les["rejected_candidates"]
    box = panel.no_path
    assert box.isVisible() and box.lesion is les
    summary, listed = box.summary.text(), box.list.text()
    too_long = les["candidates"]["rejected_by"]["too_long"]
    # the counts are said once, in words, in the box (the reasons point to it)
    combined = panel.reasons.text() + summary + listed
    assert combined.count(f"{too_long} are longer than the") == 1
    assert f"of {les['candidates']['checked']} candidates" not in panel.reasons.text()
    assert "Why no safe path" in panel.reasons.text()
    for n, c in enumerate(les["rejected_candidates"]):
        assert f"<b>{candidate_label(n)}</b></a>: {c['length_mm']:.0f} mm path" in listed
        for v in c["violations"]:
            assert escape(rule_text(v)) in listed
    # drawn on the three slice views, not on the US view, labelled with their first violation
    slices = [o for o in panel.overlays if o.kind == "slice"]
    assert len(slices) == 3
    for o in slices:
        assert [r[2] for r in o.rejected] == [
            f"{candidate_label(n)}: {view_label(c['violations'][0])}" + (
                f" +{len(c['violations']) - 1}" if len(c["violations"]) > 1 else "")
            for n, c in enumerate(les["rejected_candidates"])]
    assert all(not o.rejected for o in panel.overlays if o.kind == "us")
    axial.zoom, axial.pan = 1.0, QPointF(0.0, 0.0)
    qtbot.wait(50)
    with_paths = _amber_pixels(axial)
    box.draw_check.setChecked(False)
    assert all(not o.rejected for o in panel.overlays)
    without = _amber_pixels(axial)
    assert with_paths > without + 30, (with_paths, without)
    box.draw_check.setChecked(True)
    # a letter highlights its path on the views; again: none
    box.highlight(1)
    assert [r[3] for r in slices[0].rejected][:2] == [False, True]
    box.highlight(1)
    assert not any(r[3] for r in slices[0].rejected)
    qtbot.wait(100)
    w.grab().save(str(artifacts_dir / "gui_plan_no_path_1366x768.png"))
    panel.content.grab().save(str(artifacts_dir / "gui_plan_no_path_panel_1366x768.png"))

    # A lesion with a safe path hides the explanation and the drawn candidates.
    _click_row(qtbot, t, 0)
    assert not box.isVisible() and all(not o.rejected for o in panel.overlays)

    # The same at 1920x1080.
    w.resize(1920, 1080)
    no_cut_text((1920, 1080))
    _click_row(qtbot, t, t.rowCount() - 1)
    assert box.isVisible() and all(len(o.rejected) == len(les["rejected_candidates"]) for o in slices)
    qtbot.wait(100)
    w.grab().save(str(artifacts_dir / "gui_plan_no_path_1920x1080.png"))
    w.close()
