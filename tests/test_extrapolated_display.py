"""Issue 19: an extrapolated target is shown as such everywhere a person reads the registration
(the GUI's verdict lines, plan.json's fusion block, the PDF report), and its hit probability uses
the inflated error; a far result confirmed by its evidence reads "check", not "do not use"; a local
fit keeps only the shift its patch's cost determines."""
from __future__ import annotations

import numpy as np
import pytest

from registration.align.assessment import Assessment
from registration.align.deformation_error import GROWTH_PRIOR, VALIDATED_MM, ResidualDeformation, near_probe_mm
from registration.align.imaged_region import ImagedRegion
from registration.align.local_fits import constrained_part
from registration.align.pose_uncertainty import LaplaceCovariance
from registration.align.registration_result import RegistrationResult, StartResult
from registration.align.uncertainty import CAPTURE_TRANSLATION_MM, assess, hit_probability, total_error_mm
from registration.spatial.transforms import rigid_matrix


def _region():
    """Fans of 40 x 120 mm (0.5 mm pixels) in the planes z = 0, 2, 4 mm (Reference = CT)."""
    mats = []
    for k in range(3):
        m = np.diag([0.5, 0.5, 1.0, 1.0])
        m[2, 3] = 2.0 * k
        mats.append(m)
    return ImagedRegion(np.array(mats), np.ones((240, 80), bool))


def _result(moved=np.eye(4)):
    starts = [(np.eye(4), 0.40), (rigid_matrix([0, 0, 0, 0.3, 0, 0]), 0.399), (rigid_matrix([0, 0, 0, 0, 0.3, 0]),
                                                                                0.398)]
    res = RegistrationResult(np.eye(4), "lc2", 0.2, 0.4, 10, 0.1, np.zeros(3),
                             [StartResult(np.zeros(6), m, 0.2, v, 5) for m, v in starts])
    res.init_reference_to_ct = moved
    return res


TARGETS = {"lesion_near": {"point": [10, 100, 2], "radius_mm": 8.0},
           "lesion_far": {"point": [10, 100, 48], "radius_mm": 8.0}}


def _assessment(local_mm=0.0, moved=np.eye(4)) -> Assessment:
    # a probe resting on the skin (indentation 0.3 mm): no near-probe prior, the distance alone counts
    deformation = ResidualDeformation(local_mm, GROWTH_PRIOR, [], _region(), np.eye(4), indentation_mm=0.3)
    return assess(_result(moved), TARGETS, hessian=LaplaceCovariance(np.eye(6) * 0.01, True),
                  deformation=deformation)


def test_extrapolated_row_uses_the_inflated_error_for_its_hit_probability():
    a = _assessment(local_mm=1.0)
    far, near = a.target("lesion_far"), a.target("lesion_near")
    assert far.extrapolated is True and far.distance_to_imaged_region_mm > VALIDATED_MM and far.verdict != "good"
    assert near.extrapolated is False
    rigid = assess(_result(), TARGETS, hessian=LaplaceCovariance(np.eye(6) * 0.01, True)).target("lesion_far")
    assert far.tre_registration_mm > rigid.tre_registration_mm
    assert far.depth_below_probe_mm == pytest.approx(100.0, abs=0.3) and far.tre_near_probe_mm == 0.0
    assert far.tre_deformation_mm == pytest.approx(np.hypot(1.0, GROWTH_PRIOR * far.distance_to_imaged_region_mm))
    assert far.hit_probability == pytest.approx(hit_probability(8.0, total_error_mm(far.tre_registration_mm)))
    assert far.hit_probability < rigid.hit_probability


