"""Probe indentation into the CT's body outline (the near-probe deformation prior's switch):
known geometry, a face pressed in, resting on the skin, lifted off, and no outline to measure."""
from __future__ import annotations

import numpy as np
import pytest

from registration.align.deformation_error import ResidualDeformation, near_probe_mm
from registration.align.image_features import lc2_intensity_volume
from registration.align.imaged_region import ImagedRegion
from registration.align.probe_contact import BODY_HU, face_points, frame_indentations_mm, indentation_mm
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import Volume

SKIN_Y_MM = 30.0   # the body (0 HU) fills y >= 30 mm (LPS: posterior of the skin), air in front


def _ct(skin_y=SKIN_Y_MM, air=-1000.0):
    """A 1 mm CT, 100 mm cube: soft tissue behind the skin plane y = skin_y, air in front."""
    a = np.full((100, 100, 100), air, np.float32)
    a[:, int(skin_y):, :] = 0.0
    return Volume(a, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0))


def _region(face_y):
    """Three frames (0.5 mm pixels, 80 x 240) whose beam (image +row) is +y, face row 0 at y = face_y,
    the fan a trapezoid whose top row is row 10 (so the face is the fan's top, not the image's)."""
    mask = np.zeros((240, 80), bool)
    for r in range(10, 240):
        half = 10 + (r - 10) * 30 // 230
        mask[r, 40 - half:40 + half] = True
    mats = []
    for k in range(3):
        m = np.diag([0.5, 0.5, 1.0, 1.0])
        m[:3, 3] = [30.0, face_y - 5.0, 40.0 + 2.0 * k]   # row 10 (5 mm) is the face
        mats.append(m)
    return ImagedRegion(np.array(mats), mask)


def test_face_points_are_the_fan_tops_middle_and_the_beam_points_into_the_body():
    pts, beam = face_points(_region(32.0), np.eye(4))
    assert pts[:, 1] == pytest.approx(32.0) and pts[:, 0] == pytest.approx(50.0, abs=0.5)
    assert beam == pytest.approx(np.tile([0.0, 1.0, 0.0], (3, 1)))


@pytest.mark.parametrize("face_y, expected", [(34.0, 4.0), (31.5, 1.5), (SKIN_Y_MM, 0.0), (27.0, -3.0)])
def test_indentation_is_the_faces_depth_inside_the_body_outline(face_y, expected):
    # the outline (-400 HU, linear between voxel centres) lies 0.6 mm in front of the first body voxel
    outline = SKIN_Y_MM - 1.0 + (-400.0 + 1000.0) / 1000.0
    got = indentation_mm(_ct(), _region(face_y), np.eye(4))
    assert got == pytest.approx(face_y - outline, abs=0.3)
    assert got == pytest.approx(expected, abs=0.75)


def test_the_pose_carries_the_faces():
    """A registration 2 mm deeper along the beam reads 2 mm more indentation."""
    base = indentation_mm(_ct(), _region(31.0), np.eye(4))
    moved = indentation_mm(_ct(), _region(31.0), rigid_matrix([0, 0, 0, 0, 2.0, 0]))
    assert moved - base == pytest.approx(2.0, abs=0.26)


def test_no_outline_within_reach_is_unknown_and_the_prior_stays_on():
    assert indentation_mm(_ct(air=50.0), _region(34.0), np.eye(4)) is None      # all body: no air to reach
    assert np.isnan(frame_indentations_mm(_ct(skin_y=99.0), _region(10.0), np.eye(4))).all()  # air all along
    assert indentation_mm(None, _region(34.0), np.eye(4)) is None
    assert BODY_HU > -1000.0
    unknown = ResidualDeformation(0.0, 0.0, [], _region(34.0), np.eye(4), indentation_mm=None)
    assert unknown.near_probe_mm(10.0) == pytest.approx(near_probe_mm(10.0)) and near_probe_mm(10.0) > 0


