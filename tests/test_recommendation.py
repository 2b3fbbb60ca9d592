"""Guidance recommendation: the table of cases from DESIGN section 1, written before the rules.

Each row: lesion facts (size, type, predicted B-mode visibility category, depth of
the best window, US window with a safe in-plane path or not, CT-guided path or
not, fusion error = TRE rms of the registration at the target, seen on the sweep
or not) -> expected guidance. The literature (DESIGN section 1,
docs/clinical_evidence.md): trust the CT; do not repeat futile US; use fusion
where accurate enough (hit probability >= 90 %; without a registration only when
the TRE the lesion needs is within what fusion reaches in patients, and then on
that condition); CEUS for NET metastases (an option for others); otherwise
CT-guided biopsy of the most accessible lesion.
"""
import pytest

from planner.advice.case_advice import next_best_reason, rank_lesions, recommend_case
from planner.advice.fusion_need import CLINICAL_TRE_RMS_MM, required_registration_tre_mm
from planner.advice.reasons import REASON_CODES
from planner.advice.recommendation import LesionFacts, recommend_lesion

D = dict(name="lesion_x", depth_limit_mm=171.0, us_path=True, ct_path=True,
         hit_probability=None, fusion_tre_mm=None, seen_on_sweep=None, measured_cnr=None)

# (id, size mm, type, predicted B-mode, depth mm, us path, ct path, fusion TRE mm, seen on sweep) -> guidance
CASES = [
    ("big NET seen on sweep", 25, "net-like", "likely", 60, True, True, None, True, "us"),
    ("big adeno predicted visible, no sweep", 25, "adenocarcinoma-like", "likely", 50, True, True, None, None, "us"),
    ("seen on sweep beats a poor prediction", 12, "adenocarcinoma-like", "unlikely", 60, True, True, None, True, "us"),
    ("small adeno not seen, fusion accurate", 8, "adenocarcinoma-like", "unlikely", 80, True, True, 2.0, False, "us_fusion"),
    ("small adeno not seen, clinical fusion error", 8, "adenocarcinoma-like", "unlikely", 80, True, True, 5.7, False, "ct"),
    ("small adeno not seen, not registered", 8, "adenocarcinoma-like", "unlikely", 80, True, True, None, False, "ct"),
    ("20 mm adeno not seen, fusion 3 mm is enough", 20, "adenocarcinoma-like", "uncertain", 70, True, True, 3.0, False, "us_fusion"),
    ("NET not seen on B-mode, fusion poor -> CEUS", 12, "net-like", "uncertain", 60, True, True, 6.0, False, "ceus"),
    ("NET predicted uncertain, no sweep -> CEUS", 15, "net-like", "uncertain", 70, True, True, None, None, "ceus"),
    ("behind a rib: no window", 30, "adenocarcinoma-like", "unlikely", None, False, True, None, None, "ct"),
    ("too deep for US (190 mm > 171 mm)", 20, "adenocarcinoma-like", "unlikely", 190, False, True, 2.0, None, "ct"),
    ("NET without a US window", 20, "net-like", "likely", None, False, True, None, None, "ct"),
    ("seen on sweep but no safe US path", 20, "adenocarcinoma-like", "likely", 60, False, True, None, True, "ct"),
    ("no safe path at all", 20, "adenocarcinoma-like", "likely", 60, False, False, None, None, "none"),
    ("indeterminate small lesion not seen, not registered", 7, "indeterminate", "unlikely", 60, True, True, None, False, "ct"),
    # without a registration: conditional advice from the evidence model and the fusion need
    ("50 mm hypo lesion at 70 mm, likely, window", 50, "adenocarcinoma-like", "likely", 70, True, True, None, None, "us"),
    ("8 mm adeno at 130 mm, unlikely", 8, "adenocarcinoma-like", "unlikely", 130, True, True, None, None, "ct"),
    ("16 mm NET, likely", 16, "net-like", "likely", 70, True, True, None, None, "us"),
    ("45 mm adeno deep, uncertain: fusion if TRE allows", 45, "adenocarcinoma-like", "uncertain", 150, True, True, None, None, "us_fusion"),
    ("14 mm adeno uncertain: fusion beyond clinical reach", 14, "adenocarcinoma-like", "uncertain", 60, True, True, None, None, "ct"),
    ("14 mm adeno uncertain, no CT path: CEUS", 14, "adenocarcinoma-like", "uncertain", 60, True, False, None, None, "ceus"),
    ("8 mm adeno unlikely, no CT path: fusion the only route", 8, "adenocarcinoma-like", "unlikely", 60, True, False, None, None, "us_fusion"),
]


