"""Anatomy: risk classes from names, CT-derived structures, distance maps in mm (anisotropic)."""
import numpy as np
import pytest
from scipy import ndimage

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume
from planner.anatomy.derived import large_vessels
from planner.anatomy.structures import build_anatomy, distance_map_mm, risk_class_of


@pytest.mark.parametrize("name,cls", [
    ("liver", "liver"), ("lesion_3", "lesion"), ("portal_vein", "vessel"), ("hepatic_vein", "vessel"),
    ("artery", "vessel"), ("aorta", "vessel"), ("inferior_vena_cava", "vessel"),
    ("portal_vein_and_splenic_vein", "vessel"), ("rib_left_7", "bone"), ("vertebrae_T12", "bone"),
    ("costal_cartilages", "bone"), ("bone", "bone"), ("lung_lower_lobe_right", "lung"), ("lung", "lung"),
    ("gallbladder", "gallbladder"), ("small_bowel", "bowel"), ("colon", "bowel"), ("stomach", "bowel"),
    ("kidney_right", "kidney"), ("heart", "heart"), ("spleen", "spleen"), ("pancreatic_mass", "pancreas"),
    ("body", "body"), ("thyroid_gland", None), ("ivc_filter_xyz", None),
    # names ctus segment writes (issue 13) and TotalSegmentator's: a vessel or gas the automatic
    # segmentation found must be a risk structure, not an unclassified label
    ("liver_vessel", "vessel"), ("hepatic_vessel", "vessel"), ("ivc", "vessel"), ("bowel_gas", "bowel"),
    ("spinal_canal", "bone"), ("spinal_cord", "bone"),
])
def test_risk_class_of(name, cls):
    assert risk_class_of(name) == cls


def test_distance_map_uses_spacing_in_kji_order():
    """A point structure on an anisotropic grid: distances follow (i, j, k) spacing, not index units."""
    mask = np.zeros((11, 21, 31), bool)        # [k, j, i]
    mask[5, 10, 15] = True
    spacing = (0.5, 1.0, 3.0)                  # (i, j, k) mm
    d = distance_map_mm(mask, spacing)
    assert d[5, 10, 15 + 4] == pytest.approx(4 * 0.5)   # along i
    assert d[5, 10 + 4, 15] == pytest.approx(4 * 1.0)   # along j
    assert d[5 + 2, 10, 15] == pytest.approx(2 * 3.0)   # along k
    # against a brute-force Euclidean distance in mm
    kk, jj, ii = np.indices(mask.shape)
    ref = np.sqrt(((ii - 15) * 0.5) ** 2 + ((jj - 10) * 1.0) ** 2 + ((kk - 5) * 3.0) ** 2)
    assert np.allclose(d, ref, atol=1e-4)


def _tube(shape, spacing, radius_mm, centre_ij):
    kk, jj, ii = np.indices(shape)
    x = (ii - centre_ij[0]) * spacing[0]
    y = (jj - centre_ij[1]) * spacing[1]
    return x ** 2 + y ** 2 <= radius_mm ** 2


def test_large_vessels_keep_thick_drop_thin_at_fine_spacing():
    spacing = (0.25, 0.25, 0.5)
    shape = (10, 80, 120)
    thick = _tube(shape, spacing, 3.0, (30, 40))    # 6 mm vessel
    thin = _tube(shape, spacing, 0.6, (90, 40))     # 1.2 mm vessel
    big = large_vessels(thick | thin, spacing)
    assert big[thick].mean() > 0.95
    assert not big[thin].any()


def test_large_vessels_are_conservative_at_coarse_spacing():
    spacing = (2.0, 2.0, 2.0)
    shape = (6, 30, 30)
    thin = np.zeros(shape, bool)
    thin[:, 15, 15] = True                   # one voxel wide: cannot be resolved below 3 mm
    assert large_vessels(thin, spacing)[thin].all()


def _small_ct():
    """CT 60x60x20 at 2 mm with a body disc, a liver, a rib and gas; label map with liver only."""
    k, j, i = np.indices((20, 60, 60))
    x, y = (i - 30) * 2.0, (j - 30) * 2.0
    hu = np.full((20, 60, 60), -1000, np.int16)
    body = x ** 2 + y ** 2 < 50 ** 2
    hu[body] = 40
    liver = ((x + 15) ** 2 + y ** 2 < 25 ** 2) & body
    hu[liver] = 60
    rib = ((x + 40) ** 2 + (y + 10) ** 2 < 5 ** 2) & body
    hu[rib] = 800
    gas = ((x - 25) ** 2 + (y - 5) ** 2 < 4 ** 2) & (k > 4) & (k < 10)
    hu[gas] = -900
    lab = np.zeros_like(hu)
    lab[liver] = 5
    ct = Volume(hu, (2.0, 2.0, 2.0), (-60, -60, 0))
    return ct, LabelMap(lab, ct.spacing, ct.origin, names={"liver": 5}), rib, gas, body


def test_missing_structures_are_derived_from_ct_and_marked():
    ct, lm, rib, gas, body = _small_ct()
    an = build_anatomy(ct, lm)
    assert an.derived["body"] and an.derived["bone"] and an.derived["bowel"]
    assert not an.derived["liver"]
    # bone = bright voxels not claimed by a soft-tissue label (the rib touches the liver label)
    assert np.array_equal(an.masks["bone"], rib & (lm.array == 0))
    assert an.masks["bowel"][gas].all() and not an.masks["bowel"][~gas].any()
    # body: filled, gas inside it is still body
    assert an.masks["body"][gas].all()
    assert (an.masks["body"] == body).mean() > 0.99
    # the hard distance map is 0 on the rib and grows in mm
    assert np.all(an.distance_mm["hard"][rib & (lm.array == 0)] == 0)
    assert "no vessel labels: vessel clearance cannot be checked" in an.notes


def test_skin_partial_volume_is_not_called_gas():
    ct, lm, rib, gas, body = _small_ct()
    edge = body & ~ndimage.binary_erosion(body, np.ones((1, 3, 3), bool))
    ct.array[edge] = -450        # partial volume at the skin
    an = build_anatomy(ct, lm)
    assert not an.masks.get("bowel", np.zeros_like(edge))[edge].any()


def test_label_map_without_liver_is_bad_input():
    ct, lm, *_ = _small_ct()
    bad = LabelMap(lm.array, lm.spacing, lm.origin, names={"spleen": 5})
    with pytest.raises(InputError, match="no liver label"):
        build_anatomy(ct, bad, labels_path="labels.nrrd")


def test_label_map_on_another_grid_is_bad_input():
    ct, lm, *_ = _small_ct()
    moved = LabelMap(lm.array, lm.spacing, (0, 0, 0), names=lm.names)
    with pytest.raises(InputError, match="not on the CT grid"):
        build_anatomy(ct, moved, labels_path="labels.nrrd")


@pytest.mark.slow
def test_real_ct_ribs_and_vessels(shared_data):
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    d = shared_data("ct", "abdomen-20slice")
    ct = load_ct(d / "dicom")
    lm = load_labels(d / "labels.nii.gz", d / "label_names.txt", reference=ct)
    an = build_anatomy(ct, lm)
    assert "rib_right_8" in an.sources["bone"]
    assert set(an.sources["vessel"]) >= {"aorta", "inferior_vena_cava"}
    vox_ml = float(np.prod(ct.spacing)) / 1000
    # aorta and IVC are far above 3 mm: nearly all vessel voxels are "large"
    assert an.masks["vessel_large"].sum() > 0.9 * an.masks["vessel"].sum()
    assert 500 < an.masks["liver"].sum() * vox_ml < 900
