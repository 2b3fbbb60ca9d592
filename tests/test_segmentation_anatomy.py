"""Automatic anatomy on real CTs and on the demo case, against independent references.

- abdomen-20slice (real CT, Siemens, 2 mm): TotalSegmentator's labels (its
  grid's direction differs: resampled by physical position);
- the demo case: the phantom's exact truth;
- crlm-1004 (real CT, GE, 5 mm, no labels): the liver's extent and the foci a
  reader found in it; pictures of the result go to tests/artifacts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from planner.anatomy.structures import large_vessels
from planner.segmentation.labelling import FIRST_LESION_VALUE
from planner.segmentation.morphology import depth_mm, fill_holes_2d
from planner.segmentation.pipeline import segment_anatomy
from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from registration.spatial.volume import Volume

DATA = Path(os.environ.get("CTUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
VESSEL_NAMES = ("portal_vein", "hepatic_vein", "liver_vessel", "ivc", "aorta")


def _data(*parts) -> Path:
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


def _dice(a, b) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _mask(result, names) -> np.ndarray:
    values = [result.names[n] for n in names if n in result.names]
    return np.isin(result.labels.array, values)


@pytest.fixture(scope="module")
def abdomen():
    folder = _data("ct", "abdomen-20slice")
    ct = load_ct(folder / "dicom")
    ts = load_labels(folder / "labels.nii.gz", folder / "label_names.txt", reference=ct)
    return ct, ts, segment_anatomy(ct)


@pytest.fixture(scope="module")
def demo():
    from sample_data.case.demo_case import ensure_demo_case
    folder = Path(ensure_demo_case())
    ct = load_ct(folder / "ct_portal.nrrd")
    truth = load_labels(folder / "labels.nrrd", folder / "label_names.json", reference=ct)
    return folder, ct, truth, segment_anatomy(ct)


@pytest.fixture(scope="module")
def crlm():
    ct = load_ct(_data("ct", "crlm-1004", "dicom"))
    return ct, segment_anatomy(ct)


def _check_label_map(ct, result):
    assert result.labels.same_grid(ct) and result.liver_region.shape == ct.array.shape
    assert max(result.names.values()) < FIRST_LESION_VALUE
    assert set(np.unique(result.labels.array)) - {0} == set(result.names.values())
    assert {"body", "liver", "bone"} <= set(result.names)
    assert all(t >= 0 for t in result.timings_s.values())


@pytest.mark.slow
def test_abdomen_20slice_against_totalsegmentator(abdomen):
    ct, ts, result = abdomen
    _check_label_map(ct, result)
    n = ts.names
    liver_dice = _dice(result.liver_region, ts.array == n["liver"])
    bone = _mask(result, ["bone"])
    skeleton = np.isin(ts.array, [v for k, v in n.items() if k.startswith(("rib_", "vertebrae_"))])
    bone_recall = float((bone & skeleton).sum()) / float(skeleton.sum())
    cover = _vessel_cover(ct, ts, result)
    print(f"\nliver Dice {liver_dice:.3f}, bone recall {bone_recall:.3f}, vessel cover {cover}, "
          f"measures {result.measures}, warnings {result.warnings}")
    assert liver_dice >= 0.90
    assert bone_recall >= 0.95
    assert cover["portal_vein_and_splenic_vein"] >= 0.85
    # This CT's IVC has the liver's own HU (TotalSegmentator: median 94 HU, liver 93 HU) and the
    # liver around it on two thirds of its rim: no lumen to see. It is placed from anatomy in the
    # liver's posterior-medial groove, its back wall on the crus and retrocaval fat (measured: 0.85
    # of its core covered, Dice 0.76), and the method says so.
    assert cover["inferior_vena_cava"] >= 0.75 and "ivc" in result.names
    assert any("IVC not seen" in w and "placed from anatomy" in w for w in result.warnings)
    ivc = _mask(result, ["ivc"])
    assert (ivc & (ts.array == n["inferior_vena_cava"])).sum() >= 0.3 * ivc.sum()
    assert any("reaches the highest slice" in w for w in result.warnings)


def _vessel_cover(ct, ts, result) -> dict:
    """Share of the reference's vessel voxels lying >= 1.5 mm inside it (its wall is a judgement
    call) that our vessel labels cover: per vessel and for the portal/splenic vein and IVC together."""
    n = ts.names
    vessels = _mask(result, VESSEL_NAMES)
    core = {name: depth_mm(ts.array == n[name], ct.spacing) >= 1.5
            for name in ("portal_vein_and_splenic_vein", "inferior_vena_cava")}
    cover = {name: float((vessels & c).sum()) / float(c.sum()) for name, c in core.items()}
    both = core["portal_vein_and_splenic_vein"] | core["inferior_vena_cava"]
    cover["portal_splenic_and_ivc"] = float((vessels & both).sum()) / float(both.sum())
    return cover


@pytest.mark.slow
def test_abdomen_20slice_portal_splenic_and_ivc_coverage(abdomen):
    """The issue's figure: our vessels cover >= 85 % of the TotalSegmentator portal/splenic vein
    AND IVC voxels lying >= 1.5 mm inside them."""
    ct, ts, result = abdomen
    cover = _vessel_cover(ct, ts, result)
    print(f"\nportal/splenic + IVC coverage {cover['portal_splenic_and_ivc']:.3f} ({cover})")
    assert cover["portal_splenic_and_ivc"] >= 0.85


@pytest.mark.slow
def test_same_labels_whatever_the_storage_order(abdomen):
    """The same CT stored feet-first and with flipped rows gives the same labels, voxel for voxel."""
    ct, _, result = abdomen
    d = ct.direction.copy()
    d[:, 1] *= -1
    d[:, 2] *= -1
    n_ijk = np.array(ct.shape_ijk) - 1
    origin = ct.index_to_lps(np.array([0.0, n_ijk[1], n_ijk[2]]))
    flipped = Volume(ct.array[::-1, ::-1, :].copy(), ct.spacing, origin, d, dict(ct.metadata))
    again = segment_anatomy(flipped)
    assert again.names == result.names
    assert np.array_equal(again.labels.array[::-1, ::-1, :], result.labels.array)


@pytest.mark.slow
def test_demo_case_liver_and_vessels(demo):
    _, ct, truth, result = demo
    _check_label_map(ct, result)
    t = truth.array
    lesions = np.isin(t, [v for k, v in truth.names.items() if k.startswith("lesion")])
    liver = (t == truth.names["liver"]) | lesions
    veins = np.isin(t, [truth.names["portal_vein"], truth.names["hepatic_vein"]])
    liver_truth = liver | (veins & fill_holes_2d(liver))        # its vessels belong to its region
    liver_dice = _dice(result.liver_region, liver_truth)
    big = large_vessels(veins, ct.spacing)                        # >= 3 mm wide (local thickness)
    recall = float((_mask(result, VESSEL_NAMES) & big).sum()) / float(big.sum())
    heart_dice = _dice(_mask(result, ["heart"]), t == truth.names["heart"])
    ivc_dice = _dice(_mask(result, ["ivc"]), t == truth.names["ivc"])
    print(f"\ndemo: liver Dice {liver_dice:.3f}, veins >= 3 mm recalled {recall:.3f}, heart Dice "
          f"{heart_dice:.3f}, IVC Dice {ivc_dice:.3f}, {result.warnings}")
    assert liver_dice >= 0.93
    assert recall >= 0.90
    assert heart_dice >= 0.85                   # a hard structure of the planner
    assert ivc_dice >= 0.75
    # the liver keeps out of the heart
    assert (result.liver_region & (t == truth.names["heart"])).sum() <= 0.005 * result.liver_region.sum()
    # bone may take a partial-volume rim where a rib touches the liver, no more
    assert (_mask(result, ["bone"]) & liver_truth).sum() <= 0.01 * liver_truth.sum()


@pytest.mark.slow
def test_demo_arterial_phase_tells_portal_from_hepatic(demo):
    folder, ct, truth, _ = demo
    result = segment_anatomy(ct, arterial=load_ct(folder / "ct_arterial.nrrd"))
    t = truth.array
    found = _mask(result, ("portal_vein", "hepatic_vein"))
    pv, hv = t == truth.names["portal_vein"], t == truth.names["hepatic_vein"]
    portal_ok = float((_mask(result, ["portal_vein"]) & pv).sum()) / float((found & pv).sum())
    hepatic_ok = float((_mask(result, ["hepatic_vein"]) & hv).sum()) / float((found & hv).sum())
    print(f"\nportal voxels called portal {portal_ok:.2f}, hepatic called hepatic {hepatic_ok:.2f}")
    assert portal_ok >= 0.75 and hepatic_ok >= 0.75


#: Points a reader marked on crlm-1004 (LPS mm): the two focal findings in the liver and the
#: gallbladder under it (tests/test_segmentation_lesion.py uses the same clicks).
CRLM_FOCI = [(-107.4, 35.1, -270.0), (-89.0, -4.0, -215.0)]
CRLM_GALLBLADDER = (-52.4, -48.6, -315.0)
#: Oral contrast in the ascending colon (541 HU, slice 2), labelled bone until 2026-12-03.
CRLM_ORAL_CONTRAST = (-70.7, -35.1, -365.0)
#: The IVC's centre, read on the slices: below the liver, fat around it (slices 6, 14); inside
#: the liver, a few HU brighter than it (slices 26, 31; its course there is interpolated).
CRLM_IVC = [(-13.3, -17.5, -345.0), (-14.9, -12.8, -305.0), (-24.5, -2.4, -245.0), (-26.1, -1.6, -220.0)]
#: The heart's chambers on the slices of the liver's dome and above it (right ventricle on slice
#: 34, left ventricle on 37 and 38): the liver, and liver vessels, were found there before.
CRLM_HEART = [(24.9, -44.6, -205.0), (56.8, -28.7, -190.0), (56.8, -28.7, -185.0), (9.0, -52.6, -185.0)]


@pytest.mark.slow
def test_real_contrast_ct_with_liver_foci(crlm, artifacts_dir):
    ct, result = crlm
    _check_label_map(ct, result)
    region = result.liver_region
    vox_ml = float(np.prod(ct.spacing)) / 1000.0
    liver_ml = region.sum() * vox_ml
    cols = np.nonzero(region.any(axis=(0, 1)))[0]
    centre_x = ct.index_to_lps(np.array([cols.mean(), 0.0, 0.0]))[0]
    body_x = ct.index_to_lps(np.array([np.nonzero(result.labels.array > 0)[2].mean(), 0, 0]))[0]
    print(f"\ncrlm-1004: liver {liver_ml:.0f} ml, measures {result.measures}, warnings {result.warnings}")
    assert 1000.0 <= liver_ml <= 2500.0               # an adult liver, cut below by the scan
    assert centre_x < body_x                          # on the patient's right (LPS: -x)
    assert "aorta" in result.names and 120.0 <= result.measures["aorta_hu"] <= 400.0
    for p in CRLM_FOCI:
        i, j, k = np.rint(ct.lps_to_index(p)).astype(int)
        assert region[k, j, i], f"focus {p} outside the liver region"
    i, j, k = np.rint(ct.lps_to_index(CRLM_GALLBLADDER)).astype(int)
    assert not region[k, j, i], "the gallbladder was taken into the liver"
    lab = result.labels.array
    for name, points in (("ivc", CRLM_IVC), ("heart", CRLM_HEART)):
        for p in points:
            i, j, k = np.rint(ct.lps_to_index(p)).astype(int)
            assert name in result.names and lab[k, j, i] == result.names[name], f"{p} is not {name}"
            assert not region[k, j, i], f"{name} at {p} inside the liver region"
    assert any("IVC: its course" in w and "interpolated" in w for w in result.warnings)
    # no liver vessel above the liver's top (the IVC entering the heart was one)
    top = int(np.nonzero(region.any(axis=(1, 2)))[0][-1])
    assert not _mask(result, ("portal_vein", "hepatic_vein", "liver_vessel"))[top + 1:].any()
    _pictures(ct, result, artifacts_dir / "segmentation_crlm_1004.png")


def _pictures(ct, result, out: Path) -> None:
    """Axial slices with the outlines, for a person to look at."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lab = result.labels.array
    ks = np.linspace(2, lab.shape[0] - 3, 8).astype(int)
    fig, axes = plt.subplots(2, 4, figsize=(16, 8))
    colours = {"liver": "yellow", "portal_vein": "red", "hepatic_vein": "blue", "liver_vessel": "red",
               "aorta": "magenta", "ivc": "cyan", "bone": "white", "lung": "green", "bowel_gas": "orange",
               "heart": "pink", "gallbladder": "lime", "kidney": "darkorange", "spleen": "violet",
               "bowel": "deepskyblue"}
    for ax, k in zip(axes.ravel(), ks):
        ax.imshow(ct.array[k], cmap="gray", vmin=-150, vmax=250)
        for name, colour in colours.items():
            if name in result.names and (lab[k] == result.names[name]).any():
                ax.contour(lab[k] == result.names[name], [0.5], colors=colour, linewidths=0.6)
        ax.set_title(f"slice {k}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=70)
    plt.close(fig)
    assert out.stat().st_size > 10_000
    json.dumps(result.measures)                      # the measures are JSON-ready


# ---- gallbladder, kidneys, spleen, bowel (planner/segmentation/viscera.py) ---------------------

HARD_NAMES = ("gallbladder", "kidney", "spleen", "bowel", "bowel_gas", "heart", "bone", "lung")


def _organ_report(ct, truth_map, groups, result, liver_truth) -> dict:
    """Per organ of the reference: the share of its voxels >= 1.5 mm inside it that our label of
    that organ covers (``own``) and that any of our hard labels covers (``hard``: what keeps a
    needle out); per new label of ours: the share of the reference liver it takes."""
    hard = _mask(result, HARD_NAMES)
    out = {}
    for organ, names in groups.items():
        ref = np.isin(truth_map.array, [truth_map.names[n] for n in names if n in truth_map.names])
        if not ref.any():
            continue
        core = depth_mm(ref, ct.spacing) >= 1.5
        own = _mask(result, [organ])
        out[organ] = {"own": float((own & core).sum()) / float(core.sum()),
                      "hard": float((hard & core).sum()) / float(core.sum()),
                      "dice": _dice(own, ref) if own.any() else 0.0}
    for name in ("gallbladder", "kidney", "spleen", "bowel"):
        out[f"{name}_in_liver"] = float((_mask(result, [name]) & liver_truth).sum()) / float(liver_truth.sum())
    return out


@pytest.mark.slow
def test_demo_viscera_against_the_truth(demo):
    """Kidneys, spleen and gallbladder found as themselves (the gallbladder, joined to a fluid loop
    on the working grid and beside a gas-filled one, was labelled bowel until 2026-12-03: 0.83
    measured); the bowel covered by hard labels; none of the new labels eats into the liver
    (the needle must still reach it)."""
    _, ct, truth, result = demo
    groups = {n: [n] for n in ("gallbladder", "kidney", "spleen", "bowel", "pancreas")}
    r = _organ_report(ct, truth, groups, result, truth.array == truth.names["liver"])
    print(f"\ndemo viscera: {json.dumps(r, indent=None)}")
    assert r["kidney"]["own"] >= 0.8 and r["kidney"]["dice"] >= 0.8
    assert r["spleen"]["own"] >= 0.9 and r["spleen"]["dice"] >= 0.85
    assert r["gallbladder"]["hard"] >= 0.8
    assert r["gallbladder"]["own"] >= 0.75 and r["gallbladder"]["dice"] >= 0.75
    assert r["bowel"]["hard"] >= 0.5                 # collapsed loops and faeces without gas are not found
    for name in ("gallbladder", "kidney", "spleen", "bowel"):
        assert r[f"{name}_in_liver"] <= 0.01, name


@pytest.mark.slow
def test_abdomen_20slice_viscera_against_totalsegmentator(abdomen):
    ct, ts, result = abdomen
    groups = {"spleen": ["spleen"], "bowel": ["stomach", "colon", "small_bowel", "duodenum"]}
    r = _organ_report(ct, ts, groups, result, ts.array == ts.names["liver"])
    print(f"\nabdomen-20slice viscera: {json.dumps(r, indent=None)}")
    assert r["spleen"]["own"] >= 0.7 and r["spleen"]["hard"] >= 0.9
    # the stomach here is full of food (median 52 HU, soft tissue): only its gas, the fluid against
    # it and their walls are found (0.37 measured)
    assert r["bowel"]["hard"] >= 0.3
    # no kidney or gallbladder in these 40 mm (TotalSegmentator has none): none claimed inside the liver
    assert "kidney" not in result.names
    for name in ("gallbladder", "kidney", "spleen", "bowel"):
        assert r[f"{name}_in_liver"] <= 0.02, name


@pytest.mark.slow
def test_crlm_viscera_where_a_reader_sees_them(crlm, artifacts_dir):
    """crlm-1004: the gallbladder a reader marked is labelled gallbladder; both kidneys beside the
    spine; a spleen on the left; none of them inside the liver region."""
    ct, result = crlm
    lab = result.labels.array
    i, j, k = np.rint(ct.lps_to_index(CRLM_GALLBLADDER)).astype(int)
    assert lab[k, j, i] == result.names.get("gallbladder"), "the gallbladder is not labelled"
    i, j, k = np.rint(ct.lps_to_index(CRLM_ORAL_CONTRAST)).astype(int)
    assert lab[k, j, i] == result.names.get("bowel"), "oral contrast in the colon is not bowel"
    kidney = _mask(result, ["kidney"])
    x = ct.index_to_lps(np.c_[np.nonzero(kidney)[::-1]].astype(float))[:, 0]
    vox_ml = float(np.prod(ct.spacing)) / 1000.0
    right, left = (x < -20).sum() * vox_ml, (x > 20).sum() * vox_ml
    print(f"\ncrlm-1004 viscera: kidney right {right:.0f} ml, left {left:.0f} ml, measures {result.measures}")
    assert right >= 60 and left >= 60
    assert "spleen" in result.names
    for name in ("gallbladder", "kidney", "spleen", "bowel"):
        assert not (_mask(result, [name]) & result.liver_region).any() or name == "gallbladder"
    _pictures(ct, result, artifacts_dir / "segmentation_crlm_1004_viscera.png")
