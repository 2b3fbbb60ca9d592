"""Why the planner recommends what it does: reasons with stable codes.

Every reason the planner gives has a ``code`` (stable: programs and tests
read it) and a ``text`` (for people: quotes the numbers, may be reworded).
plan.json keeps the texts in ``reasons`` and the codes, in the same order, in
``reason_codes``; a lesion without a US-guided path says why in
``no_us_path_reason`` and ``no_us_path_code``. Advisories carry their code
as ``kind`` (see :data:`planner.advice.recommendation.EVIDENCE`); rejected
candidate paths are counted by the codes of
:data:`planner.paths.constraints.REJECT_TEXT`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

#: Reason codes of a lesion's or the case's recommendation -> what each means.
REASON_CODES: Dict[str, str] = {
    # the ultrasound route (one of these four opens every lesion's reasons)
    "no_acoustic_window": "every probe position to the lesion is blocked by ribs, lung or gas",
    "too_deep": "the best acoustic window is deeper than the B-mode depth limit",
    "window_without_inplane_path": "an acoustic window, but no safe needle path in a probe's image plane",
    "us_route": "an acoustic window with a safe in-plane needle path",
    "no_us_path": "no US-guided path, with the planner's specific cause (replaces the route reason)",
    # visibility on B-mode
    "seen_on_sweep": "the lesion was seen on the registered sweep",
    "not_seen_on_sweep": "the lesion was not seen on the registered sweep",
    "predicted_conspicuity": "no sweep: the predicted B-mode visibility (evidence model) decides",
    # fusion
    "fusion_hit_probability": "the hit probability of US-CT fusion at this lesion",
    "fusion_need": "the registration TRE fusion would need at this lesion vs what fusion reaches in patients",
    "fusion_conditional": "US with fusion, on condition that the registration reaches the stated TRE here",
    "ceus_for_net": "a NET-like lesion poorly seen on B-mode: contrast-enhanced US",
    "ceus_late_phase": "poorly seen on B-mode, no CT route and fusion not accurate enough: CEUS (late-phase washout)",
    "fusion_only_route": "no CT-guided path: US with fusion is the only route",
    # CT guidance or nothing
    "not_visible_ct_biopsy": "not reliably visible on B-mode (and fusion cannot help): CT-guided biopsy",
    "no_us_route_ct_biopsy": "no usable US route: CT-guided biopsy",
    "double_oblique_ct": "the CT path leaves the gantry plane (double oblique): confirm with stepwise scans",
    "safe_but_unguidable": "safe straight paths exist but none can be guided by US or CT",
    "no_safe_path": "no candidate path meets the hard constraints",
    "least_risk_path": "no path meets the hard rules: the least-risk path is shown, marked unsafe, with its violations",
    "next_best_lesion": "biopsy another lesion instead: the most accessible one with a safe path",
    # the case
    "biopsy_first": "which lesion to biopsy first, and how",
    "no_safe_path_any_target": "no target of the case has a safe percutaneous path",
}

#: Why a lesion has no US-guided path (``no_us_path_code``) -> what each means.
NO_US_PATH_CODES: Dict[str, str] = {
    "no_window_within_limit": "every probe direction within the depth limit is blocked",
    "no_safe_needle_path": "no candidate needle path meets the hard constraints",
    "no_inplane_probe_pose": "safe paths exist, but none lies in the image plane of a probe with a clear view",
}


@dataclass(frozen=True)
class Reason:
    """One reason: ``code`` (a key of ``REASON_CODES``) and ``text`` (quotes its numbers)."""
    code: str
    text: str

    def __post_init__(self):
        if self.code not in REASON_CODES:
            raise ValueError(f"unknown reason code {self.code!r}: add it to REASON_CODES")


def reasons_json(reasons: List[Reason]) -> dict:
    """``{"reasons": [text], "reason_codes": [code]}``: the plan.json form, same order."""
    return {"reasons": [r.text for r in reasons], "reason_codes": [r.code for r in reasons]}
