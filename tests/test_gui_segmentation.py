"""Segmentation in the real window (issue 13 item 6, issue 20 item 5), on real data.

crlm-1004 (a real contrast CT without labels): the folder opened alone makes Segment the next
step; Segment runs in a worker with staged progress and Cancel, the structures appear as
outlines in the slice views and as surfaces in 3D; a click in the hypodense focus grows
lesion_1 into the lesion table (diameter, volume, mean HU, contrast), clicks in the gallbladder
and in air are refused in words; the brush paints and erases in mm, grow/shrink and undo work;
"Mark anatomy reviewed" goes into the session and the plan; "Target at crosshair" grows a
lesion at the crosshair and plans, or plans a point target where there is no lesion. The demo
case: a .seg.nrrd written and read back with names and the review state; Plan all lesions on a
CT without labels segments first. Screenshots at 1366x768 and 1920x1080 in tests/artifacts.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import QApplication

from _gui_helpers import SIZES, activate, click_ct, raised_panel
from gui.window.main_window import MainWindow

pytestmark = pytest.mark.gui

#: crlm-1004 points (LPS mm) read from its slices (tests/test_segmentation_lesion.py uses them too)
HYPO_FOCUS = (-107.4, 35.1, -270.0)        # 4-5 mm hypodense focus, posterior right lobe
DENSE_FOCUS = (-89.0, -4.0, -215.0)        # punctate dense focus under the dome
GALLBLADDER = (-52.4, -48.6, -315.0)
AIR_IN_FRONT = (-60.0, -200.0, -270.0)     # in front of the abdomen
LIVER_PARENCHYMA = (-120.0, 0.0, -260.0)   # plain liver, no focus


def _crlm_folder(shared_data):
    return shared_data("ct", "crlm-1004", "dicom")


def _window(qtbot, size, enable_3d=False, tmp_path=None):
    w = MainWindow(enable_3d=enable_3d, panels=True)
    qtbot.addWidget(w)
    w.reporter.show_dialogs = False
    if tmp_path is not None:
        w.autosave_path = tmp_path / "autosave.ctus.json"
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    activate(qtbot, w)
    return w


def _seg(w):
    return w.panel_docks["segmentation"].widget()


def _shots(qtbot, w, artifacts_dir, stem, centre=None, zoom=2.5):
    """Screenshots at both sizes; ``centre`` (LPS): the crosshair there, the axial view zoomed on it."""
    for size in SIZES:
        w.resize(*size)
        qtbot.wait(150)
        if centre is not None:
            w.set_cursor(centre)
            view = w.views["axial"]
            view.zoom, view.pan = zoom, QPointF(0.0, 0.0)
            view.pan = QPointF(view.width() / 2.0, view.height() / 2.0) - view.lps_to_widget(centre)
            view.update()
            qtbot.wait(50)
        w.grab().save(str(artifacts_dir / f"{stem}_{size[0]}x{size[1]}.png"))


def _drag(view, points):
    """Left-button stroke through widget ``points`` (press, moves with the button held, release)."""
    def send(kind, p, button, buttons):
        QApplication.sendEvent(view, QMouseEvent(kind, QPointF(p), button, buttons, Qt.NoModifier))
    send(QEvent.MouseButtonPress, points[0], Qt.LeftButton, Qt.LeftButton)
    for p in points[1:]:
        send(QEvent.MouseMove, p, Qt.NoButton, Qt.LeftButton)
    send(QEvent.MouseButtonRelease, points[-1], Qt.LeftButton, Qt.NoButton)


def _wait(qtbot, w, timeout=300000):
    qtbot.waitUntil(lambda: not w.workers, timeout=timeout)
    w.wait_for_workers()


@pytest.mark.slow
def test_real_ct_segment_click_correct_review_target_and_plan(qtbot, artifacts_dir, tmp_path, shared_data):
    folder = _crlm_folder(shared_data)
    w = _window(qtbot, SIZES[0], enable_3d=True, tmp_path=tmp_path)
    seg = _seg(w)
    w.open_ct(folder)
    _wait(qtbot, w)
    # A CT alone: loaded, and the next step is Segment (its panel in front).
    assert w.ct is not None and w.labels is None and not w.reporter.history
    assert w.workflow.current == "segment" and "Segment" in w.workflow.hint.text()
    assert raised_panel(w) == "segmentation" and seg.segment_button.isEnabled()
    assert w.act_plan.isEnabled()                      # Plan works without labels (segments first)

    # Segment: a worker with staged progress and a Cancel button.
    seen = []
    qtbot.mouseClick(seg.segment_button, Qt.LeftButton)
    assert seg.worker is not None and w.cancel_button.isVisible() and not seg.segment_button.isEnabled()
    seg.worker.progress.connect(lambda f, m: seen.append((f, m)))
    _wait(qtbot, w)
    assert not w.reporter.history, w.reporter.history
    stages = [m for _f, m in seen]
    assert len(set(stages)) >= 6 and any("liver" in m for m in stages)
    assert [f for f, _m in seen] == sorted(f for f, _m in seen)
    assert {"body", "liver", "bone", "lung", "aorta"} <= set(w.labels.names)
    # the organs a needle must not cross are listed in the panel (outline colour beside each name)
    listed = {seg.structure_box.itemText(i) for i in range(seg.structure_box.count())}
    assert {"gallbladder", "kidney", "spleen", "bowel"} <= set(w.labels.names) <= listed | {"body"}, listed
    assert seg.origin_label.text() == "anatomy: automatic segmentation, not reviewed"
    # Outlines in the slice views where the liver is.
    w.set_cursor(HYPO_FOCUS)
    for view in w.views.values():
        view.grab()
        assert view._outline is not None, view.view
    qtbot.waitUntil(lambda: {"liver", "bone"} <= set(w.view3d.surfaces), timeout=120000)
    assert "liver" in w.view3d.status.text()
    _shots(qtbot, w, artifacts_dir, "gui_seg_crlm_segmented", centre=HYPO_FOCUS, zoom=1.0)
    w.resize(*SIZES[0])

    # Lesion from click: lesion_1 in the table with its measures.
    w.panel_docks["segmentation"].raise_()
    qtbot.mouseClick(seg.tool_buttons["lesion"], Qt.LeftButton)
    assert seg.tool == "lesion"
    click_ct(qtbot, w, HYPO_FOCUS)
    _wait(qtbot, w)
    assert "lesion_1" in w.labels.names and seg.lesions.rowCount() == 1
    cells = [seg.lesions.item(0, c).text() for c in range(seg.lesions.columnCount())]
    assert cells[0] == "lesion_1" and cells[5] == "hypo"
    assert 4.0 < float(cells[1]) < 14.0 and 0.0 < float(cells[2]) < 1.0 and float(cells[4]) < -5
    assert "lesion_1: hypo" in seg.status.text()
    # Refused clicks say why, in red, and add nothing.
    for point, words in ((GALLBLADDER, "outside the liver"), (AIR_IN_FRONT, "outside the CT|air")):
        click_ct(qtbot, w, point)
        _wait(qtbot, w)
        text = seg.status.text()
        assert "No lesion at the click" in text and "c0221b" in text
        assert any(x in text for x in words.split("|")), text
    assert seg.lesions.rowCount() == 1 and not w.reporter.history
    # The name is editable in the table.
    seg.lesions.item(0, 0).setText("lesion_posterior")
    assert "lesion_posterior" in w.labels.names and "lesion_1" not in w.labels.names
    assert raised_panel(w) == "segmentation"             # edits keep the panel in front
    seg.lesions.clearSelection()
    seg.lesions.selectRow(0)                             # selecting a lesion moves the crosshair to it
    assert np.linalg.norm(np.asarray(w.session.cursor_lps) - HYPO_FOCUS) < 5.0
    _shots(qtbot, w, artifacts_dir, "gui_seg_crlm_lesion", centre=HYPO_FOCUS)
    w.resize(*SIZES[0])

    # Brush: paint the liver in a 4 mm disc, erase it back, grow/shrink, undo several steps.
    edit = seg.edit
    base = edit.array.copy()
    seg.structure_box.setCurrentText("lesion_posterior")
    seg.brush_spin.setValue(4.0)
    qtbot.mouseClick(seg.tool_buttons["paint"], Qt.LeftButton)
    view = w.views["axial"]
    c = view.lps_to_widget(HYPO_FOCUS).toPoint()
    _drag(view, [c + QPoint(dx, 0) for dx in range(0, 30, 3)])
    painted = (edit.array == edit.names["lesion_posterior"]).sum() - (base == edit.names["lesion_posterior"]).sum()
    assert painted > 20
    # the HU range: painting only 150..3000 HU through liver adds nothing there
    seg.hu_check.setChecked(True)
    seg.hu_min.setValue(150.0)
    seg.hu_max.setValue(3000.0)
    before = edit.array.copy()
    _drag(view, [c + QPoint(0, dy) for dy in range(6, 30, 3)])
    assert np.all(w.ct.array[edit.array != before] >= 150.0)
    seg.hu_check.setChecked(False)
    qtbot.mouseClick(seg.tool_buttons["navigate"], Qt.LeftButton)
    n0 = (edit.array == edit.names["lesion_posterior"]).sum()
    qtbot.mouseClick(seg.grow_button, Qt.LeftButton)
    n1 = (edit.array == edit.names["lesion_posterior"]).sum()
    qtbot.mouseClick(seg.shrink_button, Qt.LeftButton)
    assert n1 > n0 and (edit.array == edit.names["lesion_posterior"]).sum() < n1
    for _ in range(3):                                   # shrink, grow, the HU stroke
        qtbot.mouseClick(seg.undo_button, Qt.LeftButton)
    qtbot.keyClick(w, Qt.Key_Z, Qt.ControlModifier)      # the paint stroke, by the shortcut
    assert np.array_equal(edit.array, base)
    _wait(qtbot, w)

    # Reviewed: in the panel, the session and (below) the plan.
    qtbot.mouseClick(seg.review_button, Qt.LeftButton)
    assert seg.origin_label.text() == "anatomy: automatic segmentation, reviewed by user"
    session = tmp_path / "s.ctus.json"
    w.save_session(session)
    doc = json.loads(session.read_text())
    assert doc["notes"]["segmentation"]["reviewed"] is True
    assert doc["labels_path"].endswith(".seg.nrrd") and doc["labels_path"] == doc["notes"]["segmentation"]["file"]

    # Target at the crosshair on the dense focus: grown as a lesion, then every lesion planned.
    plan_panel = w.panel_docks["planning"].widget()
    plan_panel.plan_options = dict(n_directions=600)
    w.set_cursor(DENSE_FOCUS)
    qtbot.mouseClick(seg.target_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: plan_panel.result is not None or bool(w.reporter.history), timeout=600000)
    _wait(qtbot, w)
    assert not w.reporter.history, w.reporter.history
    names = [les["name"] for les in plan_panel.result.plan["lesions"]]
    assert sorted(names) == ["lesion_1", "lesion_posterior"]       # lesion_1 was renamed: its name is free
    anatomy = plan_panel.result.plan["anatomy_source"]
    assert anatomy["source"] == "automatic segmentation" and anatomy["reviewed"] is True
    w.panel_docks["planning"].raise_()
    plan_panel.select_lesion("lesion_1")
    _shots(qtbot, w, artifacts_dir, "gui_seg_crlm_target_plan", centre=DENSE_FOCUS, zoom=1.5)
    w.resize(*SIZES[0])

    # No lesion at the crosshair (plain liver): a point target is planned, and said so.
    w.set_cursor(LIVER_PARENCHYMA)
    plan_panel.result = None
    qtbot.mouseClick(seg.target_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: plan_panel.result is not None or bool(w.reporter.history), timeout=600000)
    _wait(qtbot, w)
    assert "point target" in seg.status.text() and not w.reporter.history, w.reporter.history
    les = plan_panel.result.plan["lesions"]
    assert len(les) == 1 and les[0].get("point_target") is True
    assert np.allclose(les[0]["centroid_ct"], LIVER_PARENCHYMA, atol=1.0)
    w.close()


@pytest.mark.slow
def test_segment_can_be_cancelled_and_keeps_the_state(qtbot, shared_data):
    folder = _crlm_folder(shared_data)
    w = _window(qtbot, SIZES[0])
    seg = _seg(w)
    w.open_ct(folder)
    _wait(qtbot, w)
    seg.segment()
    qtbot.mouseClick(w.cancel_button, Qt.LeftButton)
    _wait(qtbot, w)
    assert w.labels is None and seg.edit is None and seg.segment_button.isEnabled()
    assert w.reporter.history and "cancelled" in w.reporter.history[-1][1]
    assert w.workflow.current == "segment"
    w.close()


@pytest.mark.slow
def test_plan_all_lesions_without_labels_segments_first(qtbot, demo_case):
    """The demo CT alone: Plan all lesions segments it, then says a lesion is needed (none was
    clicked); a click on a demo lesion then plans it."""
    truth = json.loads((demo_case / "truth.json").read_text())
    w = _window(qtbot, SIZES[1])
    plan_panel = w.panel_docks["planning"].widget()
    w.open_ct(demo_case / "ct_portal.nrrd")
    _wait(qtbot, w)
    assert w.workflow.current == "segment"
    qtbot.keyClick(w, Qt.Key_P, Qt.ControlModifier)      # Plan all lesions
    _wait(qtbot, w)
    assert w.labels is not None and "liver" in w.labels.names and not w.reporter.history
    assert "No lesion in the label map yet" in plan_panel.status.text()
    lesion = _largest_lesion(truth)
    _seg(w).lesion_at(np.asarray(lesion["centroid_lps"], float))
    _wait(qtbot, w)
    assert "lesion_1" in w.labels.names, _seg(w).status.text()
    plan_panel.plan_options = dict(n_directions=600)
    qtbot.keyClick(w, Qt.Key_P, Qt.ControlModifier)
    qtbot.waitUntil(lambda: plan_panel.result is not None or bool(w.reporter.history), timeout=600000)
    _wait(qtbot, w)
    assert not w.reporter.history, w.reporter.history
    assert [les["name"] for les in plan_panel.result.plan["lesions"]] == ["lesion_1"]
    assert plan_panel.result.plan["anatomy_source"] == {"source": "automatic segmentation", "reviewed": False}
    w.close()


def _largest_lesion(truth: dict) -> dict:
    lesions = truth.get("lesions") or []
    if not lesions:
        pytest.skip("the demo truth lists no lesions")
    return max(lesions, key=lambda les: les.get("diameter_mm", 0.0))


def test_demo_labels_save_and_load_as_seg_nrrd_with_review_state(qtbot, demo_case, tmp_path):
    w = _window(qtbot, SIZES[0])
    seg = _seg(w)
    ready = []
    w.open_ct(demo_case / "ct_portal.nrrd",
              then=lambda: w.open_labels(demo_case / "labels.nrrd", demo_case / "label_names.json",
                                         then=lambda: ready.append(1)))
    qtbot.waitUntil(lambda: bool(ready) or bool(w.reporter.history), timeout=300000)
    _wait(qtbot, w)
    names = dict(w.labels.names)
    assert seg.origin_label.text() == "anatomy: label map labels.nrrd"
    assert seg.lesions.rowCount() == sum(n.startswith("lesion") for n in names)
    qtbot.mouseClick(seg.review_button, Qt.LeftButton)
    path = seg.save(tmp_path / "demo")
    assert path.endswith("demo.seg.nrrd")
    array = w.labels.array.copy()
    w.set_labels(type(w.labels)(np.zeros_like(array), w.ct.spacing, w.ct.origin, w.ct.direction, {}))
    seg.load(path)
    _wait(qtbot, w)
    assert w.labels.names == names and np.array_equal(w.labels.array, array)
    assert seg.review_button.isChecked()
    assert seg.origin_label.text() == "anatomy: label map demo.seg.nrrd, reviewed by user"
    w.close()
