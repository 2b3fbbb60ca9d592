"""Typed results of the registration uncertainty report (what :func:`~registration.align.uncertainty.assess` returns).

Engine, GUI and CLI pass these dataclasses; they become dicts only at the JSON
boundary (``to_dict``: the ``uncertainty`` and ``targets`` fields of RESULT.json)
and are rebuilt from it with ``from_dict``, which raises
:class:`~registration.spatial.errors.InputError` naming the file and the field
when something required is missing. Units: mm, degrees; points in CT LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from registration.spatial.errors import InputError

VERDICTS = ("good", "check", "poor")


@dataclass
class TargetEstimate:
    """The registration error estimate at one target point (a lesion, a landmark, the ROI centre).

    ``tre_*_mm`` are RMS errors (mm); None where unknown (no Hessian, a result not trusted).
    ``starts_agreeing`` is the fraction (0-1) of the comparable starts within AGREE_MM of the
    best one at this target, ``starts_comparable`` their number. ``radius_mm`` and the hit
    probabilities (0-1) exist only for targets given with a radius. ``tre_deformation_mm``: the
    residual-deformation term inside ``tre_registration_mm`` (:mod:`.deformation_error`);
    ``extrapolated``: the target lies further than the validated distance from the imaged
    region (``distance_to_imaged_region_mm``), so its verdict is never "good"."""
    name: str
    point_ct: Optional[List[float]] = None
    tre_hessian_mm: Optional[float] = None          # Laplace (Hessian) estimate, uncalibrated
    tre_multistart_mm: Optional[float] = None       # RMS spread of the comparable starts
    tre_uncalibrated_mm: Optional[float] = None     # the larger of the two
    starts_agreeing: Optional[float] = None
    starts_comparable: Optional[int] = None
    tre_registration_mm: Optional[float] = None     # calibrated, with resolution floor and breathing
    tre_total_mm: Optional[float] = None            # + tracking, needle, breathing in quadrature
    tre_registration_95_mm: Optional[float] = None  # radius holding 95 % of the registration error
    distance_to_sweep_mm: Optional[float] = None    # to the imaged region (else the nearest fan sample)
    radius_mm: Optional[float] = None
    hit_probability: Optional[float] = None                     # with the total error
    hit_probability_registration_only: Optional[float] = None   # with the registration error alone
    verdict: Optional[str] = None
    why: List[str] = field(default_factory=list)
    tre_deformation_mm: Optional[float] = None      # residual deformation term (in tre_registration_mm)
    distance_to_imaged_region_mm: Optional[float] = None   # to the union of the frames' fans
    extrapolated: Optional[bool] = None             # beyond the validated distance: never "good"
    depth_below_probe_mm: Optional[float] = None    # in the nearest frame (the near-probe prior's depth)
    tre_near_probe_mm: Optional[float] = None       # the near-probe prior's part of tre_deformation_mm

    def to_dict(self) -> dict:
        """The RESULT.json row (radius and hit probabilities only for a target with a radius)."""
        d = {"name": self.name, "point_ct": self.point_ct, "tre_hessian_mm": self.tre_hessian_mm,
             "tre_multistart_mm": self.tre_multistart_mm, "tre_uncalibrated_mm": self.tre_uncalibrated_mm,
             "starts_agreeing": self.starts_agreeing, "starts_comparable": self.starts_comparable,
             "tre_registration_mm": self.tre_registration_mm, "tre_total_mm": self.tre_total_mm,
             "tre_registration_95_mm": self.tre_registration_95_mm,
             "distance_to_sweep_mm": self.distance_to_sweep_mm}
        if self.radius_mm is not None:
            d.update(radius_mm=self.radius_mm, hit_probability=self.hit_probability,
                     hit_probability_registration_only=self.hit_probability_registration_only)
        d.update(verdict=self.verdict, why=list(self.why), tre_deformation_mm=self.tre_deformation_mm,
                 distance_to_imaged_region_mm=self.distance_to_imaged_region_mm, extrapolated=self.extrapolated,
                 depth_below_probe_mm=self.depth_below_probe_mm, tre_near_probe_mm=self.tre_near_probe_mm)
        return d

    @classmethod
    def from_dict(cls, row, path=None, where: str = "target") -> "TargetEstimate":
        """A RESULT.json row; ``name`` is required, every other field may be absent or null.
        ``tre_rms_mm`` / ``tre_mm`` are read as ``tre_registration_mm`` (older hand-written files)."""
        if not isinstance(row, dict):
            raise InputError(f"{where} is not an object", path=path, fix="write each target as {\"name\": ...}")
        if not isinstance(row.get("name"), str):
            raise InputError(f'{where} has no "name"', path=path, fix='give every target row a "name"')
        nums = {k: optional_number(row, k, path, where) for k in _NUMBER_FIELDS}
        tre = next((v for v in (nums.pop("tre_registration_mm"), optional_number(row, "tre_rms_mm", path, where),
                                optional_number(row, "tre_mm", path, where)) if v is not None), None)
        point = row.get("point_ct")
        if point is not None:
            point = [float(v) for v in _vector(point, path, f"{where}.point_ct")]
        comparable = optional_number(row, "starts_comparable", path, where)
        extrapolated = row.get("extrapolated")
        if extrapolated is not None and not isinstance(extrapolated, bool):
            raise InputError(f'{where}: "extrapolated" is not true, false or null', path=path,
                             fix="write the RESULT of 'ctus register'")
        return cls(row["name"], point, tre_registration_mm=tre, extrapolated=extrapolated,
                   starts_comparable=None if comparable is None else int(comparable),
                   verdict=parse_verdict(row.get("verdict"), path, f"{where}.verdict"),
                   why=_strings(row, "why", path, where), **nums)


_NUMBER_FIELDS = ("tre_hessian_mm", "tre_multistart_mm", "tre_uncalibrated_mm", "starts_agreeing",
                  "tre_registration_mm", "tre_total_mm", "tre_registration_95_mm", "distance_to_sweep_mm",
                  "radius_mm", "hit_probability", "hit_probability_registration_only", "tre_deformation_mm",
                  "distance_to_imaged_region_mm", "depth_below_probe_mm", "tre_near_probe_mm")


@dataclass
class ErrorTerms:
    """RMS error terms (mm) added in quadrature to the registration error at every target."""
    tracking_mm: float
    needle_mm: float
    breathing_mm: float
    unresolved_breathing_mm: float = 0.0    # half the breathing found in the sweep and not gated away

    def to_dict(self) -> dict:
        return {"tracking": self.tracking_mm, "needle": self.needle_mm, "breathing": self.breathing_mm,
                "unresolved_breathing_in_registration": self.unresolved_breathing_mm}


@dataclass
class MovedFromStart:
    """How far the result lies from the registration's start (at the rotation centre)."""
    rotation_deg: float
    translation_mm: float


