"""Truthful progress: named stages with their share of the time, monotone, cancellable, never
parked at 99 %. The engine's staged progress alone (no Qt), then the registration in the real
window (panel and status bar show the stage; level 3 does not start above 90 %), then the
planner per lesion and stage."""
from __future__ import annotations

import pytest
from PyQt5.QtCore import Qt

from _gui_helpers import activate, make_window, synthetic_labels
from gui.core.session import RegistrationState
from gui.panels import registration_panel
from planner.case.case_plan import LESION_STAGES, plan_case
from registration.align.lc2_progress import lc2_stages
from registration.align.lc2_stages import LC2Options
from registration.spatial.errors import CancelledError
from registration.spatial.progress import Stage, StagedProgress
from registration.spatial.transforms import rigid_matrix
from synthetic_case import TRUE_REFERENCE_TO_CT, lesion_centroids_ct, make_ct, make_sweep


def _recorder(stop_at=None):
    seen = []

    def fn(fraction, message):
        seen.append((fraction, message))
        return not (stop_at is not None and stop_at in message)
    return seen, fn


def _monotone(seen):
    fr = [f for f, _ in seen]
    return all(b >= a for a, b in zip(fr, fr[1:])) and all(0.0 <= f <= 1.0 for f in fr)


def test_staged_progress_shares_names_monotone_and_cancel(monkeypatch):
    monkeypatch.setattr("registration.spatial.progress.MIN_REPORT_INTERVAL_S", 0.0)
    seen, fn = _recorder()
    sp = StagedProgress(fn, [Stage("a", "first", 1.0, 10), Stage("b", "second", 3.0, 4), Stage("c", "third", 1.0)])
    sp.begin("a")
    for _ in range(30):                    # more steps than expected: stays inside its stage
        sp.step()
    assert seen[0] == (0.0, "stage 1 of 3: first")
    assert max(f for f, _ in seen) <= 0.2 and "10 of 10 evaluations" in seen[10][1]
    sp.begin("c")                          # "b" skipped: its share is passed over, never reported
    assert seen[-1] == (pytest.approx(0.8), "stage 3 of 3: third")
    sp.done("finished")
    assert seen[-1] == (1.0, "finished") and _monotone(seen)
    with pytest.raises(KeyError):
        sp.begin("nope")
    # Work found needed inside a stage (the starts polished at the fine level): more steps, never back.
    seen, fn = _recorder()
    sp = StagedProgress(fn, [Stage("a", "first", 1.0, 10), Stage("b", "second", 1.0)])
    sp.begin("a")
    for _ in range(8):
        sp.step()
    before = seen[-1][0]
    sp.add_steps(10)
    sp.step()
    assert "9 of 20 evaluations" in seen[-1][1] and seen[-1][0] == before and _monotone(seen)
    for _ in range(11):
        sp.step()
    assert "20 of 20 evaluations" in seen[-1][1] and seen[-1][0] > before
    # Nested stages fill their parent's share; a False from the callback cancels.
    seen, fn = _recorder(stop_at="lesion 2")
    sp = StagedProgress(fn, [Stage("prep", "prep", 1.0), Stage("lesions", "lesions", 3.0)], numbered=False,
                        name="planning")
    sp.begin("prep")
    inner = sp.nested("lesions", [Stage(f"{n}", f"lesion {n} of 2", 1.0) for n in (1, 2)], numbered=False)
    inner.begin("1")
    assert seen[-1] == (pytest.approx(0.25), "lesion 1 of 2")
    with pytest.raises(CancelledError, match="planning cancelled"):
        inner.begin("2")
    assert seen[-1][0] == pytest.approx(0.625) and _monotone(seen)


def test_registration_stage_shares_follow_the_options():
    """The weights model: the GUI's default run and a two-start run both start level 3 well below
    90 %; without a grid or breathing those stages are not listed."""
    for opts in (LC2Options(), LC2Options(n_starts=2, max_evals_per_start=120)):
        stages = lc2_stages(opts, breathing=True)
        total = sum(s.weight for s in stages)
        keys = [s.key for s in stages]
        assert keys == ["ct_features", "translation_grid", "coarse_starts", "middle_level", "fine_level",
                        "small_patches", "breathing", "hessian", "deformation", "assess"]
        start_fine = sum(s.weight for s in stages[:keys.index("fine_level")]) / total
        # the second search with small patches follows the fine level and weighs about as much as
        # the three levels together (0.56 s against 0.49 s, demo benchmark, 2026-12-03)
        assert 0.2 < start_fine < 0.8, start_fine
        small = stages[keys.index("small_patches")].weight / total
        assert 0.1 < small < 0.4, small
        assert stages[keys.index("fine_level")].label == "level 3 of 3"
    keys = [s.key for s in lc2_stages(LC2Options(translation_search_mm=0, breathing="off", hessian=False,
                                                 small_patches=False), breathing=True)]
    assert keys == ["ct_features", "coarse_starts", "middle_level", "fine_level", "deformation", "assess"]


