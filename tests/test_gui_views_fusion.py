"""Fusion layout on the demo case with its true registration (issue 20, item 1 and 3).

The real window under Xvfb: with a registration the window shows the US beside the
CT resliced in the same plane (equal to an independent reslice, same size and
place), the probe on the slice views, the slice views following the probe when
the played frame changes (and not when unlinked), a click and the mouse on the
US moving them, the compare key, and target-only named outlines on the US.
Screenshots at 1366x768 and 1920x1080 go to tests/artifacts/.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from PyQt5.QtCore import QEvent, QPointF, Qt
from PyQt5.QtGui import QMouseEvent
from PyQt5.QtWidgets import QApplication

from gui.core.session import RegistrationState
from gui.views.overlay import lesion_guidance
from gui.views.plane_sampler import OUTSIDE_HU
from gui.views.structure_style import structure_kind
from gui.window.main_window import MainWindow
from registration.spatial.reslice import Reslicer

pytestmark = [pytest.mark.gui, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_window(qapp, demo_case):
    """The demo case open in a real window (3D view on), with the case's TRUE registration."""
    import time
    w = MainWindow(enable_3d=True)
    w.reporter.show_dialogs = False
    w.resize(1366, 768)
    w.show()
    ready = []
    w.open_demo(then=lambda: ready.append(True))
    t0 = time.time()
    while not ready and not w.reporter.history and time.time() - t0 < 300:
        qapp.processEvents()
        time.sleep(0.01)
    assert ready and not w.reporter.history, w.reporter.history
    assert w.layout_name == "ct_us"                     # no registration yet: the landmark layout
    truth = json.loads((demo_case / "truth.json").read_text())
    entry = next(s for s in truth["ultrasound"]["sweeps"] if s["file"] in w.sweep.source)
    w.true_r2c = np.asarray(entry["reference_to_ct"], float)
    w.set_registration(RegistrationState(w.true_r2c, "ground truth (test)", tre_mm=0.0))
    yield w
    w.close()
    # Destroy it now, not whenever Python's cycle collector gets to it in a later test module
    # (a window with a VTK render window collected mid-way through another window's set-up).
    import gc
    w.deleteLater()
    qapp.processEvents()
    del w
    gc.collect()


def _frame_on_lesion(w):
    """(frame, lesion) whose plane cuts a lesion closest to its centre."""
    i2r, valid = w.sweep.image_to_reference_all()
    best = None
    for i in np.flatnonzero(valid):
        m = w.true_r2c @ i2r[i]
        n = np.cross(m[:3, 0], m[:3, 1])
        for les in w.us_view.engine.lesions:
            if lesion_guidance(les, m, w.sweep.image_shape)[0]:
                d = abs((les.centroid_lps - m[:3, 3]) @ n / np.linalg.norm(n))
                if best is None or d < best[0]:
                    best = (d, int(i), les)
    assert best is not None, "no frame of the demo sweep cuts a lesion"
    return best[1], best[2]


def test_fusion_layout_and_fused_ct_is_the_reslice(demo_window, qtbot):
    w = demo_window
    assert w.layout_name == "fusion"
    assert w.fused_view.isVisible() and w.us_view.isVisible() and w.view3d.isVisible()
    frame, les = _frame_on_lesion(w)
    w.player.seek(frame, force=True)
    us, fused = w.us_view, w.fused_view
    assert us.overlay_visible and fused.ct_plane is not None
    # The fused CT is the CT resliced (linear) on the frame's plane, on the overlay grid.
    image_to_ct = w.true_r2c @ w.sweep.image_to_reference(frame)
    step = us.overlay.step
    assert np.allclose(fused.grid_to_ct[:3, :2], image_to_ct[:3, :2] * step)
    ref = Reslicer(w.ct, default=OUTSIDE_HU, interpolator="linear").reslice(fused.grid_to_ct, fused.ct_plane.shape)
    assert np.array_equal(fused.ct_plane, ref.image)
    # Its grid origin is the centre of the first step x step block of frame pixels.
    assert np.allclose(fused.grid_to_ct[:3, 3], image_to_ct[:3, :2] @ np.full(2, (step - 1) / 2.0) + image_to_ct[:3, 3])
    # Same size and same place in the pane as the ultrasound frame (pixel for pixel).
    a, b = us.frame_rect(), fused.frame_rect()
    assert abs(a.width() - b.width()) < 1 and abs(a.height() - b.height()) < 1 and abs(a.top() - b.top()) < 1
    # The lesion is named next to its contour on both, outlines only for targets and vessels.
    assert les.name in us._anchors and les.name in fused._anchors
    lut_alpha = {n: us._lut[v, 3] for n, v in w.labels.names.items()}
    assert all((a > 0) == (structure_kind(n) != "organ") for n, a in lut_alpha.items()), lut_alpha
    us.grab()
    assert any(text == les.name for text, _box in us.drawn_text)


def _seek(w, qtbot, frame):
    """Show ``frame`` and wait until the slice views have caught up (they follow at most every
    FOLLOW_INTERVAL_MS, the last frame always)."""
    w.player.seek(frame, force=True)
    qtbot.waitUntil(lambda: not w._follow_timer.isActive(), timeout=2000)


