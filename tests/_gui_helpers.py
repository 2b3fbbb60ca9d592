"""Shared helpers of the GUI tests: a window at a screen size, clicks at true positions, the demo case.

Landmarks are clicked through the real views: the CT point zoomed in at the centre of a
slice view, the US point at an integer pixel of the frame, both at the case's TRUE
correspondence (``true_r2c``: Reference mm -> CT LPS mm).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PyQt5.QtCore import QPoint, QPointF, Qt

from gui.window.main_window import MainWindow
from registration.spatial.transforms import apply


def demo_folder() -> Path:
    """The demo case (generated into the per-user cache on first use)."""
    from sample_data.case.demo_case import ensure_demo_case
    return Path(ensure_demo_case())


def make_window(qtbot, size=(1500, 950), panels: bool = False) -> MainWindow:
    """The real main window, shown at ``size`` (px), error dialogs off (errors stay in history)."""
    w = MainWindow(enable_3d=False, panels=panels)
    qtbot.addWidget(w)
    w.reporter.show_dialogs = False
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    return w


def open_demo(qtbot, w):
    """Open the demo case in ``w`` and wait; -> the TRUE reference_to_ct of its sweep."""
    folder = demo_folder()
    ready = []
    w.open_demo(then=lambda: ready.append(True))
    qtbot.waitUntil(lambda: bool(ready) or bool(w.reporter.history), timeout=300000)
    assert ready and not w.reporter.history, w.reporter.history
    w.wait_for_workers()
    truth = json.loads((folder / "truth.json").read_text())
    name = w.sweep.source.split("/")[-1]
    entry = next(s for s in truth["ultrasound"]["sweeps"] if s["file"] == name)
    return np.asarray(entry["reference_to_ct"], float)


def click_ct(qtbot, w, lps, view_name="axial"):
    """Show ``lps`` zoomed in at the centre of a slice view and click it there."""
    view = w.views[view_name]
    w.set_cursor(lps)
    view.zoom, view.pan = 3.0, QPointF(0.0, 0.0)
    p = view.lps_to_widget(lps)
    view.pan = QPointF(view.width() / 2.0, view.height() / 2.0) - p
    pos = view.lps_to_widget(lps).toPoint()
    qtbot.mouseClick(view, Qt.LeftButton, pos=pos)


def us_widget_pos(w, col, row):
    return w.us_view.pixel_to_widget(col, row).toPoint()


def true_pair(w, frame, col, row, true_r2c):
    """Best integer US click near (col, row) on ``frame``: the one whose true CT point lies closest
    to an axial slice centre (the CT click snaps to the slice plane). -> (US pos, CT point)."""
    grid = w.display.grid
    i2r = w.sweep.image_to_reference(frame)
    best = None
    base = us_widget_pos(w, col, row)
    for dx in range(-3, 4):
        for dy in range(-3, 4):
            pos = base + QPoint(dx, dy)
            px = w.us_view.widget_to_pixel(pos)
            ct = apply(true_r2c @ i2r, [px[0], px[1], 0.0])
            z = grid.lps_to_index(ct)[2]
            err = abs(z - np.rint(z)) * grid.spacing[2]
            if best is None or err < best[0]:
                best = (err, pos, ct)
    return best[1], best[2]


def pick(qtbot, w, frame, col, row, true_r2c, ct_offset=(0.0, 0.0, 0.0)):
    """One landmark pair clicked through the views (pick mode must be on); -> its true CT point."""
    w.player.seek(frame, force=True)
    pos, ct = true_pair(w, frame, col, row, true_r2c)
    click_ct(qtbot, w, ct + np.asarray(ct_offset))
    qtbot.mouseClick(w.us_view, Qt.LeftButton, pos=pos)
    return ct


#: Six landmark spots (fractions of the image width, height) spread over the frame.
SPOTS = [(0.35, 0.35), (0.65, 0.45), (0.5, 0.7), (0.4, 0.55), (0.6, 0.3), (0.45, 0.8)]


def six_frames(w):
    """Six valid frames spread over the sweep."""
    valid = w.sweep.valid
    return np.flatnonzero(valid)[np.linspace(0, valid.sum() - 1, 6).round().astype(int)]


def small_planning_case():
    """Body box, liver box, an 8 mm-radius lesion at the origin (1 mm voxels, LPS): plans in seconds."""
    from registration.spatial.volume import LabelMap, Volume
    shape, origin = (61, 81, 101), (-50.0, -40.0, -30.0)
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2] + origin[0], kji[1] + origin[1], kji[0] + origin[2]], -1)
    r = np.linalg.norm(lps, axis=-1)
    body = (np.abs(lps[..., 0]) < 45) & (np.abs(lps[..., 1]) < 35) & (np.abs(lps[..., 2]) < 28)
    liver = (np.abs(lps[..., 0]) < 35) & (lps[..., 1] > -25) & (lps[..., 1] < 30) & (np.abs(lps[..., 2]) < 25)
    ct = np.where(body, 40, -1000)
    ct = np.where(liver, 60, ct)
    ct = np.where(r <= 8, 20, ct).astype(np.int16)
    lab = np.where(body, 1, 0)
    lab = np.where(liver, 2, lab)
    lab = np.where(r <= 8, 3, lab).astype(np.uint8)
    return (Volume(ct, (1, 1, 1), origin),
            LabelMap(lab, (1, 1, 1), origin, names={"body": 1, "liver": 2, "lesion_1": 3}))


def grab_screen(w, path):
    """What the screen shows over the window's rectangle (the window and any dialog over it)."""
    from PyQt5.QtWidgets import QApplication
    g = w.frameGeometry()
    QApplication.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height()).save(str(path))


#: Screen sizes the layout must work at (px).
SIZES = ((1366, 768), (1920, 1080))


def synthetic_labels(ct):
    """Two spherical lesions of tests/synthetic_case.py's CT as a LabelMap on its grid."""
    from registration.spatial.volume import LabelMap
    from synthetic_case import lesion_centroids_ct
    lab = np.zeros(ct.array.shape, np.int16)
    kji = np.indices(ct.array.shape).reshape(3, -1).T
    lps = ct.index_to_lps(kji[:, ::-1].astype(float))
    for v, (c, r) in enumerate(zip(lesion_centroids_ct(), (9.0, 7.0)), start=1):
        lab.reshape(-1)[np.linalg.norm(lps - c, axis=1) < r] = v
    return LabelMap(lab, ct.spacing, ct.origin, names={"lesion_1": 1, "lesion_2": 2})


def raised_panel(w):
    """The name of the panel dock (registration / planning) shown in front, None if neither."""
    for name, dock in w.panel_docks.items():
        if dock.widget().isVisible() and not dock.visibleRegion().isEmpty():
            return name
    return None


def activate(qtbot, w) -> None:
    """Make ``w`` the active window (window shortcuts need it) and wait until it is."""
    from PyQt5.QtWidgets import QApplication
    w.raise_()
    w.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is w, timeout=5000)
