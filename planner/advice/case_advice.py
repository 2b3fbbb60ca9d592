"""Case-level advice: rank the lesions by accessibility, name the one to biopsy first,
point lesions without a safe path to the next-best one, and the case advisories."""
from __future__ import annotations

from typing import Dict, List, Optional

from .evidence import advisory
from .reasons import Reason, reasons_json
from .recommendation import LesionFacts, lesion_recommendation

# Ranking by accessibility (a heuristic tie-break, not a clinical rule): a lesion without a
# path ranks as if its best path cost UNKNOWN_PATH_COST; each mm of size is worth
# SIZE_BONUS_PER_MM of path cost.
UNKNOWN_PATH_COST = 9.0
SIZE_BONUS_PER_MM = 0.01


def accessibility_key(f: LesionFacts):
    """Smaller = more accessible: has a safe path, cheaper best path, bigger lesion."""
    has = f.us_path or f.ct_path
    cost = f.best_path_cost if f.best_path_cost is not None else UNKNOWN_PATH_COST
    size_bonus = -SIZE_BONUS_PER_MM * (f.diameter_mm or 0.0)
    return (0 if has else 1, round(cost + size_bonus, 4), f.name)


def rank_lesions(facts: List[LesionFacts]) -> List[str]:
    """Lesion names, most accessible first (:func:`accessibility_key`)."""
    return [f.name for f in sorted(facts, key=accessibility_key)]


def next_best_reason(name: str, ranking: List[str], guidance_of: Dict[str, str]) -> Optional[Reason]:
    """For a lesion without a safe path: the most accessible lesion that has one (None if none)."""
    others = [n for n in ranking if n != name and guidance_of.get(n, "none") != "none"]
    if not others:
        return None
    best = others[0]
    return Reason("next_best_lesion", f"biopsy {best} instead: the most accessible lesion with a safe path "
                                      f"({guidance_of[best]}, rank {ranking.index(best) + 1} of {len(ranking)})")


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
        best = f.best_ct_length_mm if guidance == "ct" else (f.best_us_length_mm or f.best_path_length_mm)
        length = f" via a {best:.0f} mm path" if best else ""
        reason = Reason("biopsy_first", f"biopsy {first} first: the most accessible lesion ({guidance}{length}, "
                                        f"rank 1 of {len(facts)})")
    adv = [advisory("laparoscopy", "before a planned resection, consider staging laparoscopy with "
                                   "laparoscopic US")]
    if has_pancreatic_mass:
        adv.append(advisory("eus_pancreas", "if the patient has a prior cancer (renal, lung, breast, colon, "
                                            "melanoma), the pancreatic mass may be a metastasis to the "
                                            "pancreas: EUS biopsy of the pancreatic mass"))
    return {"guidance": guidance, "biopsy_first": first, "ranking": order,
            **reasons_json([reason]), "advisories": adv}
