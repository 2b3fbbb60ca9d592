"""3D view: surfaces from the label map (built off the GUI thread) in LPS, US plane, trajectories.

Needs a real OpenGL context (pyvistaqt QtInteractor): run under xvfb-run.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt5.QtGui import QMouseEvent, QWheelEvent
from PyQt5.QtWidgets import QApplication

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


def test_thick_slices_are_all_kept_for_surfaces():
    """A clinical CT grid (0.8 mm pixels, 5 mm slices): in-plane coarsened, every slice kept. A
    bone one slice thick (a rib cut across) on an odd slice still gets its surface (one step for
    all axes took every other slice here and lost it)."""
    from gui.views.view3d_scene import bone_from_ct, surface_grid
    from registration.spatial.volume import Volume
    assert [list(a) for a in surface_grid((41, 512, 512), (0.8, 0.8, 5.0))] == [[3, 3, 1], [1, 1, 2]]
    assert [list(a) for a in surface_grid((40, 50, 60), (1.0, 1.0, 1.0))] == [[1, 1, 1], [1, 1, 1]]
    shape = (41, 400, 400)
    arr = np.full(shape, 40, np.int16)
    arr[21, 150:250, 100:300] = 700                 # a 5 mm plate of bone on slice 21
    ct = Volume(arr, (0.8, 0.8, 5.0), (-160.0, -160.0, -100.0))
    surf = build_surfaces(bone_from_ct(ct))["bone"]
    z = np.asarray(surf.points)[:, 2]
    assert abs(z.mean() - (-100.0 + 21 * 5.0)) < 1.0
    x = np.asarray(surf.points)[:, 0]
    assert x.min() < -160.0 + 100 * 0.8 + 3 and x.max() > -160.0 + 300 * 0.8 - 3


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


needs_x = pytest.mark.skipif(os.environ.get("QT_QPA_PLATFORM", "") == "offscreen" or not os.environ.get("DISPLAY"),
                             reason="VTK's off-screen window needs an X server here (run under xvfb-run)")


def _on_screen(v, lps):
    """Display (x, y) of an LPS point in the rendered picture (row 0 at the top)."""
    ren = v.plotter.renderer
    ren.SetWorldPoint(*lps, 1.0)
    ren.WorldToDisplay()
    x, y, _ = ren.GetDisplayPoint()
    return x, v.rendered.shape[0] - 1 - y


def _path_pixels(v):
    img = v.rendered.astype(int)
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return (g > 120) & (b > 120) & (r < g - 60) & (np.abs(g - b) < 90)      # cyan


@needs_x
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
    assert len(v._traj_actors) == 3 and len(v._ghost_actors) == 3    # tube, target, entry (+ ghosts)
    v._render_now()
    assert v.rendered.shape == (400, 500, 3)
    v.grab().save(str(artifacts_dir / "gui_view3d.png"))
    # The mouse moves the camera: left-drag rotates about the focal point, the wheel zooms.
    cam = v.plotter.camera
    pos0, focal0 = np.array(cam.position), np.array(cam.focal_point)
    qtbot.mousePress(v, Qt.LeftButton, pos=QPoint(250, 200))
    QApplication.sendEvent(v, QMouseEvent(QEvent.MouseMove, QPointF(300, 200), Qt.NoButton, Qt.LeftButton,
                                          Qt.NoModifier))
    qtbot.mouseRelease(v, Qt.LeftButton, pos=QPoint(300, 200))
    pos1 = np.array(cam.position)
    assert np.allclose(cam.focal_point, focal0)
    assert np.linalg.norm(pos1 - focal0) == pytest.approx(np.linalg.norm(pos0 - focal0))
    angle = np.degrees(np.arccos(np.clip((pos0 - focal0) @ (pos1 - focal0) / np.sum((pos0 - focal0) ** 2), -1, 1)))
    assert angle == pytest.approx(20.0, abs=0.5)                  # 50 px x 0.4 deg
    angle0 = cam.view_angle
    QApplication.sendEvent(v, QWheelEvent(QPointF(250, 200), QPointF(250, 200), QPoint(0, 0), QPoint(0, 120),
                                          Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False))
    assert cam.view_angle < angle0                                # zoomed in
    v.close_renderer()


@needs_x
def test_path_is_prominent_and_seen_through_bone(qtbot, artifacts_dir):
    """The planned path is drawn over an opaque rib in front of it (ghost layer), thick, and the
    camera is fitted to it: the target lies in the middle part of the picture."""
    from gui.views.view3d import View3D
    lab = _labels()
    # A thick opaque "rib" slab right in front of the path (anterior of it, covering it).
    kji = np.indices(lab.array.shape).astype(float)
    lps = np.stack([kji[2], kji[1], kji[0]], -1) + lab.origin
    arr = lab.array.copy()
    arr[(lps[..., 1] < -12) & (lps[..., 1] > -18) & (np.abs(lps[..., 2]) < 14)] = 3
    lab = lab.with_array(arr)
    v = View3D(min_render_interval_ms=0)
    qtbot.addWidget(v)
    v.resize(360, 300)
    v.show()
    qtbot.waitExposed(v)
    v.set_labels(lab)
    qtbot.waitUntil(lambda: bool(v.surfaces), timeout=20000)
    entry, target = np.array([-14.0, -5.0, 4.0]), np.array([10.0, -5.0, 4.0])
    v.set_trajectories([(entry, target)])
    v._render_now()
    x, y = _on_screen(v, target)
    h, w = v.rendered.shape[:2]
    assert 0.2 * w < x < 0.8 * w and 0.2 * h < y < 0.8 * h           # fitted to the target
    cyan = _path_pixels(v)
    mid = _on_screen(v, (entry + target) / 2)
    near = cyan[int(mid[1]) - 6:int(mid[1]) + 7, int(mid[0]) - 6:int(mid[0]) + 7]
    assert near.sum() >= 12, near.sum()      # visible through the slab, several pixels thick
    v.grab().save(str(artifacts_dir / "gui_view3d_path_through_bone.png"))
    # Without the ghost layer the slab hides it: the ghost is what makes it visible.
    for a in v._ghost_actors:
        a.SetVisibility(False)
    v._render_now()
    assert _path_pixels(v)[int(mid[1]) - 6:int(mid[1]) + 7, int(mid[0]) - 6:int(mid[0]) + 7].sum() < near.sum() / 3
    v.close_renderer()


@needs_x
def test_3d_view_is_docked_in_the_window_with_an_orientation_marker(qtbot):
    """The 3D view is a pane of the main window (no window over the menu bar), renders
    off-screen (no OpenGL widget in the window, which would make Qt composite the whole
    window through software OpenGL), and has a patient-direction orientation marker."""
    from PyQt5.QtWidgets import QOpenGLWidget
    from gui.window.main_window import MainWindow
    w = MainWindow(enable_3d=True)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    v = w.view3d
    assert v.window() is w and w.isAncestorOf(v) and v.isVisible()
    assert w.centralWidget().isAncestorOf(v)
    assert not w.findChildren(QOpenGLWidget)
    assert v.marker.GetEnabled() and v.marker.GetOrientationMarker().GetXPlusFaceText() == "L"
    w.set_view_layout("fusion")
    assert v.window() is w and v.isVisible()
    w.close()


@needs_x
def test_default_3d_view_is_not_mirrored(qtbot):
    """From the front, head up: patient right on screen left (as on the coronal slice), the
    cube lettered in LPS, and the lesion (patient left of the liver's centre) drawn right of it."""
    from gui.views.view3d import View3D
    v = View3D(min_render_interval_ms=0)
    qtbot.addWidget(v)
    v.resize(360, 300)
    v.show()
    qtbot.waitExposed(v)
    v.set_labels(_labels())
    qtbot.waitUntil(lambda: bool(v.surfaces), timeout=20000)
    v._render_now()
    cube = v.marker.GetOrientationMarker()
    assert [getattr(cube, f"Get{f}FaceText")() for f in ("XPlus", "XMinus", "YPlus", "YMinus", "ZPlus", "ZMinus")] \
        == ["L", "R", "P", "A", "S", "I"]
    (rx, _), (lx, _) = _on_screen(v, (-20.0, 0.0, 0.0)), _on_screen(v, (20.0, 0.0, 0.0))
    (_, sy), (_, iy) = _on_screen(v, (0.0, 0.0, 20.0)), _on_screen(v, (0.0, 0.0, -20.0))
    assert rx < lx and sy < iy
    img = v.rendered.astype(int)
    yellow = (img[..., 0] > 150) & (img[..., 1] > 120) & (img[..., 2] < 90)
    assert yellow.sum() > 30
    cx = np.nonzero(yellow)[1].mean()
    assert cx > _on_screen(v, (0.0, 0.0, 4.0))[0] + 5        # lesion at x = +10 mm (left): screen right
    v.close_renderer()