@dataclass
class Assessment:
    """Uncertainty and verdict of one registration (:func:`registration.align.uncertainty.assess`).

    ``verdict`` is the worst over the targets near the sweep (good / check / poor) and
    ``reasons`` quote its numbers; ``targets`` has one estimate per target, each with its own
    verdict. ``covariance_deg_mm``: the 6x6 Laplace covariance of ``(rx, ry, rz [deg], tx, ty,
    tz [mm])`` (None without a Hessian). ``breathing``: the BreathingReport dict (or None)."""
    verdict: str
    reasons: List[str]
    targets: List[TargetEstimate]
    error_terms: ErrorTerms
    resolution_floor_mm: float
    n_eff: Optional[float] = None
    hessian_positive_definite: Optional[bool] = None
    covariance_deg_mm: Optional[np.ndarray] = None
    moved_from_start: Optional[MovedFromStart] = None
    breathing: Optional[dict] = None
    deformation: Optional[dict] = None      # ResidualDeformation.to_dict() (.deformation_error)
    capture: Optional[dict] = None          # evidence for a result far from its start (.capture_range)
    focus: Optional[dict] = None            # the target a focused refinement was about (.focus)

    def target(self, name: str) -> Optional[TargetEstimate]:
        """The estimate at the target called ``name`` (None if it was not assessed)."""
        return next((t for t in self.targets if t.name == name), None)

    def to_dict(self) -> dict:
        """The ``uncertainty`` field of RESULT.json."""
        moved = self.moved_from_start
        return {"verdict": self.verdict, "reasons": list(self.reasons),
                "targets": [t.to_dict() for t in self.targets],
                "error_terms_mm": self.error_terms.to_dict(),
                "resolution_floor_mm": self.resolution_floor_mm,
                "n_eff": self.n_eff, "hessian_positive_definite": self.hessian_positive_definite,
                "covariance_deg_mm": None if self.covariance_deg_mm is None
                else np.asarray(self.covariance_deg_mm).tolist(),
                "moved_from_start": None if moved is None else {"rotation_deg": moved.rotation_deg,
                                                                "translation_mm": moved.translation_mm},
                "breathing": self.breathing, "deformation": self.deformation, "capture": self.capture,
                "focus": self.focus}

    @classmethod
    def from_dict(cls, d, path=None, where: str = "uncertainty") -> "Assessment":
        """The ``uncertainty`` field of a RESULT.json; ``verdict`` and ``targets`` are required."""
        if not isinstance(d, dict):
            raise InputError(f"{where} is not an object", path=path, fix="write the RESULT of 'ctus register'")
        for key in ("verdict", "targets"):
            if key not in d:
                raise InputError(f'{where} has no "{key}"', path=path, fix="write the RESULT of 'ctus register'")
        if not isinstance(d["targets"], list):
            raise InputError(f'{where}.targets is not a list', path=path, fix="write the RESULT of 'ctus register'")
        verdict = parse_verdict(d["verdict"], path, f"{where}.verdict")
        if verdict is None:
            raise InputError(f"{where}.verdict is null", path=path, fix="write the RESULT of 'ctus register'")
        terms = _object(d, "error_terms_mm", path, where) or {}
        moved = _object(d, "moved_from_start", path, where)
        positive = d.get("hessian_positive_definite")
        if positive is not None and not isinstance(positive, bool):
            raise InputError(f"{where}.hessian_positive_definite is not true, false or null", path=path,
                             fix="write the RESULT of 'ctus register'")
        return cls(verdict, _strings(d, "reasons", path, where),
                   [TargetEstimate.from_dict(r, path, f"{where}.targets[{i}]") for i, r in enumerate(d["targets"])],
                   ErrorTerms(*(optional_number(terms, k, path, f"{where}.error_terms_mm") or 0.0
                                for k in ("tracking", "needle", "breathing", "unresolved_breathing_in_registration"))),
                   optional_number(d, "resolution_floor_mm", path, where) or 0.0,
                   optional_number(d, "n_eff", path, where), positive,
                   _covariance(d.get("covariance_deg_mm"), path, f"{where}.covariance_deg_mm"),
                   None if moved is None else MovedFromStart(
                       *(_required_number(moved, k, path, f"{where}.moved_from_start")
                         for k in ("rotation_deg", "translation_mm"))),
                   _object(d, "breathing", path, where), _object(d, "deformation", path, where),
                   _object(d, "capture", path, where), _object(d, "focus", path, where))


