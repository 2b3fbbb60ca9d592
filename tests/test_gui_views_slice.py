"""Slice views (issue 20, items 4, 7, 14): a shaky click is a click, W/L drags reach the overlay
panel, linear display resampling in mm (smooth coronal rows on a real 5 mm-slice CT), text on
dark boxes inside the view, and the US plane drawn on the slices."""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QPoint, QPointF, QRectF, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import QApplication

from gui.views.display import DisplayVolume
from gui.views.probe_geometry import FanShape, ProbeGeometry
from gui.views.slice_resample import display_shape, resample
from gui.views.slice_view import SliceView
from gui.window.main_window import MainWindow
from registration.spatial.sweep import Sweep
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui


def _volume(spacing=(1.0, 1.0, 4.0)) -> Volume:
    """60 x 50 x 40 mm box (L, P, S), a bright 8 mm ball at the centre; anisotropic voxels."""
    n = (np.array([60.0, 50.0, 40.0]) / spacing).astype(int) + 1
    origin = -(n - 1) * np.asarray(spacing) / 2.0
    kji = np.indices(n[::-1]).astype(float)
    lps = np.stack([kji[2] * spacing[0], kji[1] * spacing[1], kji[0] * spacing[2]], -1) + origin
    arr = np.where(np.linalg.norm(lps, axis=-1) < 8.0, 300, 40).astype(np.int16)
    arr = arr + (kji[0] * 10).astype(np.int16)        # a ramp along z: every slice differs
    return Volume(arr, spacing, origin)


def _press_move_release(widget, start: QPoint, moves, button=Qt.LeftButton) -> None:
    QApplication.sendEvent(widget, QMouseEvent(QEvent.MouseButtonPress, QPointF(start), button, button, Qt.NoModifier))
    for m in moves:
        QApplication.sendEvent(widget, QMouseEvent(QEvent.MouseMove, QPointF(m), Qt.NoButton, button, Qt.NoModifier))
    end = moves[-1] if moves else start
    QApplication.sendEvent(widget, QMouseEvent(QEvent.MouseButtonRelease, QPointF(end), button, Qt.NoButton,
                                               Qt.NoModifier))


