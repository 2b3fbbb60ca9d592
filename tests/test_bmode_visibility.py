"""B-mode visibility model: the reference grid, monotonicity, the required behaviours, the sources.

``pytest -s`` prints the model's table for the reference lesions; the same
table is in docs/clinical_evidence.md and a test checks that it is current.
"""
import itertools
from pathlib import Path

import numpy as np
import pytest

from planner.advice.bmode_visibility import (FATTY_LIVER_ATTENUATION, LIKELY_P, SIZE_ANCHORS, SOURCES,
                                             TYPE_CEILING, UNLIKELY_P, format_grid, predict_bmode_visibility,
                                             reference_grid, size_term)

TYPES = ("adenocarcinoma-like", "net-like", "indeterminate")
DOC = Path(__file__).resolve().parents[1] / "docs" / "clinical_evidence.md"


def _p(**kw):
    return predict_bmode_visibility(**kw).probability


def test_print_reference_grid():
    table = format_grid(reference_grid())
    print("\nB-mode visibility, p and category (L likely, U uncertain, N unlikely); CT contrast not given\n")
    print(table)
    assert table.count("\n") == 2 + 2 * 3 * 3 - 1


def test_docs_carry_the_current_grid():
    assert format_grid(reference_grid()) in DOC.read_text(), \
        "docs/clinical_evidence.md: paste the table printed by test_print_reference_grid (pytest -s)"


def test_size_curve_goes_through_its_anchors():
    for d, p in SIZE_ANCHORS:
        assert size_term(d) == pytest.approx(p, abs=1e-9)
    assert size_term(10.0) < 1 / 3          # "seldom visualised" below 10 mm


@pytest.mark.parametrize("lesion_type", TYPES)
@pytest.mark.parametrize("fatty", (None, False, True))
@pytest.mark.parametrize("ct", (None, 0.0, -12.0, -45.0, 60.0))
def test_monotone_in_size_and_depth(lesion_type, fatty, ct):
    sizes = np.linspace(2.0, 80.0, 79)
    depths = np.linspace(10.0, 200.0, 64)
    grid = np.array([[_p(diameter_mm=s, depth_mm=z, lesion_type=lesion_type, ct_contrast_hu=ct,
                         fatty_liver=fatty) for s in sizes] for z in depths])
    assert np.all((grid >= 0) & (grid <= 1))
    assert np.all(np.diff(grid, axis=1) >= -1e-12), "not non-decreasing in size"
    assert np.all(np.diff(grid, axis=0) <= 1e-12), "not non-increasing in depth"


@pytest.mark.parametrize("lesion_type", TYPES)
@pytest.mark.parametrize("fatty", (None, False, True))
def test_monotone_in_attenuation_and_ct_contrast(lesion_type, fatty):
    alphas = np.linspace(0.3, 1.2, 91)
    for s, z in itertools.product((8.0, 16.0, 40.0), (40.0, 90.0, 130.0)):
        p = [_p(diameter_mm=s, depth_mm=z, lesion_type=lesion_type, liver_attenuation_db_cm_mhz=a,
                fatty_liver=fatty) for a in alphas]
        assert np.all(np.diff(p) <= 1e-12), f"not non-increasing in attenuation ({s} mm at {z} mm)"
        hu = np.linspace(0, 80, 81)
        for sign in (1, -1):
            q = [_p(diameter_mm=s, depth_mm=z, lesion_type=lesion_type, ct_contrast_hu=sign * h) for h in hu]
            assert np.all(np.diff(q) >= -1e-12), "not non-decreasing in |CT contrast|"


def test_fatty_liver_is_never_better():
    for lt, s, z in itertools.product(TYPES, (5, 10, 15, 20, 30, 50), (20, 40, 80, 100, 120)):
        normal = _p(diameter_mm=s, depth_mm=z, lesion_type=lt, fatty_liver=False)
        fatty = _p(diameter_mm=s, depth_mm=z, lesion_type=lt, fatty_liver=True)
        assert fatty <= normal + 1e-12


