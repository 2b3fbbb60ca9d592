"""Automatic anatomy, part by part, on small synthetic volumes with a known answer.

Each step is checked against a plain reference (scipy's exact EDT for the
morphology in mm, an explicit permutation for the reorientation) or against
the physics it encodes (a homogeneous bright tube is a lumen, a ring of
cortex is bone; aerated lung is not pure gas).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from planner.anatomy.structures import HARD_CLASSES, risk_class_of
from planner.segmentation.bone import cortex_seeds, segment_bone
from planner.segmentation.cartilage import costal_cartilage
from planner.segmentation.gas import air_components
from planner.segmentation.great_vessels import (BRIDGED, MAX_RIM_FRACTION, SEEN_BRIGHT, SEEN_FAT_BOUNDED,
                                                 _rim_fraction, track_tube)
from planner.segmentation.grid import make_work_grid
from planner.segmentation.labelling import FIRST_LESION_VALUE, LABEL_VALUES
from planner.segmentation.lungs import lung_labels
from planner.segmentation.morphology import (close_mm, depth_mm, dilate_mm, distance_to_mm, erode_mm,
                                             fill_holes_2d, fill_small_holes_2d, open_mm)
from planner.segmentation.orient import canonical
from registration.spatial.volume import Volume

SPACING = (0.7, 0.9, 2.5)          # (i, j, k) mm: anisotropic on purpose


def _ball(shape, centre_kji, radius_mm, spacing=SPACING):
    kk, jj, ii = np.indices(shape)
    s = np.asarray(spacing, float)[::-1]
    d = np.sqrt(((kk - centre_kji[0]) * s[0]) ** 2 + ((jj - centre_kji[1]) * s[1]) ** 2 +
                ((ii - centre_kji[2]) * s[2]) ** 2)
    return d <= radius_mm


def test_distances_in_mm_match_scipy_exact_edt():
    rng = np.random.default_rng(3)
    samp = np.asarray(SPACING)[::-1]
    mask = rng.random((12, 30, 28)) > 0.97
    assert np.allclose(distance_to_mm(mask, SPACING), ndimage.distance_transform_edt(~mask, sampling=samp),
                       atol=1e-3)
    inside = rng.random(mask.shape) > 0.2
    assert np.allclose(depth_mm(inside, SPACING), ndimage.distance_transform_edt(inside, sampling=samp),
                       atol=1e-3)


def test_morphology_radius_is_millimetres_not_voxels():
    ball = _ball((21, 61, 61), (10, 30, 30), 12.0)
    samp = np.asarray(SPACING)[::-1]
    assert np.array_equal(dilate_mm(ball, SPACING, 5.0),
                          ndimage.distance_transform_edt(~ball, sampling=samp) <= 5.0)
    assert np.array_equal(erode_mm(ball, SPACING, 5.0, pad=False),
                          ndimage.distance_transform_edt(ball, sampling=samp) > 5.0)
    # a 5 mm dilation of a 12 mm ball reaches 17 mm from the centre along every axis
    grown = dilate_mm(ball, SPACING, 5.0)
    assert grown[10, 30, 30 + int(16.9 / SPACING[0])] and not grown[10, 30, 30 + int(17.6 / SPACING[0]) + 1]
    # an opening of 4 mm cuts a thin bridge between two balls; a closing keeps them apart
    two = _ball((21, 61, 101), (10, 30, 25), 9.0) | _ball((21, 61, 101), (10, 30, 75), 9.0)
    bridged = two.copy()
    bridged[10, 30:32, 25:76] = True
    assert ndimage.label(bridged)[1] == 1 and ndimage.label(open_mm(bridged, SPACING, 4.0))[1] == 2
    assert ndimage.label(close_mm(two, SPACING, 4.0))[1] == 2
    # beyond the image is not background: a slab cut by the volume's top is not eroded there
    slab = np.zeros((10, 20, 20), bool)
    slab[5:] = True
    eroded = erode_mm(slab, SPACING, 4.0)
    assert eroded[-1, 10, 10] and eroded[6:].all() and not eroded[5].any()


def test_hole_filling_per_slice_and_small_holes_only():
    ring = np.zeros((3, 40, 40), bool)
    ring[:, 5:35, 5:35] = True
    ring[:, 10:30, 10:30] = False                     # a 20 x 20 voxel hole
    ring[:, 7:9, 20:22] = False                       # a 2 x 2 voxel hole in the wall
    assert fill_holes_2d(ring)[:, 20, 20].all()
    small = fill_small_holes_2d(ring, 10.0, (1.0, 1.0, 1.0))
    assert small[:, 7, 20].all() and not small[:, 20, 20].any()


def test_reorientation_is_an_exact_round_trip_and_keeps_physical_positions():
    rng = np.random.default_rng(5)
    arr = rng.integers(-1000, 1000, (6, 7, 8)).astype(np.int16)
    direction = np.array([[0, 0, -1], [-1, 0, 0], [0, -1, 0]], float)    # i -> A, j -> I, k -> R
    vol = Volume(arr, (0.5, 0.7, 2.0), (10.0, -20.0, 30.0), direction)
    can, reo = canonical(vol)
    assert can.orientation_letters() == "LPS"
    assert np.array_equal(reo.array_from_canonical(can.array), arr)
    for kji in [(0, 0, 0), (5, 6, 7), (2, 3, 4)]:
        p = vol.index_to_lps(np.array(kji[::-1], float))
        i, j, k = np.rint(can.lps_to_index(p)).astype(int)
        assert can.array[k, j, i] == arr[kji]


def test_working_grid_block_means_and_masks_round_trip():
    rng = np.random.default_rng(4)
    arr = rng.integers(-100, 100, (12, 42, 42)).astype(np.int16)
    vol = Volume(arr, (0.8, 0.8, 1.0), (0, 0, 0))
    grid = make_work_grid(vol)
    assert grid.factors == (2, 3, 3) and np.allclose(grid.spacing, (2.4, 2.4, 2.0))
    assert np.isclose(grid.hu[1, 2, 3], arr[2:4, 6:9, 9:12].mean())          # a block average
    # a block's position is the mean of its voxels' centres
    assert np.allclose(grid.origin, vol.index_to_lps(np.array([1.0, 1.0, 0.5])))
    square = np.zeros(arr.shape, bool)
    square[:, 9:33, 9:33] = True
    back = grid.mask_to_ct(grid.mask_from_ct(square))
    assert (back ^ square).sum() <= 4 * arr.shape[0]           # linear interpolation rounds the 4 corners
    assert np.array_equal(grid.zone_to_ct(grid.mask_from_ct(square)), square)


def test_lumen_is_not_bone_but_a_cortical_ring_is():
    """A homogeneous 300 HU tube 20 mm wide (contrast in the aorta or bowel) against a
    vertebra-like ring of 900 HU cortex with 200 HU marrow: only the ring is bone."""
    shape = (30, 90, 140)
    sp = (0.8, 0.8, 1.5)
    hu = np.full(shape, 40, np.int16)
    rng = np.random.default_rng(1)
    hu += rng.normal(0, 12, shape).astype(np.int16)
    kk, jj, ii = np.indices(shape)
    tube = np.hypot((jj - 45) * 0.8, (ii - 35) * 0.8) <= 10.0
    hu[tube] = 300 + rng.normal(0, 12, tube.sum()).astype(np.int16) + 160     # arterial-phase 460 HU
    r = np.hypot((jj - 45) * 0.8, (ii - 100) * 0.8)
    hu[r <= 16.0] = 200
    hu[(r > 14.0) & (r <= 16.0)] = 900
    patient = np.ones(shape, bool)
    seeds, lumen = cortex_seeds(hu, patient, sp)
    assert lumen[tube].mean() > 0.5 and not seeds[tube].any()
    bone = segment_bone(hu, patient, seeds, np.zeros(shape, bool), lumen, sp)
    assert not bone[tube].any()
    assert bone[r <= 14.0].mean() > 0.95          # marrow inside the ring filled


def test_lung_is_aerated_tissue_and_bowel_gas_is_pure_gas():
    shape = (20, 100, 100)
    sp = (1.0, 1.0, 2.0)
    rng = np.random.default_rng(2)
    hu = np.full(shape, 40.0) + rng.normal(0, 10, shape)
    trunk = np.zeros(shape, bool)
    trunk[:, 5:95, 5:95] = True
    hu[~trunk] = -1000
    lung = _ball(shape, (19, 75, 30), 30.0, sp) & trunk
    hu[lung] = -850 + rng.normal(0, 30, lung.sum())              # parenchyma
    gas = _ball(shape, (6, 30, 60), 12.0, sp)
    hu[gas] = -1000 + rng.normal(0, 10, gas.sum())               # bowel gas
    lab, comps = air_components(hu, trunk, np.zeros(shape, bool), sp)
    ids = lung_labels(lab, comps, sp)
    assert len(comps) == 2 and len(ids) == 1
    called = np.isin(lab, list(ids))
    assert (called & lung).sum() > 0.9 * (lab > 0)[lung].sum() and not (called & gas).any()


def test_tube_tracker_follows_a_disk_and_ignores_an_organ():
    """A 10 mm radius tube running head to foot beside a 'spine' axis, next to a big organ
    of the same brightness: the track is the tube on every slice, not the organ."""
    shape = (30, 120, 120)
    sp = (1.0, 1.0, 2.0)
    bright = np.zeros(shape, bool)
    jj, ii = np.mgrid[0:120, 0:120]
    for k in range(30):
        bright[k] |= np.hypot(jj - 70, ii - (70 + k * 0.3)) <= 10.0
    bright[:, 20:60, 20:70] |= True                               # an organ, 40 x 50 mm
    axis = np.tile([60.0, 90.0], (30, 1))                         # centre i, vertebra front j
    window = ((-10.0, 50.0), (-50.0, 25.0))
    tube = track_tube(bright, axis, window, sp)
    truth = np.zeros(shape, bool)
    for k in range(30):
        truth[k] = np.hypot(jj - 70, ii - (70 + k * 0.3)) <= 10.0
    assert (tube & truth).sum() / truth.sum() > 0.9
    assert not tube[:, 20:60, 20:70].any()


def test_ivc_of_the_liver_hu_is_found_where_fat_bounds_it_and_bridged_through_the_liver():
    """A vein of the liver's HU: a lumen only where fat surrounds it (slices 0-9), no edge
    inside the liver (10-19: the vein mask is the whole organ there), brighter than the liver
    near the heart (20-29). The track holds all three, the middle interpolated and said so."""
    shape = (30, 120, 120)
    sp = (1.0, 1.0, 2.0)
    jj, ii = np.mgrid[0:120, 0:120]
    centre = [(75.0, 60.0 + 0.2 * k) for k in range(30)]
    tube = np.stack([np.hypot(jj - cj, ii - ci) <= 9.0 for cj, ci in centre])
    vein = tube.copy()
    vein[10:20, 40:110, 20:100] = True                       # the liver around it: no edge
    bright = np.zeros(shape, bool)
    bright[20:] = tube[20:]
    axis = np.tile([80.0, 90.0], (30, 1))                     # centre i, vertebra front j
    kinds = np.zeros(30, int)
    out = track_tube(bright, axis, ((-45.0, 0.0), (-40.0, 5.0)), sp, min_radius_mm=6.0,
                     fat_bounded=vein, bridge_mm=40.0, kinds=kinds)
    assert kinds.tolist() == [SEEN_FAT_BOUNDED] * 10 + [BRIDGED] * 10 + [SEEN_BRIGHT] * 10
    for part in (slice(0, 10), slice(10, 20), slice(20, 30)):
        assert (out[part] & tube[part]).sum() >= 0.85 * tube[part].sum()
        assert (out[part] & ~tube[part]).sum() <= 0.25 * tube[part].sum()
    # without the bridge the gap stays empty; with the fat-bounded mask alone nothing is seen
    # inside the organ
    no_bridge = track_tube(bright, axis, ((-45.0, 0.0), (-40.0, 5.0)), sp, min_radius_mm=6.0,
                           fat_bounded=vein)
    assert not no_bridge[10:20].any() and no_bridge[:10].any()


def test_a_lobe_of_the_liver_hu_is_not_a_vein():
    """The rim test: a disk surrounded by fat vs the same disk as a lobe of an organ."""
    sp = (1.0, 1.0, 2.0)
    jj, ii = np.mgrid[0:80, 0:80]
    disk = np.hypot(jj - 40, ii - 40) <= 9.0
    assert _rim_fraction(disk, (40, 40, 9.0), sp) == 0.0
    lobe = disk | (ii <= 40)                                 # half of its ring is organ
    assert _rim_fraction(lobe, (40, 40, 9.0), sp) > MAX_RIM_FRACTION


def test_cartilage_plate_found_and_the_heart_front_in_the_wall_is_not():
    """Working grid of 2.4 mm blocks: a 12 mm cartilage plate hanging from a rib (the demo's
    xiphoid is this thick) is cartilage; the front of a 60 mm thick organ that reaches into the
    wall and touches a rib there (the heart on crlm-1004) is not, though its part within the
    wall's depth is only 10 mm thick."""
    sp = (2.4, 2.4, 1.5)
    shape = (60, 100, 100)
    kk, jj, ii = np.mgrid[0:shape[0], 0:shape[1], 0:shape[2]]
    skin = np.where(jj >= 5, (jj - 5) * sp[1], 0.0)         # the body's front at j = 5 (+j posterior)
    hu = np.where(skin > 0, 50.0, -1000.0)                  # muscle-like body
    bone = np.zeros(shape, bool)
    bone[10:50, 9:11, 10:26] = True                          # a rib 10-15 mm under the skin
    plate = (kk >= 15) & (kk < 45) & (jj >= 8) & (jj < 13) & (ii >= 26) & (ii < 45)
    hu[plate] = 130.0
    ball = np.hypot(np.hypot((kk - 30) * sp[2], (jj - 5 - 65 / sp[1]) * sp[1]), (ii - 75) * sp[0]) <= 30.0
    hu[ball] = 130.0                                         # its front 35 mm under the skin
    bone[20:40, 18:20, 65:85] = True                         # a rib on it
    hu[bone] = 800.0
    cart = costal_cartilage(hu, skin, bone, np.zeros(shape, bool), 50.0, sp)
    assert (cart & plate).sum() >= 0.8 * plate.sum()
    front = ball & (skin <= 45.0)
    assert (cart & ball).sum() <= 0.05 * front.sum()


