"""Guidance recommendation per lesion and per case, with reasons and advisories.

Rules from DESIGN section 1 (trust the CT, do not repeat futile US, fusion
when accurate enough, CEUS for NET metastases, otherwise CT-guided biopsy of
the most accessible lesion). Guidance values: ``us``, ``us_fusion``, ``ceus``,
``ct``, and ``none`` when no safe percutaneous path exists (the plan says so
instead of failing). Every reason quotes its numbers; every advisory carries
its evidence from the DESIGN table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

# The hit probability rule has one home (DESIGN section 7); re-exported for the planner.
from registration.align.uncertainty import hit_probability  # noqa: F401

HIT_PROBABILITY_REQUIRED = 0.90

EVIDENCE = {
    "mri": ("MRI with a hepatobiliary agent: sensitivity 83-100 % vs 45-76 % for CT, accuracy 94 % vs "
            "74-77 %; finds CT-occult metastases in 10-23 %; CT specificity 83-94 % (6-17 % false positives)"),
    "laparoscopy": "laparoscopy with laparoscopic US finds occult metastases in 15-23 % of patients "
                   "judged resectable on CT",
    "eus_pancreas": "metastases to the pancreas (renal, lung, breast, colon, melanoma) are 2-5 % of "
                    "pancreatic malignancies",
    "not_visible_on_bmode": "up to one fifth of liver lesions are not visible on B-mode US at all; "
                            "pancreatic adenocarcinoma metastases are small and hypoechoic",
    "ceus": "NET metastases on CEUS: arterial hyperenhancement 83 %, portal-phase washout 78 % "
            "(Massironi 2010, n = 18)",
    "ct_biopsy": "CT-guided percutaneous liver biopsy: sensitivity 93 %, specificity 100 %",
    "fusion": "clinical US-CT fusion error 5.7 +/- 4.3 mm automatic, 6.3 +/- 5.0 mm manual (RCT)",
    "ct_sensitivity": "CT sensitivity for liver metastases 73-80 %, many lesions < 10 mm are missed",
}


@dataclass
class LesionFacts:
    """What the recommendation needs to know about one lesion (units in the names)."""
    name: str
    diameter_mm: Optional[float]
    lesion_type: str                     # 'adenocarcinoma-like' | 'net-like' | 'indeterminate'
    predicted: str                       # predicted B-mode conspicuity: 'likely' | 'uncertain' | 'unlikely'
    depth_mm: Optional[float]            # depth along the best acoustic window (None: no window)
    depth_limit_mm: float
    us_path: bool                        # a safe path with an in-plane acoustic window exists
    ct_path: bool                        # a safe CT-guided path exists
    hit_probability: Optional[float] = None   # from the registration's TRE at this target
    fusion_tre_mm: Optional[float] = None     # rms targeting error behind hit_probability (mm)
    seen_on_sweep: Optional[bool] = None      # measured on registered frames (None: not measured)
    measured_cnr: Optional[float] = None
    best_path_cost: Optional[float] = None
    best_path_length_mm: Optional[float] = None
    safe_paths: Optional[int] = None          # straight paths meeting the hard constraints


def _adv(kind: str, text: str) -> dict:
    return {"kind": kind, "text": text, "evidence": EVIDENCE[kind]}


def recommend_lesion(f: LesionFacts) -> dict:
    """-> {"guidance", "reasons": [str], "advisories": [{kind, text, evidence}]}."""
    reasons: List[str] = []
    adv: List[dict] = []
    size = f"{f.diameter_mm:.0f} mm" if f.diameter_mm is not None else "size unknown"
    depth_ok = f.depth_mm is not None and f.depth_mm <= f.depth_limit_mm
    us_possible = f.us_path and depth_ok
    if f.depth_mm is None:
        reasons.append("no acoustic window: every probe position to the lesion is blocked by ribs, "
                       "lung or gas (0 clear windows)")
    elif not depth_ok:
        reasons.append(f"too deep for B-mode: best window {f.depth_mm:.0f} mm > depth limit "
                       f"{f.depth_limit_mm:.0f} mm (60 dB round trip, 0.5 dB/cm/MHz)")
    elif not f.us_path:
        reasons.append(f"acoustic window at {f.depth_mm:.0f} mm but no safe needle path in the "
                       "image plane of a probe on the skin")
    else:
        reasons.append(f"acoustic window with a safe in-plane path, lesion depth {f.depth_mm:.0f} mm "
                       f"(limit {f.depth_limit_mm:.0f} mm)")

    visible = None  # what we believe about B-mode visibility
    if f.seen_on_sweep is not None:
        cnr = f" (CNR {f.measured_cnr:.2f})" if f.measured_cnr is not None else ""
        visible = bool(f.seen_on_sweep)
        reasons.append(("seen" if visible else "not seen") + f" on the registered sweep{cnr}")
    else:
        visible = f.predicted == "likely"
        reasons.append(f"predicted B-mode conspicuity '{f.predicted}' ({f.lesion_type}, {size})")

    p = f.hit_probability
    fusion_ok = p is not None and p >= HIT_PROBABILITY_REQUIRED
    if p is not None:
        tre = f", targeting error {f.fusion_tre_mm:.1f} mm rms" if f.fusion_tre_mm is not None else ""
        reasons.append(f"fusion hit probability {100 * p:.0f} % for a {size} lesion{tre} "
                       f"(needs >= {100 * HIT_PROBABILITY_REQUIRED:.0f} %)")

    guidance = None
    if us_possible:
        if visible:
            guidance = "us"
        elif f.lesion_type == "net-like":
            guidance = "ceus"
            reasons.append("NET-like lesion poorly seen on B-mode: contrast-enhanced US")
            adv.append(_adv("ceus", "CEUS is an option for NET-type metastases"))
        elif fusion_ok:
            guidance = "us_fusion"
        elif not f.ct_path:
            guidance = "us_fusion"
            reasons.append("no CT-guided path: US with fusion is the only route; register near the "
                           "target and check the hit probability before the attempt")
    if guidance is None:
        if f.ct_path:
            guidance = "ct"
            if us_possible and not visible:
                why = "not reliably visible on B-mode"
                if p is None:
                    why += " and no registration to guide fusion"
                elif not fusion_ok:
                    why += f" and fusion too inaccurate for its size (hit probability {100 * p:.0f} %)"
                reasons.append(f"{why}: CT-guided biopsy")
            else:
                reasons.append("CT-guided biopsy (no usable US route)")
            adv.append(_adv("ct_biopsy", "CT guidance is the reliable alternative when US cannot "
                                         "show or reach the lesion"))
        else:
            guidance = "none"
            if f.safe_paths:
                reasons.append(f"no safe guidable path: {f.safe_paths} straight paths meet the hard "
                               "constraints but none lies in a US image plane with a clear window nor in a "
                               "CT gantry plane (tilt <= 15 deg); choose another lesion")
            else:
                reasons.append("no safe percutaneous path (0 candidate paths meet the hard constraints): "
                               "do not biopsy this lesion percutaneously; choose another lesion")
    if not visible or f.predicted == "unlikely":
        adv.append(_adv("not_visible_on_bmode", "this lesion may not be visible on B-mode US; do not "
                                                "repeat futile US attempts"))
    if f.lesion_type == "indeterminate" or (f.diameter_mm is not None and f.diameter_mm < 10):
        adv.append(_adv("mri", "finding uncertain on CT: if the disease is potentially resectable, "
                               "MRI with a hepatobiliary agent before irreversible decisions"))
    return {"guidance": guidance, "reasons": reasons, "advisories": adv}


_GUIDANCE_EASE = {"us": 0, "us_fusion": 1, "ceus": 1, "ct": 2, "none": 9}


def accessibility_key(f: LesionFacts):
    """Smaller = more accessible: has a path, cheaper best path, bigger lesion."""
    has = f.us_path or f.ct_path
    cost = f.best_path_cost if f.best_path_cost is not None else 9.0
    size_bonus = -0.01 * (f.diameter_mm or 0.0)
    return (0 if has else 1, round(cost + size_bonus, 4), f.name)


def rank_lesions(facts: List[LesionFacts]) -> List[str]:
    return [f.name for f in sorted(facts, key=accessibility_key)]


def recommend_case(facts: List[LesionFacts], *, has_pancreatic_mass: bool) -> dict:
    """Case-level recommendation: which lesion to biopsy first, how, and case advisories."""
    order = rank_lesions(facts)
    by = {f.name: f for f in facts}
    recs = {f.name: recommend_lesion(f) for f in facts}
    first = next((n for n in order if recs[n]["guidance"] != "none"), None)
    reasons: List[str] = []
    if first is None:
        guidance = "none"
        reasons.append(f"no safe percutaneous path to any of the {len(facts)} target(s)")
    else:
        guidance = recs[first]["guidance"]
        f = by[first]
        length = f" via a {f.best_path_length_mm:.0f} mm path" if f.best_path_length_mm else ""
        reasons.append(f"biopsy {first} first: the most accessible lesion ({guidance}{length}, "
                       f"rank 1 of {len(facts)})")
    adv = [_adv("laparoscopy", "before a planned resection, consider staging laparoscopy with "
                               "laparoscopic US")]
    if has_pancreatic_mass:
        adv.append(_adv("eus_pancreas", "if the patient has a prior cancer (renal, lung, breast, colon, "
                                        "melanoma), the pancreatic mass may be a metastasis to the "
                                        "pancreas: EUS biopsy of the pancreatic mass"))
    return {"guidance": guidance, "biopsy_first": first, "ranking": order,
            "reasons": reasons, "advisories": adv}