@pytest.mark.parametrize("diameter, depth", [(50, 70), (52, 80), (55, 95), (50, 95)])
@pytest.mark.parametrize("ct", (None, -25.0, -60.0))
def test_required_large_hypoattenuating_lesion_is_likely(diameter, depth, ct):
    v = predict_bmode_visibility(diameter_mm=diameter, depth_mm=depth, lesion_type="adenocarcinoma-like",
                                 ct_contrast_hu=ct)
    assert v.category == "likely", v.explanation


@pytest.mark.parametrize("ct", (None, -20.0, -60.0))
@pytest.mark.parametrize("fatty", (None, True))
def test_required_small_adenocarcinoma_deep_is_not_likely(ct, fatty):
    v = predict_bmode_visibility(diameter_mm=8, depth_mm=130, lesion_type="adenocarcinoma-like",
                                 ct_contrast_hu=ct, fatty_liver=fatty)
    assert v.category != "likely", v.explanation


@pytest.mark.parametrize("depth", (50, 70, 90))
def test_required_16mm_net_is_likely_or_uncertain(depth):
    v = predict_bmode_visibility(diameter_mm=16, depth_mm=depth, lesion_type="net-like", ct_contrast_hu=40.0)
    assert v.category in ("likely", "uncertain"), v.explanation


@pytest.mark.parametrize("lesion_type", TYPES)
@pytest.mark.parametrize("freq, alpha, fatty", [(3.5, 0.5, None), (5.0, 0.5, None), (3.5, 0.5, True),
                                                (2.5, 0.9, None)])
def test_required_beyond_depth_limit_is_unlikely(lesion_type, freq, alpha, fatty):
    v = predict_bmode_visibility(diameter_mm=60, depth_mm=50, lesion_type=lesion_type, frequency_mhz=freq,
                                 liver_attenuation_db_cm_mhz=alpha, fatty_liver=fatty)
    beyond = v.depth_limit_mm + 1.0
    w = predict_bmode_visibility(diameter_mm=60, depth_mm=beyond, lesion_type=lesion_type, frequency_mhz=freq,
                                 liver_attenuation_db_cm_mhz=alpha, fatty_liver=fatty)
    assert w.category == "unlikely" and w.probability == 0.0, w.explanation


def test_depth_limits_match_design_section_1():
    normal = predict_bmode_visibility(diameter_mm=20, depth_mm=50, lesion_type="net-like")
    assert normal.depth_limit_mm == pytest.approx(171.4, abs=0.1)          # ~17 cm at 3.5 MHz
    at5 = predict_bmode_visibility(diameter_mm=20, depth_mm=50, lesion_type="net-like", frequency_mhz=5.0)
    assert at5.depth_limit_mm == pytest.approx(120.0, abs=0.1)             # ~12 cm at 5 MHz
    fatty = predict_bmode_visibility(diameter_mm=20, depth_mm=50, lesion_type="net-like", fatty_liver=True)
    assert fatty.depth_limit_mm == pytest.approx(110.0, abs=0.1)           # ~11 cm fatty, 3.5 MHz
    assert FATTY_LIVER_ATTENUATION == pytest.approx(0.78, abs=0.01)


def test_no_window_is_unlikely():
    v = predict_bmode_visibility(diameter_mm=60, depth_mm=None, lesion_type="net-like")
    assert v.probability == 0.0 and v.category == "unlikely" and "no acoustic window" in v.explanation


def test_every_term_is_reported_with_a_known_source():
    v = predict_bmode_visibility(diameter_mm=16, depth_mm=110, lesion_type="net-like", ct_contrast_hu=8.0,
                                 fatty_liver=True)
    names = [t.name for t in v.terms]
    assert names == ["size", "type", "depth", "ct_contrast", "fat_contrast"]
    product = float(np.prod([t.value for t in v.terms]))
    assert v.probability == pytest.approx(product)
    for t in v.terms:
        assert all(k in SOURCES for k in t.source.split("+")), t.source
    d = v.as_dict()
    assert d["category"] == v.category and len(d["terms"]) == 5
    assert d["thresholds"] == {"likely": LIKELY_P, "unlikely": UNLIKELY_P}
    assert v.explanation.startswith(f"B-mode visibility {v.category}")


