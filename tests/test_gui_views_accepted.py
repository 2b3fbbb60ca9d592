"""The fusion layout on the demo after the real workflow (issue 20, item 1, screenshots): six
landmark pairs clicked through the views, the automatic refinement, Accept; then the window
(registration and planning panels docked, 3D view on) at 1366x768 and 1920x1080.

After Accept the window is in the fusion layout by itself, the slice views follow the played
frame through the accepted registration, the probe is on every slice view, the 3D view is a
pane of the layout with the US plane, and no text any 2D view drew leaves it.
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from _gui_helpers import SIZES, SPOTS, activate, open_demo, pick, six_frames
from gui.window.main_window import MainWindow

pytestmark = [pytest.mark.gui, pytest.mark.slow]


def test_fusion_after_accepting_the_registration(qtbot, artifacts_dir):
    w = MainWindow(enable_3d=True, panels=True)
    qtbot.addWidget(w)
    w.reporter.show_dialogs = False
    w.resize(*SIZES[0])
    w.move(0, 0)
    w.show()
    qtbot.waitExposed(w)
    activate(qtbot, w)
    true_r2c = open_demo(qtbot, w)
    panel = w.panel_docks["registration"].widget()
    rows, cols = w.sweep.image_shape
    qtbot.keyClick(w, Qt.Key_P)
    assert panel.pick_button.isChecked() and w.layout_name == "ct_us"
    for f, (a, b) in zip(six_frames(w), SPOTS):
        pick(qtbot, w, int(f), cols * a, rows * b, true_r2c)
    assert len(panel.landmarks.pairs) == 6 and not panel.pick_button.isChecked()   # pick mode ended
    panel.refine_options = dict(n_starts=2, seed=1)
    qtbot.keyClick(w, Qt.Key_R, Qt.ControlModifier)
    qtbot.waitUntil(lambda: panel.worker is None, timeout=600000)
    assert w.reporter.history == [] and panel.candidate is not None
    activate(qtbot, w)
    qtbot.keyClick(w, Qt.Key_Return, Qt.ControlModifier)
    assert w.registration.method == "lc2" and w.workflow.states["verify"].done
    assert w.layout_name == "fusion" and w.fused_view.isVisible() and w.view3d.isVisible()
    assert w.centralWidget().isAncestorOf(w.view3d)                 # docked in the layout

    # Play to a frame through lesion_1's sweep centre: the slices follow the probe.
    valid = np.flatnonzero(w.sweep.valid)
    frame = int(valid[len(valid) // 2])
    w.set_follow_probe(True)
    k0 = w.views["axial"].slice_index
    w.player.seek(int(valid[3]), force=True)
    qtbot.waitUntil(lambda: not w._follow_timer.isActive(), timeout=2000)
    k_early = w.views["axial"].slice_index
    w.player.seek(frame, force=True)
    qtbot.waitUntil(lambda: not w._follow_timer.isActive(), timeout=2000)
    assert np.allclose(w.views["axial"].cursor_lps, w.probe.centre_ct())
    assert len({k0, k_early, w.views["axial"].slice_index}) >= 2
    assert all(v.probe is w.probe for v in w.views.values())
    v = w.view3d
    v.wait_for_surfaces()
    qtbot.waitUntil(lambda: bool(v.surfaces), timeout=60000)
    for size in SIZES:
        w.resize(*size)
        qtbot.wait(200)
        v.flush_plane()
        v._render_now()
        qtbot.wait(100)
        tag = f"{size[0]}x{size[1]}"
        w.grab().save(str(artifacts_dir / f"gui_views_fusion_demo_accepted_{tag}.png"))
        assert (w.width(), w.height()) == size or w.minimumSizeHint().height() > size[1]
        for view in (w.us_view, w.fused_view, *w.views.values()):
            view.grab()                     # paints now (records drawn_text)
            for text, box in view.drawn_text:
                assert 0 <= box.left() and box.right() <= view.width() and 0 <= box.top() \
                    and box.bottom() <= view.height(), (tag, view.objectName(), text, box)
    w.close()