@pytest.mark.gui
@pytest.mark.slow
def test_registration_progress_in_the_window(qtbot, artifacts_dir):
    w = make_window(qtbot, size=(1366, 768))
    ct = make_ct()
    w.set_ct(ct, synthetic_labels(ct))
    w.set_sweep(make_sweep(ct, n_frames=16, invalid=(3, 4)))
    panel = registration_panel.install(w).widget()
    start = RegistrationState(rigid_matrix([2, -1, 1, 4, -3, 2], center=lesion_centroids_ct().mean(0))
                              @ TRUE_REFERENCE_TO_CT, "test start")
    w.set_registration(start)
    panel.refine_options = dict(n_starts=2, max_evals_per_start=120, seed=1)
    seen, texts = [], []
    show_stage = w.show_stage

    def record(name, f, m):
        """Every progress message the window shows (hooked before the worker starts: none is missed)."""
        show_stage(name, f, m)
        if m != "starting":
            seen.append((f, m))
            texts.append((panel.progress_text.text(), w.stage_label.toolTip()))
    w.show_stage = record
    qtbot.mouseClick(panel.refine_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: any("level 3 of 3" in m for _, m in seen), timeout=120000)
    w.grab().save(str(artifacts_dir / "gui_flow_refine_progress_1366x768.png"))
    qtbot.waitUntil(lambda: panel.worker is None, timeout=180000)
    assert w.reporter.history == [] and panel.candidate is not None
    assert _monotone(seen) and seen[-1][0] == 1.0
    stages = []
    for f, m in seen:
        name = m.split(" - ")[0]
        if not stages or stages[-1][0] != name:
            stages.append((name, f))
    names = [n for n, _ in stages]
    assert names[:7] == ["stage 1 of 10: preparing the CT", "stage 2 of 10: searching positions",
                         "stage 3 of 10: level 1 of 3 (2 starts)", "stage 4 of 10: level 2 of 3",
                         "stage 5 of 10: level 3 of 3", "stage 6 of 10: second search, small patches",
                         "stage 7 of 10: breathing check"], names
    level3 = dict(stages)["stage 5 of 10: level 3 of 3"]
    assert level3 <= 0.9, stages               # never "99 %" with level 3 still to run
    assert sum(f >= 0.99 for f, _ in seen) <= 2    # only the end is at 99-100 %
    # What a person sees: the stage in the panel (with the time) and in the status bar.
    assert any("level 2 of 3" in p and " s" in p for p, _ in texts)
    assert any(s.startswith("Refine registration: stage") for _, s in texts)
    w.close()


@pytest.mark.slow
def test_planning_progress_per_lesion_and_stage():
    from planning_phantom import make_phantom
    ct, labels = make_phantom()
    seen, fn = _recorder()
    plan_case(ct, labels, n_directions=600, progress=fn)
    assert _monotone(seen) and seen[-1][0] == 1.0 and seen[-1][1].startswith("planned 3 target(s)")
    messages = [m for _, m in seen]
    assert messages[0] == "preparing the planning grid" and "risk structures" in messages
    for k in (1, 2, 3):
        for _, label, _ in LESION_STAGES:
            assert any(m.startswith(f"lesion {k} of 3 (") and m.endswith(label) for m in messages), (k, label)
    first_lesion = next(f for f, m in seen if m.startswith("lesion 1 of 3"))
    assert 0.1 < first_lesion < 0.9
    # Cancel at the second lesion: CancelledError, nothing returned.
    seen, fn = _recorder(stop_at="lesion 2 of 3")
    with pytest.raises(CancelledError):
        plan_case(ct, labels, n_directions=600, progress=fn)
    assert not any(m.startswith("lesion 3") for _, m in seen)


@pytest.mark.gui
@pytest.mark.slow
def test_planning_stages_in_the_status_bar_at_1366(qtbot):
    """Ctrl+P plans; the status bar names the lesion and the stage, whole (not cut) at 1366 px."""
    from _gui_helpers import small_planning_case
    w = make_window(qtbot, size=(1366, 768), panels=True)
    activate(qtbot, w)
    ct, labels = small_planning_case()
    w.set_ct(ct, labels)
    plan_panel = w.panel_docks["planning"].widget()
    shown = []
    qtbot.keyClick(w, Qt.Key_P, Qt.ControlModifier)
    assert plan_panel.worker is not None
    plan_panel.worker.progress.connect(lambda f, m: shown.append((w.stage_label.text(), w.progress.value())))
    qtbot.waitUntil(lambda: plan_panel.worker is None, timeout=120000)
    assert w.reporter.history == [] and plan_panel.result is not None
    texts = [t for t, _ in shown]
    assert "Plan lesions: lesion 1 of 1 (lesion_1): safety margins" in texts, texts
    assert all("\u2026" not in t for t in texts), texts            # nothing elided at 1366 px
    values = [v for _, v in shown]
    assert values == sorted(values)
    assert not w.stage_label.isVisible() and w.workflow.states["plan"].done
    w.close()
