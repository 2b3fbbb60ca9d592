"""US view: the CT overlay appears only with a registration and valid tracking,
sits on the lesion, and says how far an out-of-plane lesion is and which way.

Synthetic, exactly known geometry: an 8 mm-radius lesion at the CT origin;
frames are axial planes (columns towards patient left, rows towards
posterior, 0.5 mm pixels) at z = -12, -9, ..., +15 mm in CT; the sweep's
poses are given in a Reference frame rotated and shifted against the CT, so
the overlay is right only if ``reference_to_ct @ image_to_reference`` is
composed in the right order.
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QPoint, Qt

from gui.window.main_window import MainWindow
from gui.core.session import RegistrationState
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import invert, rigid_matrix
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui

ROWS, COLS, PX = 120, 160, 0.5
Z_PLANES = np.arange(10) * 3.0 - 12.0
INVALID = 2
REFERENCE_TO_CT = rigid_matrix([5.0, -8.0, 12.0, 30.0, -20.0, 15.0])


def make_case():
    shape = (61, 81, 101)                         # [k, j, i]: 60 x 80 x 100 mm, 1 mm voxels
    origin = (-50.0, -40.0, -30.0)
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2] + origin[0], kji[1] + origin[1], kji[0] + origin[2]], axis=-1)
    r = np.linalg.norm(lps, axis=-1)
    ct = np.where(r <= 8.0, 200, 60).astype(np.int16)
    lab = np.where(r <= 8.0, 2, 1).astype(np.uint8)
    vol = Volume(ct, (1, 1, 1), origin)
    labels = LabelMap(lab, (1, 1, 1), origin, names={"liver": 1, "lesion_1": 2})
    n = len(Z_PLANES)
    image_to_ct = np.tile(np.eye(4), (n, 1, 1))
    image_to_ct[:, 0, 0] = image_to_ct[:, 1, 1] = PX
    image_to_ct[:, 0, 3], image_to_ct[:, 1, 3], image_to_ct[:, 2, 3] = -40.0, -30.0, Z_PLANES
    image_to_reference = np.einsum("ij,njk->nik", invert(REFERENCE_TO_CT), image_to_ct)
    status = np.ones(n, bool)
    status[INVALID] = False
    rng = np.random.default_rng(7)
    frames = rng.integers(20, 120, size=(n, ROWS, COLS), dtype=np.uint8)
    sweep = Sweep(frames, np.arange(n) * 0.05, {"ImageToReference": image_to_reference},
                  {"ImageToReference": status}, source="synthetic.igs.mha")
    return vol, labels, sweep


@pytest.fixture
def window(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1300, 900)
    vol, labels, sweep = make_case()
    w.set_ct(vol, labels)
    w.set_sweep(sweep)
    w.show()
    qtbot.waitExposed(w)
    return w


def _frame_at(w, z):
    w.player.seek(int(np.argmin(np.abs(Z_PLANES - z))), force=True)
    return w.us_view


def test_no_registration_no_overlay(window):
    us = _frame_at(window, 0.0)
    assert not us.overlay_visible
    assert us.reason_text == "no registration yet: overlay off"
    assert window.registration_label.text() == "no registration"


def test_overlay_sits_on_the_lesion(window, qtbot, artifacts_dir):
    window.set_registration(RegistrationState(REFERENCE_TO_CT, "landmarks", tre_mm=2.5, fre_mm=1.1))
    us = _frame_at(window, 0.0)
    assert us.overlay_visible and us.reason_text == ""
    ov = us.overlay
    # Lesion centre (CT origin) is frame pixel (col 80, row 60); the overlay grid is frame px / step.
    c, r = 80 // ov.step, 60 // ov.step
    assert ov.labels[r, c] == 2 and ov.ct[r, c] == pytest.approx(200, abs=1)
    lesion_px = np.argwhere(ov.labels == 2) * ov.step
    radius_px = np.sqrt(len(lesion_px) * ov.step ** 2 / np.pi)
    assert radius_px * PX == pytest.approx(8.0, abs=0.6)                 # 8 mm disc in this plane
    assert np.allclose(lesion_px.mean(axis=0), [60, 80], atol=1.0)       # centred on the lesion
    assert us.lesion_messages == ["lesion_1: in plane (0 mm from its centre)"]
    window.set_cursor([0.0, 0.0, 0.0])
    assert window.cursor_label.text().endswith("200 HU   lesion_1")
    assert "within ~4.5 mm" in window.registration_label.text()     # 95 % radius of the 2.5 mm RMS
    # On screen: the yellow lesion outline surrounds the widget position of the lesion centre.
    rgb = _grab(us)
    fr = us.frame_rect()
    cx = fr.left() + (80 + 0.5) / COLS * fr.width()
    cy = fr.top() + (60 + 0.5) / ROWS * fr.height()
    yellow = np.argwhere((rgb[..., 0] > 200) & (rgb[..., 1] > 180) & (rgb[..., 2] < 80))
    yellow = yellow[(yellow[:, 0] > fr.top()) & (yellow[:, 0] < fr.bottom())]
    assert len(yellow) > 20
    assert np.allclose(yellow.mean(axis=0), [cy, cx], atol=0.06 * fr.width())
    us.grab().save(str(artifacts_dir / "gui_us_overlay_on_lesion.png"))


def test_out_of_plane_lesion_distance_and_direction(window):
    window.set_registration(RegistrationState(REFERENCE_TO_CT, "landmarks", tre_mm=2.5))
    us = _frame_at(window, -12.0)
    assert us.overlay_visible
    # The plane is 12 mm inferior of the lesion: move towards the head.
    assert us.lesion_messages == ["lesion_1: 12 mm out of plane, tilt/slide towards the head"]
    us = _frame_at(window, 15.0)
    assert us.lesion_messages == ["lesion_1: 15 mm out of plane, tilt/slide towards the feet"]


def test_invalid_tracking_hides_overlay_with_reason(window, artifacts_dir):
    window.set_registration(RegistrationState(REFERENCE_TO_CT, "landmarks", tre_mm=2.5))
    window.player.seek(INVALID, force=True)
    us = window.us_view
    assert not us.overlay_visible and us._ct_img is None
    assert us.reason_text == "tracking INVALID on this frame: overlay off"
    assert window.tracking_label.text() == f"tracking INVALID (frame {INVALID + 1})"
    assert "INVALID" in window.player.label.text()
    # The reason is painted in orange over the frame.
    rgb = _grab(us)
    fr = us.frame_rect()
    band = rgb[int(fr.top()) + 10:int(fr.top()) + 40]
    orange = (band[..., 0] > 200) & (band[..., 1] > 120) & (band[..., 1] < 200) & (band[..., 2] < 90)
    assert orange.sum() > 50
    us.grab().save(str(artifacts_dir / "gui_us_invalid_frame.png"))
    window.player.step(1)
    assert us.overlay_visible


def test_overlay_modes_and_quality_always_shown(window, qtbot):
    window.set_registration(RegistrationState(REFERENCE_TO_CT, "file"))
    us = _frame_at(window, 0.0)
    assert us.overlay.quality == "from file, error not estimated"
    window.set_overlay_mode("checker")
    assert us.overlay_visible and window.overlay_panel.mode_box.currentText() == "checker"
    alpha = np.frombuffer(us._ct_img.constBits().asstring(us._ct_img.byteCount()), np.uint8)[3::4]
    assert set(np.unique(alpha)) == {0, 255}            # squares of CT and squares of US
    window.set_overlay_mode("off")
    assert not us.overlay_visible and us.reason_text == "overlay switched off"
    window.set_overlay_mode("blend")
    window.overlay_panel.opacity.setValue(70)
    assert us.opacity == pytest.approx(0.7)
    window.apply_preset("liver")                         # presets apply to the overlaid CT too
    assert (us.ct_window, us.ct_level) == (150.0, 60.0)
    assert (window.views["axial"].window, window.views["axial"].level) == (150.0, 60.0)


def _grab(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(4)
    w, h = img.width(), img.height()
    ptr = img.constBits()
    ptr.setsize(h * img.bytesPerLine())
    a = np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w]
    return a[..., [2, 1, 0]].copy()


def test_click_reports_the_frame_pixel(window, qtbot):
    us = _frame_at(window, 0.0)
    target = us.pixel_to_widget(80, 60)
    with qtbot.waitSignal(us.pixel_clicked) as sig:
        qtbot.mouseClick(us, Qt.LeftButton, pos=target.toPoint())
    col, row = sig.args
    assert abs(col - 80) <= 1.0 and abs(row - 60) <= 1.0
    # Outside the frame: no signal.
    with qtbot.assertNotEmitted(us.pixel_clicked):
        qtbot.mouseClick(us, Qt.LeftButton, pos=us.rect().bottomRight() - QPoint(2, 2))


def test_frame_outside_the_ct_says_so(window):
    far = REFERENCE_TO_CT.copy()
    far[:3, 3] += [0.0, 0.0, 500.0]                      # a registration half a metre off
    window.set_registration(RegistrationState(far, "file", tre_mm=2.0))
    us = _frame_at(window, 0.0)
    assert not us.overlay_visible
    assert us.reason_text == "this frame lies outside the CT: overlay off (check the registration)"
