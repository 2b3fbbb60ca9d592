"""Guidance recommendation per lesion, with reasons and advisories.

Rules from DESIGN section 1 (trust the CT, do not repeat futile US, fusion
when accurate enough, CEUS for NET metastases, otherwise CT-guided biopsy of
the most accessible lesion) and docs/clinical_evidence.md:

* ``us`` when B-mode is expected to show the lesion (evidence model category
  'likely', or seen on the registered sweep) and a safe in-plane path exists;
* ``ceus`` for a NET-like lesion that B-mode may not show;
* ``us_fusion`` when fusion is accurate enough for the lesion's size: with a
  registration, its TRE at the lesion gives a hit probability >= 90 %; without
  one, the advice is *conditional*: the TRE the lesion needs
  (:mod:`.fusion_need`) is stated, and fusion is recommended only when that need
  is no stricter than what fusion reaches in patients (``CLINICAL_TRE_RMS_MM``);
* ``ct`` when no ultrasound route exists or B-mode and fusion cannot be relied
  on (CEUS is then named as an option for adenocarcinoma-like lesions);
* ``none`` when no path meets the hard rules: the least-risk path, if any, is
  named with its violations (the case points to the next-best lesion).

Every reason has a stable code (:mod:`.reasons`) and quotes its numbers; every
advisory carries its code (``kind``) and its evidence (:mod:`.evidence`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .evidence import advisory
from .fusion_need import CLINICAL_TRE_RMS_MM, FusionNeed, fusion_need, fusion_reachable
from .reasons import Reason, reasons_json

HIT_PROBABILITY_REQUIRED = 0.90    # fusion guides the needle only at >= 90 % hit probability
MRI_ADVISORY_BELOW_MM = 10.0       # CT misses many metastases < 10 mm (DESIGN section 1): advise MRI


@dataclass
class LesionFacts:
    """What the recommendation needs to know about one lesion (units in the names)."""
    name: str
    diameter_mm: Optional[float]
    lesion_type: str                     # 'adenocarcinoma-like' | 'net-like' | 'indeterminate'
    predicted: str                       # predicted B-mode visibility: 'likely' | 'uncertain' | 'unlikely'
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
    probability: Optional[float] = None       # predicted B-mode visibility probability
    registered: bool = False                  # a registration was given (its TRE may still be unknown)
    ct_double_oblique: bool = False           # the best CT path leaves the gantry plane
    least_risk: Optional[str] = None          # the least-risk path's violations, in words (unsafe)
    best_us_length_mm: Optional[float] = None   # the best safe US / CT path's length
    best_ct_length_mm: Optional[float] = None
    expected_tre_mm: float = CLINICAL_TRE_RMS_MM   # what fusion reaches when there is no registration

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
        """The registration given is accurate enough for this lesion's size."""
        return self.hit_probability is not None and self.hit_probability >= HIT_PROBABILITY_REQUIRED

    @property
    def need(self) -> Optional[FusionNeed]:
        """The registration TRE the lesion needs for a 90 % hit (None without a size)."""
        return fusion_need(0.5 * self.diameter_mm) if self.diameter_mm else None

    @property
    def conditional_fusion(self) -> bool:
        """No usable registration TRE yet, and what the lesion needs is within clinical reach."""
        n = self.need
        return self.hit_probability is None and n is not None and fusion_reachable(n, self.expected_tre_mm)


@dataclass
class Recommendation:
    """A lesion's recommended guidance with its reasons (coded), advisories ({kind, text,
    evidence}) and, for conditional advice, the condition ({kind, max_tre_rms_mm, text})."""
    guidance: str
    reasons: List[Reason]
    advisories: List[dict] = field(default_factory=list)
    condition: Optional[dict] = None

    @property
    def codes(self) -> List[str]:
        return [r.code for r in self.reasons]

    def replace_reason(self, code: str, new: Reason) -> None:
        """Put ``new`` first and drop the reasons with ``code`` (a specific cause replaces a generic one)."""
        self.reasons = [new] + [r for r in self.reasons if r.code != code]

    def to_json(self) -> dict:
        """plan.json form: {guidance, reasons: [text], reason_codes: [code], advisories, condition}."""
        return {"guidance": self.guidance, **reasons_json(self.reasons), "advisories": self.advisories,
                "condition": self.condition}


