"""Lesions seen on the MR (issue 18): the MR grower, carrying lesions onto the CT, their error term."""
from __future__ import annotations

import math

import numpy as np
import pytest

from planner.anatomy.mr_lesion_grower import grow_mr_lesion
from planner.anatomy.mr_lesions import annotate_plan, import_mr_lesions, with_mr_error
from registration.spatial.errors import InputError
from registration.spatial.transforms import apply, invert, rigid_matrix
from registration.spatial.volume import LabelMap, Volume

SP = (1.5, 1.5, 2.0)
ORIGIN = np.array([-45.0, -45.0, -40.0])


def _mr(lesion_centre=(5.0, -3.0, 2.0), diameter=10.0, vessel=True, seed=0) -> Volume:
    """A bright liver (hepatobiliary-like) with a dark lesion and a dark vessel touching it, a bias field."""
    rng = np.random.default_rng(seed)
    n = (40, 60, 60)
    k, j, i = np.meshgrid(*[np.arange(v) for v in n], indexing="ij")
    p = ORIGIN + np.stack([i, j, k], axis=-1) * np.array(SP)
    a = np.full(n, 0.2, np.float32)
    a[np.linalg.norm(p / [40.0, 40.0, 35.0], axis=-1) < 1] = 1.0
    if vessel:   # a 5 mm vessel running along x, touching the lesion
        a[(np.hypot(p[..., 1] - lesion_centre[1] - diameter / 2 - 2.0, p[..., 2] - lesion_centre[2]) < 2.5)
          & (np.abs(p[..., 0]) < 30)] = 0.22
    a[np.linalg.norm(p - lesion_centre, axis=-1) < diameter / 2] = 0.3
    a *= (1.0 + 0.2 * (j / n[1] - 0.5)).astype(np.float32)
    a = np.sqrt((a + rng.normal(0, 0.03, n)) ** 2 + rng.normal(0, 0.03, n) ** 2)
    return Volume((a * 1000).astype(np.float32), SP, ORIGIN)


def test_grower_finds_the_lesion_and_cuts_the_touching_vessel():
    mr = _mr()
    g = grow_mr_lesion(mr, np.array([6.0, -2.0, 3.0]))      # a click 1.7 mm off the centre
    assert g.polarity == "dark" and g.cnr > 10
    assert abs(g.diameter_mm - 10.0) < 1.5, g.diameter_mm
    assert np.linalg.norm(g.centroid_mr - [5.0, -3.0, 2.0]) < 1.0


def test_grower_refuses_a_click_without_contrast():
    mr = _mr()
    with pytest.raises(InputError, match="no lesion contrast"):
        grow_mr_lesion(mr, np.array([-20.0, 15.0, -10.0]))     # plain liver


def _ct_labels():
    """CT label map: liver, a vessel, a CT lesion at (-15, 10, -5); grid like the MR's but 1 mm."""
    n = (60, 90, 90)
    origin = np.array([-45.0, -45.0, -30.0])
    k, j, i = np.meshgrid(*[np.arange(v) for v in n], indexing="ij")
    p = origin + np.stack([i, j, k], axis=-1).astype(float)
    lab = np.zeros(n, np.int16)
    lab[np.linalg.norm(p / [40.0, 40.0, 35.0], axis=-1) < 1] = 2
    lab[np.linalg.norm(p - [-15.0, 10.0, -5.0], axis=-1) < 5] = 20
    labels = LabelMap(lab, (1.0, 1.0, 1.0), origin, names={"liver": 2, "lesion_1": 20})
    ct = Volume(np.where(lab > 0, 100, -100).astype(np.int16), (1.0, 1.0, 1.0), origin)
    return ct, labels


