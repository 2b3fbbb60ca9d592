"""The registration steps on the demo case at 1366x768, as a radiologist does them: landmark pairs
clicked at the true positions (pick mode stops after each pair when chosen, and after the pair
that completes the set, saying why), six pairs with every column readable and no scroll bar,
the landmark estimate labelled as such at the first lesion, then the automatic refinement whose
verdict names each lesion in plain words with one figure, accepted with Ctrl+Return.
Screenshots of the verdict panel and the window at 1366x768 and 1920x1080 go to tests/artifacts."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, Qt

from _gui_helpers import SIZES, SPOTS, activate, make_window, open_demo, pick, raised_panel, six_frames

pytestmark = [pytest.mark.gui, pytest.mark.slow]
JARGON = ("TRE", "FRE", "FLE", "LC2", "Hessian", "metric", "optimum", "multistart", "RMS", "covariance")


def _fully_visible(widget, area) -> bool:
    """``widget`` lies wholly inside the scroll area's viewport (nothing of it scrolled away)."""
    vp = area.viewport()
    top_left = widget.mapTo(vp, QPoint(0, 0))
    return (top_left.y() >= 0 and top_left.y() + widget.height() <= vp.height()
            and top_left.x() >= 0 and top_left.x() + widget.width() <= vp.width())


def _table_readable(table) -> None:
    """Every row and column inside the viewport; every header and cell text fits its column."""
    assert not table.verticalScrollBar().isVisible() and not table.horizontalScrollBar().isVisible()
    header = table.horizontalHeader()
    fm_h, fm = header.fontMetrics(), table.fontMetrics()
    for c in range(table.columnCount()):
        assert header.sectionViewportPosition(c) + header.sectionSize(c) <= table.viewport().width() + 1
        text = table.horizontalHeaderItem(c).text()
        assert fm_h.width(text) + 4 <= header.sectionSize(c), (text, header.sectionSize(c))
        for r in range(table.rowCount()):
            cell = table.item(r, c).text()
            assert fm.width(cell) + 4 <= header.sectionSize(c), (r, c, cell)
    for r in range(table.rowCount()):
        rect = table.visualItemRect(table.item(r, 1))
        assert rect.top() >= 0 and rect.bottom() <= table.viewport().height(), (r, rect)


