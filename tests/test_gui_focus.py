"""'Refine near this lesion' in the real window (issue 19): on the demo's deformed lesion_1 sweep,
after the automatic refinement, the registration panel refines near the chosen lesion in the
worker (progress, Cancel), shows the focused error beside the whole-sweep one, keeps it with
the result on Accept, and the planner's error for that lesion is the focused one; a screenshot
of the panel is saved."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from _gui_helpers import demo_folder, make_window
from gui.core.session import RegistrationState
from gui.panels import registration_panel
from planner.advice.fusion_error import registration_tre_mm
from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from registration.io.sequence_io import load_sweep
from registration.spatial.transforms import rigid_matrix

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_refine_near_a_lesion_on_a_deformed_sweep(qtbot, artifacts_dir):
    from sample_data.sweeps.deformation import true_target_error_mm
    folder = demo_folder()
    truth = json.loads((folder / "truth.json").read_text())
    entry = next(s for s in truth["ultrasound"]["deformed_sweeps"] if s["target"] == "lesion_1")
    w = make_window(qtbot, size=(1366, 768))
    ct = load_ct(folder / "ct_portal.nrrd")
    w.set_ct(ct, load_labels(folder / "labels.nrrd", folder / "label_names.json", reference=ct))
    w.set_sweep(load_sweep(folder / entry["file"], calibration=folder / truth["ultrasound"]["config"]))
    panel = registration_panel.install(w).widget()
    lesion = np.asarray(panel.targets["lesion_1"]["point"], float)
    true_m = np.asarray(entry["reference_to_ct"], float)
    w.set_registration(RegistrationState(rigid_matrix([2, -1, 1, 4, -3, 2], center=lesion) @ true_m, "test start"))
    panel.select_target("lesion_1")
    # nothing automatic yet: the action says what it needs
    assert not panel.focus_button.isEnabled() and "automatic result" in panel.focus_button.toolTip()
    panel.refine_options = dict(n_starts=2, seed=1)
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=600000)
    assert w.reporter.history == [] and panel.candidate is not None
    whole = panel.candidate
    assert panel.focus_button.isEnabled() and panel.focus_button.text() == "Refine near lesion_1"
    # Cancel: nothing is kept
    qtbot.mouseClick(panel.focus_button, Qt.LeftButton)
    assert panel.worker is not None and panel.cancel_button.isEnabled() and not panel.focus_button.isEnabled()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=60000)
    qtbot.mouseClick(panel.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=60000)
    assert "cancelled" in panel.focus_text.text() and not panel.candidate_focus
    assert w.reporter.last_dialog is None          # a cancel is not an error dialog
    w.reporter.history.clear()
    # Run it: the focused line, beside the whole-sweep figure
    qtbot.mouseClick(panel.focus_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=600000)
    assert w.reporter.history == [], w.reporter.history
    focused = panel.candidate_focus["lesion_1"]
    row = focused.uncertainty.target("lesion_1")
    text = panel.focus_text.text()
    assert "Refined near lesion_1" in text and "whole sweep: within ~" in text
    err_whole = true_target_error_mm(truth, entry["file"], whole.reference_to_ct, lesion)
    err_focus = true_target_error_mm(truth, entry["file"], focused.reference_to_ct, lesion)
    print(f"lesion_1 true error: whole sweep {err_whole:.2f} mm, focused {err_focus:.2f} mm; focused claim "
          f"{row.tre_registration_mm} mm ({row.verdict})")
    assert err_focus < max(err_whole, 2.0) + 0.5
    w.resizeDocks([panel.parentWidget()], [560], Qt.Horizontal)
    panel.scroll_to(panel.refinement_title)
    qtbot.wait(100)
    panel.grab().save(str(artifacts_dir / "gui_registration_focus_lesion_1.png"))
    # Accept: the focused result goes with the whole-sweep one; the planner uses it for lesion_1 only
    qtbot.mouseClick(panel.accept_button, Qt.LeftButton)
    doc = w.registration.to_dict()
    assert np.allclose(w.registration.reference_to_ct, whole.reference_to_ct)       # the overlay: whole sweep
    kept = doc["focused_targets"]["lesion_1"]
    assert kept["target"]["tre_registration_mm"] == row.tre_registration_mm
    whole_tre = whole.uncertainty.target("lesion_1").tre_registration_mm
    expected = row.tre_registration_mm if row.verdict != "poor" else whole_tre
    if row.verdict == "poor" and kept["focus"]["disputes_whole_mm"]:
        expected = max(expected, kept["focus"]["disputes_whole_mm"] / 1.614)    # ResultRecord.tre_at
    if whole.uncertainty.verdict == "poor" and row.verdict == "poor":
        expected = None
    assert registration_tre_mm(doc, "lesion_1") == pytest.approx(expected)
    other = whole.uncertainty.target("lesion_2")
    assert registration_tre_mm(doc, "lesion_2") == (None if whole.uncertainty.verdict == "poor"
                                                    else other.tre_registration_mm)
    assert "Refined near lesion_1" in panel.focus_text.text()       # still shown for the accepted result
    # a focused refinement that disagreed with the whole sweep (poor, moved 9 mm): the line says the plan
    # raises the whole-sweep error at the lesion to cover the move, and the planner does
    disputed = dict(kept, target=dict(kept["target"], verdict="poor", why=["estimated error above 6 mm"]),
                    focus=dict(kept["focus"], disputes_whole_mm=9.0, whole_sweep_tre_mm=2.0))
    disputed["uncertainty"] = dict(kept["uncertainty"], targets=[
        dict(t, verdict="poor", why=["estimated error above 6 mm"]) if t["name"] == "lesion_1" else t
        for t in kept["uncertainty"]["targets"]])
    raw = dict(w.registration.raw, focused_targets={"lesion_1": disputed})
    w.set_registration(RegistrationState(w.registration.reference_to_ct, w.registration.method, w.registration.tre_mm,
                                         w.registration.fre_mm, w.registration.source, raw, w.registration.verdict))
    panel.select_target("lesion_1")
    panel.show_verdict()
    text = panel.focus_text.text()
    assert "moved lesion_1 ~9 mm" in text and "one of the two is wrong" in text, text
    # the lesion's own line follows: the raised figure, at best "check", with the reason in its details
    line = next(r for r in panel.verdict.rows if r.name == "lesion_1")
    if whole.uncertainty.verdict != "poor":
        # raised to cover the 9 mm move (or the whole sweep's own 95 % radius, if that is larger)
        assert line.verdict in ("check", "poor") and line.within_mm >= 9.0 - 1e-6, line.text
        if 1.614 * whole.uncertainty.target("lesion_1").tre_registration_mm < 9.0:
            # the move raised the figure: its reason is in the details
            assert "focused refinement near it moved it 9.0 mm" in line.details
    if whole.uncertainty.verdict != "poor":
        assert registration_tre_mm(w.registration.to_dict(), "lesion_1") == pytest.approx(
            max(whole.uncertainty.target("lesion_1").tre_registration_mm, 9.0 / 1.614))
    qtbot.wait(100)
    panel.grab().save(str(artifacts_dir / "gui_registration_focus_disputed.png"))
    panel.select_target("lesion_2")
    assert panel.focus_text.text() == "" and panel.focus_button.text() == "Refine near lesion_2"
    w.close()
