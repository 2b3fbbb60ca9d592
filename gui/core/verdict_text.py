"""A registration's verdict in plain words, one error figure per target (no Qt).

The engine judges each target (:class:`registration.align.assessment.TargetEstimate`:
good / check / poor, with reasons in its own terms); a radiologist needs, per lesion,
one number and what to do: "good: overlay within ~2 mm at lesion_1", "check: overlay
within ~4 mm at lesion_2 (some automatic searches ended elsewhere)", "do not use at
lesion_3: the CT and the ultrasound do not match". The number is the radius holding
95 % of the registration error (``tre_registration_95_mm``; for a landmark fit the same
radius of its predicted TRE), rounded up to half a millimetre: how far the CT overlay
may sit from the truth, the figure a person checks against the lesion's size. The
needle's total error and the hit probability stay in the details (tooltip) and in the
plan. A target beyond the distance the error model was validated to is marked
"extrapolated: N mm from the imaged area" on its line (never "good"). The verdict is
always the engine's; the words come from the same typed numbers and thresholds
(:mod:`registration.align.uncertainty`), and an engine reason not recognised here is
shown as written.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

from registration.align.assessment import Assessment, TargetEstimate
from registration.align.result_document import DISPUTED_WHY
from registration.align.uncertainty import (
    CAPTURE_ROTATION_DEG,
    CAPTURE_TRANSLATION_MM,
    GOOD_METRIC,
    GOOD_TRE_MM,
    LOCAL_MM,
    POOR_METRIC,
    POOR_TRE_MM,
    RADIUS_95_PER_RMS,
    SECOND_SEARCH_WHY,
    UNCONFIRMED_BREATHING_MM,
    VALIDATED_MM,
)

#: The engine's verdicts as a person reads them.
VERDICT_WORDS = {"good": "good", "check": "check", "poor": "do not use"}
VERDICT_COLOURS = {"good": "#1b7f2a", "check": "#a85f00", "poor": "#c0221b"}


@dataclass
class RunFacts:
    """What of the registration run the words need: method, its metric before and after, starts."""
    method: str = "lc2"
    metric_initial: Optional[float] = None
    metric_final: Optional[float] = None
    n_starts: int = 1

    @classmethod
    def of_result(cls, result) -> "RunFacts":
        """From a :class:`~registration.align.registration_result.RegistrationResult`."""
        return cls(result.method, result.metric_initial, result.metric_final, len(result.starts))

    @classmethod
    def of_document(cls, doc: dict) -> "RunFacts":
        """From a RESULT.json document (fields absent in hand-written files stay unknown)."""
        def num(key):
            v = doc.get(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
        return cls(str(doc.get("method") or "lc2"), num("metric_initial"), num("metric_final"),
                   len(doc.get("starts") or []) or 1)


@dataclass
class TargetVerdict:
    """One target's line: ``verdict`` (the engine's), ``within_mm`` (95 % radius, None when not
    trusted), ``text`` (plain words), ``reasons`` (plain), ``details`` (numbers, for a tooltip)."""
    name: str
    verdict: str
    within_mm: Optional[float]
    text: str
    reasons: List[str] = field(default_factory=list)
    details: str = ""

    @property
    def words(self) -> str:
        return VERDICT_WORDS.get(self.verdict, self.verdict)


def round_up_half_mm(v: float) -> float:
    """``v`` mm rounded up to 0.5 mm, at least 0.5 (a figure never promises more than it has)."""
    return max(0.5, math.ceil(2.0 * float(v) - 1e-9) / 2.0)


def mm_text(v: float) -> str:
    return f"~{round_up_half_mm(v):g} mm"


def target_verdict(a: Assessment, t: TargetEstimate, run: RunFacts) -> TargetVerdict:
    """The plain line of target ``t`` of assessment ``a``."""
    verdict = t.verdict or a.verdict
    reasons = plain_reasons(a, t, run)
    within = t.tre_registration_95_mm
    if verdict == "poor" or within is None:
        text = f"{VERDICT_WORDS[verdict]} at {t.name}: {reasons[0] if reasons else 'no reliable error estimate'}"
    else:
        text = f"{VERDICT_WORDS[verdict]}: overlay within {mm_text(within)} at {t.name}"
        if reasons:
            text += f" ({reasons[0]})"
    if t.extrapolated and "extrapolated" not in text:
        text += f"; {extrapolated_text(t)}"
    return TargetVerdict(t.name, verdict, within, text, reasons, target_details(t))


def extrapolated_text(t: TargetEstimate) -> str:
    """"extrapolated: 35 mm from the imaged area": a target beyond the distance the error model was
    validated to (``TargetEstimate.extrapolated``), whose figure is a model's guess, not a measurement."""
    d = t.distance_to_imaged_region_mm if t.distance_to_imaged_region_mm is not None else t.distance_to_sweep_mm
    return "extrapolated" + ("" if d is None else f": {d:.0f} mm from the imaged area")