def test_mr_lesions_carried_onto_the_ct_with_their_error():
    mr_to_ct = rigid_matrix([0.0, 0.0, 4.0, 3.0, -2.0, 1.5])
    ct, labels = _ct_labels()
    mr = _mr(lesion_centre=(5.0, -3.0, 2.0))
    # a second MR lesion exactly where the CT lesion is (seen on both)
    both_mr = apply(invert(mr_to_ct), np.array([-15.0, 10.0, -5.0]))
    k, j, i = np.meshgrid(*[np.arange(v) for v in mr.array.shape], indexing="ij")
    pts = ORIGIN + np.stack([i, j, k], axis=-1) * np.array(SP)
    mr.array[np.linalg.norm(pts - both_mr, axis=-1) < 5] = 300
    doc = {"mr_to_ct": mr_to_ct.tolist(), "tre_mm": 1.5, "verdict": "good", "targets": []}
    imp = import_mr_lesions(mr, mr_to_ct, ct, labels, seeds={"lesion_a": np.array([5.0, -3.0, 2.0]),
                                                             "lesion_b": both_mr}, mr_to_ct_doc=doc,
                            local_error=False)
    a, b = imp.lesions
    assert a.seen_on == ["MR"] and a.label_value == 21 and imp.labels.names["lesion_a"] == 21
    on_ct = imp.labels.array == 21
    k, j, i = np.nonzero(on_ct)
    centroid = imp.labels.index_to_lps(np.stack([i, j, k], 1).mean(0))
    assert np.linalg.norm(centroid - apply(mr_to_ct, [5.0, -3.0, 2.0])) < 1.0
    assert abs(on_ct.sum() - 4 / 3 * math.pi * 5 ** 3) < 0.2 * 4 / 3 * math.pi * 5 ** 3
    assert b.seen_on == ["CT", "MR"] and b.same_as_ct == "lesion_1" and b.label_value is None
    assert a.mr_ct_error_mm == pytest.approx(1.5)
    # risk structures stay the CT's: nothing outside the liver was relabelled
    assert np.all(np.isin(labels.array[imp.labels.array == 21], [2]))
    # hit probability input: US registration 2 mm and MR -> CT 1.5 mm in quadrature
    reg = {"reference_to_ct": np.eye(4).tolist(), "verdict": "good",
           "targets": [{"name": "lesion_1", "tre_registration_mm": 2.0}]}
    out = with_mr_error(reg, imp)
    row = next(r for r in out["targets"] if r["name"] == "lesion_a")
    assert row["tre_registration_mm"] == pytest.approx(math.hypot(2.0, 1.5))
    assert reg["targets"] == [{"name": "lesion_1", "tre_registration_mm": 2.0}]       # input not changed
    plan = {"lesions": [{"name": "lesion_a"}, {"name": "lesion_1"}]}
    annotate_plan(plan, imp)
    assert plan["lesions"][0]["seen_on"] == ["MR"] and plan["lesions"][1]["seen_on"] == ["CT", "MR"]
    # an MR -> CT registration that calls itself poor gives no error: no hit probability
    doc["verdict"] = "poor"
    imp2 = import_mr_lesions(mr, mr_to_ct, ct, labels, seeds={"lesion_a": np.array([5.0, -3.0, 2.0])},
                             mr_to_ct_doc=doc, local_error=False)
    assert imp2.lesions[0].mr_ct_error_mm is None
    assert with_mr_error(reg, imp2)["targets"][-1]["tre_registration_mm"] is None


def test_mr_lesion_error_with_an_mr_registration_chained_to_the_ct():
    """With reference_to_ct = mr_to_ct @ reference_to_mr the MR -> CT transform cancels for an MR lesion."""
    mr_to_ct = rigid_matrix([0.0, 0.0, 4.0, 3.0, -2.0, 1.5])
    ct, labels = _ct_labels()
    doc = {"mr_to_ct": mr_to_ct.tolist(), "tre_mm": 1.5, "verdict": "good", "targets": []}
    imp = import_mr_lesions(_mr(), mr_to_ct, ct, labels, seeds={"lesion_a": np.array([5.0, -3.0, 2.0])},
                            mr_to_ct_doc=doc, local_error=False)
    reg = {"fixed_modality": "MR", "reference_to_ct": np.eye(4).tolist(), "verdict": "good",
           "mr_to_ct": {"matrix": mr_to_ct.tolist(), "tre_mm": 1.5},
           "uncertainty": {"verdict": "good", "targets": [{"name": "roi_center", "tre_registration_mm": 1.2}]},
           "targets": [{"name": "roi_center", "tre_registration_mm": math.hypot(1.2, 1.5)}]}
    row = next(r for r in with_mr_error(reg, imp)["targets"] if r["name"] == "lesion_a")
    assert row["tre_registration_mm"] == pytest.approx(1.2)