# The reason codes each row must give (a subset of its reason_codes, in this order).
EXPECTED_CODES = {
    "big NET seen on sweep": ["us_route", "seen_on_sweep"],
    "big adeno predicted visible, no sweep": ["us_route", "predicted_conspicuity"],
    "small adeno not seen, fusion accurate": ["us_route", "not_seen_on_sweep", "fusion_hit_probability"],
    "small adeno not seen, clinical fusion error": ["not_seen_on_sweep", "fusion_hit_probability",
                                                    "not_visible_ct_biopsy"],
    "small adeno not seen, not registered": ["not_seen_on_sweep", "not_visible_ct_biopsy"],
    "NET not seen on B-mode, fusion poor -> CEUS": ["not_seen_on_sweep", "ceus_for_net"],
    "behind a rib: no window": ["no_acoustic_window", "no_us_route_ct_biopsy"],
    "too deep for US (190 mm > 171 mm)": ["too_deep", "no_us_route_ct_biopsy"],
    "seen on sweep but no safe US path": ["window_without_inplane_path", "seen_on_sweep",
                                          "no_us_route_ct_biopsy"],
    "no safe path at all": ["window_without_inplane_path", "no_safe_path"],
    "50 mm hypo lesion at 70 mm, likely, window": ["us_route", "predicted_conspicuity", "fusion_need"],
    "8 mm adeno at 130 mm, unlikely": ["predicted_conspicuity", "fusion_need", "not_visible_ct_biopsy"],
    "45 mm adeno deep, uncertain: fusion if TRE allows": ["us_route", "predicted_conspicuity", "fusion_need",
                                                          "fusion_conditional"],
    "14 mm adeno uncertain: fusion beyond clinical reach": ["fusion_need", "not_visible_ct_biopsy"],
    "14 mm adeno uncertain, no CT path: CEUS": ["fusion_need", "ceus_late_phase"],
    "8 mm adeno unlikely, no CT path: fusion the only route": ["fusion_need", "fusion_only_route"],
}


def _hit_probability(diameter_mm, tre):
    if tre is None:
        return None
    from registration.align.uncertainty import hit_probability
    return hit_probability(0.5 * diameter_mm, tre)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_recommendation_table(case):
    _, size, typ, pred, depth, us, ctp, tre, seen, expected = case
    facts = LesionFacts(**{**D, "diameter_mm": size, "lesion_type": typ, "predicted": pred,
                           "depth_mm": depth, "us_path": us, "ct_path": ctp, "fusion_tre_mm": tre,
                           "hit_probability": _hit_probability(size, tre), "seen_on_sweep": seen})
    rec = recommend_lesion(facts)
    assert rec["guidance"] == expected, rec["reason_codes"]
    assert rec["reasons"], "every recommendation states its reasons"
    assert len(rec["reason_codes"]) == len(rec["reasons"]) and set(rec["reason_codes"]) <= set(REASON_CODES)
    want = EXPECTED_CODES.get(case[0], [])
    assert [c for c in rec["reason_codes"] if c in want] == want, rec["reason_codes"]
    # reasons quote numbers
    assert any(ch.isdigit() for r in rec["reasons"] for ch in r)
    # only conditional fusion advice carries a condition, and it quotes the TRE the lesion needs
    if "fusion_conditional" in rec["reason_codes"]:
        need = required_registration_tre_mm(0.5 * size)
        assert rec["condition"]["max_tre_rms_mm"] == pytest.approx(need, abs=0.05)
        assert need >= CLINICAL_TRE_RMS_MM
        assert f"{need:.1f} mm" in rec["condition"]["text"]
    else:
        assert rec["condition"] is None