def test_label_values_leave_lesions_free_and_names_are_risk_structures():
    assert max(LABEL_VALUES.values()) < FIRST_LESION_VALUE == 21
    assert len(set(LABEL_VALUES.values())) == len(LABEL_VALUES)
    expected = {"body": "body", "liver": "liver", "lung": "lung", "bone": "bone",
                "portal_vein": "vessel", "hepatic_vein": "vessel", "aorta": "vessel"}
    for name, cls in expected.items():
        assert risk_class_of(name) == cls, name


def test_every_automatic_name_has_its_risk_class():
    assert risk_class_of("ivc") == "vessel"
    assert risk_class_of("heart") == "heart" and "heart" in HARD_CLASSES
    assert all(risk_class_of(name) is not None for name in LABEL_VALUES)
    assert risk_class_of("liver_vessel") == "vessel"
    assert risk_class_of("bowel_gas") == "bowel"


def test_ivc_placed_in_the_livers_posterior_medial_groove_when_no_lumen_is_seen():
    """An IVC of the liver's HU wrapped by the liver in front and on its lateral side, the
    dark crus behind and medial of it, the aorta further medial: nothing separates it from the
    liver, so the tracker sees no lumen; the groove placement puts the IVC's disk there (within
    5 mm of its centre) on every slice, and never on the far side of the liver."""
    from planner.segmentation.great_vessels import PLACED_IN_GROOVE, track_groove
    shape = (12, 140, 140)
    sp = (1.0, 1.0, 2.0)
    jj, ii = np.mgrid[0:140, 0:140]
    trunk = np.ones(shape, bool)
    tissue = np.zeros(shape, bool)
    tissue[:, 20:100, 0:75] = True            # liver, its posterior-medial corner at (100, 75)
    ivc_centre = (90.0, 65.0)                  # the IVC in that corner, radius 10 mm
    aorta = np.zeros(shape, bool)
    aorta[:] = np.hypot(jj - 92, ii - 103) <= 11.0
    axis = np.tile([95.0, 104.0], (12, 1))     # vertebral body: centre i 95, front j 104
    kinds = np.zeros(12, int)
    out = track_groove(tissue, trunk, axis, aorta, sp, kinds=kinds)
    assert (kinds == PLACED_IN_GROOVE).all()
    for k in range(12):
        cj, ci = [float(np.mean(x)) for x in np.nonzero(out[k])]
        assert np.hypot(cj - ivc_centre[0], ci - ivc_centre[1]) <= 5.0
    assert not out[:, :60].any()               # not at the liver's anterior edge
    assert not (out & ~tissue).any()