def test_type_order_net_over_indeterminate_over_adenocarcinoma():
    assert TYPE_CEILING["net-like"] > TYPE_CEILING["indeterminate"] > TYPE_CEILING["adenocarcinoma-like"]
    for s, z in itertools.product((8, 15, 30), (40, 100)):
        p = [_p(diameter_mm=s, depth_mm=z, lesion_type=t) for t in ("adenocarcinoma-like", "indeterminate",
                                                                    "net-like")]
        assert p[0] < p[1] < p[2]


def test_unknown_size_is_treated_as_10_mm():
    a = predict_bmode_visibility(diameter_mm=None, depth_mm=60, lesion_type="indeterminate")
    b = predict_bmode_visibility(diameter_mm=10, depth_mm=60, lesion_type="indeterminate")
    assert a.probability == b.probability and "size unknown" in a.terms[0].detail


@pytest.mark.parametrize("kw", [dict(lesion_type="hcc-like"), dict(diameter_mm=0.0), dict(diameter_mm=-3.0),
                                dict(frequency_mhz=0.0), dict(liver_attenuation_db_cm_mhz=-0.5)])
def test_bad_input_raises(kw):
    args = dict(diameter_mm=20.0, depth_mm=60.0, lesion_type="net-like")
    args.update(kw)
    with pytest.raises(ValueError):
        predict_bmode_visibility(**args)


def test_block_map_grows_each_blocker_by_the_beam_half_width_with_its_own_class():
    """Issue 16: the block map by the compiled distance transform per class gives the blocked
    voxels scipy's nearest-feature transform gave, each with the class of its nearest blocker
    (a tie between two classes at the same distance goes to bone, then lung)."""
    from types import SimpleNamespace

    from scipy import ndimage

    from planner.advice.visibility import BLOCK_BONE, BLOCK_GAS, BLOCK_LUNG, acoustic_block_map
    from planner.anatomy.derived import bounding_box
    from registration.spatial.volume import Volume
    shape = (20, 40, 50)
    body = np.zeros(shape, bool)
    body[2:18, 3:37, 3:47] = True
    hu = np.where(body, 40.0, -1000.0)
    hu[8:12, 10:14, 20:24] = -900.0                      # bowel gas
    bone = np.zeros(shape, bool)
    bone[5:15, 25:28, 5:45] = True                       # a rib-like bar
    lung = np.zeros(shape, bool)
    lung[2:6, 4:12, 30:45] = True
    spacing_ijk = (0.8, 0.9, 1.5)
    anatomy = SimpleNamespace(ct=Volume(hu, spacing_ijk, (0.0, 0.0, 0.0)),
                              masks={"body": body, "bone": bone, "lung": lung},
                              spacing_kji=np.array(spacing_ijk[::-1]))
    got = acoustic_block_map(anatomy, beam_halfwidth_mm=3.0)
    seed = np.zeros(shape, np.int8)
    seed[(hu < -500) & body] = BLOCK_GAS
    seed[lung] = BLOCK_LUNG
    seed[bone] = BLOCK_BONE
    inside = np.zeros(shape, bool)
    inside[bounding_box(body, (1, 1, 1))] = True          # the map is made over the body's box
    dist, idx = ndimage.distance_transform_edt(seed == 0, sampling=anatomy.spacing_kji, return_indices=True)
    want = np.where((dist <= 3.0) & inside, seed[tuple(idx)], 0)
    assert np.array_equal(got > 0, want > 0)
    assert (got > 0).sum() > 1.5 * (seed > 0).sum()                        # grown, not just the seeds
    d = {c: ndimage.distance_transform_edt(seed != c, sampling=anatomy.spacing_kji) for c in (1, 2, 3)}
    unique = np.sum([d[c] == dist for c in (1, 2, 3)], axis=0) == 1          # one nearest class
    assert np.array_equal(got[unique & (got > 0)], want[unique & (got > 0)])