def test_conditional_fusion_threshold_follows_the_clinical_figure():
    """Not registered, uncertain on B-mode: fusion is advised (on condition) exactly from the size
    whose needed TRE reaches the clinical 7.1 mm rms (5.7 +/- 4.3 mm); below it, CT."""
    def guidance(size):
        f = LesionFacts(**{**D, "diameter_mm": size, "lesion_type": "adenocarcinoma-like", "predicted": "uncertain",
                           "depth_mm": 150})
        return recommend_lesion(f)
    assert CLINICAL_TRE_RMS_MM == pytest.approx((5.7 ** 2 + 4.3 ** 2) ** 0.5)
    sizes = [s / 2 for s in range(20, 100)]
    first = next(s for s in sizes if guidance(s)["guidance"] == "us_fusion")
    assert required_registration_tre_mm(first / 2) >= CLINICAL_TRE_RMS_MM > required_registration_tre_mm(first / 2 - 0.25)
    assert all(guidance(s)["guidance"] == "ct" for s in sizes if s < first)
    # the CT advice for a smaller lesion names CEUS as an option and what fusion would need
    small = guidance(14)
    assert "ceus_option" in [a["kind"] for a in small["advisories"]]
    i = small["reason_codes"].index("fusion_need")
    assert "beyond reach" in small["reasons"][i] and "7.1 mm" in small["reasons"][i]


def test_a_poor_registration_leaves_the_advice_conditional():
    f = LesionFacts(**{**D, "diameter_mm": 45, "lesion_type": "adenocarcinoma-like", "predicted": "uncertain",
                       "depth_mm": 150, "registered": True})
    rec = recommend_lesion(f)
    assert rec["guidance"] == "us_fusion" and rec["condition"]["kind"] == "registration_tre"
    assert "the registration gives no TRE" in rec["reasons"][rec["reason_codes"].index("fusion_need")]


def test_double_oblique_ct_path_is_said():
    f = LesionFacts(**{**D, "diameter_mm": 9, "lesion_type": "adenocarcinoma-like", "predicted": "unlikely",
                       "depth_mm": None, "us_path": False, "ct_double_oblique": True})
    rec = recommend_lesion(f)
    assert rec["guidance"] == "ct" and "double_oblique_ct" in rec["reason_codes"]
    assert "double_oblique" in [a["kind"] for a in rec["advisories"]]


def test_least_risk_path_is_named_and_points_to_the_next_lesion():
    f = LesionFacts(**{**D, "name": "lesion_4", "diameter_mm": 6, "lesion_type": "adenocarcinoma-like",
                       "predicted": "unlikely", "depth_mm": 137, "us_path": False, "ct_path": False,
                       "least_risk": "passes 3.1 mm from the hepatic_vein"})
    rec = recommend_lesion(f)
    assert rec["guidance"] == "none"
    assert rec["reason_codes"][-2:] == ["no_safe_path", "least_risk_path"]
    assert "UNSAFE" in rec["reasons"][-1] and "3.1 mm" in rec["reasons"][-1]
    ok = LesionFacts(**{**D, "name": "lesion_1", "diameter_mm": 25, "lesion_type": "adenocarcinoma-like",
                        "predicted": "likely", "depth_mm": 70, "best_path_cost": 0.8})
    case = recommend_case([f, ok], has_pancreatic_mass=False)
    why = next_best_reason("lesion_4", case["ranking"], {"lesion_4": "none", "lesion_1": "us"})
    assert why.code == "next_best_lesion" and "lesion_1" in why.text and "us" in why.text
    assert next_best_reason("lesion_4", ["lesion_4"], {"lesion_4": "none"}) is None


