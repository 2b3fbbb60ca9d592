"""Registration accuracy needed for fusion, checked against a brute-force Monte Carlo.

The Monte Carlo does not use the closed-form hit probability: it draws each
error term (registration, tracking, needle, breathing) as its own isotropic
Gaussian with the given rms, adds the vectors, and counts tips inside the
sphere.
"""
import math

import numpy as np
import pytest

from planner.advice.fusion_need import (HIT_PROBABILITY_REQUIRED, fusion_need, max_total_error_mm,
                                        required_registration_tre_mm)
from registration.align.uncertainty import BREATHING_MM, NEEDLE_MM, TRACKING_MM, hit_probability, total_error_mm


def _mc_hit(radius_mm, rms_terms_mm, n=400_000, seed=0):
    """Fraction of tips within radius: each term isotropic 3-D Gaussian, sigma = rms / sqrt(3) per axis."""
    rng = np.random.default_rng(seed)
    err = np.zeros((n, 3))
    for rms in rms_terms_mm:
        err += rng.normal(0.0, rms / math.sqrt(3.0), size=(n, 3))
    hit = np.linalg.norm(err, axis=1) <= radius_mm
    return float(hit.mean()), float(math.sqrt(hit.mean() * (1 - hit.mean()) / n))


def test_total_budget_is_0_69_radius_at_90_percent():
    for r in (1.0, 5.0, 27.5):
        assert max_total_error_mm(r) == pytest.approx(0.6927 * r, rel=1e-3)   # DESIGN section 7: 0.69 R


@pytest.mark.parametrize("radius", (5.0, 8.0, 12.0, 27.5))
def test_registration_budget_gives_90_percent_in_monte_carlo(radius):
    reg = required_registration_tre_mm(radius)
    assert reg is not None
    p, se = _mc_hit(radius, (reg, TRACKING_MM, NEEDLE_MM, BREATHING_MM), seed=int(radius * 10))
    assert abs(p - HIT_PROBABILITY_REQUIRED) < 4 * se + 1e-3, (radius, reg, p)
    # a registration 20 % worse falls clearly below 90 %
    p_worse, se_w = _mc_hit(radius, (1.2 * reg, TRACKING_MM, NEEDLE_MM, BREATHING_MM), seed=1)
    assert p_worse < HIT_PROBABILITY_REQUIRED - 4 * se_w


@pytest.mark.parametrize("p_required", (0.5, 0.8, 0.95))
def test_other_hit_probabilities_match_monte_carlo(p_required):
    need = fusion_need(10.0, p_required=p_required, tracking_mm=1.0, needle_mm=1.5, breathing_mm=0.0)
    p, se = _mc_hit(10.0, (need.registration_allowed_mm, 1.0, 1.5), seed=7)
    assert abs(p - p_required) < 4 * se + 1e-3


def test_budget_is_the_largest_and_consistent_with_total_error():
    need = fusion_need(8.0)
    assert total_error_mm(need.registration_allowed_mm) == pytest.approx(need.total_allowed_mm, rel=1e-9)
    assert hit_probability(8.0, need.total_allowed_mm) >= HIT_PROBABILITY_REQUIRED - 1e-9
    assert hit_probability(8.0, need.total_allowed_mm * 1.001) < HIT_PROBABILITY_REQUIRED
    assert need.other_terms_mm == pytest.approx(math.sqrt(TRACKING_MM ** 2 + NEEDLE_MM ** 2 + BREATHING_MM ** 2))


def test_none_when_tracking_and_needle_alone_are_too_large():
    # 8 mm lesion: total budget 2.77 mm < 3.08 mm from tracking, needle and breathing
    need = fusion_need(4.0)
    assert need.registration_allowed_mm is None and "no registration" in need.explanation
    p, _ = _mc_hit(4.0, (TRACKING_MM, NEEDLE_MM, BREATHING_MM), seed=3)   # even a perfect registration
    assert p < HIT_PROBABILITY_REQUIRED
    # without breathing (gated) the same lesion becomes reachable
    assert required_registration_tre_mm(4.0, breathing_mm=0.0) is not None


def test_budget_grows_with_the_lesion():
    regs = [required_registration_tre_mm(r) or 0.0 for r in np.linspace(1, 40, 79)]
    assert np.all(np.diff(regs) >= 0)


@pytest.mark.parametrize("kw", [dict(radius_mm=0.0), dict(radius_mm=-1.0), dict(radius_mm=5.0, p_required=1.0),
                                dict(radius_mm=5.0, p_required=0.0)])
def test_bad_input_raises(kw):
    r = kw.pop("radius_mm")
    with pytest.raises(ValueError):
        fusion_need(r, **kw)