def test_slice_views_follow_the_probe(demo_window, qtbot):
    w = demo_window
    valid = np.flatnonzero(w.sweep.valid)
    first, last = int(valid[5]), int(valid[-5])
    w.set_follow_probe(True)
    _seek(w, qtbot, first)
    k_first = w.views["axial"].slice_index
    centre = w.probe.centre_ct()
    assert np.allclose(w.views["axial"].cursor_lps, centre)
    # The probe is drawn on the slice views: the plane's intersection with the axial slice.
    segs = w.probe.intersection(2, w.display.pixel_to_lps("axial", k_first)[2, 3])
    assert segs and w.views["axial"].probe is w.probe
    _seek(w, qtbot, last)
    assert w.views["axial"].slice_index != k_first or w.views["coronal"].slice_index != \
        w.display.slice_index("coronal", centre)
    assert np.allclose(w.views["axial"].cursor_lps, w.probe.centre_ct())
    assert not np.allclose(w.probe.centre_ct(), centre)
    # Unlinked: the played frame no longer moves the slice views.
    w.follow_box.setChecked(False)
    held = w.views["axial"].cursor_lps.copy()
    _seek(w, qtbot, first)
    assert np.allclose(w.views["axial"].cursor_lps, held)
    w.follow_box.setChecked(True)
    assert np.allclose(w.views["axial"].cursor_lps, w.probe.centre_ct())


def test_click_and_mouse_on_the_us_move_the_ct(demo_window, qtbot):
    w = demo_window
    us = w.us_view
    frame = int(np.flatnonzero(w.sweep.valid)[20])
    _seek(w, qtbot, frame)
    rows, cols = w.sweep.image_shape
    image_to_ct = w.true_r2c @ w.sweep.image_to_reference(frame)
    pos = us.pixel_to_widget(cols * 0.4, rows * 0.6).toPoint()
    qtbot.mouseClick(us, Qt.LeftButton, pos=pos)
    col, row = us.widget_to_pixel(pos)
    expect = (image_to_ct @ [col, row, 0, 1])[:3]
    assert np.allclose(w.views["axial"].cursor_lps, expect, atol=1e-6)
    # The mouse over the fused CT view: the slice views go to the point under it...
    fused = w.fused_view
    hover = fused.pixel_to_widget(cols * 0.6, rows * 0.3)
    QApplication.sendEvent(fused, QMouseEvent(QEvent.MouseMove, hover, Qt.NoButton, Qt.NoButton, Qt.NoModifier))
    c2, r2 = w.follow_pixel()
    assert abs(c2 - cols * 0.6) < 1 and abs(r2 - rows * 0.3) < 1
    assert np.allclose(w.views["sagittal"].cursor_lps, (image_to_ct @ [c2, r2, 0, 1])[:3])
    assert us.marks and fused.marks == us.marks           # the same point marked on both images
    # ... and back to the clicked point when it leaves.
    QApplication.sendEvent(fused, QEvent(QEvent.Leave))
    assert np.allclose(w.views["axial"].cursor_lps, expect, atol=1e-6)


def test_hold_key_shows_plain_us(demo_window, qtbot):
    w = demo_window
    frame, _les = _frame_on_lesion(w)
    w.player.seek(frame, force=True)
    us = w.us_view
    assert us.overlay_visible
    qtbot.keyPress(w.views["axial"], Qt.Key_X)
    assert us.compare and not us.overlay_visible
    plain = _grab(us)
    qtbot.keyRelease(w.views["axial"], Qt.Key_X)
    assert not us.compare and us.overlay_visible
    fused = _grab(us)
    r = us.frame_rect()
    box = (slice(int(r.top()) + 60, int(r.bottom()) - 10), slice(int(r.left()) + 10, int(r.right()) - 10))
    # Plain US is grey (no warm CT tint, no coloured outlines); with the overlay it is not.
    assert np.abs(plain[box][..., 0].astype(int) - plain[box][..., 2]).mean() < 1.0
    assert np.abs(fused[box][..., 0].astype(int) - fused[box][..., 2]).mean() > 3.0


def _grab(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(4)
    w, h = img.width(), img.height()
    ptr = img.constBits()
    ptr.setsize(h * img.bytesPerLine())
    return np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w, [2, 1, 0]].copy()


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_fusion_screenshots(demo_window, qtbot, artifacts_dir, size):
    """The whole window and its 3D view at the two screen sizes, for a person to look at."""
    w = demo_window
    w.resize(*size)
    qtbot.wait(200)
    frame, les = _frame_on_lesion(w)
    _seek(w, qtbot, frame)
    v = w.view3d
    v.wait_for_surfaces()
    qtbot.waitUntil(lambda: bool(v.surfaces), timeout=60000)
    target = les.centroid_lps
    # A needle path for the picture: from the right anterior-lateral skin to the lesion centre.
    v.set_trajectories([(target + np.array([-80.0, -35.0, 10.0]), target)])
    v.flush_plane()
    v._render_now()
    qtbot.wait(100)
    name = f"{size[0]}x{size[1]}"
    w.grab().save(str(artifacts_dir / f"gui_views_fusion_demo_{name}.png"))
    v.grab().save(str(artifacts_dir / f"gui_views_3d_demo_{name}.png"))
    # Nothing any 2D view drew as text left its view.
    for view in (w.us_view, w.fused_view, *w.views.values()):
        view.grab()                     # paints now (records drawn_text)
        inside = QPointF(0, 0), QPointF(view.width(), view.height())
        for text, box in view.drawn_text:
            assert box.left() >= inside[0].x() and box.top() >= inside[0].y(), (view.objectName(), text, box)
            assert box.right() <= inside[1].x() and box.bottom() <= inside[1].y(), (view.objectName(), text, box)