@pytest.fixture
def window(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.set_ct(_volume())
    w.show()
    qtbot.waitExposed(w)
    return w


def test_shaky_click_places_a_landmark_and_keeps_window_level(window, qtbot):
    from gui.panels import registration_panel
    w = window
    n = 3                                          # picking needs a sweep to pick the US points on
    m = np.tile(np.eye(4), (n, 1, 1))
    m[:, :3, 3] = [-20.0, -20.0, 0.0]
    w.set_sweep(Sweep(np.zeros((n, 40, 40), np.uint8), np.arange(n) * 0.1, {"ImageToReference": m}))
    panel = registration_panel.install(w).widget()
    qtbot.mouseClick(panel.pick_button, Qt.LeftButton)
    assert panel.pick_button.isChecked()
    view = w.views["axial"]
    wl = (view.window, view.level)
    start = view.lps_to_widget(np.array([5.0, -4.0, view.cursor_lps[2]])).toPoint()
    with qtbot.waitSignal(view.point_clicked) as sig:
        _press_move_release(view, start, [start + QPoint(2, 1), start + QPoint(4, 3)])   # 5 px of tremor
    assert (view.window, view.level) == wl
    assert w.overlay_panel.window_box.value() == wl[0]
    lps = np.asarray(sig.args[1])
    assert np.allclose(lps[:2], [5.0, -4.0], atol=1.0)      # where the press was aimed
    assert panel.pending_ct is not None and np.allclose(panel.pending_ct, lps)


def test_window_level_drag_updates_the_overlay_panel(window, qtbot):
    w = window
    view = w.views["coronal"]
    w.apply_preset("abdomen")
    assert w.overlay_panel.preset.currentData() == "abdomen"
    c = view.rect().center()
    _press_move_release(view, c, [c + QPoint(20, -5), c + QPoint(60, -30)])
    assert (view.window, view.level) == (400.0 + 120.0, 40.0 + 30.0)
    op = w.overlay_panel
    assert (op.window_box.value(), op.level_box.value()) == (520.0, 70.0)
    assert op.preset.currentText() == "custom"
    assert (w.fused_view.window, w.us_view.ct_window, w.views["axial"].window) == (520.0, 520.0, 520.0)
    # And the other way: typing a level in the panel sets the views.
    op.level_box.setValue(55)
    assert view.level == 55.0 and w.views["sagittal"].level == 55.0


def test_display_resampling_is_linear_in_mm():
    # 3 rows 5 mm apart, 1 mm columns: 15 rows of 1 mm; values at the row centres kept.
    img = np.array([[0.0, 0.0], [50.0, 50.0], [100.0, 100.0]])
    shape = display_shape(img.shape, (1.0, 5.0))
    assert shape == (15, 2)
    lin = resample(img, shape, "linear")[:, 0]
    assert np.allclose(lin[[2, 7, 12]], [0, 50, 100])                  # centres of the 5 mm rows
    assert np.all(np.diff(lin[2:13]) == pytest.approx(10.0))            # straight ramp between them
    near = resample(img, shape, "nearest")[:, 0]
    assert list(near) == [0] * 5 + [50] * 5 + [100] * 5


def _longest_repeat(rows: np.ndarray) -> int:
    """Longest run of identical consecutive rows."""
    same = np.all(rows[1:] == rows[:-1], axis=1)
    best = run = 0
    for s in same:
        run = run + 1 if s else 0
        best = max(best, run)
    return best + 1


def test_real_ct_coronal_is_smooth_and_true_aspect(qtbot, shared_data, artifacts_dir):
    from gui.core import loaders
    ct = loaders.load_ct(shared_data("ct", "crlm-1004", "dicom"))
    assert ct.spacing[2] == pytest.approx(5.0)
    dv = DisplayVolume(ct)
    view = SliceView("coronal")
    qtbot.addWidget(view)
    view.resize(700, 500)
    view.set_display(dv)
    view.set_window_level(350, 50)
    view.show()
    qtbot.waitExposed(view)
    pixel_mm = ct.spacing[0]
    shown = view.displayed_slice()
    # Square display pixels in mm: 41 slices of 5 mm -> 41 * 5 / 0.797 rows.
    assert shown.shape == (round(41 * 5.0 / pixel_mm), 512)
    # Linear: no two display rows alike (but the outer half slice, which repeats the edge row).
    body = shown[4:-4, 100:400]
    assert _longest_repeat(body) == 1
    r = view.image_rect()
    assert r.height() / r.width() == pytest.approx(41 * 5.0 / (512 * pixel_mm), rel=0.01)
    # On screen too (after Qt's scaling): no stair of identical rows the height of a slice.
    rgb = _grab(view)
    crop = rgb[int(r.top()) + 2:int(r.bottom()) - 2, int(r.left() + 0.3 * r.width()):int(r.left() + 0.7 * r.width())]
    slice_px = r.height() / 41
    assert _longest_repeat(crop[..., 0]) < slice_px / 2, (_longest_repeat(crop[..., 0]), slice_px)
    view.grab().save(str(artifacts_dir / "gui_views_crlm_coronal_linear.png"))
    view.set_interpolation("nearest")
    assert _longest_repeat(view.displayed_slice()[:, 100:400]) >= 6    # 5 mm / 0.8 mm blocks
    view.grab().save(str(artifacts_dir / "gui_views_crlm_coronal_nearest.png"))


def _grab(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(4)
    w, h = img.width(), img.height()
    ptr = img.constBits()
    ptr.setsize(h * img.bytesPerLine())
    return np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w, [2, 1, 0]].copy()


def test_text_on_dark_boxes_inside_the_view(qtbot):
    vol = _volume()
    labels = LabelMap((vol.array > 250).astype(np.uint8), vol.spacing, vol.origin, names={"lesion_1": 1})
    view = SliceView("sagittal")
    qtbot.addWidget(view)
    view.resize(230, 220)                        # a bottom-row view at 1366x768: text competes for room
    view.set_display(DisplayVolume(vol, labels))
    view.set_window_level(1.0, -5000.0)          # the whole image white
    view.set_markers([(np.array([0.0, 0.0, 0.0]), "? (now click it on the US)")])
    view.show()
    qtbot.waitExposed(view)
    rgb = _grab(view)
    bounds = QRectF(view.rect())
    texts = dict(view.drawn_text)
    for expected in ("A", "P", "S", "I", "lesion_1", "? (now click it on the US)"):
        assert expected in texts, texts.keys()
    for text, box in view.drawn_text:
        assert bounds.contains(box), (text, box)
        # A dark box behind the text, even on white anatomy: the box's border pixels are dark.
        y, x0, x1 = int(box.top()) + 1, int(box.left()) + 1, int(box.right()) - 1
        assert rgb[y, x0:x1].mean() < 120, (text, rgb[y, x0:x1].mean())
    boxes = [b for _t, b in view.drawn_text]
    letters = [b for t, b in view.drawn_text if t in ("A", "P", "S", "I")]
    for a in letters:                            # the letters overlap no other text
        assert sum(a.intersects(b) for b in boxes) == 1, [(t, b.getRect()) for t, b in view.drawn_text]


def test_probe_plane_drawn_on_the_slices(qtbot):
    vol = _volume((1.0, 1.0, 1.0))
    dv = DisplayVolume(vol)
    view = SliceView("axial")
    qtbot.addWidget(view)
    view.resize(300, 300)
    view.set_display(dv)
    view.set_window_level(1.0, 5000.0)           # black image: only the drawing shows
    view.show()
    qtbot.waitExposed(view)
    # A US frame standing in the coronal plane y = 5 mm: columns along +x (L), rows along -z (I).
    image_to_ct = np.eye(4)
    image_to_ct[:3, 0] = [0.2, 0, 0]
    image_to_ct[:3, 1] = [0, 0, -0.2]
    image_to_ct[:3, 3] = [-20.0, 5.0, 15.0]
    mask = np.zeros((150, 200), bool)
    mask[:, 25:175] = True
    probe = ProbeGeometry(image_to_ct, FanShape.from_mask((150, 200), mask))
    view.set_cursor([0.0, 0.0, 0.0])
    view.set_probe(probe)
    segs = probe.intersection(2, 0.0)
    assert len(segs) == 1
    a, b = segs[0]
    assert np.allclose([a[1], b[1]], 5.0) and np.allclose(sorted([a[0], b[0]]), [-15.0, 15.0], atol=0.3)
    rgb = _grab(view)
    green = (rgb[..., 1] > 200) & (rgb[..., 0] < 120) & (rgb[..., 2] < 180)
    p, q = view.lps_to_widget(a), view.lps_to_widget(b)
    for t in np.linspace(0.1, 0.9, 9):          # the intersection line is drawn where it belongs
        x, y = int(round(p.x() + t * (q.x() - p.x()))), int(round(p.y() + t * (q.y() - p.y())))
        assert green[y - 2:y + 3, x - 2:x + 3].any(), (t, x, y)
    # The transducer face (z = 15 mm) is 15 mm from this slice: not drawn thick there, only the
    # 2.5 px intersection line (which its projection lies on: the plane stands on the slice).
    def face_thickness():
        rgb = _grab(view)
        green = (rgb[..., 1] > 200) & (rgb[..., 0] < 120) & (rgb[..., 2] < 180)
        face = view.lps_to_widget(probe.face_ct()[len(probe.fan.face) // 3])
        return int(green[int(face.y()) - 8:int(face.y()) + 9, int(face.x())].sum())
    assert face_thickness() <= 3
    view.set_cursor([0.0, 0.0, 14.0])            # a slice through the face: thick and bright
    assert face_thickness() >= 5
