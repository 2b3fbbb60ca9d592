"""Lesions grown from one click: synthetic lesions with known outlines, the demo case's six
lesions against their exact truth, bad clicks, and the label map the lesions are put in."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from planner.segmentation.lesion_edge import fit_edge
from planner.segmentation.lesion_grow import grow_lesion
from planner.segmentation.lesion_labels import LESION_FIRST_VALUE, compose_labels
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

SPACING = (0.8, 0.8, 1.5)          # (i, j, k) mm, like the demo CT
SHAPE = (48, 120, 120)             # [k, j, i]: 96 x 96 x 72 mm


def _dice(a, b) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _mm_grid():
    k, j, i = np.indices(SHAPE, dtype=float)
    return i * SPACING[0], j * SPACING[1], k * SPACING[2]


def _phantom(hu: np.ndarray, seed: int = 1) -> Volume:
    """Blur (0.5 mm PSF) and noise (10 HU) like a CT; origin 0, identity direction."""
    rng = np.random.default_rng(seed)
    sigma = 0.5 / np.array(SPACING[::-1])
    noisy = ndimage.gaussian_filter(hu, sigma) + rng.normal(0.0, 10.0, SHAPE)
    return Volume(np.rint(noisy).astype(np.int16), SPACING)


def _sphere(centre, radius):
    x, y, z = _mm_grid()
    return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2 <= radius ** 2


CENTRE = (38.4, 38.4, 36.0)        # LPS mm of a voxel centre near the middle


@pytest.fixture(scope="module")
def liver():
    x, y, z = _mm_grid()
    return (x > 5) & (x < 72) & (y > 5) & (y < 72) & (z > 4) & (z < 68)


def test_hypo_sphere(liver):
    truth = _sphere(CENTRE, 7.0)
    hu = np.where(liver, 110.0, -100.0)
    hu[truth] = 55.0
    les = grow_lesion(_phantom(hu), CENTRE, liver & ~truth, name="lesion_7")   # liver mask without the lesion
    assert les.name == "lesion_7" and les.kind == "hypo" and les.phase == "ct" and not les.rim
    assert _dice(les.mask, truth) > 0.85
    assert abs(les.equivalent_diameter_mm - 14.0) < 1.5
    assert 13.0 < les.diameter_mm < 17.0
    assert abs(les.contrast_hu + 55.0) < 10.0 and abs(les.liver_hu - 110.0) < 4.0
    assert les.volume_ml == pytest.approx(np.count_nonzero(les.mask) * np.prod(SPACING) / 1000.0)


def test_rim_kept_and_plain_blur_not_taken_for_a_rim(liver):
    truth = _sphere(CENTRE, 9.0)
    hu = np.where(liver, 115.0, -100.0)
    hu[truth] = 97.0                                 # 2.5 mm rim, a little darker than the liver
    hu[_sphere(CENTRE, 6.5)] = 50.0
    les = grow_lesion(_phantom(hu, 2), CENTRE, liver, name="lesion_1")
    assert les.rim and _dice(les.mask, truth) > 0.85
    core_only = _sphere(CENTRE, 6.5)
    assert np.count_nonzero(les.mask) > 1.8 * np.count_nonzero(core_only)


def test_profile_fit_on_exact_profiles():
    d = np.arange(-5.75, 10.0, 0.5)
    n = np.full(d.shape, 200.0)
    from scipy.special import erfc

    def step(x, e):                                                    # 1 inside, 0 outside
        return 0.5 * erfc((x - e) / (0.8 * np.sqrt(2)))

    plain = 115 + (55 - 115) * step(d, 1.0)
    fit = fit_edge(d, plain, n, 55.0, 115.0)
    assert not fit.rim and abs(fit.edge_mm - 1.0) < 0.2
    rim = 115 + (97 - 115) * step(d, 2.5) + (50 - 97) * step(d, 0.0)
    fit = fit_edge(d, rim, n, 50.0, 115.0)
    assert fit.rim and abs(fit.edge_mm - 2.5) < 0.3 and abs(fit.rim_hu - 97) < 4
    assert not fit_edge(d, rim, n, 50.0, 115.0, core_radius_mm=3.0).rim      # too small for a rim


def test_hyper_lesion_with_a_touching_vessel(liver):
    x, y, z = _mm_grid()
    truth = _sphere(CENTRE, 8.0)
    vessel = ((y - CENTRE[1]) ** 2 + (z - CENTRE[2]) ** 2 <= 2.0 ** 2) & (x > CENTRE[0])   # 4 mm tube
    hu = np.where(liver, 80.0, -100.0)
    hu[vessel] = 170.0
    hu[truth] = 160.0
    ct = _phantom(hu, 3)
    les = grow_lesion(ct, CENTRE, liver, name="lesion_2")
    assert les.kind == "hyper" and _dice(les.mask, truth) > 0.85
    far = les.mask & ~_sphere(CENTRE, 8.0 + 4.0)
    assert not far.any(), "grew along the vessel"


def test_arterial_phase_chosen_when_it_shows_the_lesion(liver):
    truth = _sphere(CENTRE, 7.0)
    portal = np.where(liver, 115.0, -100.0)
    portal[truth] = 118.0                             # iso in the portal phase
    arterial = np.where(liver, 80.0, -100.0)
    arterial[truth] = 160.0
    ct, art = _phantom(portal, 4), _phantom(arterial, 5)
    with pytest.raises(InputError, match="differs from the liver by only"):
        grow_lesion(ct, CENTRE, liver, name="lesion_5")
    les = grow_lesion(ct, CENTRE, liver, name="lesion_5", arterial=art)
    assert les.phase == "arterial" and les.kind == "hyper" and _dice(les.mask, truth) > 0.85


def test_bad_clicks(liver):
    x, y, z = _mm_grid()
    hu = np.where(liver, 110.0, 40.0)                 # soft tissue outside the liver box
    hu[x < 4] = -1000.0                               # air
    hu[(x > 80) & (y > 80)] = 900.0                   # bone
    hu[(x > 74) & (x < 80) & (y < 20)] = -100.0       # fat
    ct = _phantom(hu, 6)
    bone = np.zeros(SHAPE, bool)
    bone[(x > 80) & (y > 80)] = True
    cases = [((-30.0, 30.0, 30.0), "outside the CT"), ((1.6, 30.0, 30.0), "in air"),
             ((84.0, 84.0, 30.0), "in bone"), ((76.8, 10.0, 30.0), "in fat"),
             ((88.0, 40.0, 30.0), "mm outside the liver"), (CENTRE, "differs from the liver by only")]
    for point, message in cases:
        with pytest.raises(InputError, match=message) as info:
            grow_lesion(ct, point, liver, name="lesion_9", bone=bone)
        assert "lesion 'lesion_9'" in str(info.value)
    with pytest.raises(InputError, match="on the CT grid"):
        grow_lesion(ct, CENTRE, liver[:, :, :10], name="lesion_9")


def test_click_just_outside_the_liver_mask_warns(liver):
    x, _, _ = _mm_grid()
    truth = _sphere((70.4, 38.4, 36.0), 6.0)          # straddles the liver mask's edge at x = 72
    hu = np.where(liver | truth, 110.0, -100.0)
    hu[truth] = 50.0
    clipped = liver & (x < 68.0)                      # an automatic liver outline that stops short
    les = grow_lesion(_phantom(hu, 7), (71.2, 38.4, 36.0), clipped, name="lesion_3")
    assert any("outside the liver mask" in w for w in les.warnings)
    assert _dice(les.mask, truth) > 0.7


def test_size_limit_warns(liver):
    x, y, z = _mm_grid()
    hu = np.where(liver, 110.0, -100.0)
    hu[liver & (x > 30) & (x < 46)] = 50.0            # a 16 mm slab across the whole liver
    les = grow_lesion(_phantom(hu, 8), CENTRE, liver, name="lesion_4", max_diameter_mm=30.0)
    assert any("size limit" in w for w in les.warnings)
    pts = np.argwhere(les.mask)[:, ::-1] * np.array(SPACING)
    assert np.linalg.norm(pts - np.array(CENTRE), axis=1).max() <= 15.0 + 1e-6


# --------------------------------------------------------------------------- the demo case
@pytest.fixture(scope="module")
def demo(demo_case):
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    ct = load_ct(demo_case / "ct_portal.nrrd")
    arterial = load_ct(demo_case / "ct_arterial.nrrd")
    labels = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
    truth = json.loads((demo_case / "truth.json").read_text())
    return ct, arterial, labels, truth


@pytest.mark.slow
@pytest.mark.parametrize("with_arterial", [True, False])
def test_demo_lesions_from_a_click_at_their_centre(demo, with_arterial):
    ct, arterial, labels, truth = demo
    liver = labels.mask("liver")                      # the true liver: lesions are holes in it
    rows = []
    for les in truth["lesions"]:
        grown = grow_lesion(ct, les["centroid_lps"], liver, name=les["name"],
                            arterial=arterial if with_arterial else None)
        true_mask = labels.mask(les["name"])
        rows.append((les, grown, _dice(grown.mask, true_mask)))
    print()
    for les, grown, dice in rows:
        print(f"{les['name']} {les['diameter_mm']:4.1f} mm {les['type']:15s} arterial={with_arterial}: "
              f"Dice {dice:.3f}, {grown.diameter_mm:.1f} mm, {grown.kind} ({grown.phase}), "
              f"contrast {grown.contrast_hu:+.0f} HU, rim {grown.rim}")
    for les, grown, dice in rows:
        neuroendocrine = les["type"] == "net"
        if les["diameter_mm"] >= 9.0 and (with_arterial or not neuroendocrine):
            assert dice >= 0.75, les["name"]
            assert abs(grown.equivalent_diameter_mm - les["diameter_mm"]) < 0.2 * les["diameter_mm"] + 1.0
        if with_arterial or not neuroendocrine:
            assert grown.kind == ("hyper" if neuroendocrine else "hypo"), les["name"]
        assert grown.mask[tuple(np.rint(ct.lps_to_index(les["centroid_lps"])).astype(int)[::-1])]
    if with_arterial:
        assert {g.phase for les, g, _ in rows if les["type"] == "net"} == {"arterial"}
        assert rows[0][1].rim                          # lesion_1: rim-enhancing adenocarcinoma


@pytest.mark.slow
def test_demo_lesions_from_an_off_centre_click(demo):
    """A click 40 % of the radius away from the centre, in a random direction (seeded)."""
    ct, arterial, labels, truth = demo
    rng = np.random.default_rng(0)
    for les in truth["lesions"]:
        if les["diameter_mm"] < 9.0:
            continue
        direction = rng.normal(size=3)
        point = np.array(les["centroid_lps"]) + 0.2 * les["diameter_mm"] * direction / np.linalg.norm(direction)
        grown = grow_lesion(ct, point, labels.mask("liver"), name=les["name"], arterial=arterial)
        assert _dice(grown.mask, labels.mask(les["name"])) >= 0.75, les["name"]


# --------------------------------------------------------------------------- the label map
class _Lesion:
    def __init__(self, name, mask):
        self.name, self.mask = name, mask


def test_compose_labels_layers_and_values():
    shape = (4, 5, 6)
    anatomy = np.ones(shape, np.uint8)                 # body
    anatomy[:, :, :3] = 2                              # liver
    anatomy[:, :, 4:] = 6                              # bone
    anatomy[2, 3, 1] = 10                              # a vessel inside the liver
    anatomy[3, 0, 0] = 10                              # ... where the import has its portal vein
    auto = LabelMap(anatomy, names={"body": 1, "liver": 2, "bone": 6, "liver_vessel": 10})
    imp = np.zeros(shape, np.uint8)
    imp[:, :, :2] = 1                                  # TotalSegmentator's liver (smaller, vessels included)
    imp[0, 0, 3] = 3                                   # something the anatomy does not have
    imp[3, 0, 0] = 4
    imported = LabelMap(imp, names={"liver": 1, "autochthon_left": 3, "portal_vein": 4})
    a = np.zeros(shape, bool)
    a[1, 1, 1] = a[3, 4, 4] = True
    b = np.zeros(shape, bool)
    b[1, 1, 1] = b[2, 2, 0] = True
    labels, sources, warnings = compose_labels(auto, [_Lesion("lesion_1", a), _Lesion("met_2", b)],
                                               imported=imported)
    names = labels.names
    assert names["lesion_1"] == LESION_FIRST_VALUE and names["met_2"] == LESION_FIRST_VALUE + 1
    assert (names["body"], names["liver"], names["bone"], names["liver_vessel"]) == (1, 2, 6, 10)
    assert names["autochthon_left"] < LESION_FIRST_VALUE
    assert sources == {"body": "automatic", "liver": "imported", "bone": "automatic", "liver_vessel": "automatic",
                       "autochthon_left": "imported", "portal_vein": "imported", "lesion_1": "lesion",
                       "met_2": "lesion"}
    arr = labels.array
    assert arr[2, 3, 1] == 10                          # the automatic vessel stays on top of the imported liver
    assert arr[3, 0, 0] == names["portal_vein"]        # but not on top of an imported vessel
    assert arr[0, 0, 2] == 1                           # automatic liver replaced: body shows through
    assert arr[0, 0, 3] == names["autochthon_left"] and arr[0, 0, 5] == 6
    assert np.count_nonzero(arr == 2) == np.count_nonzero(imp == 1) - 1 - 2        # minus vessel, 2 lesion voxels
    assert arr[1, 1, 1] == LESION_FIRST_VALUE + 1 and warnings == ["met_2 overlaps lesion_1; met_2 wins there"]
    assert arr[3, 4, 4] == LESION_FIRST_VALUE
    _, _, warnings = compose_labels(auto, [_Lesion("lesion_1", b), _Lesion("lesion_2", b)])
    assert "lesion_1 lies entirely under later lesions" in warnings[-1]
    with pytest.raises(InputError, match="already anatomy structure names"):
        compose_labels(auto, [_Lesion("liver", a)])
    with pytest.raises(InputError, match="repeat"):
        compose_labels(auto, [_Lesion("lesion_1", a), _Lesion("lesion_1", b)])


# --------------------------------------------------------------------------- a real CT
#: Clicks on the real CT crlm-1004 (CT LPS mm), found by reading its slices: the only focal
#: liver findings in this 205 mm section at 5 mm slices.
CRLM_SEEDS = {
    "hypo_focus": (-107.4, 35.1, -270.0),      # 4-5 mm hypodense focus, posterior right lobe (slices 21-22)
    "dense_focus": (-89.0, -4.0, -215.0),      # punctate ~230 HU focus under the dome (slice 32): calcification
}
GALLBLADDER_LPS = (-52.4, -48.6, -315.0)       # bile, ~20 HU, under the liver


@pytest.fixture(scope="module")
def crlm():
    import os
    from pathlib import Path

    from planner.segmentation.pipeline import segment_anatomy
    from registration.io.ct_io import load_ct
    data = Path(os.environ.get("CTUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    folder = data / "ct" / "crlm-1004" / "dicom"
    if not folder.exists():
        pytest.skip(f"real data not available: {folder}")
    ct = load_ct(folder)
    return ct, segment_anatomy(ct)


@pytest.mark.slow
def test_real_ct_foci_from_clicks(crlm):
    ct, anatomy = crlm
    bone = anatomy.labels.array == anatomy.names["bone"]
    hypo = grow_lesion(ct, CRLM_SEEDS["hypo_focus"], anatomy.liver_region, name="lesion_1", bone=bone)
    dense = grow_lesion(ct, CRLM_SEEDS["dense_focus"], anatomy.liver_region, name="lesion_2", bone=bone)
    print(f"\nhypo focus: {hypo.summary()}\ndense focus: {dense.summary()}")
    assert hypo.kind == "hypo" and -40.0 < hypo.contrast_hu < -10.0
    assert 5.0 < hypo.diameter_mm < 12.0 and hypo.volume_ml < 0.6
    assert dense.kind == "hyper" and dense.mean_hu > 150.0 and 3.0 < dense.diameter_mm < 8.0
    for les in (hypo, dense):
        assert les.mask[tuple(np.rint(ct.lps_to_index(les.seed_lps)).astype(int)[::-1])]
        assert np.linalg.norm(np.subtract(les.centroid_lps, les.seed_lps)) < 5.0
    with pytest.raises(InputError, match="outside the liver"):
        grow_lesion(ct, GALLBLADDER_LPS, anatomy.liver_region, name="lesion_3", bone=bone)
