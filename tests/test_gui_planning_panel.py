"""Planning panel in the real window on the planner's torso phantom (tests/planning_phantom.py):
lesion table from plan_case, candidate paths drawn on the slice views, the CT-guided plan for a
CT recommendation, an edited path re-checked live by the planner's constraints, and the export
dialog writing files that exist and validate. Screenshots go to tests/artifacts.
"""
from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, Qt

from gui.window.main_window import MainWindow
from gui.panels import planning_panel
from gui.panels.lesion_table import GUIDANCE_WORDS, NONE_BG, guidance_text, path_text
from gui.core.session import RegistrationState
from planner.export.plan_files import validate_plan
from registration.spatial.errors import InputError

from planning_phantom import make_phantom

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def phantom():
    return make_phantom()


@pytest.fixture
def planned(qtbot, phantom):
    ct, labels = phantom
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    w.reporter.show_dialogs = False
    w.set_ct(ct, labels)
    dock = planning_panel.install(w)
    w.resizeDocks([dock], [560], Qt.Horizontal)
    panel = dock.widget()
    panel.plan_options = dict(n_directions=1000)
    qtbot.mouseClick(panel.plan_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120000)
    assert w.reporter.history == [], w.reporter.history
    yield w, panel
    w.close()


def _rows(panel):
    return {panel.table.item(r, 1).text(): [panel.table.item(r, c).text() for c in range(panel.table.columnCount())]
            for r in range(panel.table.rowCount())}


