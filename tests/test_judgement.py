"""Clinical judgement through the real planning pipeline, on hand-made lesions.

Each case is a synthetic CT + labels (tests/planning_phantom.py ``make_lesion_phantom``:
one lesion straight below the anterior skin at a chosen depth, optionally behind a rib
cage) planned by ``plan_case`` without a registration, as the product would plan a CT it
has never seen:

* a 50 mm hypo-attenuating lesion at 70 mm with a window -> plain US;
* a 55 mm lesion at 80 mm (the real CT's tumours: 55 mm, 75-95 mm deep) -> plain US;
* an 8 mm adenocarcinoma-like lesion at 130 mm -> not plain US (CT: no registration can
  give a 90 % hit on it);
* a 16 mm NET-like lesion -> US or CEUS;
* a 40 mm lesion at 145 mm (B-mode uncertain) -> US with fusion on the condition that the
  registration reaches the TRE it needs;
* no acoustic window (ribs all round, a needle fits between them) -> CT.

Every path proposed as safe is re-checked by the independent clearance rule.
"""
import json

import numpy as np
import pytest

from planner.advice.bmode_visibility import SOURCES
from planner.advice.fusion_need import required_registration_tre_mm
from planner.case.case_plan import plan_case
from planner.export.plan_files import validate_plan
from planning_phantom import independent_violations, make_lesion_phantom

pytestmark = pytest.mark.slow


def _plan(diameter, depth, kind="adenocarcinoma", **kw):
    ct, lm, centre = make_lesion_phantom(diameter, depth, kind, rib_cage=kw.pop("rib_cage", False))
    res = plan_case(ct, lm, n_directions=kw.pop("n_directions", 2000), **kw)
    validate_plan(dict(res.plan, case={}))
    les = res.plan["lesions"][0]
    for t in les["trajectories"]:
        assert t["safe"] is True
        v = independent_violations(lm, t["entry_ct"], t["target_ct"], lesion_value=lm.names["lesion_x"],
                                   clearance=t["clearance_mm"], cautions=t["cautions"])
        assert v == [], (t["guidance"], v)
    return les, res.plan


def _terms_have_sources(pred):
    names = [t["name"] for t in pred["terms"]]
    assert names == ["size", "type", "depth", "ct_contrast", "fat_contrast"]
    for t in pred["terms"]:
        assert all(part in SOURCES for part in t["source"].split("+")), t
    assert pred["sources"] == {k: SOURCES[k] for t in pred["terms"] for k in t["source"].split("+")}


@pytest.mark.parametrize("diameter,depth", [(50, 70), (55, 80)])
def test_large_hypoattenuating_lesion_with_a_window_gets_plain_us(diameter, depth):
    les, plan = _plan(diameter, depth)
    vis = les["visibility"]
    assert vis["lesion_type"] == "adenocarcinoma-like"
    assert les["depth_mm"] == pytest.approx(depth, abs=3)
    pred = vis["predicted"]
    assert pred["category"] == "likely" and pred["probability"] == pytest.approx(0.80, abs=0.02)
    _terms_have_sources(pred)
    rec = les["recommendation"]
    assert rec["guidance"] == "us" and rec["condition"] is None, rec["reasons"]
    assert any(t["guidance"] == "us" for t in les["trajectories"])
    # the conditional figure is stated even when plain US is advised
    need = vis["fusion_need"]["registration_allowed_mm"]
    assert need == pytest.approx(required_registration_tre_mm(0.5 * les["diameter_mm"]), abs=0.1) and need > 15
    # no spleen label on this CT: fatty liver unknown, and the plan says why
    fat = vis["fatty_liver"]
    assert fat["fatty"] is None and "no spleen label" in fat["note"] and "unenhanced" in fat["note"]


def test_small_deep_adenocarcinoma_is_not_plain_us():
    les, _ = _plan(8, 130)
    vis = les["visibility"]
    assert les["depth_mm"] == pytest.approx(130, abs=3)
    assert vis["predicted"]["category"] == "unlikely"
    assert vis["fusion_need"]["registration_allowed_mm"] is None      # no registration is accurate enough
    rec = les["recommendation"]
    assert rec["guidance"] == "ct", rec["reasons"]
    assert "not_visible_ct_biopsy" in rec["reason_codes"] and "fusion_need" in rec["reason_codes"]
    assert any(t["guidance"] == "ct" for t in les["trajectories"])
    assert "not_visible_on_bmode" in [a["kind"] for a in rec["advisories"]]


