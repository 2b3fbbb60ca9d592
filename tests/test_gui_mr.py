"""The MR dock in the real window on the demo case (issue 18): open the MR (own window/level),
MR -> CT, carry the MR-only lesion into the CT labels (shown as "MR only"), register the MR to
the sweep with the window's progress and a verdict, overlay the MR on the ultrasound; screenshots."""
from __future__ import annotations

import json

import numpy as np
import pytest

from _gui_helpers import demo_folder, make_window, open_demo
from gui.core.session import RegistrationState
from registration.spatial.transforms import apply, invert

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_mr_dock_on_the_demo(qtbot, tmp_path, artifacts_dir):
    folder = demo_folder()
    truth = json.loads((folder / "truth.json").read_text())
    mr_truth = truth["mr"]
    w = make_window(qtbot, size=(1700, 1000), panels=True)
    true_r2c = open_demo(qtbot, w)
    panel = w.mr_panel
    assert not panel.lesions_button.isEnabled() and not panel.register_button.isEnabled()

    # Open the MR: its own view and window/level (MR units, not HU)
    panel.open_mr(folder / mr_truth["files"]["nifti"])
    w.wait_for_workers()
    assert not w.reporter.history, w.reporter.history
    assert panel.mr is not None and panel.view.display is not None
    lo, hi = np.percentile(panel.mr.array[panel.mr.array > 0], [1, 99.5])
    assert abs(panel.view.level - (lo + hi) / 2) < 0.5 * (hi - lo)
    ct_wl = (w.views["axial"].window, w.views["axial"].level)
    mr_wl = (panel.view.window, panel.view.level)
    panel.view.set_window_level(mr_wl[0] * 0.5, mr_wl[1])
    assert (w.views["axial"].window, w.views["axial"].level) == ct_wl    # the CT keeps its own
    panel.view.set_window_level(*mr_wl)

    # MR -> CT: the truth's rigid fit over the liver, as a ctus align document
    mr_to_ct = np.asarray(mr_truth["mr_to_ct_rigid_liver"], float)
    align = tmp_path / "mr_to_ct.json"
    align.write_text(json.dumps({"mr_to_ct": mr_to_ct.tolist(), "verdict": "good", "tre_mm": 0.8}))
    panel.open_mr_to_ct(str(align))
    assert "verdict good" in panel.info.text() and panel.lesions_button.isEnabled()

    # The CT crosshair moves the MR view to the same anatomy
    only = mr_truth["mr_only_lesion"]
    w.views["axial"].cursor_moved.emit(np.asarray(only["centroid_ct"], float))
    assert np.linalg.norm(panel.view.cursor_lps - apply(invert(mr_to_ct), only["centroid_ct"])) < 1e-6

    # A registration to carry the MR error into (the sweep's true one, its own TRE 1 mm)
    w.set_registration(RegistrationState(true_r2c, method="file", tre_mm=1.0, verdict="good",
                                         raw={"verdict": "good",
                                              "targets": [{"name": "roi_center", "tre_registration_mm": 1.0}]}))
    seeds = tmp_path / "seeds.json"
    seeds.write_text(json.dumps({"lesions": [{"name": "lesion_mr_1", "point": only["centroid_mr"]}]}))
    panel.open_lesions(str(seeds))
    w.wait_for_workers()
    assert not w.reporter.history, w.reporter.history
    assert panel.table.rowCount() == 1 and panel.table.item(0, 1).text() == "MR only"
    les = panel.mr_import.lesions[0]
    assert les.seen_on == ["MR"] and np.linalg.norm(np.asarray(les.centroid_mr) - only["centroid_mr"]) < 2.0
    value = w.labels.names[les.name]
    ijk = np.rint(w.labels.lps_to_index(only["centroid_ct"])).astype(int)
    assert w.labels.array[ijk[2], ijk[1], ijk[0]] == value            # on the CT labels the planner reads
    row = next(r for r in w.registration.raw["targets"] if r["name"] == les.name)
    assert row["tre_registration_mm"] == pytest.approx(np.hypot(1.0, les.mr_ct_error_mm), abs=1e-6)
    assert panel.view.lesions and panel.view.lesions[0][3] is True   # drawn as MR only
    assert w.display.mr_only == {les.name}                            # ... and so in the CT views
    w.set_cursor(np.asarray(only["centroid_ct"], float))
    w.views["axial"].grab()
    assert any("seen on MR only" in t for t, _b in w.views["axial"].drawn_text)

    # MR -> sweep from the registration chained through inv(mr_to_ct): progress, verdict
    stages = []
    w.show_stage = (lambda orig: (lambda name, f, m: (stages.append((name, f)), orig(name, f, m))))(w.show_stage)
    panel.register()
    w.wait_for_workers(600000)
    assert not w.reporter.history, w.reporter.history
    res = panel.mr_result
    assert res is not None and any(name == "Register MR to sweep" and 0 < f < 1 for name, f in stages)
    p_ref = apply(invert(true_r2c), only["centroid_ct"])
    err = np.linalg.norm(apply(res.reference_to_ct, p_ref) - np.asarray(only["centroid_mr"]))
    assert err < 2.0, err
    assert panel.verdict.text().startswith(f"MR->US: {res.uncertainty.verdict}")
    assert "lesion_mr_1 (MR only): TRE" in panel.verdict.text()

    # The MR on the ultrasound instead of the CT, and back
    panel.overlay_box.setChecked(True)
    assert w.us_view.engine.ct.metadata.get("modality") == "MR"
    w.set_cursor(np.asarray(only["centroid_ct"], float))
    panel.view.set_cursor(les.centroid_mr)
    w.panel_docks["mr"].raise_()
    qtbot.wait(200)
    w.grab().save(str(artifacts_dir / "gui_mr_window.png"))
    w.panel_docks["mr"].grab().save(str(artifacts_dir / "gui_mr_dock.png"))
    panel.overlay_box.setChecked(False)
    assert w.us_view.engine.ct is w.ct


def test_mr_dock_refuses_lesions_without_the_ct(qtbot, tmp_path):
    w = make_window(qtbot, panels=True)
    w.mr_panel._act("Open MR lesions", w.mr_panel.open_lesions, str(tmp_path / "none.json"))
    assert w.reporter.history and "MR lesions need" in str(w.reporter.history[-1])