@pytest.mark.slow
def test_lesions_paths_ct_plan_edit_and_export(planned, qtbot, tmp_path, artifacts_dir):
    w, panel = planned
    plan = panel.result.plan
    assert w.plan is plan
    rows = _rows(panel)
    assert set(rows) == {l["name"] for l in plan["lesions"]} == {"lesion_sub", "lesion_deep", "lesion_rib"}
    for les in plan["lesions"]:
        r = rows[les["name"]]
        assert r[3] == f"{les['diameter_mm']:.0f} mm" and r[2] == guidance_text(les["recommendation"])
        assert r[0] == str(les["accessibility_rank"]) and r[5] == les["visibility"]["predicted"]["category"]

    # A lesion with US paths: select the first US path -> drawn on the slice views at the target.
    panel.select_lesion("lesion_sub")
    les = panel.lesion()
    us = [i for i, t in enumerate(les["trajectories"]) if t["guidance"] == "us"]
    assert us, "the phantom's subcapsular lesion has an in-plane US path"
    panel.paths.setCurrentRow(us[0])
    t = panel.path()
    assert t["guidance"] == "us" and "US 1" in panel.paths.item(us[0]).text()
    target = np.asarray(t["target_ct"])
    assert np.allclose(w.views["axial"].cursor_lps, target)
    axial = next(o for o in panel.overlays if o.view is w.views["axial"])
    xy, dist = axial.project(np.array([target, np.asarray(t["entry_ct"])]))
    assert abs(dist[0]) <= 1.0                               # target on the shown slice
    tw = w.views["axial"].lps_to_widget(target)
    assert np.allclose(xy[0], [tw.x(), tw.y()])
    assert "guidance" in panel.reasons.text().lower() or "US" in panel.reasons.text()
    assert not panel.ct_box.isVisible()
    qtbot.wait(50)
    panel.content.grab().save(str(artifacts_dir / "gui_planning_panel_us_path.png"))
    w.grab().save(str(artifacts_dir / "gui_planning_window_us_path.png"))

    # A CT recommendation: its best CT path and the CT-guided plan (text + axial drawing).
    panel.select_lesion("lesion_deep")
    les = panel.lesion()
    assert les["recommendation"]["guidance"] == "ct"
    t = panel.path()
    assert t["guidance"] == "ct" and panel.ct_box.isVisible()
    assert "gantry tilt" in panel.ct_text.text() and f"{t['ct']['depth_mm']:.0f} mm" in panel.ct_text.text()
    assert panel.ct_drawing.path is t
    qtbot.wait(50)
    panel.content.grab().save(str(artifacts_dir / "gui_planning_panel_ct_plan.png"))   # whole scroll content

    # Planning again refreshes the table and the details of the selected row.
    first = panel.result
    panel.select_lesion(plan["lesions"][0]["name"])
    panel.paths.clear()
    qtbot.mouseClick(panel.plan_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120000)
    assert panel.result is not first and panel.paths.count() > 0 and w.plan is panel.result.plan
    plan = panel.result.plan
    # Behind the ribs: no US window; with 1000 directions either a double-oblique CT path (said in
    # the list and the CT plan) or only the least-risk path (UNSAFE, nothing selected as a plan).
    panel.select_lesion("lesion_rib")
    t = panel.path()
    rib = panel.lesion()
    if rib["recommendation"]["guidance"] == "ct":
        assert t is not None and t["guidance"] == "ct" and t["ct"]["double_oblique"]
        assert "double oblique" in panel.paths.currentItem().text() and panel.ct_box.isVisible()
        assert "DOUBLE OBLIQUE" in panel.ct_text.text() and "confirmation scans" in panel.ct_text.text()
    else:
        assert t is None and not panel.ct_box.isVisible()
        assert panel.paths.item(0).text().startswith("UNSAFE least-risk")
        assert "no safe path" in panel.paths.item(panel.paths.count() - 1).text()
    panel.content.grab().save(str(artifacts_dir / "gui_planning_panel_behind_ribs.png"))

    # Edit the target of a path: re-checked by the planner's constraints (maps built in a worker).
    panel.select_lesion("lesion_sub")
    panel.paths.setCurrentRow(us[0])
    t0 = dict(panel.path())
    panel.target_spins[0].setValue(t0["target_ct"][0] + 40.0)     # 40 mm off: out of the lesion
    qtbot.waitUntil(lambda: panel.check is not None, timeout=60000)
    assert not panel.check.ok and panel.check.violations[0] == "target_outside_lesion"
    assert panel.check.texts[0] in panel.check_label.text()         # the panel shows the planner's verdict
    assert not panel.add_path_button.isEnabled()
    panel.target_spins[0].setValue(t0["target_ct"][0])
    assert panel.check.ok, panel.check.violations
    # Drag the target marker in the axial view: the target follows the mouse (in that slice), the
    # view's own window/level drag does not happen, and the path is re-checked.
    view = w.views["axial"]
    w.set_cursor(np.asarray(t0["target_ct"]))
    wl = (view.window, view.level)
    start = view.lps_to_widget(np.asarray(t0["target_ct"])).toPoint()
    end = start + QPoint(12, 5)
    qtbot.mousePress(view, Qt.LeftButton, pos=start)
    qtbot.mouseMove(view, pos=end)
    qtbot.mouseRelease(view, Qt.LeftButton, pos=end)
    assert np.allclose(panel.edited()[1], view.widget_to_lps(end), atol=0.05)
    assert (view.window, view.level) == wl and panel.check is not None
    # A press away from the markers is the view's own (window/level), not a drag of the path.
    qtbot.mousePress(view, Qt.LeftButton, pos=end + QPoint(60, 60))
    qtbot.mouseRelease(view, Qt.LeftButton, pos=end + QPoint(60, 60))
    assert np.allclose(panel.edited()[1], view.widget_to_lps(end), atol=0.05)
    panel.set_point("target", t0["target_ct"])
    assert panel.check.ok, panel.check.violations
    # Move the entry 4 mm sideways: still safe -> keep it; it joins the lesion's paths.
    panel.entry_spins[2].setValue(t0["entry_ct"][2] + 4.0)
    assert panel.check.ok and "OK" in panel.check_label.text()
    n = len(panel.lesion()["trajectories"])
    qtbot.mouseClick(panel.add_path_button, Qt.LeftButton)
    les = panel.lesion()
    assert len(les["trajectories"]) == n + 1 and les["trajectories"][-1]["edited_by_user"]
    assert "(edited)" in panel.paths.item(n).text()

    # A kept edited CT path gets its own CT-guided description (tilt, angle, depth) from the planner.
    panel.select_lesion("lesion_deep")
    t1 = dict(panel.path())
    assert t1["guidance"] == "ct"
    panel.entry_spins[2].setValue(t1["entry_ct"][2] + 0.3)     # a nudge: the planner's path stays valid
    qtbot.waitUntil(lambda: panel.check is not None, timeout=60000)
    assert panel.check.ok, panel.check.violations
    qtbot.mouseClick(panel.add_path_button, Qt.LeftButton)
    kept = panel.lesion()["trajectories"][-1]
    assert kept["guidance"] == "ct" and kept["edited_by_user"] and panel.path() is kept
    assert panel.ct_box.isVisible() and panel.ct_text.text() == kept["ct"]["text"]
    assert kept["ct"]["depth_mm"] == pytest.approx(kept["length_mm"], abs=0.6)
    # A registration arriving after planning: the panel says the plan is stale, and the export
    # keeps the plan's own (no) registration instead of mixing in the new matrix.
    w.set_registration(RegistrationState(np.eye(4), "file (test)"))
    panel.select_lesion("lesion_rib")
    assert panel.stale() and "registration changed" in panel.status.text()
    # Back to the registration the plan was made with (none): the warning goes, the plan's line returns.
    w.set_registration(None)
    assert not panel.stale() and "planned in" in panel.status.text()
    w.set_registration(RegistrationState(np.eye(4), "file (test)"))
    assert panel.stale() and "registration changed" in panel.status.text()
    panel.select_lesion("lesion_sub")
    # Export: files written in a worker, they exist and the plan validates with the kept path.
    dlg = panel.open_export()
    assert "another registration" in dlg.status.text()
    dlg.open_folder_when_done = False
    out = tmp_path / "plan"
    dlg.folder.setText(str(out))
    qtbot.mouseClick(dlg.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.worker is None, timeout=120000)
    assert w.reporter.history == [], w.reporter.history
    for name in ("plan.json", "plan.mrk.json", "plan.pdf"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    saved = json.loads((out / "plan.json").read_text())
    validate_plan(saved)
    assert saved.get("registration") is None and not (out / "reference_to_ct.tfm").exists()
    assert saved["case"]["deidentified"] is True                     # identifiers only when ticked
    sub = next(l for l in saved["lesions"] if l["name"] == "lesion_sub")
    assert sub["trajectories"][-1].get("edited_by_user") is True
    assert dlg.output_folder() == out and dlg.open_button.isEnabled() and w.exported["plan.json"]
    dlg.grab().save(str(artifacts_dir / "gui_export_dialog.png"))
    # A second export into the same folder is refused unless "overwrite" is ticked.
    qtbot.mouseClick(dlg.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dlg.worker is None and bool(w.reporter.history), timeout=60000)
    assert w.reporter.history[-1][0] == "Export plan" and "already exists" in w.reporter.history[-1][1]
    dlg.close()


@pytest.mark.slow
def test_least_risk_path_is_shown_unsafe_never_as_a_plan(qtbot, phantom, artifacts_dir):
    """A 25 mm needle reaches nothing: the lesion is NONE (red), the list holds the least-risk path
    marked UNSAFE with its violation in mm, nothing is selected as a plan; selected by hand it is
    drawn in the unsafe colour and the panel says UNSAFE with every violation."""
    from planner.paths.constraints import Constraints
    ct, labels = phantom
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1600, 1000)
    w.show()
    qtbot.waitExposed(w)
    w.reporter.show_dialogs = False
    w.set_ct(ct, labels)
    dock = planning_panel.install(w)
    w.resizeDocks([dock], [560], Qt.Horizontal)
    panel = dock.widget()
    panel.plan_options = dict(n_directions=600, lesion="lesion_deep", constraints=Constraints(max_length_mm=25.0))
    qtbot.mouseClick(panel.plan_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120000)
    assert w.reporter.history == [], w.reporter.history
    assert panel.table.item(0, 2).text() == "no safe path" and panel.table.item(0, 2).background().color() == NONE_BG
    les = panel.lesion()
    assert [t["safe"] for t in les["trajectories"]] == [False]
    item = panel.paths.item(0)
    assert item.text().startswith("UNSAFE least-risk") and "mm" in item.text()
    assert item.foreground().color().red() > 150 and "no safe path" in panel.paths.item(1).text()
    assert panel.path() is None and all(o.path is None for o in panel.overlays)   # not shown as a plan
    panel.paths.setCurrentRow(0)
    assert panel.path() is les["trajectories"][0]
    assert all(o.path is not None and o.path[3] is False for o in panel.overlays)
    assert "UNSAFE" in panel.check_label.text()
    assert escape(les["trajectories"][0]["violations"][0]["text"]) in panel.check_label.text()
    # planner texts go into rich text escaped: "<= 2.7 mm" must not be swallowed as a tag
    i = les["recommendation"]["reason_codes"].index("fusion_need")
    assert escape(les["recommendation"]["reasons"][i]) in panel.reasons.text()
    assert panel.ct_drawing.path is les["trajectories"][0]
    assert "least-risk" in panel.reasons.text()
    qtbot.wait(50)
    panel.content.grab().save(str(artifacts_dir / "gui_planning_panel_unsafe_path.png"))
    w.close()