def test_16_mm_net_like_lesion_gets_us_or_ceus():
    les, _ = _plan(16, 60, "net")
    assert les["visibility"]["lesion_type"] == "net-like"
    assert les["recommendation"]["guidance"] in ("us", "ceus"), les["recommendation"]["reasons"]


def test_large_deep_lesion_uncertain_on_bmode_gets_conditional_fusion():
    les, plan = _plan(40, 145)
    pred = les["visibility"]["predicted"]
    assert pred["category"] == "uncertain"
    rec = les["recommendation"]
    assert rec["guidance"] == "us_fusion", rec["reasons"]
    need = required_registration_tre_mm(0.5 * les["diameter_mm"])
    assert rec["condition"]["kind"] == "registration_tre"
    assert rec["condition"]["max_tre_rms_mm"] == pytest.approx(need, abs=0.05)
    assert f"{need:.1f} mm" in rec["condition"]["text"] and "fusion_conditional" in rec["reason_codes"]


def test_with_a_registration_its_tre_at_the_lesion_decides():
    """The same lesion planned with a RESULT: a 3 mm TRE makes fusion unconditional, a TRE the
    registration itself calls poor leaves the advice conditional."""
    reg = {"reference_to_ct": np.eye(4).tolist(), "verdict": "check",
           "targets": [{"name": "lesion_x", "tre_registration_mm": 3.0}]}
    les, _ = _plan(40, 145, registration=reg, n_directions=1200)
    rec = les["recommendation"]
    assert rec["guidance"] == "us_fusion" and rec["condition"] is None
    assert les["visibility"]["fusion"]["hit_probability"] > 0.9
    les, _ = _plan(40, 145, registration=dict(reg, verdict="poor"), n_directions=1200)
    assert les["recommendation"]["condition"] is not None
    assert les["visibility"]["fusion"]["tre_rms_mm"] is None


def test_no_acoustic_window_gets_ct():
    les, _ = _plan(30, 70, rib_cage=True)
    vis = les["visibility"]
    assert vis["window"]["depth_mm"] is None and vis["window"]["obstruction_by"]["rib/bone"] > 0
    assert vis["predicted"]["category"] == "unlikely"
    rec = les["recommendation"]
    assert rec["guidance"] == "ct" and rec["reason_codes"][0] == "no_us_path"
    assert les["no_us_path_code"] == "no_window_within_limit"
    ct_paths = [t for t in les["trajectories"] if t["guidance"] == "ct"]
    assert ct_paths and all(t["clearance_mm"]["bone"] > 0.635 for t in ct_paths)   # between the ribs


def test_plan_json_round_trip_of_the_new_fields(tmp_path):
    """plan.json keeps the visibility terms, the condition and the safe flag through export."""
    from planner.export.plan_files import write_outputs
    ct, lm, _ = make_lesion_phantom(40, 145)
    res = plan_case(ct, lm, n_directions=1200)
    written = write_outputs(res, tmp_path)
    plan = json.loads(open(written["plan.json"]).read())
    les = plan["lesions"][0]
    assert plan["version"] == "1.2"
    assert les["recommendation"]["condition"]["max_tre_rms_mm"] > 7.1
    assert all(t["safe"] is True and isinstance(t["cautions"], list) for t in les["trajectories"])
    assert plan["constraints"]["soft_rules"] and "vessel" in plan["constraints"]["hard_rules"]
    text = _pdf_text(written["plan.pdf"])
    if text is not None:      # the report states the condition and the evidence terms
        cond = les["recommendation"]["condition"]["max_tre_rms_mm"]
        assert f"us_fusion if TRE <= {cond:g} mm".upper() in text and "CONDITIONAL" in text
        assert "robinson2000" in text and "Fatty liver" in text


def _pdf_text(path):
    import shutil
    import subprocess
    if not shutil.which("pdftotext"):
        return None
    return subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_report_shows_the_least_risk_path_as_unsafe(tmp_path):
    from planner.export.plan_files import write_outputs
    from planner.paths.constraints import Constraints
    from planning_phantom import make_phantom
    ct, lm = make_phantom()
    res = plan_case(ct, lm, lesion="lesion_deep", constraints=Constraints(max_length_mm=25.0), n_directions=500)
    text = _pdf_text(write_outputs(res, tmp_path)["plan.pdf"])
    if text is None:
        pytest.skip("pdftotext not installed")
    assert "NO SAFE PATH" in text and "UNSAFE LEAST-RISK CT path" in text and "VIOLATES" in text
    assert "longer than the 25 mm needle" in text