def _object(d: dict, key: str, path, where: str) -> Optional[dict]:
    v = d.get(key)
    if v is not None and not isinstance(v, dict):
        raise InputError(f'{where}: "{key}" is not an object', path=path, fix="write the RESULT of 'ctus register'")
    return v


def _strings(d: dict, key: str, path, where: str) -> List[str]:
    v = d.get(key) or []
    if not isinstance(v, list):
        raise InputError(f'{where}: "{key}" is not a list of texts', path=path, fix="write a list or null")
    return [str(x) for x in v]


def _required_number(d: dict, key: str, path, where: str) -> float:
    v = optional_number(d, key, path, where)
    if v is None:
        raise InputError(f'{where} has no "{key}"', path=path, fix="write the RESULT of 'ctus register'")
    return v


def _covariance(v, path, where: str) -> Optional[np.ndarray]:
    if v is None:
        return None
    try:
        c = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        c = None
    if c is None or c.shape != (6, 6):
        raise InputError(f"{where} is not a 6x6 matrix of numbers", path=path,
                         fix="write the RESULT of 'ctus register'")
    return c


def optional_number(row: dict, key: str, path, where: str) -> Optional[float]:
    """``row[key]`` as a float; None when absent or null; InputError when not a finite number."""
    v = row.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        raise InputError(f'{where}: "{key}" is not a number ({v!r})', path=path, fix="write a number or null")
    return float(v)


def _vector(v, path, where: str) -> np.ndarray:
    try:
        a = np.asarray(v, dtype=float).reshape(3)
    except (TypeError, ValueError):
        raise InputError(f"{where} is not [x, y, z]", path=path, fix="write three numbers (CT LPS mm)") from None
    return a


def parse_verdict(v, path, where: str) -> Optional[str]:
    """A verdict field: None, or one of VERDICTS (InputError naming the file and the field)."""
    if v is None:
        return None
    if v not in VERDICTS:
        raise InputError(f"{where} is {v!r}, not one of {', '.join(VERDICTS)}", path=path,
                         fix="write the RESULT of 'ctus register'")
    return v