def test_guidance_and_path_texts_tell_the_states_apart():
    assert guidance_text({"guidance": "us_fusion", "condition": {"max_tre_rms_mm": 15.3, "kind": "registration_tre",
                                                                  "text": ""}}) == "US with fusion if TRE \u2264 15.3 mm"
    assert guidance_text({"guidance": "ct", "condition": None}) == "CT-guided"
    # every guidance code of the plan schema has words (no raw code reaches the table)
    schema = json.loads((Path(planning_panel.__file__).parents[2] / "planner/export/plan_schema.json").read_text())
    codes = set(schema["$defs"]["guidance"]["enum"])
    assert codes <= set(GUIDANCE_WORDS) and all(guidance_text({"guidance": c}) == GUIDANCE_WORDS[c] for c in codes)
    assert all("_" not in w and not w.isupper() for w in GUIDANCE_WORDS.values())
    base = {"guidance": "ct", "length_mm": 137.5, "min_hard_clearance_mm": 3.1, "capsule_angle_deg": 40.0}
    unsafe = dict(base, safe=False, violations=[{"text": "passes 3.1 mm from the hepatic_vein"}, {"text": "x"}])
    assert path_text(unsafe, 1) == ("UNSAFE least-risk CT 1: 138 mm, clearance 3.1 mm, capsule 40 deg: passes "
                                    "3.1 mm from the hepatic_vein (+1 more)")
    oblique = dict(base, safe=True, cautions=[], ct={"double_oblique": True})
    assert path_text(oblique, 2).endswith("double oblique")
    caution = dict(base, safe=True, cautions=[{"text": "passes 4.0 mm from the portal_vein"}])
    assert "caution: passes 4.0 mm" in path_text(caution, 1)


