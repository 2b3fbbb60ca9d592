"""The synthetic patient: orientation, HU per structure and phase, lesion truth.

The full-resolution phantom is built once per module (~30 s, marked slow);
determinism is checked on a coarse grid to stay fast.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from sample_data.phantom.build import LABELS, make_phantom


@pytest.fixture(scope="module")
def ph():
    return make_phantom(0)


def _centroid(labels, name):
    kk, jj, ii = np.nonzero(labels.mask(name))
    return labels.index_to_lps(np.stack([ii, jj, kk], 1).mean(0))


def _fib(n):
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    th = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)], 1)


def _rays(labels, point, dirs, step=0.5, max_mm=260.0):
    """Label values sampled along straight rays from point (nearest voxel); -1 outside the grid."""
    t = np.arange(0.0, max_mm, step)
    pts = np.asarray(point)[None, None] + dirs[:, None] * t[None, :, None]
    ijk = np.rint(labels.lps_to_index(pts)).astype(int)
    n = np.array(labels.shape_ijk)
    ok = np.all((ijk >= 0) & (ijk < n), -1)
    ijk = np.where(ok[..., None], ijk, 0)
    v = labels.array[ijk[..., 2], ijk[..., 1], ijk[..., 0]].astype(int)
    return t, np.where(ok, v, -1)


def _skin_paths(labels, point, n=3000):
    """Per direction: distance to the first background voxel (inf if the ray
    leaves the grid first) and the set of label values crossed before it."""
    dirs = _fib(n)
    t, v = _rays(labels, point, dirs)
    stop = (v == 0) | (v == -1)
    first = stop.argmax(1)
    reached = v[np.arange(n), first] == 0
    length = np.where(reached & stop.any(1), t[first], np.inf)
    before = np.arange(len(t))[None] < first[:, None]
    return dirs, length, v, before


@pytest.mark.slow
def test_grid_is_axial_lps_and_large_enough(ph):
    for vol in (ph.ct_arterial, ph.ct_portal, ph.labels):
        assert vol.orientation_letters() == "LPS"
        assert np.allclose(vol.spacing, (0.8, 0.8, 1.5))
        fov = np.array(vol.shape_ijk) * vol.spacing
        assert fov[0] >= 350 and fov[1] >= 300 and fov[2] >= 200
    assert ph.ct_arterial.array.dtype == np.int16
    assert ph.ct_portal.same_grid(ph.labels) and ph.ct_arterial.same_grid(ph.labels)


@pytest.mark.slow
def test_anatomy_is_not_mirrored(ph):
    lab = ph.labels
    c = {n: _centroid(lab, n) for n in ("liver", "spleen", "lung", "gallbladder", "kidney",
                                         "spinal_canal", "ivc", "heart", "pancreatic_mass")}
    assert c["liver"][0] < -20, "liver must be on the patient's right (negative x in LPS)"
    assert c["spleen"][0] > 40, "spleen on the patient's left"
    assert c["spinal_canal"][1] > c["liver"][1] + 30, "spine is posterior (larger y)"
    assert c["gallbladder"][1] < c["kidney"][1], "gallbladder anterior to the kidneys"
    assert c["lung"][2] > c["liver"][2] and c["heart"][2] > c["liver"][2], "thorax above the liver"
    aorta_x = _centroid(lab, "artery")[0]
    assert c["ivc"][0] < 0 < aorta_x, "IVC right of the aorta"
    assert c["pancreatic_mass"][0] < 0, "the mass is in the pancreatic head (patient right)"
    # lung lies over the liver dome posteriorly: above some liver columns there is lung
    liver = lab.mask("liver")
    lung = lab.mask("lung")
    cols = liver.any(0) & lung.any(0)
    assert cols.sum() > 5000
    top_liver = np.where(liver.any(0), liver.shape[0] - 1 - np.argmax(liver[::-1], 0), -1)
    bottom_lung = np.where(lung.any(0), np.argmax(lung, 0), 10 ** 6)
    assert np.mean(bottom_lung[cols] > top_liver[cols]) > 0.95, "lung above the liver, not below"


@pytest.mark.slow
def test_organ_sizes_are_adult(ph):
    ml = np.prod(ph.labels.spacing) / 1000.0
    vol = {n: ph.labels.mask(n).sum() * ml for n in ("liver", "spleen", "kidney", "gallbladder")}
    assert 1100 < vol["liver"] < 2000
    assert 80 < vol["spleen"] < 400
    assert 200 < vol["kidney"] < 450        # both kidneys
    assert 15 < vol["gallbladder"] < 80


HU_RANGES = {  # structure: ((arterial lo, hi), (portal lo, hi)), medians
    "liver": ((70, 90), (105, 125)),
    "portal_vein": ((120, 170), (165, 205)),
    "hepatic_vein": ((60, 100), (140, 180)),
    "spleen": ((110, 145), (105, 135)),
    "pancreas": ((110, 145), (85, 115)),
    "pancreatic_mass": ((30, 65), (45, 75)),
    "kidney": ((120, 220), (140, 190)),
    "lung": ((-900, -800), (-900, -800)),
    "gallbladder": ((-5, 35), (-5, 35)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HU_RANGES))
def test_hu_per_structure_and_phase(ph, name):
    m = ph.labels.mask(name)
    for vol, (lo, hi) in zip((ph.ct_arterial, ph.ct_portal), HU_RANGES[name]):
        med = float(np.median(vol.array[m]))
        assert lo <= med <= hi, f"{name} {vol.metadata['phase']}: median {med} HU not in [{lo}, {hi}]"


@pytest.mark.slow
def test_enhancement_pattern_and_noise(ph):
    lab, art, por = ph.labels, ph.ct_arterial.array, ph.ct_portal.array
    core = ndimage.binary_erosion(lab.array == LABELS["artery"], iterations=3)
    aorta_art, aorta_por = np.median(art[core]), np.median(por[core])
    assert aorta_art > 280 and 130 < aorta_por < 200 and aorta_art > aorta_por + 100
    liver = ndimage.binary_erosion(lab.mask("liver"), iterations=3)
    liver_art, liver_por = np.median(art[liver]), np.median(por[liver])
    for les in ph.truth["lesions"]:
        m = ndimage.binary_erosion(lab.mask(les["name"]), iterations=1) if les["diameter_mm"] > 8 \
            else lab.mask(les["name"])
        a, p = np.median(art[m]), np.median(por[m])
        if les["type"] == "net":
            assert a > liver_art + 40, f"{les['name']}: NET must hyperenhance in the arterial phase"
        else:
            assert p < liver_por - 30, f"{les['name']}: adenocarcinoma met must be hypo (portal)"
    # noise: SD of a homogeneous liver patch (no vessel within it) ~ 10-15 HU
    pure = ndimage.binary_erosion(lab.array == LABELS["liver"], iterations=2)
    full = ndimage.uniform_filter(pure.astype(np.float32), size=(4, 8, 8)) > 0.999
    sds = []
    for k, j, i in np.argwhere(full)[::5000][:20]:      # 4x8x8-voxel patches of pure liver
        sds.append(por[k - 2:k + 2, j - 4:j + 4, i - 4:i + 4].std())
    assert len(sds) >= 5
    assert 9 <= np.median(sds) <= 16, np.median(sds)
    # fat and muscle
    body = lab.array == LABELS["body"]
    assert np.sum(body & (por < -60)) > 0.3 * body.sum(), "subcutaneous/visceral fat present"


@pytest.mark.slow
def test_required_lesions_and_measured_diameters(ph):
    les = {l["name"]: l for l in ph.truth["lesions"]}
    got = sorted((l["type"], l["diameter_mm"]) for l in les.values())
    assert got == [("adenocarcinoma", 6.0), ("adenocarcinoma", 9.0), ("adenocarcinoma", 14.0),
                   ("adenocarcinoma", 25.0), ("net", 12.0), ("net", 18.0)]
    ml = np.prod(ph.labels.spacing)
    for name, l in les.items():
        m = ph.labels.mask(name)
        d = (6 * m.sum() * ml / np.pi) ** (1 / 3)
        assert abs(d - l["diameter_mm"]) <= 0.15 * l["diameter_mm"], (name, d)
        assert abs(d - l["diameter_measured_mm"]) < 0.05
        assert np.allclose(_centroid(ph.labels, name), l["centroid_lps"], atol=0.01)
        # not a perfect sphere: the extent differs by direction
        kk, jj, ii = np.nonzero(m)
        assert m.sum() > 50
        assert l["segment"] in {"I", "II", "III", "IVa", "IVb", "V", "VI", "VII", "VIII"}
        # inside the liver: the 2 mm shell around it is mostly liver or vessel
        shell = ndimage.binary_dilation(m, iterations=2) & ~m
        liverish = np.isin(ph.labels.array[shell], [LABELS["liver"], LABELS["portal_vein"],
                                                    LABELS["hepatic_vein"], LABELS["artery"]])
        assert liverish.mean() > (0.6 if "subcapsular" in l["notes"] else 0.97), name
        c = l["contrast_to_liver_hu"]
        assert (c["arterial"] > 40) if l["type"] == "net" else (c["portal"] < -40)
    assert ph.truth["hu_reference"]["liver"] == {"arterial": 80, "portal": 115}
    notes = {n for l in les.values() for n in l["notes"]}
    assert {"subcapsular", "deep", "behind_rib"} <= notes


@pytest.mark.slow
def test_lesion_notes_are_true(ph):
    lab = ph.labels
    bone, lung, bowel = LABELS["bone"], LABELS["lung"], LABELS["bowel"]
    for les in ph.truth["lesions"]:
        c = np.array(les["centroid_lps"])
        if "subcapsular" in les["notes"]:
            m = lab.mask(les["name"])
            near = ndimage.binary_dilation(m, iterations=3) & ~m   # within ~2.4-4.5 mm
            outside = ~np.isin(lab.array[near], [LABELS["liver"], lab.names[les["name"]],
                                                 LABELS["portal_vein"], LABELS["hepatic_vein"],
                                                 LABELS["artery"]])
            assert outside.any(), f"{les['name']}: not within 3 voxels of the liver capsule"
        dirs, length, v, before = _skin_paths(lab, c)
        if "behind_rib" in les["notes"]:
            near = int(np.argmin(length))
            assert np.isfinite(length[near])
            assert np.any((v[near] == bone) & before[near]), \
                f"{les['name']}: the straight line to the nearest skin does not cross bone"
        if "deep" in les["notes"]:
            blocked = (np.isin(v, [bone, lung, bowel]) & before).any(1)
            best = np.min(np.where(blocked, np.inf, length))
            assert best > 120.0, f"{les['name']}: best unobstructed skin window {best} mm"


@pytest.mark.slow
def test_ribs_cover_part_of_the_liver(ph):
    """From the liver centroid, some lateral/anterior lines to the skin cross
    bone and some do not: windows are partly blocked, as in a patient."""
    lab = ph.labels
    c = _centroid(lab, "liver")
    dirs, length, v, before = _skin_paths(lab, c, 2000)
    side = (dirs[:, 0] < -0.3) | (dirs[:, 1] < -0.3)   # towards the right or anterior
    reach = side & np.isfinite(length)
    crosses = (v == LABELS["bone"]) & before
    frac = crosses.any(1)[reach].mean()
    assert 0.15 < frac < 0.9


@pytest.mark.slow
def test_landmarks_sit_on_vessels(ph):
    lm = ph.truth["landmarks"]
    assert len(lm) >= 6
    vessels = np.isin(ph.labels.array, [LABELS["portal_vein"], LABELS["hepatic_vein"],
                                        LABELS["artery"], LABELS["ivc"]])
    for name, p in lm.items():
        i, j, k = np.rint(ph.labels.lps_to_index(p)).astype(int)
        box = vessels[max(k - 2, 0):k + 3, max(j - 4, 0):j + 5, max(i - 4, 0):i + 5]
        assert box.any(), f"landmark {name} at {p} is not on a vessel"


def _digest(ph) -> str:
    h = hashlib.sha256()
    for a in (ph.ct_arterial.array, ph.ct_portal.array, ph.labels.array):
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_same_seed_same_phantom_other_seed_differs():
    sp = (2.4, 2.4, 4.5)   # coarse: fast; the code path is the same as at full resolution
    a, b, c = make_phantom(3, sp), make_phantom(3, sp), make_phantom(4, sp)
    assert _digest(a) == _digest(b)
    assert a.truth == b.truth
    assert _digest(a) != _digest(c)
    assert a.ct_portal.shape_ijk == (147, 127, 45)


@pytest.mark.slow
def test_save_pictures(ph, artifacts_dir):
    from sample_data.case.pictures import save_lesion_pictures, save_overview_picture
    paths = save_lesion_pictures(ph.ct_arterial, ph.ct_portal, ph.labels, ph.truth, artifacts_dir)
    paths.append(save_overview_picture(ph.ct_arterial, ph.ct_portal, ph.labels,
                                       artifacts_dir / "phantom_overview.png"))
    assert len(paths) == 7 and all(p.stat().st_size > 20_000 for p in paths)