def test_demo_registration_at_1366x768(qtbot, artifacts_dir):
    w = make_window(qtbot, size=SIZES[0], panels=True)
    w.move(0, 0)
    activate(qtbot, w)
    true_r2c = open_demo(qtbot, w)
    panel = w.panel_docks["registration"].widget()
    # The app shows the step the data leaves off at: register, in the Registration panel.
    assert w.workflow.current == "register" and raised_panel(w) == "registration"
    # The error target defaults to the first lesion (not the CT centre).
    assert panel.target()[0] == "lesion_1"
    rows, cols = w.sweep.image_shape
    frames = six_frames(w)

    # One pair at a time, as chosen: picking stops after the pair, with the reason in the status bar.
    panel.one_at_a_time.setChecked(True)
    qtbot.keyClick(w, Qt.Key_P)
    assert panel.pick_button.isChecked()
    pick(qtbot, w, int(frames[0]), cols * SPOTS[0][0], rows * SPOTS[0][1], true_r2c)
    assert len(panel.landmarks.pairs) == 1 and not panel.pick_button.isChecked()
    assert w.statusBar().currentMessage() == "Pick mode off: L1 added, one pair at a time (P picks the next)"
    # Then the rest of the set: picking stays on until the sixth usable pair, then stops by itself.
    panel.one_at_a_time.setChecked(False)
    qtbot.keyClick(w, Qt.Key_P)
    for n, (f, (a, b)) in enumerate(zip(frames[1:], SPOTS[1:]), start=2):
        pick(qtbot, w, int(f), cols * a, rows * b, true_r2c)
        assert len(panel.landmarks.pairs) == n and panel.pick_button.isChecked() == (n < 6)
    msg = w.statusBar().currentMessage()
    assert msg == "Pick mode off: the set of 6 landmark pairs is complete (P picks more)", msg
    # The reason is readable whole beside the status bar's permanent fields (nothing cut off).
    free = w.statusBar().width() - w.tracking_label.width() - w.registration_label.width() - 40
    assert w.statusBar().fontMetrics().width(msg) <= free, (msg, free)
    # A click after the set adds nothing (pick mode is off).
    pick(qtbot, w, int(frames[2]), cols * 0.5, rows * 0.5, true_r2c)
    assert len(panel.landmarks.pairs) == 6

    # Six pairs, every column readable (LOO and outlier too), no scroll bar, all on screen.
    table = panel.table
    qtbot.wait(50)
    _table_readable(table)
    assert _fully_visible(table, panel.scroll)
    assert [table.horizontalHeaderItem(c).text() for c in (4, 5)] == ["LOO mm", "outlier"]
    assert "leave-one-out" in table.horizontalHeaderItem(4).toolTip()
    # The landmark estimate, labelled as such, at the lesion.
    q = panel.quality.text()
    assert q.startswith("Landmark estimate (6 pairs): overlay within ~") and "at lesion_1" in q
    assert w.workflow.current == "verify" and w.act_refine.isEnabled()
    w.grab().save(str(artifacts_dir / "gui_flow_landmarks_1366x768.png"))

    # Automatic refinement (Ctrl+R), then the verdict per lesion in plain words.
    panel.refine_options = dict(n_starts=2, seed=1)
    qtbot.keyClick(w, Qt.Key_R, Qt.ControlModifier)
    assert panel.worker is not None
    qtbot.waitUntil(lambda: panel.worker is None, timeout=600000)
    assert w.reporter.history == [] and panel.candidate is not None
    a = panel.candidate.uncertainty
    lesions = sorted(t.name for t in a.targets if t.name.startswith("lesion"))
    shown = panel.verdict.rows
    assert sorted(r.name for r in shown) == lesions                      # one line per lesion, no CT centre
    text = panel.verdict.plain_text()
    for word in JARGON:
        assert not re.search(rf"\b{word}\b", text), (word, text)
    for r in shown:
        assert re.match(rf"^(good: overlay within ~[\d.]+ mm at {r.name}|check: overlay within ~[\d.]+ mm at "
                        rf"{r.name}|(check|do not use) at {r.name}: )", r.text), r.text
        row = a.target(r.name)
        assert r.verdict == row.verdict
        if r.verdict != "poor" and r.within_mm is not None:   # "do not use" lines give the reason, no figure
            assert float(re.search(r"~([\d.]+) mm", r.text).group(1)) >= row.tre_registration_95_mm
    # The landmark estimate is no longer shown beside the automatic figure.
    assert "Landmark estimate" not in panel.quality.text() and "used as the start" in panel.quality.text()
    # The panel scrolled to the result: its verdict lines and Accept / Reject are all on screen.
    qtbot.wait(100)
    for widget in [panel.verdict, panel.accept_button, panel.reject_button]:
        assert _fully_visible(widget, panel.scroll), widget.objectName()
    for size in SIZES:
        w.resize(*size)
        qtbot.wait(100)
        panel.show_section("verify")
        qtbot.wait(50)
        tag = f"{size[0]}x{size[1]}"
        w.grab().save(str(artifacts_dir / f"gui_flow_verdict_window_{tag}.png"))
        w.panel_docks["registration"].grab().save(str(artifacts_dir / f"gui_flow_verdict_panel_{tag}.png"))
        w.workflow.grab().save(str(artifacts_dir / f"gui_flow_workflow_bar_verify_{tag}.png"))
        assert panel.verdict.width() <= panel.scroll.viewport().width()
    w.resize(*SIZES[0])
    # Accept with Ctrl+Return: verified, the plan is next.
    activate(qtbot, w)
    qtbot.keyClick(w, Qt.Key_Return, Qt.ControlModifier)
    assert w.registration.method == "lc2" and panel.candidate is None
    assert w.workflow.states["verify"].done and w.workflow.current == "plan"
    assert w.registration_label.text().startswith("Registration: automatic (")
    assert np.isfinite(w.registration.reference_to_ct).all()
    w.close()
