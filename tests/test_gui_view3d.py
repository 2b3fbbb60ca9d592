"""3D view: surfaces from the label map (built off the GUI thread) in LPS, US plane, trajectories.

Needs a real OpenGL context (pyvistaqt QtInteractor): run under xvfb-run.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from gui.views.view3d import build_surfaces, group_of, plane_corners
from registration.spatial.volume import LabelMap

pytestmark = pytest.mark.gui


def _labels(direction=None):
    """Liver slab, a 6 mm-radius lesion at LPS (10, -5, 4), a 'rib' bar; 1 mm voxels."""
    shape = (40, 50, 60)
    origin = np.array([-30.0, -25.0, -20.0])
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2], kji[1], kji[0]], -1) + origin
    lab = np.zeros(shape, np.uint8)
    lab[(np.abs(lps[..., 0]) < 25) & (np.abs(lps[..., 1]) < 20) & (np.abs(lps[..., 2]) < 15)] = 1
    lab[np.linalg.norm(lps - [10.0, -5.0, 4.0], axis=-1) <= 6.0] = 2
    lab[(lps[..., 1] < -22) & (np.abs(lps[..., 2]) < 3)] = 3
    return LabelMap(lab, (1, 1, 1), origin, names={"liver": 1, "lesion_1": 2, "rib_right_7": 3, "stomach": 4})


def test_groups():
    assert [group_of(n) for n in ("liver", "lesion_12", "portal_vein", "inferior_vena_cava", "rib_left_6",
                                  "vertebrae_T12", "stomach")] == \
        ["liver", "lesions", "vessels", "vessels", "bone", "bone", None]


def test_surfaces_are_in_lps_where_the_labels_are():
    surfaces = build_surfaces(_labels())
    assert sorted(surfaces) == ["bone", "lesions", "liver"]
    pts = np.asarray(surfaces["lesions"].points)
    assert np.allclose(pts.mean(axis=0), [10.0, -5.0, 4.0], atol=0.5)
    r = np.linalg.norm(pts - [10.0, -5.0, 4.0], axis=1)
    assert 5.0 < r.mean() < 7.0
    lo, hi = surfaces["liver"].bounds[::2], surfaces["liver"].bounds[1::2]
    assert np.allclose(lo, [-24.5, -19.5, -14.5], atol=0.6) and np.allclose(hi, [24.5, 19.5, 14.5], atol=0.6)


def test_cancelled_build_stops():
    from registration.spatial.errors import CancelledError
    calls = []
    with pytest.raises(CancelledError):
        build_surfaces(_labels(), progress=lambda f, m: calls.append(m) or False)
    assert len(calls) == 1


def test_plane_corners():
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 0.5
    m[:3, 3] = [1, 2, 3]
    c = plane_corners(m, (11, 21))
    assert np.allclose(c, [[1, 2, 3], [11, 2, 3], [11, 7, 3], [1, 7, 3]])


@pytest.mark.skipif(os.environ.get("QT_QPA_PLATFORM", "") == "offscreen" or not os.environ.get("DISPLAY"),
                    reason="QtInteractor needs an X server (run under xvfb-run)")
def test_view3d_widget(qtbot, artifacts_dir):
    from gui.views.view3d import View3D
    v = View3D(min_render_interval_ms=0)
    qtbot.addWidget(v)
    v.resize(500, 400)
    v.show()
    qtbot.waitExposed(v)
    v.set_labels(_labels())
    qtbot.waitUntil(lambda: bool(v.surfaces), timeout=20000)
    assert set(v._actors) == {"bone", "lesions", "liver"}
    assert v.status.text() == "3D: bone, lesions, liver"
    m = np.eye(4)
    m[0, 0] = m[1, 1] = 0.3
    m[:3, 3] = [-20, -20, 4]
    v.set_us_plane(m, (100, 150))
    assert v._plane is None                   # deferred: nothing rendered per frame
    v.flush_plane()
    assert np.allclose(np.asarray(v._plane.points)[2], [-20 + 0.3 * 149, -20 + 0.3 * 99, 4])
    v.set_trajectories([((10.0, -40.0, 20.0), (10.0, -5.0, 4.0))])
    assert len(v._traj_actors) == 1
    v._render_now()
    v.grab().save(str(artifacts_dir / "gui_view3d.png"))
    v.close_renderer()


@pytest.mark.skipif(os.environ.get("QT_QPA_PLATFORM", "") == "offscreen" or not os.environ.get("DISPLAY"),
                    reason="QtInteractor needs an X server (run under xvfb-run)")
def test_3d_view_lives_in_its_own_window(qtbot):
    """A QOpenGLWidget inside the main window makes Qt composite the whole window through
    (software) OpenGL on every US frame: keep the 3D view a separate top-level window."""
    from PyQt5.QtWidgets import QOpenGLWidget
    from gui.window.main_window import MainWindow
    w = MainWindow(enable_3d=True)
    qtbot.addWidget(w)
    assert w.view3d_dock.isFloating()
    gl = w.view3d.findChildren(QOpenGLWidget) or [w.view3d.plotter]
    assert all(g.window() is not w for g in gl)
    w.close()
