"""CT slice views: radiological orientation from the Volume's direction, mouse, outlines.

A marker at the patient's left-anterior-superior corner must show top-right
in axial (patient left on screen right, anterior up) and coronal (superior
up, left on screen right), and top-left in sagittal (superior up, anterior on
screen left), whatever the storage order/direction of the volume.
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QPoint, QPointF, Qt
from PyQt5.QtGui import QMouseEvent, QWheelEvent
from PyQt5.QtWidgets import QApplication

from gui.views.display import DisplayVolume
from gui.views.slice_view import SliceView
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui

# Physical box: 60 (x, L) x 40 (y, P) x 30 (z, S) mm, 2 mm voxels, marker near L-A-S.
MARKER_LPS = np.array([22.0, -14.0, 10.0])   # left (+x), anterior (-y), superior (+z) of the centre


def _lps_volume(direction: np.ndarray, spacing=(2.0, 2.0, 2.0)) -> Volume:
    """A volume covering the same LPS box for any direction, value 1000 in a 6 mm ball at MARKER_LPS."""
    direction = np.asarray(direction, float)
    extent = np.array([60.0, 40.0, 30.0])
    # Size along each index axis: extent of the LPS axis it is (mostly) aligned with.
    n = np.array([int(round(abs(direction[:, m]) @ extent / spacing[m])) + 1 for m in range(3)])
    center = np.zeros(3)
    origin = center - (direction * np.asarray(spacing)) @ ((n - 1) / 2.0)
    vol = Volume(np.zeros(n[::-1], np.int16), spacing, origin, direction)
    kji = np.indices(vol.array.shape).reshape(3, -1).T
    lps = vol.index_to_lps(kji[:, ::-1])
    ball = np.linalg.norm(lps - MARKER_LPS, axis=1) <= 6.0
    arr = np.full(vol.array.size, -500, np.int16)
    arr[ball] = 1000
    return vol.with_array(arr.reshape(vol.array.shape))


DIRECTIONS = {
    "LPS (standard axial)": np.eye(3),
    "RAI-stored (flipped i, j)": np.diag([-1.0, -1.0, 1.0]),
    "coronal acquisition (i=L, j=I, k=P)": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "oblique 20 deg": rigid_matrix([0, 0, 20, 0, 0, 0])[:3, :3] @ rigid_matrix([15, 0, 0, 0, 0, 0])[:3, :3],
}


def _marker_quadrant(img: np.ndarray) -> tuple:
    rows, cols = img.shape
    r, c = np.argwhere(img > 500).mean(axis=0)
    return ("top" if r < rows / 2 else "bottom", "left" if c < cols / 2 else "right")


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_display_slices_are_radiological(name):
    vol = _lps_volume(DIRECTIONS[name])
    dv = DisplayVolume(vol)
    expected = {"axial": ("top", "right"), "coronal": ("top", "right"), "sagittal": ("top", "left")}
    for view, quad in expected.items():
        img = dv.slice(view, dv.slice_index(view, MARKER_LPS))
        assert _marker_quadrant(img) == quad, (name, view)
        # pixel_to_lps of the marker pixel lands on the marker (within a voxel + ball radius).
        r, c = np.argwhere(img > 500).mean(axis=0)
        p = dv.pixel_to_lps(view, dv.slice_index(view, MARKER_LPS)) @ np.array([c, r, 0, 1])
        assert np.linalg.norm(p[:3] - MARKER_LPS) < 3.0, (name, view, p)
        col, row = dv.lps_to_pixel(view, MARKER_LPS)
        assert abs(col - c) < 1.5 and abs(row - r) < 1.5


def test_signed_permutation_is_not_interpolated():
    vol = _lps_volume(DIRECTIONS["RAI-stored (flipped i, j)"])
    dv = DisplayVolume(vol)
    # Same voxel values (only transposed/flipped): a resample would blur the ball's edge.
    assert set(np.unique(dv.array)) == {-500, 1000}
    assert np.allclose(dv.grid.index_to_lps([0, 0, 0]), vol.bounds_lps()[0])


def _grab_array(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(4)   # QImage.Format_RGB32
    w, h = img.width(), img.height()
    ptr = img.constBits()
    ptr.setsize(h * img.bytesPerLine())
    a = np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w]
    return a[..., [2, 1, 0]].copy()   # BGRA -> RGB


@pytest.mark.parametrize("name", ["LPS (standard axial)", "coronal acquisition (i=L, j=I, k=P)"])
def test_widget_shows_marker_in_the_right_corner(qtbot, name, artifacts_dir):
    vol = _lps_volume(DIRECTIONS[name])
    dv = DisplayVolume(vol)
    expected = {"axial": ("top", "right"), "coronal": ("top", "right"), "sagittal": ("top", "left")}
    for view, quad in expected.items():
        w = SliceView(view)
        qtbot.addWidget(w)
        w.resize(300, 300)
        w.set_display(dv)
        w.set_cursor(MARKER_LPS)
        w.set_window_level(400, 40)
        w.show()
        qtbot.waitExposed(w)
        rgb = _grab_array(w)
        r = w.image_rect()
        # Crop to the image so the text/crosshair outside do not count.
        crop = rgb[int(r.top()) + 1:int(r.bottom()) - 1, int(r.left()) + 1:int(r.right()) - 1]
        bright = (crop.min(axis=2) > 240).astype(float) * 1000   # white marker (W400/L40 saturates)
        assert _marker_quadrant(bright) == quad, (name, view)
        if view == "axial" and name.startswith("LPS"):
            w.grab().save(str(artifacts_dir / "gui_slice_axial_marker_LAS.png"))


def test_wheel_scroll_and_linked_cursor(qtbot):
    dv = DisplayVolume(_lps_volume(np.eye(3)))
    w = SliceView("axial")
    qtbot.addWidget(w)
    w.resize(300, 300)
    w.set_display(dv)
    w.show()
    qtbot.waitExposed(w)
    k0 = w.slice_index
    with qtbot.waitSignal(w.cursor_moved) as sig:
        ev = QWheelEvent(QPointF(150, 150), QPointF(w.mapToGlobal(QPoint(150, 150))), QPoint(0, 0),
                         QPoint(0, 240), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
        QApplication.sendEvent(w, ev)
    assert w.slice_index == k0 + 2
    # The new cursor moved only along z (superior), by two slices of 2 mm.
    moved = np.asarray(sig.args[0]) - dv.center_lps()
    assert np.allclose(moved[:2], 0) and moved[2] == pytest.approx(4.0, abs=1.01)


def drag(widget, button, start: QPoint, end: QPoint) -> None:
    """Press, move with the button held (QTest's mouseMove carries no buttons), release."""
    qtbot_press = QMouseEvent(QEvent.MouseButtonPress, QPointF(start), button, button, Qt.NoModifier)
    QApplication.sendEvent(widget, qtbot_press)
    mid = (start + end) / 2
    for p in (mid, end):
        QApplication.sendEvent(widget, QMouseEvent(QEvent.MouseMove, QPointF(p), Qt.NoButton, button, Qt.NoModifier))
    QApplication.sendEvent(widget, QMouseEvent(QEvent.MouseButtonRelease, QPointF(end), button, Qt.NoButton,
                                               Qt.NoModifier))


def test_mouse_window_level_zoom_pan_and_click(qtbot):
    dv = DisplayVolume(_lps_volume(np.eye(3)))
    w = SliceView("coronal")
    qtbot.addWidget(w)
    w.resize(300, 300)
    w.set_display(dv)
    w.show()
    qtbot.waitExposed(w)
    # Left drag right/up: wider window, higher level.
    drag(w, Qt.LeftButton, QPoint(100, 100), QPoint(150, 80))
    assert w.window == pytest.approx(500.0) and w.level == pytest.approx(60.0)
    # Right drag up: zoom in; middle drag: pan.
    r0 = w.image_rect()
    drag(w, Qt.RightButton, QPoint(100, 150), QPoint(100, 100))
    assert w.zoom > 1.3 and w.image_rect().width() > r0.width() * 1.3
    drag(w, Qt.MiddleButton, QPoint(100, 100), QPoint(130, 90))
    assert (w.pan.x(), w.pan.y()) == (30.0, -10.0)
    # A left click moves the crosshair to the clicked point (and keeps the slice).
    target = w.lps_to_widget(MARKER_LPS + np.array([0, dv.center_lps()[1] - MARKER_LPS[1], 0]))
    with qtbot.waitSignal(w.cursor_moved) as sig:
        qtbot.mouseClick(w, Qt.LeftButton, pos=target.toPoint())
    p = np.asarray(sig.args[0])
    assert abs(p[0] - MARKER_LPS[0]) < 2.0 and abs(p[2] - MARKER_LPS[2]) < 2.0


def test_label_outline_sits_on_the_structure_edge(qtbot):
    vol = _lps_volume(np.eye(3))
    labels = LabelMap((vol.array > 500).astype(np.uint8) * 3, vol.spacing, vol.origin, vol.direction,
                      names={"lesion_1": 3})
    dv = DisplayVolume(vol, labels)
    img = dv.slice("axial", dv.slice_index("axial", MARKER_LPS))
    lab = dv.slice("axial", dv.slice_index("axial", MARKER_LPS), labels=True)
    from gui.views.qimage import boundary_mask, label_lut, outline_rgba
    edge = boundary_mask(lab)
    # Outline pixels are lesion pixels with a non-lesion neighbour, and enclose the bright ball.
    assert edge.any() and np.all(lab[edge] == 3) and np.all(img[edge] == 1000)
    rgba = outline_rgba(lab, label_lut(labels.names, 3))
    assert tuple(rgba[edge][0][:3]) == (255, 230, 0) and np.all(rgba[~edge][:, 3] == 0)


def test_markers_drawn_only_near_their_slice(qtbot):
    dv = DisplayVolume(_lps_volume(np.eye(3)))
    w = SliceView("axial")
    qtbot.addWidget(w)
    w.resize(300, 300)
    w.set_display(dv)
    w.set_window_level(1, 10000)             # everything black, so the cyan marker is unambiguous
    w.show()
    qtbot.waitExposed(w)
    w.set_markers([(MARKER_LPS, "L1")])
    w.set_cursor(MARKER_LPS)
    rgb = _grab_array(w)
    cyan = np.argwhere((rgb[..., 0] < 60) & (rgb[..., 1] > 200) & (rgb[..., 2] > 200))
    c = w.lps_to_widget(MARKER_LPS)
    near = np.abs(cyan - [c.y(), c.x()]).max(axis=1) <= 6        # the cross (the label is beside it)
    assert near.sum() >= 15
    w.set_cursor(MARKER_LPS + [0, 0, 6.0])   # three slices away: not drawn
    rgb = _grab_array(w)
    assert not ((rgb[..., 0] < 60) & (rgb[..., 1] > 200) & (rgb[..., 2] > 200)).any()
