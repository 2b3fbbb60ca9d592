"""Lesions from one click on a REAL CT: synthetic metastases with exact truth inserted into the
liver of crlm-1004 (portal-venous, 5 mm slices) by the model of benchmarks/lesion_insertion.py
(partial volume along z from a fine grid, the CT's own noise kept).

The fast test works on a 80 x 80 x 60 mm crop lying inside the liver (the product's liver
segmentation of the whole CT puts every voxel of the crop's middle >= 25 mm deep in the liver);
the crop is taken as the liver mask, as the grower only needs the liver's level and where it may
grow. Skips when ../shared/data is absent. The slow test runs one insertion set of the
benchmark on the whole CT through the product's own segmentation."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from planner.segmentation.lesion_grow import grow_lesion
from registration.spatial.lesions import measure_lesion
from registration.spatial.volume import Volume

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CTUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
CRLM = DATA / "ct" / "crlm-1004" / "dicom"
CROP = (slice(17, 29), slice(199, 299), slice(95, 195))        # [k, j, i] of crlm-1004


def _bench():
    """benchmarks/lesion_insertion.py as a module (loaded by path: benchmarks/ is no package and
    its registration.py would shadow the registration package on sys.path)."""
    if "lesion_insertion" not in sys.modules:
        spec = importlib.util.spec_from_file_location("lesion_insertion", ROOT / "benchmarks" / "lesion_insertion.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["lesion_insertion"] = module
        spec.loader.exec_module(module)
    return sys.modules["lesion_insertion"]


@pytest.fixture(scope="module")
def crop():
    if not CRLM.exists():
        pytest.skip(f"real data not available: {CRLM}")
    from registration.io.ct_io import load_ct
    ct = load_ct(CRLM)
    offset = np.array([CROP[2].start, CROP[1].start, CROP[0].start], float)
    return Volume(ct.array[CROP].copy(), ct.spacing, ct.index_to_lps(offset), ct.direction)


def _dice(a, b) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _grow_and_check(li, crop, lesions, seed):
    ct, truths = li.insert_lesions(crop, lesions)
    liver = np.ones(ct.array.shape, bool)
    rng = np.random.default_rng(seed)
    for les, truth in zip(lesions, truths):
        m = measure_lesion(truth, ct)
        for point in (m.centroid_lps, li.off_centre_click(rng, m.centroid_lps, m.equivalent_radius_mm)):
            grown = grow_lesion(ct, point, liver, name=les.name)
            d = _dice(grown.mask, truth)
            err = grown.equivalent_diameter_mm - m.equivalent_diameter_mm
            assert grown.kind == "hypo"
            assert d >= 0.75, (les.name, point, d)
            assert abs(err) <= 0.15 * m.equivalent_diameter_mm + 1.0, (les.name, err)


def test_inserted_lesions_on_a_real_liver_crop(crop):
    """A 14 mm hypo-attenuating lesion centred between two 5 mm slices and a 17 mm lobulated one
    centred on a slice: from a click at the centre and one 30 % of the radius off, Dice >= 0.75
    and the equivalent diameter within 15 % + 1 mm (before the in-slice edge and the voxel-wise
    edge refinement the first had Dice 0.70: a false rim, then a ring of voxels short)."""
    li = _bench()
    liver_hu = float(np.median(crop.array))
    rot = np.eye(3).tolist()
    small = li.Lesion("lesion_1", (-94.6, -17.5, -262.5), 14.0, (7.0, 6.0, 6.5), rot, contrast_hu=-35.0,
                      liver_hu=liver_hu)
    lobed = li.Lesion("lesion_2", (-70.7, 6.4, -267.5), 17.0, (7.0, 6.0, 6.5), rot,
                      lobes=[((4.0, 2.0, 1.0), 4.0), ((-3.0, -3.5, -2.0), 4.0)], contrast_hu=-45.0,
                      pattern="plain+lobulated", liver_hu=liver_hu)
    _grow_and_check(li, crop, [small, lobed], 3)


def test_rim_lesion_on_a_real_liver_crop(crop):
    """A 20 mm lobulated lesion with a 2.5 mm rim 12 HU above the liver round a -50 HU core, on
    5 mm slices: the lesion is core + rim. Before the rim held beyond the liver and the end
    slices of a rim lesion it failed (Dice 0.51 and 0.50: the core only, one slice short at each
    end, as the bright rim and the dark core average to the liver's level there)."""
    li = _bench()
    liver_hu = float(np.median(crop.array))
    rimmed = li.Lesion("lesion_2", (-70.7, 6.4, -267.5), 20.0, (8.0, 7.0, 7.5), np.eye(3).tolist(),
                       lobes=[((4.5, 2.0, 1.0), 5.0), ((-3.0, -4.0, -2.0), 5.0)], contrast_hu=-50.0,
                       rim_hu=12.0, rim_mm=2.5, pattern="rim+lobulated", liver_hu=liver_hu)
    _grow_and_check(li, crop, [rimmed], 3)


def test_insertion_keeps_the_real_noise_and_samples_the_slice(crop):
    """The model itself: outside the lesion the CT is unchanged; inside, the contrast is added
    to the real voxels (their noise stays); a slice cutting the lesion's edge gets a partial value."""
    li = _bench()
    liver_hu = float(np.median(crop.array))
    les = li.Lesion("lesion_1", (-94.6, -17.5, -262.5), 14.0, (7.0, 7.0, 7.0), np.eye(3).tolist(),
                    contrast_hu=-40.0, liver_hu=liver_hu)
    ct, (truth,) = li.insert_lesions(crop, [les])
    diff = ct.array.astype(float) - crop.array
    kji = np.indices(truth.shape).reshape(3, -1).T
    dist = np.linalg.norm(ct.index_to_lps(kji[:, ::-1].astype(float)) - np.asarray(les.centre_lps), axis=1)
    far = (dist > les.extent_mm + 8.0).reshape(truth.shape)
    assert not diff[far].any()
    core = truth & (np.abs(diff) > 0)
    assert core.any()
    inside = ct.array[truth].astype(float)
    assert np.std(inside) > 5.0                         # the real noise (and texture) is kept
    # slices 4 and 7 of the crop (z -270, -255) hold the lesion's poles: partial volume only;
    # the centre (i, j) = (35, 35) of the crop
    cz = ct.lps_to_index(les.centre_lps)[2]
    assert abs(cz - 5.5) < 1e-6
    centre_dip = np.median(diff[5][truth[5]])
    assert -45.0 < centre_dip < -25.0                   # ~ -40 HU x most of the slice inside
    pole = diff[4, 33:38, 33:38]                        # z -272.5..-267.5 holds 2 of the sphere's 14 mm
    assert -25.0 < np.median(pole) < -5.0 and not truth[4].any()     # ~ 0.4 x -40 HU, not in the truth


@pytest.mark.slow
def test_benchmark_set_on_the_whole_real_ct():
    """One insertion set of the benchmark (8 lesions, seed 0) on crlm-1004 segmented by the product:
    every lesion >= 9 mm (true equivalent diameter) without a rim from a click at its centre with
    Dice >= 0.75. Rim lesions are not asserted here: one of this set (lesion_0_5, 28 mm) is still
    a known failure, listed in benchmarks/results/lesion_insertion.md."""
    if not CRLM.exists():
        pytest.skip(f"real data not available: {CRLM}")
    li = _bench()
    rows = li.run(1, 8, 0, cases=("crlm-1004",), verbose=False)
    centre = [r for r in rows if r["click"] == "centre" and r["true_eq_mm"] >= 9.0 and "rim" not in r["pattern"]]
    assert len(centre) >= 3
    bad = [(r["name"], r["dice"]) for r in centre if r["dice"] < 0.75]
    assert not bad, bad