def target_details(t: TargetEstimate) -> str:
    """The numbers behind a line, for its tooltip (engineers' terms allowed here)."""
    def mm(v):
        return "unknown" if v is None else f"{v:.1f} mm"
    lines = [f"registration error at {t.name}: RMS {mm(t.tre_registration_mm)}, 95 % within "
             f"{mm(t.tre_registration_95_mm)}",
             f"needle targeting error (registration + tracking + needle + breathing): RMS {mm(t.tre_total_mm)}"]
    if t.tre_deformation_mm is not None:
        lines.append(f"of which organ deformation (what a rigid fit cannot follow): RMS {mm(t.tre_deformation_mm)}")
        prior = t.tre_near_probe_mm
        if prior:
            lines.append(f"  including {mm(prior)} for tissue pressed by the probe ({t.depth_below_probe_mm:.0f} mm "
                         "below its face)")
    if t.hit_probability is not None and t.radius_mm is not None:
        lines.append(f"hit probability {100 * t.hit_probability:.0f} % (lesion radius {t.radius_mm:.1f} mm)")
    if t.extrapolated:
        lines.append(f"{extrapolated_text(t)}, beyond the {VALIDATED_MM:.0f} mm the error model is validated to")
    elif t.distance_to_sweep_mm is not None:
        lines.append(f"distance to the swept region {t.distance_to_sweep_mm:.0f} mm")
    if t.starts_agreeing is not None and t.starts_comparable:
        lines.append(f"{100 * t.starts_agreeing:.0f} % of {t.starts_comparable} comparable starts agree")
    if t.why:
        lines.append("engine: " + "; ".join(t.why))
    return "\n".join(lines)


def plain_reasons(a: Assessment, t: TargetEstimate, run: RunFacts) -> List[str]:
    """Why the verdict is not "good", in plain words (worst first); empty for a good target."""
    poor: List[str] = []
    check: List[str] = []
    good_m, poor_m = GOOD_METRIC.get(run.method, 0.25), POOR_METRIC.get(run.method, 0.1)
    m1, m0 = run.metric_final, run.metric_initial
    if m1 is not None and m1 < poor_m:
        poor.append("the CT and the ultrasound do not match: place landmarks again and re-run")
    elif m1 is not None and m1 < good_m:
        check.append("the CT and the ultrasound match only weakly")
    if m1 is not None and m0 is not None and m1 < m0 - 0.005:
        check.append("the automatic fit matches worse than its start")
    moved = a.moved_from_start
    if moved is not None and (moved.rotation_deg > CAPTURE_ROTATION_DEG
                              or moved.translation_mm > CAPTURE_TRANSLATION_MM):
        if (a.capture or {}).get("confirmed"):
            check.append(f"the result moved {moved.translation_mm:.0f} mm from its start; independent searches "
                         "confirm it: compare the overlay")
        else:
            poor.append(f"the result moved {moved.translation_mm:.0f} mm from its start, too far to trust: "
                        "place landmarks closer and re-run")
    br = a.breathing or {}
    if br.get("detected"):
        amp = float(br.get("amplitude_mm") or 0.0)
        if br.get("gated_frames"):
            check.append(f"breathing of ~{amp:.0f} mm: fitted on breath-hold frames only, compare the overlay")
        else:
            (poor if a.error_terms.unresolved_breathing_mm > POOR_TRE_MM else check).append(
                f"the liver moved ~{amp:.0f} mm with breathing during the sweep: record it in breath-hold")
    elif float(br.get("amplitude_mm") or 0.0) >= UNCONFIRMED_BREATHING_MM:
        check.append(f"the liver may have moved ~{float(br['amplitude_mm']):.0f} mm with breathing during the sweep "
                     "(not confirmed): compare the overlay, or record in breath-hold")
    disputed = [w for w in t.why if w.startswith(DISPUTED_WHY)]
    if disputed:
        check.append("refining near it moved it" + disputed[0][len(DISPUTED_WHY):].split(":")[0]
                     + ": one of the two fits is wrong")
    tre = t.tre_registration_mm
    if tre is None or tre > POOR_TRE_MM:
        if not poor:
            poor.append(f"the error may exceed {POOR_TRE_MM:.0f} mm")
    elif tre > GOOD_TRE_MM:
        check.append(f"the error may exceed {GOOD_TRE_MM:.0f} mm")
    if t.starts_agreeing is not None and t.starts_agreeing < 0.5 and any(SECOND_SEARCH_WHY in w for w in t.why):
        check.append("the automatic searches found different fits; a finer search chose this one")
    elif t.starts_agreeing is not None and t.starts_agreeing < 0.5:
        poor.append("the automatic searches found different fits")
    elif t.starts_agreeing is not None and t.starts_agreeing < 0.75:
        check.append("some automatic searches ended elsewhere")
    if t.starts_comparable is not None and t.starts_comparable < 2 and run.n_starts > 1:
        check.append("only one automatic search reached this fit: not confirmed")
    if t.extrapolated:
        check.insert(0, f"{extrapolated_text(t)}: sweep over {t.name}")
    elif t.extrapolated is None and t.distance_to_sweep_mm is not None and t.distance_to_sweep_mm > LOCAL_MM:
        check.append(f"{t.name} is {t.distance_to_sweep_mm:.0f} mm from the swept area: sweep over it")
    out = poor + check
    verdict = t.verdict or a.verdict
    if verdict != "good" and not out:
        out = list(t.why) or list(a.reasons[-1:])        # unrecognised: as the engine wrote it
    return out if verdict != "good" else [r for r in out if "swept area" in r]


def landmark_line(name: str, predicted_tre_rms_mm: float, n_pairs: int) -> str:
    """The landmark fit's estimate at a target, labelled as such (shown until an automatic result exists)."""
    return (f"Landmark estimate ({n_pairs} pairs): overlay within "
            f"{mm_text(RADIUS_95_PER_RMS * predicted_tre_rms_mm)} at {name}")