def test_plan_without_labels_says_what_is_missing(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    panel = planning_panel.install(w).widget()
    qtbot.mouseClick(panel.plan_button, Qt.LeftButton)
    assert "needs the CT and its label map" in panel.status.text() and panel.worker is None
    with pytest.raises(InputError, match="no plan yet"):
        panel.select_lesion("lesion_1")
    w.close()


def test_path_overlay_on_the_us_view_follows_the_registered_frame(qtbot):
    """A path lying in a frame's plane projects onto the pixels it came from (distance ~0);
    without a registration nothing is drawn."""
    from gui.core.session import RegistrationState
    from registration.spatial.transforms import apply
    from synthetic_case import TRUE_REFERENCE_TO_CT, make_ct, make_sweep
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    qtbot.waitExposed(w)
    ct = make_ct()
    w.set_ct(ct)
    w.set_sweep(make_sweep(ct, n_frames=6))
    panel = planning_panel.install(w).widget()
    us = next(o for o in panel.overlays if o.kind == "us")
    w.player.seek(2, force=True)
    image_to_ct = TRUE_REFERENCE_TO_CT @ w.sweep.image_to_reference(2)
    pix = np.array([[30.0, 20.0, 0.0], [70.0, 80.0, 0.0]])
    pts = apply(image_to_ct, pix)
    assert us.project(pts) is None                       # no registration: no path on the US view
    w.set_registration(RegistrationState(TRUE_REFERENCE_TO_CT, "truth (test)"))
    xy, dist = us.project(pts)
    assert np.allclose(dist, 0.0, atol=1e-6)
    r = w.us_view.frame_rect()
    rows, cols = w.sweep.image_shape
    expect = [[r.left() + (c + 0.5) / cols * r.width(), r.top() + (rr + 0.5) / rows * r.height()]
              for c, rr, _ in pix]
    assert np.allclose(xy, expect)
    # 10 mm along the plane normal: reported as 10 mm out of plane.
    n = np.cross(image_to_ct[:3, 0], image_to_ct[:3, 1])
    _, dist = us.project(pts + 10.0 * n / np.linalg.norm(n))
    assert np.allclose(np.abs(dist), 10.0)
    w.close()


def test_visibility_texts_cover_the_planner_outcomes():
    from gui.panels.lesion_table import measured_text, predicted_text
    assert measured_text(None) == "not measured"
    assert measured_text({"frames_cutting_lesion": 0, "cnr": None, "seen": None,
                          "note": "no registered frame cuts the lesion"}) == "no registered frame cuts the lesion"
    assert measured_text({"frames_cutting_lesion": 4, "cnr": -1.73, "seen": True}) == "seen, CNR -1.7 (4 frames)"
    assert measured_text({"frames_cutting_lesion": 2, "cnr": 0.4, "seen": False}) == "not seen, CNR 0.4 (2 frames)"
    assert predicted_text({"category": "unlikely", "probability": 0.096}) == "unlikely (0.10)"
    assert predicted_text({"category": "unlikely", "score": 0.096}) == "unlikely (0.10)"     # a plan before 1.2
    assert predicted_text({"category": "likely", "score": None}) == "likely"
