"""Why a target has no safe path: the best rejected straight paths, each with the rules it breaks.

When no candidate meets every hard rule, a count of rejections per rule cannot
be checked by a person; the few paths that came closest can. This module picks
them and describes them in words with their margins in mm, for the planning
panel's "no path" explanation (drawn on the slice views) and for anyone reading
a plan (plan.json ``rejected_candidates``, ``ctus plan``). It works on the
candidates the least-risk search already evaluated
(:func:`planner.paths.least_risk.least_risk_candidates`: rays followed to the
longest needle system, so a path that only needs a longer needle is listed with
its true length, "too long: 172 mm > 150") and measures them with the same
:class:`.path_records.PathVerifier`; nothing here changes a plan or calls a
rejected path safe.

"Closest" is a heuristic ranking (docs/clinical_evidence.md section 4 says
which rules are hard; how to weigh one broken rule against another is not a
published number): fewest hard rules broken first, then the smallest relative
shortfalls (each in [0, 1]: how far below its limit a clearance is, how much
longer than the needle a path is, ...), then a small share of the soft cost.
Unlike the least-risk path (:mod:`.least_risk`, which is *offered* and so never
crosses bone or the heart), paths through a rib are listed: "crosses bone" is
the explanation of a lesion behind the ribs. Paths that cannot be explained as
a needle path at all are left out: no skin exit within the longest needle, one
leaving the CT before the skin, an entry on the table side.

Each path's violations are measured at full resolution by the plan's own
clearance rule (:class:`.path_records.PathVerifier`, DESIGN section 7); a
candidate the planning grid rejected but the full-resolution rule accepts is
skipped here (it is not a rejected path). Points are CT LPS mm, directions
unit vectors from the target towards the skin.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence

import numpy as np

from .path_records import PathVerifier
from .planning_maps import PlanningMaps
from .trajectories import hard_threshold_mm, select_diverse

#: How many rejected paths an explanation lists by default (the brief: the 3-5 least bad).
DEFAULT_COUNT = 5
#: Listed paths are pairwise at least this far apart (deg): five copies of one path explain nothing.
MIN_SEPARATION_DEG = 10.0
#: Share of the soft cost in the ranking (breaks ties between paths breaking the same rules).
COST_SHARE = 0.05
#: Rules a listed path may break; the others (off the CT, table side) make it no needle path.
EXPLAINED_RULES = ("too_long", "hard_structure", "vessel", "capsule_crossings", "grazing_capsule")
#: Words naming each hard rule (a rule_break's ``rule``) for people: "vessel rule", "needle length".
RULE_WORDS = {"too_long": "needle length", "hard_structure": "no bone, lung or organ", "vessel": "vessel",
              "capsule_crossings": "one capsule crossing", "grazing_capsule": "capsule angle"}


@dataclass
class RejectedPath:
    """One rejected straight path (CT LPS mm) and the hard rules it breaks.

    ``violations``: plan.json ``rule_break`` dicts measured at full resolution
    (:meth:`PathVerifier.hard_violations`), ``cautions`` its soft shortfalls;
    ``score``: the ranking value (lower = closer to passing).
    """
    entry_ct: np.ndarray
    target_ct: np.ndarray
    direction_ct: np.ndarray
    length_mm: float
    violations: List[dict]
    cautions: List[dict] = field(default_factory=list)
    score: float = float("nan")

    @property
    def texts(self) -> List[str]:
        """The violations in short words with their margins, e.g. "passes 2.1 mm from the portal
        vein (needs > 3.8 mm)", "crosses bone", "too long: 172 mm > 150"."""
        return [short_text(v) for v in self.violations]

    def as_dict(self) -> dict:
        """JSON-ready form (plan.json conventions: ``entry_ct``, ``target_ct``, ``length_mm``,
        ``violations``, ``safe: false``)."""
        return {"entry_ct": [round(float(v), 2) for v in self.entry_ct],
                "target_ct": [round(float(v), 2) for v in self.target_ct],
                "direction_ct": [round(float(v), 5) for v in self.direction_ct],
                "length_mm": round(float(self.length_mm), 1), "safe": False,
                "violations": list(self.violations), "cautions": list(self.cautions),
                "texts": self.texts, "score": round(float(self.score), 4)}


def _saturating(x: np.ndarray) -> np.ndarray:
    """x >= 0 -> [0, 1), monotone: an overshoot with no natural maximum (length) still orders paths."""
    x = np.clip(x, 0.0, None)
    return x / (1.0 + x)


