"""Predicted probability that a liver lesion seen on CT is found on plain B-mode ultrasound.

A pure function of the lesion (diameter, depth along the best acoustic window,
type from its CT enhancement, CT contrast to liver) and the scan (frequency,
liver attenuation, fatty liver). Every term is reported with its value and the
key of its source; docs/clinical_evidence.md ("B-mode visibility model") gives
each source (paper, table) and labels the heuristics with their rationale.

    p = size(d) * type_ceiling(type) * depth(round-trip attenuation) * ct_contrast(|dHU|)
        * fat_contrast(type, fatty)

* size: logistic in diameter fitted to two published anchors: lesions > 15 mm
  are seen on B-mode two-thirds of the time (300-patient US vs CT/MRI study)
  and lesions >= 20 mm are detected "virtually all" (Robinson 2000, taken as
  0.9). It gives 0.31 at 10 mm ("seldom visualised" below 10 mm, same study).
* type ceiling: the largest share of lesions of that type ever seen on B-mode:
  adenocarcinoma-like 0.80 (up to one fifth are inconspicuous on US, CVIR 2017;
  a third of colorectal metastases are isoechoic, Choti 2008), NET-like 0.95
  (0 of 55 hepatic NEN isoechoic, Kang 2019; bounded by 94.2 % of CT lesions seen
  in non-fatty livers, Wu 2016), indeterminate 0.90 (between the two: heuristic).
* depth: the round trip 2 * alpha * f * z (dB) uses up the 60 dB dynamic range
  (DESIGN section 1: ~17 cm at 3.5 MHz, ~11 cm in fatty liver). Heuristic ramp:
  full visibility while >= 20 dB of range remain, linear to 0 at the limit.
* CT contrast: heuristic, at most -15 % for a lesion isoattenuating on CT
  (X-ray attenuation and acoustic backscatter are different physics).
* fatty liver: raises alpha (depth term) and, heuristically, takes 10 % off
  NET-like / indeterminate lesions (often hyperechoic: less contrast in a bright
  liver). Hypoechoic lesions are not penalised: steatosis made colorectal
  metastases more hypoechoic and more conspicuous (Arch Surg 2010).

Categories: 'likely' p >= 0.6 (an ideal-condition lesion of 15-16 mm, the size
above which two-thirds are seen), 'unlikely' p < 0.3 (an ideal-condition lesion
of about 10 mm, "seldom visualised"), 'uncertain' between.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

DYNAMIC_RANGE_DB = 60.0                 # DESIGN section 1
NORMAL_LIVER_ATTENUATION = 0.5          # dB/cm/MHz, DESIGN section 1
#: DESIGN section 1: the depth limit in fatty liver is ~11 cm at 3.5 MHz, i.e.
#: alpha = 60 dB / (2 * 3.5 MHz * 11 cm) = 0.78 dB/cm/MHz.
FATTY_LIVER_ATTENUATION = DYNAMIC_RANGE_DB / (2.0 * 3.5 * 11.0)
#: alpha at or above this (the midpoint between normal and fatty) counts as fatty
#: liver when the caller does not say (heuristic).
FATTY_ATTENUATION_THRESHOLD = 0.5 * (NORMAL_LIVER_ATTENUATION + FATTY_LIVER_ATTENUATION)

#: Size anchors (diameter mm, probability seen): > 15 mm seen two-thirds of the time,
#: >= 20 mm "virtually all" detected (taken as 0.9).
SIZE_ANCHORS = ((15.0, 2.0 / 3.0), (20.0, 0.9))
TYPE_CEILING = {"adenocarcinoma-like": 0.80, "net-like": 0.95, "indeterminate": 0.90}
DEPTH_FULL_MARGIN_DB = 20.0     # heuristic: full visibility while >= 20 dB of range remain
CT_CONTRAST_FLOOR = 0.85        # heuristic: factor for an isoattenuating lesion
CT_CONTRAST_FULL_HU = 30.0      # heuristic: |dHU| from which the CT term is 1
FAT_BRIGHT_LESION_FACTOR = 0.90  # heuristic: NET-like / indeterminate in fatty liver
UNKNOWN_SIZE_MM = 10.0          # assumed when the size is unknown (CT misses many < 10 mm)
LIKELY_P = 0.60
UNLIKELY_P = 0.30

#: Source keys -> short citation (full references in docs/clinical_evidence.md).
SOURCES = {
    "us300": "US vs CT/MRI within 10 days, 300 patients: FLL < 10 mm seldom seen, > 15 mm seen "
             "two-thirds of the time",
    "robinson2000": "Robinson, Br J Radiol 2000;73:234: virtually all metastases >= 2 cm and most "
                    "1-2 cm detected; about half < 1 cm",
    "design-s1": "DESIGN section 1: 60 dB dynamic range, 0.5 dB/cm/MHz, ~17 cm at 3.5 MHz, ~11 cm in "
                 "fatty liver",
    "cvir2017": "CardioVasc Intervent Radiol 2017, doi 10.1007/s00270-017-1607-3: up to one-fifth of "
                "liver lesions are inconspicuous on US",
    "choti2008": "Choti, Arch Surg 2008: colorectal metastases on IOUS 52.0 % hypo-, 35.7 % iso-, "
                 "12.3 % hyperechoic",
    "kang2019": "Kang, World J Gastrointest Oncol 2019;11:436 Table 1: hepatic NEN high echo 50.9 %, "
                "low 30.9 %, mixed 18.2 %, iso 0 %",
    "wu2016": "Wu, Ultrasonography 2016;35:39: CT lesions seen on US 94.2 % (no fat), 91.5 % mild, "
              "89.6 % moderate, 74.1 % severe fatty liver",
    "steatosis-echo2010": "Arch Surg 2010 (doi 10.1001/archsurg.2010.124): steatosis makes colorectal "
                          "metastases more hypoechoic, OR 4.17, with increased conspicuity",
    "heuristic": "heuristic (no published number found); rationale in docs/clinical_evidence.md",
}


@dataclass(frozen=True)
class Term:
    """One factor of the product: its value in [0, 1], its source key and its input."""
    name: str
    value: float
    source: str
    detail: str


@dataclass(frozen=True)
class BModeVisibility:
    """Predicted B-mode visibility of one lesion (probability in [0, 1])."""
    probability: float
    category: str                  # 'likely' | 'uncertain' | 'unlikely'
    terms: List[Term] = field(default_factory=list)
    explanation: str = ""
    depth_limit_mm: float = 0.0
    round_trip_db: Optional[float] = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["probability"] = round(self.probability, 3)
        d["terms"] = [{**asdict(t), "value": round(t.value, 3)} for t in self.terms]
        d["depth_limit_mm"] = round(self.depth_limit_mm, 1)
        if self.round_trip_db is not None:
            d["round_trip_db"] = round(self.round_trip_db, 1)
        d["thresholds"] = {"likely": LIKELY_P, "unlikely": UNLIKELY_P}
        return d


def _size_logistic() -> tuple:
    """(d50_mm, scale_mm) of the logistic through SIZE_ANCHORS."""
    (d1, p1), (d2, p2) = SIZE_ANCHORS
    l1, l2 = math.log(p1 / (1 - p1)), math.log(p2 / (1 - p2))
    scale = (d2 - d1) / (l2 - l1)
    return d1 - l1 * scale, scale


SIZE_D50_MM, SIZE_SCALE_MM = _size_logistic()


def size_term(diameter_mm: float) -> float:
    """Share of lesions of this diameter seen on B-mode in ideal conditions."""
    return 1.0 / (1.0 + math.exp(-(diameter_mm - SIZE_D50_MM) / SIZE_SCALE_MM))


def depth_limit_mm(frequency_mhz: float, attenuation_db_cm_mhz: float) -> float:
    """Depth (mm) at which the round-trip attenuation uses the whole dynamic range."""
    return 10.0 * DYNAMIC_RANGE_DB / (2.0 * attenuation_db_cm_mhz * frequency_mhz)


def round_trip_db(depth_mm: float, frequency_mhz: float, attenuation_db_cm_mhz: float) -> float:
    """2 * alpha * f * z in dB (z in cm)."""
    return 2.0 * attenuation_db_cm_mhz * frequency_mhz * depth_mm / 10.0


def depth_term(round_trip: float) -> float:
    """1 while >= DEPTH_FULL_MARGIN_DB of the range remain, linear to 0 at the limit."""
    return min(1.0, max(0.0, (DYNAMIC_RANGE_DB - round_trip) / DEPTH_FULL_MARGIN_DB))


def ct_contrast_term(ct_contrast_hu: Optional[float]) -> float:
    """CT_CONTRAST_FLOOR at 0 HU rising linearly to 1 at CT_CONTRAST_FULL_HU; 1 if unknown."""
    if ct_contrast_hu is None:
        return 1.0
    x = min(1.0, abs(float(ct_contrast_hu)) / CT_CONTRAST_FULL_HU)
    return CT_CONTRAST_FLOOR + (1.0 - CT_CONTRAST_FLOOR) * x


def _category(p: float) -> str:
    return "likely" if p >= LIKELY_P else ("uncertain" if p >= UNLIKELY_P else "unlikely")


def predict_bmode_visibility(*, diameter_mm: Optional[float], depth_mm: Optional[float], lesion_type: str,
                             ct_contrast_hu: Optional[float] = None, frequency_mhz: float = 3.5,
                             liver_attenuation_db_cm_mhz: float = NORMAL_LIVER_ATTENUATION,
                             fatty_liver: Optional[bool] = None) -> BModeVisibility:
    """Probability that the lesion is seen on plain B-mode, with every term and its source.

    ``depth_mm``: skin to lesion along the best acoustic window (None: no window,
    probability 0). ``ct_contrast_hu``: lesion minus liver HU (None: not measured,
    no adjustment). ``fatty_liver``: None uses the attenuation as given and calls
    the liver fatty when it is >= FATTY_ATTENUATION_THRESHOLD; True raises the
    attenuation to at least FATTY_LIVER_ATTENUATION. Raises ValueError for an
    unknown type or a non-positive size, frequency or attenuation.
    """
    if lesion_type not in TYPE_CEILING:
        raise ValueError(f"lesion_type {lesion_type!r}: expected one of {sorted(TYPE_CEILING)}")
    if diameter_mm is not None and not diameter_mm > 0:
        raise ValueError(f"diameter_mm must be > 0, got {diameter_mm}")
    if not (frequency_mhz > 0 and liver_attenuation_db_cm_mhz > 0):
        raise ValueError("frequency_mhz and liver_attenuation_db_cm_mhz must be > 0")
    alpha = float(liver_attenuation_db_cm_mhz)
    if fatty_liver is None:          # a measured attenuation is used as given
        fatty = alpha >= FATTY_ATTENUATION_THRESHOLD
    else:                            # said fatty: at least the fatty-liver attenuation
        fatty = bool(fatty_liver)
        if fatty:
            alpha = max(alpha, FATTY_LIVER_ATTENUATION)
    limit = depth_limit_mm(frequency_mhz, alpha)
    terms: List[Term] = []

    d = UNKNOWN_SIZE_MM if diameter_mm is None else float(diameter_mm)
    size_detail = f"{d:.0f} mm" + (" (size unknown: assumed)" if diameter_mm is None else "")
    terms.append(Term("size", size_term(d), "us300+robinson2000",
                      f"{size_detail}; logistic d50 {SIZE_D50_MM:.1f} mm, scale {SIZE_SCALE_MM:.2f} mm"))
    type_src = {"adenocarcinoma-like": "cvir2017+choti2008", "net-like": "kang2019+wu2016",
                "indeterminate": "heuristic"}[lesion_type]
    terms.append(Term("type", TYPE_CEILING[lesion_type], type_src, lesion_type))

    rt = None
    if depth_mm is None:
        terms.append(Term("depth", 0.0, "design-s1", "no acoustic window"))
    else:
        rt = round_trip_db(float(depth_mm), frequency_mhz, alpha)
        terms.append(Term("depth", depth_term(rt), "design-s1+heuristic",
                          f"{float(depth_mm):.0f} mm: round trip {rt:.0f} of {DYNAMIC_RANGE_DB:.0f} dB at "
                          f"{frequency_mhz:g} MHz, {alpha:.2f} dB/cm/MHz (limit {limit:.0f} mm)"))
    ct_detail = "not measured" if ct_contrast_hu is None else f"{float(ct_contrast_hu):+.0f} HU vs liver"
    terms.append(Term("ct_contrast", ct_contrast_term(ct_contrast_hu), "heuristic", ct_detail))
    if fatty and lesion_type != "adenocarcinoma-like":
        terms.append(Term("fat_contrast", FAT_BRIGHT_LESION_FACTOR, "kang2019+heuristic",
                          "fatty liver: often hyperechoic lesion in a bright liver"))
    else:
        terms.append(Term("fat_contrast", 1.0, "steatosis-echo2010" if fatty else "wu2016",
                          "fatty liver: hypoechoic lesion, no penalty" if fatty else "no fatty liver"))

    p = 1.0
    for t in terms:
        p *= t.value
    p = min(1.0, max(0.0, p))
    cat = _category(p)
    weakest = min(terms, key=lambda t: t.value)
    where = "no acoustic window" if depth_mm is None else f"at {float(depth_mm):.0f} mm"
    explanation = (f"B-mode visibility {cat} (p = {p:.2f}): {lesion_type}, {d:.0f} mm {where}"
                   f"{', fatty liver' if fatty else ''}; weakest term {weakest.name} = {weakest.value:.2f} "
                   f"({weakest.detail})")
    return BModeVisibility(probability=p, category=cat, terms=terms, explanation=explanation,
                           depth_limit_mm=limit, round_trip_db=rt)


def reference_grid(sizes_mm=(5, 10, 15, 20, 30, 50), depths_mm=(40, 80, 120),
                   types=("adenocarcinoma-like", "net-like", "indeterminate")) -> List[Dict[str, object]]:
    """Predictions for a grid of reference lesions, normal and fatty liver (CT contrast not given)."""
    rows = []
    for fatty in (False, True):
        for lt in types:
            for z in depths_mm:
                for s in sizes_mm:
                    v = predict_bmode_visibility(diameter_mm=s, depth_mm=z, lesion_type=lt, fatty_liver=fatty)
                    rows.append({"liver": "fatty" if fatty else "normal", "type": lt, "depth_mm": z,
                                 "diameter_mm": s, "p": v.probability, "category": v.category})
    return rows


def _shown(p: float) -> str:
    """p to 2 decimals, or 3 when rounding would cross a category cut-off."""
    crosses = any(round(p, 2) >= c > p for c in (LIKELY_P, UNLIKELY_P))
    return f"{p:.3f}" if crosses else f"{p:.2f}"


def format_grid(rows: List[Dict[str, object]]) -> str:
    """Markdown table: one row per (liver, type, depth), one column per size: 'p category'.

    p is shown to 2 decimals, to 3 where rounding would put it on the other side of
    a cut-off (0.598 is 'uncertain', not 0.60).
    """
    sizes = sorted({r["diameter_mm"] for r in rows})
    abbrev = {"likely": "L", "uncertain": "U", "unlikely": "N"}
    head = "| liver | type | depth mm | " + " | ".join(f"{s} mm" for s in sizes) + " |"
    lines = [head, "|" + "---|" * (3 + len(sizes))]
    keys = []
    for r in rows:
        k = (r["liver"], r["type"], r["depth_mm"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        cells = {r["diameter_mm"]: r for r in rows if (r["liver"], r["type"], r["depth_mm"]) == k}
        vals = " | ".join(f"{_shown(cells[s]['p'])} {abbrev[cells[s]['category']]}" for s in sizes)
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {vals} |")
    return "\n".join(lines)
