"""The fusion layout on a real CT (crlm-1004: 512x512x41, 0.8 mm pixels, 5 mm slices, no labels)
with a metastasis at the crosshair (issue 20, screenshots).

crlm-1004 has no ultrasound. The sweep here is SIMULATED from this CT with the project's B-mode
simulator (sample_data.simulator; a rough HU-threshold liver mask only tells the simulator where
liver speckle goes, the window gets no labels) along a short slide of a convex probe on the right
anterior abdominal wall aimed at the lesion; the registration is the simulation's own pose
(Reference = CT). That makes every pane of the fusion layout show real CT anatomy: the point of
these screenshots is the CT display (interpolation, crosshair, probe, text), not the ultrasound.
"""
from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from gui.core.session import RegistrationState
from gui.window.main_window import MainWindow
from registration.spatial.sweep import Sweep
from registration.spatial.volume import LabelMap

pytestmark = [pytest.mark.gui, pytest.mark.slow]

# A hypodense metastasis (about 12 mm) in the left lobe next to the fissure, read on axial
# slices 16-18 of the display grid; its centre is display slice 17, column 193, row 211.
LESION_SLICE, LESION_PX = 17, (193, 211)


def _simulated_sweep(ct, target, n: int = 9):
    """A convex-probe slide (+-8 mm along the body axis) on the right anterior skin aimed at
    ``target``: (Sweep in CT coordinates, index of the frame through the target)."""
    from scipy import ndimage
    from sample_data.simulator.us_simulator import UltrasoundSimulator
    from sample_data.sweeps.probe_placement import probe_pose
    liver = ndimage.binary_opening((ct.array > 90) & (ct.array < 200), iterations=2)
    sim = UltrasoundSimulator(ct, LabelMap(liver.astype(np.uint8), ct.spacing, ct.origin, ct.direction,
                                           names={"liver": 1}), seed=3)
    beam_out = np.array([-0.45, -1.0, 0.0])
    beam_out /= np.linalg.norm(beam_out)
    p = np.asarray(target, float).copy()
    while True:                                   # out along the beam to the skin (first air)
        i, j, k = np.round(ct.lps_to_index(p)).astype(int)
        if ct.array[k, j, i] < -400:
            break
        p += beam_out
    skin = p - 2.0 * beam_out
    image_to_ct, frames = [], []
    for dz in np.linspace(-8.0, 8.0, n):
        pose = probe_pose(skin + [0.0, 0.0, dz], -beam_out, [1.0, 0.0, 0.0])
        m = pose @ sim.image_to_probe
        image_to_ct.append(m)
        frames.append(sim.simulate(m)[0])
    sweep = Sweep(np.array(frames), np.arange(n) * 0.1, {"ImageToReference": np.array(image_to_ct)},
                  fan_mask=sim.fan_mask, source="simulated from crlm-1004 (test)")
    return sweep, n // 2


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)])
def test_real_ct_fusion_with_target_at_crosshair(qtbot, shared_data, artifacts_dir, size):
    from gui.core import loaders
    ct = loaders.load_ct(shared_data("ct", "crlm-1004", "dicom"))
    w = MainWindow(enable_3d=True)
    qtbot.addWidget(w)
    w.reporter.show_dialogs = False
    w.resize(*size)
    w.show()
    qtbot.waitExposed(w)
    w.set_ct(ct)
    w.apply_preset("liver")                       # metastases are read in a liver window
    target = (w.display.pixel_to_lps("axial", LESION_SLICE) @ [*LESION_PX, 0, 1])[:3]
    sweep, through = _simulated_sweep(ct, target)
    w.set_sweep(sweep)
    w.set_registration(RegistrationState(np.eye(4), "simulated probe pose on this CT", tre_mm=None))
    assert w.layout_name == "fusion"
    w.player.seek(through, force=True)
    qtbot.waitUntil(lambda: not w._follow_timer.isActive(), timeout=2000)
    us = w.us_view
    # Click the lesion on the ultrasound: the crosshair (all three slices) goes there.
    m = sweep.image_to_reference(through)
    d = target - m[:3, 3]
    col, row = d @ m[:3, 0] / (m[:3, 0] @ m[:3, 0]), d @ m[:3, 1] / (m[:3, 1] @ m[:3, 1])
    assert abs(d @ np.cross(m[:3, 0], m[:3, 1]) / np.linalg.norm(np.cross(m[:3, 0], m[:3, 1]))) < 0.5
    qtbot.mouseClick(us, Qt.LeftButton, pos=us.pixel_to_widget(col, row).toPoint())
    cursor = w.views["axial"].cursor_lps
    assert np.linalg.norm(cursor - target) < 1.5 * np.linalg.norm(m[:3, 0]) * us.width() / us.frame_rect().width()
    assert w.views["axial"].slice_index == LESION_SLICE
    assert all(v.probe is not None for v in w.views.values())
    # The fused CT shows the lesion's dark disc where the ultrasound frame has it.
    fused = w.fused_view
    s = us.overlay.step
    lesion_hu = fused.ct_plane[int(row / s), int(col / s)]
    assert lesion_hu < 80 and np.median(fused.ct_plane[fused.ct_plane > -500]) > lesion_hu
    v = w.view3d                                   # no labels: the CT's bone, the probe's plane
    v.wait_for_surfaces()
    qtbot.waitUntil(lambda: bool(v.surfaces), timeout=60000)
    assert v.status.text() == "3D: bone from the CT (no label map)"
    lab = v.status                                 # the status line is whole, inside the 3D view
    assert v.rect().contains(lab.geometry())
    assert (lab.heightForWidth(lab.width()) <= lab.height()) if lab.wordWrap() else \
        (lab.sizeHint().width() <= lab.width())
    assert {"bone"} == set(v.surfaces)
    z = np.asarray(v.surfaces["bone"].points)[:, 2]    # the spine and ribs over most of the 205 mm
    assert z.max() - z.min() > 180.0
    v.flush_plane()
    v._render_now()
    qtbot.wait(100)
    w.grab().save(str(artifacts_dir / f"gui_views_fusion_crlm1004_{size[0]}x{size[1]}.png"))
    v.grab().save(str(artifacts_dir / f"gui_views_3d_crlm1004_{size[0]}x{size[1]}.png"))
    for view in (us, fused, *w.views.values()):
        view.grab()                     # paints now (records drawn_text)
        for text, box in view.drawn_text:
            assert 0 <= box.left() and box.right() <= view.width() and 0 <= box.top() \
                and box.bottom() <= view.height(), (view.objectName(), text, box)
    w.close()