def _route_reason(f: LesionFacts) -> Reason:
    """Whether ultrasound can reach the lesion: window, depth, in-plane path."""
    if f.depth_mm is None:
        return Reason("no_acoustic_window", "no acoustic window: every probe position to the lesion is "
                                            "blocked by ribs, lung or gas (0 clear windows)")
    if not f.depth_ok:
        return Reason("too_deep", f"too deep for B-mode: best window {f.depth_mm:.0f} mm > depth limit "
                                  f"{f.depth_limit_mm:.0f} mm (60 dB round trip)")
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
    parts = ([f"p = {f.probability:.2f}"] if f.probability is not None else []) + [f.lesion_type, f.size_text]
    return f.predicted == "likely", Reason(
        "predicted_conspicuity", f"predicted B-mode visibility '{f.predicted}' ({', '.join(parts)})")


def _fusion_reason(f: LesionFacts) -> Optional[Reason]:
    """The registration's hit probability, or (no usable TRE) what fusion would need."""
    if f.hit_probability is not None:
        tre = f", targeting error {f.fusion_tre_mm:.1f} mm rms" if f.fusion_tre_mm is not None else ""
        return Reason("fusion_hit_probability", f"fusion hit probability {100 * f.hit_probability:.0f} % for a "
                                                f"{f.size_text} lesion{tre} (needs >= "
                                                f"{100 * HIT_PROBABILITY_REQUIRED:.0f} %)")
    n = f.need
    if n is None:
        return None
    have = ("the registration gives no TRE at this lesion" if f.registered
            else "not registered yet")
    if n.registration_allowed_mm is None:
        return Reason("fusion_need", f"fusion cannot reach a 90 % hit: {n.explanation} ({have})")
    reach = "within" if fusion_reachable(n, f.expected_tre_mm) else "beyond"
    return Reason("fusion_need", f"fusion would need a registration TRE <= {n.registration_allowed_mm:.1f} mm rms "
                                 f"for a 90 % hit on this {f.size_text} lesion ({have}; clinical fusion reaches "
                                 f"{f.expected_tre_mm:.1f} mm rms: {reach} reach)")


def _condition(f: LesionFacts) -> dict:
    """The condition of a conditional fusion recommendation (registration TRE at this lesion)."""
    tre = f.need.registration_allowed_mm
    return {"kind": "registration_tre", "max_tre_rms_mm": round(tre, 1),
            "text": f"needs registration TRE <= {tre:.1f} mm rms at {f.name}: register, then re-plan"}


def _us_guidance(f: LesionFacts, visible: bool):
    """(guidance, reasons, advisories, condition) by ultrasound when it can reach the lesion,
    guidance None when it cannot guide this one."""
    if not f.us_possible:
        return None, [], [], None
    if visible:
        return "us", [], [], None
    if f.lesion_type == "net-like":
        return "ceus", [Reason("ceus_for_net", "NET-like lesion poorly seen on B-mode: contrast-enhanced US")], \
            [advisory("ceus", "CEUS is an option for NET-type metastases")], None
    if f.fusion_ok:
        return "us_fusion", [], [], None
    if f.conditional_fusion:
        cond = _condition(f)
        return "us_fusion", [Reason("fusion_conditional", f"US with fusion, conditional: {cond['text']}")], \
            [advisory("fusion", "fusion is accurate enough for a lesion this size in most patients; check the "
                               "registration's TRE at the lesion before the attempt")], cond
    if not f.ct_path:
        if f.predicted != "unlikely" or f.seen_on_sweep is False:
            return "ceus", [Reason("ceus_late_phase", "no CT-guided path and fusion not accurate enough for its "
                                                      "size: CEUS (late-phase washout shows the lesion)")], \
                [advisory("ceus_option", "CEUS-guided biopsy")], None
        return "us_fusion", [Reason("fusion_only_route", "no CT-guided path: US with fusion is the only route; "
                                    "register near the target and check the hit probability before the "
                                    "attempt")], [], None
    return None, [], [], None