def test_verdict_words_mark_the_extrapolated_target_and_a_confirmed_far_result():
    from gui.core.verdict_text import RunFacts, target_verdict
    a = _assessment()
    run = RunFacts("lc2", 0.2, 0.4, 3)
    far = target_verdict(a, a.target("lesion_far"), run)
    d = a.target("lesion_far").distance_to_imaged_region_mm
    assert far.verdict == "check" and f"extrapolated: {d:.0f} mm from the imaged area" in far.text
    assert "extrapolated" in far.details and "organ deformation" in far.details and "probe" not in far.details
    # a target just below the probe face: its tooltip says how much of its error is the probe's
    shallow = {"shallow": {"point": [10, 10, 2], "radius_mm": 8.0}}
    c = assess(_result(), shallow, hessian=LaplaceCovariance(np.eye(6) * 0.01, True),
               deformation=ResidualDeformation(0.0, GROWTH_PRIOR, [], _region(), np.eye(4)))
    line = target_verdict(c, c.target("shallow"), run)
    assert f"including {near_probe_mm(10.0):.1f} mm for tissue pressed by the probe (10 mm below its face)" \
        in line.details
    near = target_verdict(a, a.target("lesion_near"), run)
    assert near.verdict == "good" and "extrapolated" not in near.text
    # a result far from its start that its evidence confirms: check, with its reason, not "do not use"
    far_start = rigid_matrix([0, 0, 0, CAPTURE_TRANSLATION_MM + 10, 0, 0])
    b = _assessment(moved=far_start)
    assert b.capture["confirmed"] and b.verdict == "check"
    line = target_verdict(b, b.target("lesion_near"), run)
    assert line.verdict == "check" and "confirm" in line.text and "do not use" not in line.text


@pytest.mark.gui
def test_verdict_panel_shows_extrapolated(qtbot, artifacts_dir):
    from gui.core.verdict_text import RunFacts
    from gui.panels.verdict_list import VerdictList
    w = VerdictList()
    qtbot.addWidget(w)
    w.resize(420, 160)
    w.show()
    rows = w.show_assessment("Automatic result, waiting for Accept", _assessment(local_mm=1.0),
                             RunFacts("lc2", 0.2, 0.4, 3), "lesion_far")
    text = w.plain_text()
    assert "extrapolated" in text and "lesion_far" in text
    line = next(lab for lab, r in zip(w.lines, rows) if r.name == "lesion_far")
    assert "extrapolated" in line.toolTip() and "organ deformation" in line.toolTip()
    w.grab().save(str(artifacts_dir / "verdict_extrapolated.png"))


def test_plan_fusion_block_and_report_text_say_extrapolated():
    from planner.advice.fusion_error import registration_extrapolation_mm
    from planner.export.report_pdf import _fusion_text
    doc = _assessment(local_mm=1.0).to_dict()
    doc = {"verdict": doc["verdict"], "targets": doc["targets"]}
    d = registration_extrapolation_mm(doc, "lesion_far")
    assert d is not None and d > VALIDATED_MM
    assert registration_extrapolation_mm(doc, "lesion_near") is None
    assert registration_extrapolation_mm(doc, "nowhere") is None and registration_extrapolation_mm(None, "x") is None
    text = _fusion_text({"tre_rms_mm": 5.0, "total_error_mm": 5.5, "hit_probability": 0.7, "extrapolated": True,
                         "distance_to_imaged_region_mm": 44.0}, 16)
    assert "EXTRAPOLATED (44 mm from the imaged region)" in text and "hit probability 70 %" in text
    assert "EXTRAPOLATED" not in _fusion_text({"tre_rms_mm": 2.0, "total_error_mm": 3.0}, 16)