def shortfalls(maps: PlanningMaps, res: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Per explained rule, each candidate's relative shortfall in [0, 1] where it breaks the rule
    (0 where it does not): the planning-grid numbers of ``res`` (:func:`evaluate`)."""
    c = maps.constraints
    thr = hard_threshold_mm(maps)
    floor = thr + c.vessel_floor_mm
    with np.errstate(invalid="ignore", divide="ignore"):
        out = {
            "too_long": _saturating((res["length_mm"] - c.max_length_mm) / c.max_length_mm),
            "hard_structure": np.clip((thr - res["organ_clearance_mm"]) / thr, 0.0, 1.0),
            "vessel": np.clip(np.maximum((floor - res["vessel_clearance_mm"]) / floor,
                                         (thr - res["vessel_in_lesion_mm"]) / thr), 0.0, 1.0),
            "capsule_crossings": np.clip(np.abs(res["capsule_crossings_n"] - 1) / 2.0, 0.0, 1.0),
            "grazing_capsule": np.clip((res["capsule_angle_deg"] - c.grazing_angle_deg)
                                       / max(90.0 - c.grazing_angle_deg, 1e-9), 0.0, 1.0),
        }
    return {k: np.where(res[k], np.nan_to_num(v, nan=1.0), 0.0) for k, v in out.items()}


def closeness_scores(maps: PlanningMaps, res: Dict[str, np.ndarray]) -> np.ndarray:
    """Ranking value per candidate (lower = closer to passing; +inf: not listed): rules broken +
    their shortfalls + ``COST_SHARE`` x soft cost; +inf for safe candidates and for those that are
    no needle path (no skin exit, off the CT, table side)."""
    broken = np.zeros(len(res["ok"]))
    for rule, short in shortfalls(maps, res).items():
        broken += np.where(res[rule], 1.0 + short, 0.0)
    cost = np.where(np.isfinite(res["cost"]), res["cost"], 0.0)
    listed = (~res["ok"] & np.isfinite(res["length_mm"]) & ~res["leaves_ct_volume"]
              & ~res["entry_on_table_side"])
    return np.where(listed, broken + COST_SHARE * cost, np.inf)


def best_rejected(maps: PlanningMaps, res: Dict[str, np.ndarray], verifier: PathVerifier, *,
                  count: int = DEFAULT_COUNT, min_separation_deg: float = MIN_SEPARATION_DEG,
                  exclude_directions: Sequence = ()) -> List[RejectedPath]:
    """The ``count`` rejected candidates of ``res`` that came closest to passing, best first.

    They are pairwise at least ``min_separation_deg`` apart and as far from each of
    ``exclude_directions`` (the plan's least-risk path, listed on its own); each one's
    violations are measured by ``verifier`` (built on the same ``res``: its full-resolution
    clearances are cached and shared with the least-risk record). A candidate with no
    violation at full resolution is skipped (it is not a rejected path).
    """
    score = closeness_scores(maps, res)
    dirs = res["directions"]
    eligible = np.isfinite(score)
    cos_min = np.cos(np.radians(min_separation_deg))
    for d in exclude_directions:
        eligible &= dirs @ np.asarray(d, float) < cos_min
    chosen = select_diverse(score, eligible, dirs, count, min_angle_deg=min_separation_deg,
                            accept=lambda i: bool(verifier.hard_violations(i)))
    return [RejectedPath(entry_ct=verifier.entry(i), target_ct=verifier.target.copy(), direction_ct=dirs[i].copy(),
                         length_mm=float(res["length_mm"][i]), violations=verifier.hard_violations(i),
                         cautions=verifier.soft_shortfalls(i), score=float(score[i]))
            for i in chosen]


def candidate_label(n: int) -> str:
    """The letter naming the n-th listed rejected path (0 -> "A"), the same in text and drawings."""
    return chr(ord("A") + n) if n < 26 else str(n + 1)


def rejected_path_lines(rejected: List[dict]) -> List[str]:
    """One line per rejected path of plan.json ``rejected_candidates`` (closest first): its label,
    length, entry (CT LPS mm) and every rule it breaks with its margin, for the ``ctus plan``
    text and the PDF: why the lesion has no safe path, checkable by a person."""
    out = []
    for n, r in enumerate(rejected):
        e = r["entry_ct"]
        out.append(f"{candidate_label(n)}: {r['length_mm']:.0f} mm from entry ({e[0]:.1f}, {e[1]:.1f}, "
                   f"{e[2]:.1f}): " + "; ".join(rule_text(v) for v in r["violations"]))
    return out


def structure_words(name: str) -> str:
    """A label or class name as words: "hepatic_vein" -> "hepatic vein"."""
    return str(name).replace("_", " ")


def rule_text(v: dict) -> str:
    """One violation in words after its rule: "vessel rule: passes 3.19 mm from the hepatic vein
    (needs > 3.78 mm)"."""
    return f"{RULE_WORDS.get(v.get('rule'), str(v.get('rule')))} rule: {short_text(v)}"


def view_label(v: dict) -> str:
    """One violation in the fewest words, for a label drawn on an image: "hepatic vein 2.7 < 3.8 mm",
    "crosses bone", "172 mm > 150 mm needle"."""
    rule, s = v.get("rule"), structure_words(v.get("structure", ""))
    value, limit = v.get("value"), v.get("limit")
    if rule == "too_long":
        return f"{value:.0f} mm > {limit:.0f} mm needle"
    if rule in ("hard_structure", "vessel"):
        if value <= 0.05 or "inside the lesion" in v.get("text", ""):
            return f"crosses {s}"
        return f"{s} {value:.1f} < {limit:.1f} mm"
    if rule == "capsule_crossings":
        return f"{value:.0f} capsule crossings"
    if rule == "grazing_capsule":
        return f"capsule {value:.0f} > {limit:.0f} deg"
    return str(v.get("text", rule))


def short_text(v: dict) -> str:
    """One violation (plan.json ``rule_break``) in a few words with its margin in mm (or deg)."""
    rule, s = v.get("rule"), structure_words(v.get("structure", ""))
    value, limit = v.get("value"), v.get("limit")
    # a margin missed by less than 0.1 mm keeps its hundredths: "2.3 mm (needs > 2.4)" hides it
    digits = 2 if limit is not None and value is not None and abs(limit - value) < 0.1 else 1
    if rule == "too_long":
        return f"too long: {value:.0f} mm > {limit:.0f}"
    if rule == "hard_structure":
        return f"crosses {s}" if value <= 0.05 else f"passes {value:.{digits}f} mm from {s} (needs > {limit:.{digits}f} mm)"
    if rule == "vessel":
        if "inside the lesion" in v.get("text", ""):
            return f"crosses the {s} inside the lesion"
        if value <= 0.05:
            return f"crosses the {s}"
        return f"passes {value:.{digits}f} mm from the {s} (needs > {limit:.{digits}f} mm)"
    if rule == "capsule_crossings":
        return f"crosses the liver capsule {value:.0f} times (needs 1)"
    if rule == "grazing_capsule":
        return f"grazes the capsule: {value:.0f} deg > {limit:.0f}"
    return str(v.get("text", rule))


#: What each hard rule's rejected candidates do, in a sentence ({n}: how many; {max_length}: mm);
#: the rule's short name is constraints.REJECT_TEXT.
COUNT_WORDS = {
    "too_long": "{n} are longer than the {max_length:.0f} mm needle",
    "hard_structure": "{n} touch bone, lung or another organ a needle must not cross",
    "vessel": "{n} pass too close to a large vessel",
    "capsule_crossings": "{n} cross the liver capsule more than once (or not at all)",
    "grazing_capsule": "{n} graze the liver capsule",
    "leaves_ct_volume": "{n} leave the CT before reaching the skin",
    "entry_on_table_side": "{n} enter from the side the patient lies on",
}


def rejection_counts_text(rejected_by: Dict[str, int], checked: int, safe: int = 0,
                          max_length_mm: float = 150.0) -> str:
    """The plan's rejection counts (``candidates.rejected_by``) as one sentence, largest first:
    "None of the 6133 straight paths checked meets every hard rule: 3727 are longer than the
    150 mm needle, ... (a path may break several rules)."."""
    head = (f"None of the {checked} straight paths checked meets every hard rule" if not safe else
            f"{safe} of the {checked} straight paths checked meet every hard rule")
    parts = [COUNT_WORDS[k].format(n=n, max_length=max_length_mm)
             for k, n in sorted(rejected_by.items(), key=lambda kv: -kv[1]) if n and k in COUNT_WORDS]
    if not parts:
        return head + "."
    return f"{head}: " + ", ".join(parts) + " (a path may break several rules)."

