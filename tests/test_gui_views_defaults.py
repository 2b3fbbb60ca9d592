"""What the window shows before anyone touches a control (issue 20, items 3 and 4).

Item 3, overlays that keep the B-mode readable: the blend starts at DEFAULT_OPACITY (the panel
shows it), the black of the B-mode stays black under the blended CT, only the lesion (named) and
the vessels are outlined on the ultrasound, the other organs come back with one tick.
Item 4, linear interpolation by default: every slice view and the CT resliced in the US plane
are linear when the window opens, and one tick in the overlay panel makes them all nearest.

A small CT (1 mm pixels, 4 mm slices): a liver box with a 7 mm lesion at the origin and a
hepatic vein bar; a 3-frame sweep through the lesion, registered with the identity.
"""
from __future__ import annotations

import numpy as np
import pytest

from gui.core.session import RegistrationState
from gui.views.qimage import LESION_COLOUR, structure_colour
from gui.views.us_view import DEFAULT_OPACITY
from gui.window.main_window import MainWindow
from registration.spatial.sweep import Sweep
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui

ROWS, COLS, PX = 120, 160, 0.4          # frame size and its pixel spacing (mm)
FRAME_ORIGIN = np.array([-30.0, -25.0])  # LPS x, y of frame pixel (0, 0)


def _case():
    spacing = (1.0, 1.0, 4.0)
    shape = (11, 61, 81)                                   # [k, j, i]
    origin = np.array([-40.0, -30.0, -20.0])
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2] * spacing[0], kji[1] * spacing[1], kji[0] * spacing[2]], -1) + origin
    liver = (np.abs(lps[..., 0]) < 20) & (np.abs(lps[..., 1]) < 15)
    lesion = np.linalg.norm(lps, axis=-1) < 7
    vein = (np.abs(lps[..., 0] - 14) < 2.5) & (np.abs(lps[..., 1]) < 3)
    hu = np.where(liver, 120, 40) + 10 * kji[0]            # every slice differs (the ramp along z)
    hu = np.where(lesion, 30, np.where(vein, 180, hu)).astype(np.int16)
    lab = np.where(lesion, 2, np.where(vein, 3, np.where(liver, 1, 0))).astype(np.uint8)
    ct = Volume(hu, spacing, origin)
    labels = LabelMap(lab, spacing, origin, names={"liver": 1, "lesion_1": 2, "hepatic_vein": 3})
    n = 3
    m = np.tile(np.eye(4), (n, 1, 1))
    m[:, 0, 0] = m[:, 1, 1] = PX
    m[:, :3, 3] = np.c_[np.full(n, FRAME_ORIGIN[0]), np.full(n, FRAME_ORIGIN[1]), [-2.0, 0.0, 2.0]]
    frames = np.random.default_rng(2).integers(60, 200, (n, ROWS, COLS)).astype(np.uint8)
    frames[:, :, :20] = 0                                   # an anechoic band on the left (over liver CT)
    return ct, labels, Sweep(frames, np.arange(n) * 0.1, {"ImageToReference": m}, source="defaults.igs.mha")


@pytest.fixture
def window(qtbot):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    qtbot.waitExposed(w)
    ct, labels, sweep = _case()
    w.set_ct(ct, labels)
    w.set_sweep(sweep)
    w.set_registration(RegistrationState(np.eye(4), "landmarks", tre_mm=2.0, fre_mm=1.0, verdict="ok"))
    w.player.seek(1, force=True)
    qtbot.wait(50)
    return w


def _grab(widget) -> np.ndarray:
    img = widget.grab().toImage().convertToFormat(4)
    w, h = img.width(), img.height()
    ptr = img.constBits()
    ptr.setsize(h * img.bytesPerLine())
    return np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w, [2, 1, 0]].astype(int)


def _near(rgb: np.ndarray, colour, tol: int = 40) -> np.ndarray:
    return np.all(np.abs(rgb - np.asarray(colour)) < tol, axis=-1)


def _frame_box(us, col0, col1, row0, row1):
    """(rows slice, cols slice) of widget pixels covering frame pixels [col0, col1) x [row0, row1)."""
    a, b = us.pixel_to_widget(col0, row0), us.pixel_to_widget(col1 - 1, row1 - 1)
    return slice(int(a.y()) + 1, int(b.y())), slice(int(a.x()) + 1, int(b.x()))


def test_overlay_defaults_keep_the_bmode_readable(window, qtbot):
    w, us = window, window.us_view
    assert w.layout_name == "fusion" and us.overlay_visible and us.mode == "blend"
    assert DEFAULT_OPACITY <= 0.2
    assert us.opacity == DEFAULT_OPACITY and w.overlay_panel.opacity.value() == round(100 * DEFAULT_OPACITY)
    rgb = _grab(us)
    # The anechoic band (frame columns 0-19 lie over the liver box from x = -20 mm): still black
    # under the blended CT, whose liver there is light grey in the abdomen window.
    band = _frame_box(us, 2, 18, 40, 80)
    assert rgb[band].max(axis=-1).mean() < 40, rgb[band].max(axis=-1).mean()
    # The lesion is outlined and named; the vein is outlined; the liver box is not (organs off).
    us.grab()
    assert "lesion_1" in dict(us.drawn_text)
    assert _near(rgb, LESION_COLOUR).sum() > 40
    assert _near(rgb, structure_colour("hepatic_vein")).sum() > 20
    liver_rgb = structure_colour("liver")
    assert _near(rgb, liver_rgb, 25).sum() < 10
    # One tick brings the organ outlines back (fainter); unticking the lesions removes their names.
    w.overlay_panel.kind_boxes["organ"].setChecked(True)
    assert us.outline_alpha["organ"] > 0
    assert _near(_grab(us), liver_rgb, 60).sum() > 40
    w.overlay_panel.kind_boxes["target"].setChecked(False)
    us.grab()
    assert "lesion_1" not in dict(us.drawn_text)
    # The opacity slider reaches the blend.
    w.overlay_panel.opacity.setValue(60)
    assert us.opacity == pytest.approx(0.6)
    assert _grab(us)[band].max(axis=-1).mean() > 60          # now the CT shows through the black


def test_linear_interpolation_is_the_default(window, qtbot):
    w = window
    assert w.overlay_panel.smooth.isChecked()
    assert all(v.interpolation == "linear" for v in w.views.values())
    assert w.us_view.engine.interpolation == "linear" and w.us_view.overlay_interpolation == "linear"
    assert w.fused_view.ct_plane is not None
    coronal = w.views["coronal"]
    # 4 mm slices on 1 mm display rows: linear rows all differ, nearest repeats each slice 4 times.
    shown = coronal.displayed_slice()
    assert shown.shape[0] == 11 * 4
    assert np.all(np.any(np.diff(shown[2:-2, :], axis=0) != 0, axis=1))
    w.overlay_panel.smooth.setChecked(False)
    assert all(v.interpolation == "nearest" for v in w.views.values())
    assert w.us_view.engine.interpolation == "nearest"
    rows = coronal.displayed_slice()
    same = np.all(rows[1:] == rows[:-1], axis=1)
    assert same.sum() >= 11 * 3 - 1
    # The fused CT plane is now sampled on voxels: only values present in the CT.
    assert np.isin(np.unique(w.fused_view.ct_plane), np.unique(w.ct.array)).all()
