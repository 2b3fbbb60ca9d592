"""Guidance recommendation per lesion and per case, with reasons and advisories.

Rules from DESIGN section 1 (trust the CT, do not repeat futile US, fusion
when accurate enough, CEUS for NET metastases, otherwise CT-guided biopsy of
the most accessible lesion). Guidance values: ``us``, ``us_fusion``, ``ceus``,
``ct``, and ``none`` when no safe percutaneous path exists (the plan says so
instead of failing). Every reason has a stable code (:mod:`.reasons`) and
quotes its numbers; every advisory carries its code (``kind``) and its
evidence from the DESIGN table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from planner.paths.ct_guidance import MAX_TILT_DEG

from .reasons import Reason, reasons_json
from .visibility import ATTENUATION_DB_CM_MHZ, DYNAMIC_RANGE_DB

HIT_PROBABILITY_REQUIRED = 0.90    # fusion guides the needle only at >= 90 % hit probability
MRI_ADVISORY_BELOW_MM = 10.0       # CT misses many metastases < 10 mm (DESIGN section 1): advise MRI
# Ranking by accessibility (a heuristic tie-break, not a clinical rule): a lesion without a
# path ranks as if its best path cost UNKNOWN_PATH_COST; each mm of size is worth
# SIZE_BONUS_PER_MM of path cost.
UNKNOWN_PATH_COST = 9.0
SIZE_BONUS_PER_MM = 0.01

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

    @property
    def size_text(self) -> str:
        return f"{self.diameter_mm:.0f} mm" if self.diameter_mm is not None else "size unknown"

    @property
    def depth_ok(self) -> bool:
        """An acoustic window within the B-mode depth limit."""
        return self.depth_mm is not None and self.depth_mm <= self.depth_limit_mm

    @property
    def us_possible(self) -> bool:
        """A safe in-plane path through a window within the depth limit."""
        return self.us_path and self.depth_ok

    @property
    def fusion_ok(self) -> bool:
        """Fusion is accurate enough for this lesion's size."""
        return self.hit_probability is not None and self.hit_probability >= HIT_PROBABILITY_REQUIRED


@dataclass
class Recommendation:
    """A lesion's recommended guidance with its reasons (coded) and advisories ({kind, text, evidence})."""
    guidance: str
    reasons: List[Reason]
    advisories: List[dict] = field(default_factory=list)

    @property
    def codes(self) -> List[str]:
        return [r.code for r in self.reasons]

    def replace_reason(self, code: str, new: Reason) -> None:
        """Put ``new`` first and drop the reasons with ``code`` (a specific cause replaces a generic one)."""
        self.reasons = [new] + [r for r in self.reasons if r.code != code]

    def to_json(self) -> dict:
        """plan.json form: {guidance, reasons: [text], reason_codes: [code], advisories}."""
        return {"guidance": self.guidance, **reasons_json(self.reasons), "advisories": self.advisories}


def _adv(kind: str, text: str) -> dict:
    """An advisory: its code ``kind`` (a key of EVIDENCE), what to consider and the evidence."""
    return {"kind": kind, "text": text, "evidence": EVIDENCE[kind]}


def _route_reason(f: LesionFacts) -> Reason:
    """Whether ultrasound can reach the lesion: window, depth, in-plane path."""
    if f.depth_mm is None:
        return Reason("no_acoustic_window", "no acoustic window: every probe position to the lesion is "
                                            "blocked by ribs, lung or gas (0 clear windows)")
    if not f.depth_ok:
        return Reason("too_deep", f"too deep for B-mode: best window {f.depth_mm:.0f} mm > depth limit "
                                  f"{f.depth_limit_mm:.0f} mm ({DYNAMIC_RANGE_DB:.0f} dB round trip, "
                                  f"{ATTENUATION_DB_CM_MHZ:g} dB/cm/MHz)")
    if not f.us_path:
        return Reason("window_without_inplane_path", f"acoustic window at {f.depth_mm:.0f} mm but no safe "
                                                     "needle path in the image plane of a probe on the skin")
    return Reason("us_route", f"acoustic window with a safe in-plane path, lesion depth {f.depth_mm:.0f} mm "
                              f"(limit {f.depth_limit_mm:.0f} mm)")


def _visibility_reason(f: LesionFacts) -> Tuple[bool, Reason]:
    """(what we believe about B-mode visibility, why): measured on the sweep beats predicted."""
    if f.seen_on_sweep is not None:
        cnr = f" (CNR {f.measured_cnr:.2f})" if f.measured_cnr is not None else ""
        if f.seen_on_sweep:
            return True, Reason("seen_on_sweep", f"seen on the registered sweep{cnr}")
        return False, Reason("not_seen_on_sweep", f"not seen on the registered sweep{cnr}")
    return f.predicted == "likely", Reason(
        "predicted_conspicuity", f"predicted B-mode conspicuity '{f.predicted}' ({f.lesion_type}, {f.size_text})")


def _fusion_reason(f: LesionFacts) -> Reason:
    tre = f", targeting error {f.fusion_tre_mm:.1f} mm rms" if f.fusion_tre_mm is not None else ""
    return Reason("fusion_hit_probability", f"fusion hit probability {100 * f.hit_probability:.0f} % for a "
                                            f"{f.size_text} lesion{tre} (needs >= "
                                            f"{100 * HIT_PROBABILITY_REQUIRED:.0f} %)")