def test_placed_ivc_rests_its_back_wall_on_the_dark_tissue_whatever_the_anchor():
    """The liver of the IVC's HU in front and lateral of it, the crus medial (i >= 72) and the
    retrocaval fat behind it (j >= 98, i >= 45), the liver's bare area further lateral reaching
    further back. With the aorta (the anchor) level with the IVC or 12 mm in front of it, and
    7 mm further medial or lateral, the oval's back wall lies on the fat (the image's evidence),
    not where the anchor pulls it (before the back-wall score: 10 mm in front of the fat)."""
    from planner.segmentation.great_vessels import track_groove
    shape = (8, 140, 140)
    sp = (1.0, 1.0, 2.0)
    jj, ii = np.mgrid[0:140, 0:140]
    trunk = np.ones(shape, bool)
    tissue = np.zeros(shape, bool)
    tissue[:, 20:115, 0:72] = True
    tissue[:, 98:, 45:] = False
    axis = np.tile([95.0, 112.0], (8, 1))     # vertebral body: centre i 95, front j 112
    for aorta_j, aorta_i in [(92, 103), (80, 96), (80, 103), (80, 110)]:
        aorta = np.zeros(shape, bool)
        aorta[:] = np.hypot(jj - aorta_j, ii - aorta_i) <= 11.0
        out = track_groove(tissue, trunk, axis, aorta, sp)
        for k in range(8):
            j, i = np.nonzero(out[k])
            assert 95 <= j.max() <= 97, (aorta_j, aorta_i, k, j.max())     # on the fat's edge
            assert i.min() >= 45 and i.max() <= 71


