"""The needle relative to an image plane (gui/views/needle_geometry.py) on exact geometry."""
import numpy as np

from _needle_helpers import IMAGE_TO_CT
from gui.views.needle_geometry import needle_line, plane_crossing, runs, to_image
from planner.guidance.guidance_state import GuidanceState


def state(tip, d, end):
    return GuidanceState(0.0, 0.0, 0.0, True, tip_ct=np.asarray(tip, float), direction_ct=np.asarray(d, float),
                         projected_end_ct=np.asarray(end, float))


def test_points_map_to_pixels_and_signed_plane_distance():
    px, dist = to_image(np.array([[-20.0, 0.0, 29.0], [-5.0, 2.0, 0.0]]), IMAGE_TO_CT)
    assert np.allclose(px, [[0, 0], [30, 58]]) and np.allclose(dist, [0.0, 2.0])


def test_crossing_of_an_oblique_needle_and_none_for_a_parallel_one():
    d = np.array([0.0, -1.0, -1.0]) / np.sqrt(2)              # 45 deg through the plane y = 0
    tip = np.array([-5.0, -4.0, 10.0])                         # 4 mm in front of it: crossing 4*sqrt(2) behind
    line = needle_line(state(tip, d, tip + 20 * d))
    (col, row), s = plane_crossing(line, IMAGE_TO_CT)
    assert np.isclose(s, -4 * np.sqrt(2)) and np.allclose([col, row], [30, 2 * (29 - 14)])
    tip2 = np.array([-5.0, 4.0, 10.0])                         # 4 mm behind it: the projected path crosses
    (col, row), s = plane_crossing(needle_line(state(tip2, d, tip2 + 20 * d)), IMAGE_TO_CT)
    assert np.isclose(s, 4 * np.sqrt(2)) and np.allclose([col, row], [30, 2 * (29 - 6)])
    assert plane_crossing(needle_line(state(tip2, d, tip2 + 2 * d)), IMAGE_TO_CT) is None    # path too short
    assert plane_crossing(needle_line(state([-5, 2, 10], [0, 0, -1], [-5, 2, 0])), IMAGE_TO_CT) is None
    assert needle_line(GuidanceState(0.0, 0.0, 0.0, False)) is None


def test_runs():
    assert runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)] and runs(np.zeros(3, bool)) == []