def _ct_or_none(f: LesionFacts, visible: bool) -> Tuple[str, List[Reason], List[dict]]:
    """CT guidance when ultrasound cannot guide, else 'none' with the reason."""
    if f.ct_path:
        adv = [advisory("ct_biopsy", "CT guidance is the reliable alternative when US cannot show or reach the "
                                     "lesion")]
        if f.us_possible and not visible:
            why = "not reliably visible on B-mode and fusion not accurate enough for its size"
            reasons = [Reason("not_visible_ct_biopsy", f"{why}: CT-guided biopsy")]
            if f.lesion_type != "net-like":
                adv.append(advisory("ceus_option", "CEUS (late-phase washout) is an option before switching to "
                                                   "CT: it shows most metastases B-mode misses"))
        else:
            reasons = [Reason("no_us_route_ct_biopsy", "CT-guided biopsy (no usable US route)")]
        if f.ct_double_oblique:
            reasons.append(Reason("double_oblique_ct", "the CT path is double oblique (beyond the gantry tilt): "
                                                       "advance the needle with stepwise confirmation scans or "
                                                       "CT fluoroscopy"))
            adv.append(advisory("double_oblique", "double-oblique CT-guided path"))
        return "ct", reasons, adv
    if f.safe_paths:
        return "none", [Reason("safe_but_unguidable", f"no safe guidable path: {f.safe_paths} straight paths "
                               "meet the hard constraints but none lies in a US image plane with a clear window "
                               "and CT guidance was not allowed; choose another lesion")], []
    reasons = [Reason("no_safe_path", "no safe percutaneous path (0 candidate paths meet the hard "
                                      "constraints): do not biopsy this lesion percutaneously")]
    adv = []
    if f.least_risk:
        reasons.append(Reason("least_risk_path", f"least-risk path shown, UNSAFE: {f.least_risk}"))
        adv.append(advisory("least_risk", "the least-risk path is for the operator's judgement only"))
    return "none", reasons, adv


def lesion_recommendation(f: LesionFacts) -> Recommendation:
    """The guidance for one lesion: ultrasound (plain, fusion or CEUS) when it can show and
    reach the lesion, else CT, else none; reasons in the order route, visibility, fusion,
    choice; advisories for what the plan cannot settle (MRI, invisible lesions)."""
    reasons = [_route_reason(f)]
    visible, why = _visibility_reason(f)
    reasons.append(why)
    fusion = _fusion_reason(f)
    if fusion is not None:
        reasons.append(fusion)
    guidance, more, adv, condition = _us_guidance(f, visible)
    if guidance is None:
        guidance, more, adv = _ct_or_none(f, visible)
    reasons += more
    if not visible or f.predicted == "unlikely":
        adv.append(advisory("not_visible_on_bmode", "this lesion may not be visible on B-mode US; do not "
                                                    "repeat futile US attempts"))
    if f.lesion_type == "indeterminate" or (f.diameter_mm is not None and f.diameter_mm < MRI_ADVISORY_BELOW_MM):
        adv.append(advisory("mri", "finding uncertain on CT: if the disease is potentially resectable, "
                                   "MRI with a hepatobiliary agent before irreversible decisions"))
    return Recommendation(guidance, reasons, adv, condition)


def recommend_lesion(f: LesionFacts) -> dict:
    """-> {"guidance", "reasons": [str], "reason_codes": [str], "advisories": [...], "condition"}."""
    return lesion_recommendation(f).to_json()