def test_only_the_skeleton_stays_bone():
    """A rib (dense cortex, lighter marrow) in the body wall stays bone; a blob of oral contrast
    (densest in its middle) goes to the filled lumens; a small dense focus deep in the abdomen
    that never reaches the body wall is dropped; anything touching the spine's zone stays."""
    from planner.segmentation.bone import skeleton_only
    sp = (1.0, 1.0, 2.0)
    shape = (10, 120, 120)
    kk, jj, ii = np.mgrid[0:10, 0:120, 0:120]
    hu = np.full(shape, 40.0)
    outer = np.zeros(shape, bool)
    outer[:, :20] = True                                     # the body wall's outer half
    rib_d = np.hypot(jj - 12, ii - 30)
    rib = rib_d <= 6
    hu[rib] = np.where(rib_d[rib] >= 4.5, 800.0, 180.0)     # cortex ring, marrow below 200 HU
    blob_d = np.sqrt((jj - 60.0) ** 2 + (ii - 60.0) ** 2 + ((kk - 5.0) * 2.0) ** 2)
    blob = blob_d <= 8
    hu[blob] = 700.0 - 40.0 * blob_d[blob]                  # contrast: densest inside
    focus = np.hypot(jj - 60, ii - 100) <= 2
    hu[focus] = 600.0
    vertebra = np.hypot(jj - 100, ii - 60) <= 10
    hu[vertebra] = 450.0 - 10.0 * np.hypot(jj - 100, ii - 60)[vertebra]   # dense marrow: exempt
    spine_zone = np.hypot(jj - 100, ii - 60) <= 12
    bone = rib | blob | focus | vertebra
    kept, filled = skeleton_only(bone, hu, spine_zone, outer, sp)
    assert (kept & rib).sum() == rib.sum() and (kept & vertebra).sum() == vertebra.sum()
    assert not (kept & blob).any() and (filled & blob).sum() == blob.sum()
    assert not (kept & focus).any() and not (filled & focus).any()