@pytest.mark.slow
def test_a_plan_on_an_extrapolated_lesion_flags_it_in_plan_json_and_the_pdf(tmp_path):
    """plan_case with a RESULT whose row at the lesion is extrapolated: plan.json's fusion block
    says so with the distance, the hit probability is from the row's (inflated) TRE, the PDF says
    EXTRAPOLATED."""
    import shutil
    import subprocess
    from planner.case.case_plan import plan_case
    from planner.export.plan_files import validate_plan, write_outputs
    from planning_phantom import make_lesion_phantom
    ct, lm, _ = make_lesion_phantom(40, 145, "adenocarcinoma", rib_cage=False)
    reg = {"reference_to_ct": np.eye(4).tolist(), "verdict": "check",
           "targets": [{"name": "lesion_x", "tre_registration_mm": 4.0, "verdict": "check", "extrapolated": True,
                        "distance_to_imaged_region_mm": 37.5, "tre_deformation_mm": 3.1}]}
    res = plan_case(ct, lm, registration=reg, n_directions=600)
    validate_plan(dict(res.plan, case={}))
    fusion = res.plan["lesions"][0]["visibility"]["fusion"]
    assert fusion["extrapolated"] is True and fusion["distance_to_imaged_region_mm"] == 37.5
    assert fusion["tre_rms_mm"] == 4.0
    radius = 0.5 * res.plan["lesions"][0]["diameter_mm"]
    assert fusion["hit_probability"] == pytest.approx(hit_probability(radius, total_error_mm(4.0)), abs=0.01)
    plain = dict(reg, targets=[dict(reg["targets"][0], extrapolated=False)])
    assert "extrapolated" not in plan_case(ct, lm, registration=plain, n_directions=600).plan["lesions"][0][
        "visibility"]["fusion"]
    pdf = write_outputs(res, tmp_path)["plan.pdf"]
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext not installed")
    text = subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "EXTRAPOLATED (38 mm from the imaged region)" in text


def test_a_local_fit_keeps_only_the_shift_its_cost_determines():
    """A cost curved along the beam but flat along the lateral axis (layers parallel to the skin):
    the lateral part of the fitted shift is dropped, the beam part kept; a cost with no curvature
    gives no shift."""
    def layered(t):
        return 2.0 * (t[1] - 1.5) ** 2 + 0.001 * t[0] ** 2
    t = np.array([4.0, 1.5])
    assert constrained_part(layered, t, layered(t)) == pytest.approx([0.0, 1.5], abs=0.05)

    def bowl(t):
        return (t[0] - 4.0) ** 2 + (t[1] - 1.5) ** 2
    assert constrained_part(bowl, t, bowl(t)) == pytest.approx(t, abs=1e-6)
    assert constrained_part(lambda x: 0.0, t, 0.0) == pytest.approx([0.0, 0.0])


def test_an_unconfirmed_breathing_fit_and_a_disputing_focus_are_said_in_plain_words():
    """The GUI's verdict line names why a target is "check" when the sweep may hold breathing the data
    do not confirm, and when a focused refinement near it disputed the whole-sweep result."""
    from gui.core.verdict_text import RunFacts, plain_reasons
    from registration.align.assessment import ErrorTerms, TargetEstimate
    t = TargetEstimate("lesion_1", tre_registration_mm=2.0, verdict="check",
                       why=["a focused refinement near it moved it 9.0 mm from this result: one of the two is "
                            "wrong, so its error here is raised to 5.6 mm RMS"])
    a = Assessment("check", [], [t], ErrorTerms(1.0, 1.5, 2.5), 0.9, breathing={"detected": False, "amplitude_mm": 7.0})
    words = plain_reasons(a, t, RunFacts())
    assert any("may have moved ~7 mm with breathing" in w for w in words)
    assert "refining near it moved it 9.0 mm from this result: one of the two fits is wrong" in words
    quiet = Assessment("good", [], [TargetEstimate("lesion_1", tre_registration_mm=2.0, verdict="good")],
                       ErrorTerms(1.0, 1.5, 2.5), 0.9, breathing={"detected": False, "amplitude_mm": 2.0})
    assert plain_reasons(quiet, quiet.targets[0], RunFacts()) == []


def test_per_frame_distances_are_each_frames_own_and_their_minimum_is_the_sweeps():
    """ImagedRegion.frame_distances_mm (one distance transform for every frame; the focused
    refinement picks its frames with it) gives what a region of each single frame gives."""
    region = _region()
    pts = np.array([[10.0, 10.0, 1.0], [50.0, 10.0, 30.0], [-20.0, 5.0, 4.0]])
    m = rigid_matrix([5.0, 0, 0, 1.0, -2.0, 0.5])
    per = region.frame_distances_mm(pts, m)
    single = np.array([ImagedRegion(region.image_to_reference[k][None], region.fan_mask).distance_mm(pts, m)
                       for k in range(len(region.image_to_reference))])
    assert per.shape == (3, 3) and np.allclose(per, single)
    assert np.allclose(region.distance_mm(pts, m), single.min(axis=0))