def test_a_resting_probe_adds_no_near_probe_error_and_a_pressed_one_does():
    region = _region(SKIN_Y_MM)
    resting = ResidualDeformation(0.0, 0.0, [], region, np.eye(4),
                                  indentation_mm=indentation_mm(_ct(), region, np.eye(4)))
    pressed_region = _region(SKIN_Y_MM + 4.0)
    pressed = ResidualDeformation(0.0, 0.0, [], pressed_region, np.eye(4),
                                  indentation_mm=indentation_mm(_ct(), pressed_region, np.eye(4)))
    below = [[50.0, SKIN_Y_MM + 20.0, 42.0]]
    assert resting.error_mm(0.0, resting.depth_mm(below[0])) == pytest.approx(0.0, abs=1e-9)
    assert pressed.error_mm(0.0, pressed.depth_mm(below[0])) == pytest.approx(near_probe_mm(16.0), abs=0.05)


def test_an_mr_reads_no_outline_so_the_prior_stays_on():
    """The MR the pipeline registers is mapped onto -100..500: its air (0 signal) is no outline."""
    ct = _ct()
    mr = Volume(np.where(ct.array > -500, 400.0, 0.0).astype(np.float32), spacing=(1.0, 1.0, 1.0))
    assert indentation_mm(mr, _region(SKIN_Y_MM), np.eye(4)) is None  # raw MR: no "HU" below -400 either
    assert indentation_mm(lc2_intensity_volume(mr, "MR"), _region(SKIN_Y_MM), np.eye(4)) is None


@pytest.mark.parametrize("face_y, verdict", [(SKIN_Y_MM, "good"), (SKIN_Y_MM + 4.0, "good"),
                                             (SKIN_Y_MM - 1.8, "check"), (SKIN_Y_MM - 4.0, "poor")])
def test_a_pose_with_the_probe_off_the_skin_is_not_trusted(face_y, verdict):
    """A probe touches the skin: a registered pose that lifts the faces 1.5 mm or more off the CT's
    body outline is at best check, 3 mm or more poor, with the reason; on the skin or pressed in it
    changes nothing. The faces are measured at the pose the assessment judges."""
    from registration.align.pose_uncertainty import LaplaceCovariance
    from registration.align.registration_result import RegistrationResult, StartResult
    from registration.align.uncertainty import assess
    region = _region(face_y)
    res = RegistrationResult(np.eye(4), "lc2", 0.2, 0.4, 10, 0.1, np.zeros(3),
                             [StartResult(np.zeros(6), np.eye(4), 0.2, v, 5) for v in (0.40, 0.399, 0.398)])
    res.init_reference_to_ct = np.eye(4)
    deformation = ResidualDeformation(0.0, 0.0, [], region, np.eye(4),
                                      indentation_mm=indentation_mm(_ct(), region, np.eye(4)))
    a = assess(res, {"t": {"point": [50.0, face_y + 60.0, 42.0]}}, hessian=LaplaceCovariance(np.eye(6) * 0.01, True),
               deformation=deformation)
    assert a.verdict == verdict, a.reasons
    off_skin = [w for w in a.target("t").why if "outside the CT's skin" in w]
    assert bool(off_skin) == (verdict != "good")


def test_the_face_centre_is_the_convex_arcs_middle_even_when_the_mask_is_cut_on_one_side():
    """A fan mask detected from the frames can miss a side (persistent shadows: the plain simulator's
    sweeps lost up to 190 of the left columns). The face centre stays the arc's middle (the convex
    probe's face, column 319.5, row 21.8), not the middle of the mask's columns, which lay on the arc's
    side 7 mm above the face (a correct result then read 10.8 mm off the skin: poor)."""
    from registration.align.probe_contact import face_column
    from sample_data.simulator.probe import ConvexProbe
    probe = ConvexProbe()
    face_col, face_row = (probe.probe_to_image @ np.array([0.0, 0.0, 0.0, 1.0]))[:2]
    full = probe.fan_mask
    for cut in (0, 150, 200):
        mask = full.copy()
        mask[:, :cut] = False
        region = ImagedRegion(np.eye(4)[None], mask)
        cols, top = region.fan_top()
        i = face_column(cols, top, mask)
        assert abs(cols[i] - face_col) <= 2 and abs(top[i] - face_row) <= 1, (cut, cols[i], top[i])
    # a linear array's flat top: its middle
    lin = np.zeros((100, 80), bool)
    lin[5:, 10:70] = True
    cols, top = ImagedRegion(np.eye(4)[None], lin).fan_top()
    assert cols[face_column(cols, top, lin)] in (39, 40)