def _us_guidance(f: LesionFacts, visible: bool) -> Tuple[Optional[str], List[Reason], List[dict]]:
    """Guidance by ultrasound when it can reach the lesion (None: it cannot guide this one)."""
    if not f.us_possible:
        return None, [], []
    if visible:
        return "us", [], []
    if f.lesion_type == "net-like":
        return "ceus", [Reason("ceus_for_net", "NET-like lesion poorly seen on B-mode: contrast-enhanced US")], \
            [_adv("ceus", "CEUS is an option for NET-type metastases")]
    if f.fusion_ok:
        return "us_fusion", [], []
    if not f.ct_path:
        return "us_fusion", [Reason("fusion_only_route", "no CT-guided path: US with fusion is the only route; "
                                    "register near the target and check the hit probability before the "
                                    "attempt")], []
    return None, [], []


def _ct_or_none(f: LesionFacts, visible: bool) -> Tuple[str, List[Reason], List[dict]]:
    """CT guidance when ultrasound cannot guide, else 'none' with the reason."""
    p = f.hit_probability
    if f.ct_path:
        if f.us_possible and not visible:
            why = "not reliably visible on B-mode"
            if p is None:
                why += " and no registration to guide fusion"
            elif not f.fusion_ok:
                why += f" and fusion too inaccurate for its size (hit probability {100 * p:.0f} %)"
            reason = Reason("not_visible_ct_biopsy", f"{why}: CT-guided biopsy")
        else:
            reason = Reason("no_us_route_ct_biopsy", "CT-guided biopsy (no usable US route)")
        return "ct", [reason], [_adv("ct_biopsy", "CT guidance is the reliable alternative when US cannot "
                                                  "show or reach the lesion")]
    if f.safe_paths:
        return "none", [Reason("safe_but_unguidable", f"no safe guidable path: {f.safe_paths} straight paths "
                               "meet the hard constraints but none lies in a US image plane with a clear window "
                               f"nor in a CT gantry plane (tilt <= {MAX_TILT_DEG:g} deg); choose another "
                               "lesion")], []
    return "none", [Reason("no_safe_path", "no safe percutaneous path (0 candidate paths meet the hard "
                                           "constraints): do not biopsy this lesion percutaneously; choose "
                                           "another lesion")], []


def lesion_recommendation(f: LesionFacts) -> Recommendation:
    """The guidance for one lesion: ultrasound (plain, fusion or CEUS) when it can show and
    reach the lesion, else CT, else none; reasons in the order route, visibility, fusion,
    choice; advisories for what the plan cannot settle (MRI, invisible lesions)."""
    reasons = [_route_reason(f)]
    visible, why = _visibility_reason(f)
    reasons.append(why)
    if f.hit_probability is not None:
        reasons.append(_fusion_reason(f))
    guidance, more, adv = _us_guidance(f, visible)
    if guidance is None:
        guidance, more, adv = _ct_or_none(f, visible)
    reasons += more
    if not visible or f.predicted == "unlikely":
        adv.append(_adv("not_visible_on_bmode", "this lesion may not be visible on B-mode US; do not "
                                                "repeat futile US attempts"))
    if f.lesion_type == "indeterminate" or (f.diameter_mm is not None and f.diameter_mm < MRI_ADVISORY_BELOW_MM):
        adv.append(_adv("mri", "finding uncertain on CT: if the disease is potentially resectable, "
                               "MRI with a hepatobiliary agent before irreversible decisions"))
    return Recommendation(guidance, reasons, adv)


def recommend_lesion(f: LesionFacts) -> dict:
    """-> {"guidance", "reasons": [str], "reason_codes": [str], "advisories": [{kind, text, evidence}]}."""
    return lesion_recommendation(f).to_json()


def accessibility_key(f: LesionFacts):
    """Smaller = more accessible: has a path, cheaper best path, bigger lesion."""
    has = f.us_path or f.ct_path
    cost = f.best_path_cost if f.best_path_cost is not None else UNKNOWN_PATH_COST
    size_bonus = -SIZE_BONUS_PER_MM * (f.diameter_mm or 0.0)
    return (0 if has else 1, round(cost + size_bonus, 4), f.name)


def rank_lesions(facts: List[LesionFacts]) -> List[str]:
    """Lesion names, most accessible first (:func:`accessibility_key`)."""
    return [f.name for f in sorted(facts, key=accessibility_key)]


def recommend_case(facts: List[LesionFacts], *, has_pancreatic_mass: bool) -> dict:
    """Case-level recommendation: which lesion to biopsy first, how, and case advisories.

    -> {"guidance", "biopsy_first", "ranking", "reasons", "reason_codes", "advisories"}.
    """
    order = rank_lesions(facts)
    by = {f.name: f for f in facts}
    guidance_of = {f.name: lesion_recommendation(f).guidance for f in facts}
    first = next((n for n in order if guidance_of[n] != "none"), None)
    if first is None:
        guidance = "none"
        reason = Reason("no_safe_path_any_target", f"no safe percutaneous path to any of the {len(facts)} target(s)")
    else:
        guidance = guidance_of[first]
        f = by[first]
        length = f" via a {f.best_path_length_mm:.0f} mm path" if f.best_path_length_mm else ""
        reason = Reason("biopsy_first", f"biopsy {first} first: the most accessible lesion ({guidance}{length}, "
                                        f"rank 1 of {len(facts)})")
    adv = [_adv("laparoscopy", "before a planned resection, consider staging laparoscopy with "
                               "laparoscopic US")]
    if has_pancreatic_mass:
        adv.append(_adv("eus_pancreas", "if the patient has a prior cancer (renal, lung, breast, colon, "
                                        "melanoma), the pancreatic mass may be a metastasis to the "
                                        "pancreas: EUS biopsy of the pancreatic mass"))
    return {"guidance": guidance, "biopsy_first": first, "ranking": order,
            **reasons_json([reason]), "advisories": adv}
