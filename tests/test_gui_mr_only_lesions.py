"""Lesions seen on the MR only are drawn apart from the CT's in the CT slice views, the ultrasound
overlay and 3D (magenta, dotted outline, a legend entry), and the fusion layout button names the
image the fused view shows (issue 18, item 5). Small synthetic label maps; the real window."""
from __future__ import annotations

import numpy as np
import pytest

from _gui_helpers import make_window
from gui.views.qimage import LESION_COLOUR, MR_ONLY_COLOUR, outline_rgba
from gui.views.structure_style import CT_ALPHA, mr_only_values, outline_lut
from planner.anatomy.mr_lesions import MR_ONLY_KEY, mr_only_lesions
from registration.spatial.volume import LabelMap, Volume

pytestmark = pytest.mark.gui


def _case():
    """A 60 mm cube CT (1 mm), liver slab, a CT lesion and an MR-only lesion (both r = 7 mm)."""
    shape = (40, 60, 60)
    origin = np.array([-30.0, -30.0, -20.0])
    kji = np.indices(shape).astype(float)
    lps = np.stack([kji[2], kji[1], kji[0]], -1) + origin
    ct = Volume(np.where(np.abs(lps[..., 0]) < 25, 60, -1000).astype(np.int16), (1, 1, 1), origin)
    lab = np.zeros(shape, np.uint8)
    lab[(np.abs(lps[..., 0]) < 25) & (np.abs(lps[..., 1]) < 25) & (np.abs(lps[..., 2]) < 15)] = 1
    lab[np.linalg.norm(lps - [-10.0, 0.0, 0.0], axis=-1) <= 7.0] = 2
    lab[np.linalg.norm(lps - [10.0, 0.0, 0.0], axis=-1) <= 7.0] = 3
    labels = LabelMap(lab, (1, 1, 1), origin, names={"liver": 1, "lesion_1": 2, "lesion_mr_1": 3},
                      metadata={MR_ONLY_KEY: ["lesion_mr_1"]})
    return ct, labels


def test_mr_only_names_come_from_the_label_map():
    _ct, labels = _case()
    assert mr_only_lesions(labels) == {"lesion_mr_1"}
    assert mr_only_lesions(None) == frozenset()
    # a name the label map does not have any more (edited away) is not reported
    stale = LabelMap(labels.array, labels.spacing, labels.origin, names={"liver": 1},
                     metadata={MR_ONLY_KEY: ["lesion_mr_1"]})
    assert mr_only_lesions(stale) == frozenset()


def test_mr_only_outline_is_magenta_and_dotted():
    _ct, labels = _case()
    mr_only = mr_only_lesions(labels)
    lut = outline_lut(labels.names, 3, CT_ALPHA, mr_only)
    assert tuple(lut[3, :3]) == MR_ONLY_COLOUR and tuple(lut[2, :3]) == LESION_COLOUR
    sl = labels.array[20]
    solid = outline_rgba(sl, lut)
    dotted = outline_rgba(sl, lut, mr_only_values(labels.names, mr_only))
    n_solid = [(solid[..., 3] > 0) & (sl == v) for v in (2, 3)]
    n_dotted = [(dotted[..., 3] > 0) & (sl == v) for v in (2, 3)]
    assert n_dotted[0].sum() == n_solid[0].sum() > 20              # the CT lesion: unchanged, solid
    assert 0.55 < n_dotted[1].sum() / n_solid[1].sum() < 0.9       # the MR-only one: about 3/4 drawn


def test_3d_draws_mr_only_lesions_as_their_own_group():
    from gui.views.view3d_scene import GROUPS, MR_ONLY_GROUP, build_surfaces
    _ct, labels = _case()
    surfaces = build_surfaces(labels)
    assert sorted(surfaces) == sorted(["liver", "lesions", MR_ONLY_GROUP])
    assert np.allclose(np.asarray(surfaces[MR_ONLY_GROUP].points).mean(0), [10.0, 0.0, 0.0], atol=0.7)
    assert np.allclose(np.asarray(surfaces["lesions"].points).mean(0), [-10.0, 0.0, 0.0], atol=0.7)
    assert GROUPS[MR_ONLY_GROUP][0] == MR_ONLY_COLOUR


def test_ct_views_show_the_legend_and_the_fusion_button_names_the_image(qtbot, artifacts_dir):
    ct, labels = _case()
    w = make_window(qtbot, size=(1366, 768))
    w.set_ct(ct, labels)
    w.set_cursor(np.array([0.0, 0.0, 0.0]))
    ax = w.views["axial"]
    ax.grab()
    texts = [t for t, _box in ax.drawn_text]
    assert any("seen on MR only" in t for t in texts) and any(t.strip() == "lesion" for t in texts)
    assert "lesion_mr_1" in texts and "lesion_1" in texts
    # The outline layer: magenta pixels on the MR-only lesion's side (x > 0 = patient left = screen right)
    img = ax._outline
    magenta = yellow = 0
    for y in range(0, img.height()):
        for x in range(0, img.width()):
            c = img.pixelColor(x, y)
            if c.alpha() == 0:
                continue
            rgb = (c.red(), c.green(), c.blue())
            magenta += rgb == MR_ONLY_COLOUR
            yellow += rgb == LESION_COLOUR
    assert magenta > 10 and yellow > 10 and magenta < yellow       # dotted: fewer pixels drawn
    qtbot.wait(100)
    w.grab().save(str(artifacts_dir / "gui_mr_only_lesion_legend.png"))
    # Without MR-only lesions: no legend
    plain = LabelMap(labels.array, labels.spacing, labels.origin, names=dict(labels.names))
    w.set_labels(plain)
    ax.grab()
    assert not any("seen on MR only" in t for t, _b in ax.drawn_text)

    fv, button = w.fused_view, w.layout_buttons["fusion"]
    assert button.text() == "Fusion: US | CT in US plane"
    fv.set_second_image(ct.with_array(np.full(ct.array.shape, 0.5, np.float32)), "MR")
    fv.show_image("MR")
    assert button.text() == "Fusion: US | MR in US plane"
    fv.show_image("CT")
    assert button.text() == "Fusion: US | CT in US plane"
    fv.show_image("MR")
    fv.set_second_image(None, "MR")                                 # the MR removed: the CT again
    assert button.text() == "Fusion: US | CT in US plane"