def test_hit_probability_matches_design_rule():
    from registration.align.uncertainty import hit_probability
    # DESIGN section 7: 90 % needs TRE_rms <= 0.69 R
    assert hit_probability(10.0, 6.9) == pytest.approx(0.90, abs=0.01)
    assert hit_probability(10.0, 3.0) > 0.99
    assert hit_probability(4.0, 5.7) < 0.5


def test_the_planner_uses_the_registrations_hit_probability():
    """One home for the rule: the planner's hit probability is the registration engine's function,
    so both answer the same at the edges (a radius <= 0 is never hit)."""
    from planner.case import lesion_plan
    from registration.align import uncertainty
    assert lesion_plan.hit_probability is uncertainty.hit_probability
    assert uncertainty.hit_probability(0.0, 3.0) == 0.0 and uncertainty.hit_probability(-1.0, 0.0) == 0.0


def test_advisories_carry_evidence():
    facts = LesionFacts(**{**D, "diameter_mm": 7, "lesion_type": "indeterminate", "predicted": "unlikely",
                           "depth_mm": 60})
    rec = recommend_lesion(facts)
    mri = [a for a in rec["advisories"] if a["kind"] == "mri"]
    assert mri and "83" in mri[0]["evidence"]        # MRI sensitivity 83-100 %
    hidden = [a for a in rec["advisories"] if a["kind"] == "not_visible_on_bmode"]
    assert hidden and "fifth" in hidden[0]["evidence"]


def test_case_recommendation_ranks_most_accessible_first():
    a = LesionFacts(**{**D, "name": "lesion_deep", "diameter_mm": 15, "lesion_type": "adenocarcinoma-like",
                       "predicted": "unlikely", "depth_mm": None, "us_path": False, "best_path_cost": 1.4,
                       "best_path_length_mm": 120})
    b = LesionFacts(**{**D, "name": "lesion_sub", "diameter_mm": 20, "lesion_type": "adenocarcinoma-like",
                       "predicted": "likely", "depth_mm": 40, "best_path_cost": 0.6, "best_path_length_mm": 45})
    c = LesionFacts(**{**D, "name": "lesion_none", "diameter_mm": 30, "lesion_type": "adenocarcinoma-like",
                       "predicted": "likely", "depth_mm": 40, "us_path": False, "ct_path": False})
    order = rank_lesions([a, b, c])
    assert order == ["lesion_sub", "lesion_deep", "lesion_none"]
    case = recommend_case([a, b, c], has_pancreatic_mass=True)
    assert case["biopsy_first"] == "lesion_sub" and case["reason_codes"] == ["biopsy_first"]
    assert case["guidance"] == "us"
    kinds = {x["kind"] for x in case["advisories"]}
    assert {"laparoscopy", "eus_pancreas"} <= kinds
    assert any("15" in x["evidence"] for x in case["advisories"] if x["kind"] == "laparoscopy")


def test_case_without_any_path_says_so():
    c = LesionFacts(**{**D, "diameter_mm": 30, "lesion_type": "adenocarcinoma-like",
                       "predicted": "likely", "depth_mm": 40, "us_path": False, "ct_path": False})
    case = recommend_case([c], has_pancreatic_mass=False)
    assert case["guidance"] == "none"
    assert case["biopsy_first"] is None
    assert case["reason_codes"] == ["no_safe_path_any_target"]


def test_safe_but_unguidable_paths_are_named():
    f = LesionFacts(**{**D, "diameter_mm": 20, "lesion_type": "adenocarcinoma-like", "predicted": "likely",
                       "depth_mm": 60, "us_path": False, "ct_path": False, "safe_paths": 5})
    rec = recommend_lesion(f)
    assert rec["guidance"] == "none"
    i = rec["reason_codes"].index("safe_but_unguidable")
    # the count is quoted; every safe straight path can be CT-guided (gantry plane or double oblique),
    # so this happens only when CT guidance was not allowed (--guidance us)
    assert "5 straight paths" in rec["reasons"][i] and "CT guidance was not allowed" in rec["reasons"][i]
