"""The label map under correction (gui.core.label_editing, no Qt) and the anatomy's origin words
(planner.anatomy.provenance): brush discs in mm in the view's plane, the HU range, erase back to
the container, grow/shrink by 1 mm, undo of several steps, renames, lesions added; the .seg.nrrd
round trip with names, colours and the review state."""
from __future__ import annotations

import numpy as np
import pytest

from gui.core.label_editing import EditableLabels, container_of
from gui.core.segment_tasks import grow_at, load_segmentation, save_segmentation, seg_status
from planner.anatomy.provenance import AUTOMATIC, anatomy_origin, mark_origin, origin_text
from planner.export.report_pdf import anatomy_source_text
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap
from synthetic_case import lesion_centroids_ct, make_ct


@pytest.fixture(scope="module")
def case():
    """The synthetic CT with body, liver (vessels inside) and bone labels (no lesion)."""
    ct = make_ct()
    hu = ct.array
    lab = np.zeros(hu.shape, np.uint8)
    lab[hu > -500] = 1                                      # body
    kji = np.indices(hu.shape).reshape(3, -1).T
    x, y, z = ct.index_to_lps(kji[:, ::-1].astype(float)).T
    liver = (((x - 10) / 55) ** 2 + ((y + 5) / 45) ** 2 + (z / 50) ** 2 < 1).reshape(hu.shape)
    lab[liver] = 5
    lab[liver & (hu > 150)] = 6                             # liver vessels
    lab[hu > 500] = 2                                       # bone
    labels = LabelMap(lab, ct.spacing, ct.origin, ct.direction,
                      {"body": 1, "bone": 2, "liver": 5, "liver_vessel": 6})
    mark_origin(labels, AUTOMATIC, False)
    return ct, labels


def _edit(case):
    ct, labels = case
    return EditableLabels(ct, labels)


def test_brush_paints_a_disc_in_the_view_plane_and_undoes_as_one_stroke(case):
    ct, _ = case
    e = _edit(case)
    centre = np.array([0.0, 50.0, 0.0])                                   # soft tissue below the liver
    before = e.array.copy()
    e.begin_stroke("paint liver")
    n1 = e.brush(centre, 6.0, 2, 0.75, name="liver")                       # axial disc, one slice
    n2 = e.brush(centre + [3.0, 0, 0], 6.0, 2, 0.75, name="liver")         # a drag: overlapping dab
    assert e.end_stroke() and n1 > 0 and n2 > 0
    changed = np.argwhere(e.array != before)
    lps = ct.index_to_lps(changed[:, ::-1].astype(float))
    assert np.all(np.abs(lps[:, 2] - centre[2]) <= 0.75)                   # one axial slice
    d = np.minimum(np.linalg.norm(lps[:, :2] - centre[:2], axis=1),
                   np.linalg.norm(lps[:, :2] - (centre[:2] + [3.0, 0]), axis=1))
    assert d.max() <= 6.0 + 1e-6
    # a disc of radius 6 mm on 1.5 mm pixels: about pi r^2 / 2.25 mm^2 pixels (~50), whatever was not liver
    assert 30 <= n1 <= 60
    assert e.undo() == "paint liver" and np.array_equal(e.array, before)   # the stroke is one step
    assert e.undo() is None


def test_hu_range_and_erase_back_to_the_container(case):
    ct, _ = case
    e = _edit(case)
    centre = np.array([0.0, 0.0, 0.0])                                    # a vessel of 180 HU in the liver
    e.begin_stroke("paint")
    e.brush(centre, 10.0, 2, 0.75, name="liver_vessel", hu_range=(150, 250))
    e.end_stroke()
    vessel = e.array == 6
    assert np.all(ct.array[vessel & (e.array != _edit(case).array)] >= 150)   # only voxels in range painted
    e.begin_stroke("erase")
    e.brush(centre, 10.0, 2, 0.75, name="liver_vessel", erase=True)
    e.end_stroke()
    k = int(np.rint(ct.lps_to_index(centre)[2]))
    sl = e.array[k]
    erased = (_edit(case).array[k] == 6) & (sl != 6)
    assert erased.sum() > 10 and np.all(sl[erased] == 5)                   # erased vessel -> liver, not background
    assert container_of("lesion_1", e.names) == 5 and container_of("bone", e.names) == 1
    assert container_of("body", e.names) == 0
    e.undo()
    e.undo()
    assert np.array_equal(e.array, _edit(case).array)


def test_grow_and_shrink_by_one_mm_take_only_free_voxels(case):
    ct, _ = case
    e = _edit(case)
    bone0 = (e.array == 2).sum()
    n = e.grow("bone", 1.0)
    bone1 = e.array == 2
    assert n > 0 and bone1.sum() == bone0 + n
    assert not np.any(bone1 & (_edit(case).array == 5))                   # never into the liver
    n2 = e.grow("bone", -1.0)
    assert n2 > 0 and (e.array == 2).sum() < bone1.sum()
    assert e.undo().startswith("shrink") and (e.array == 2).sum() == bone1.sum()
    assert e.undo().startswith("grow") and (e.array == 2).sum() == bone0
    with pytest.raises(InputError, match="no structure 'spleen'"):
        e.grow("spleen", 1.0)


def test_lesion_from_a_click_added_named_and_renamed(case):
    ct, labels = case
    e = _edit(case)
    name = e.next_lesion_name()
    les = grow_at(ct, e.array.copy(), dict(e.names), lesion_centroids_ct()[0], name)
    assert les.kind == "hypo" and 13.0 < les.diameter_mm < 23.0 and les.contrast_hu < -20
    value = e.add_lesion(les)
    assert value == 21 and e.names["lesion_1"] == 21 and e.lesion_names() == ["lesion_1"]
    assert e.next_lesion_name() == "lesion_2"
    with pytest.raises(InputError, match="already segmented"):
        grow_at(ct, e.array.copy(), dict(e.names), lesion_centroids_ct()[0], "lesion_2")
    with pytest.raises(InputError, match="air|outside"):
        grow_at(ct, e.array.copy(), dict(e.names), (0.0, -79.0, 0.0), "lesion_2")      # air in front
    with pytest.raises(InputError, match="bone"):
        grow_at(ct, e.array.copy(), dict(e.names), (0.0, 66.0, 0.0), "lesion_2")
    with pytest.raises(InputError, match="start with 'lesion'"):
        e.rename("lesion_1", "segment 7")
    with pytest.raises(InputError, match="taken"):
        e.rename("lesion_1", "liver")
    e.rename("lesion_1", "lesion_dome")
    assert "lesion_dome" in e.names and e.lesion_rows["lesion_dome"]["name"] == "lesion_dome"
    e.undo()                                            # the rename
    assert "lesion_1" in e.names and "lesion_1" in e.lesion_rows
    e.undo()                                            # the lesion
    assert "lesion_1" not in e.names and not np.any(e.array == 21) and not e.lesion_rows
    no_liver = {"body": 1}
    with pytest.raises(InputError, match="no liver"):
        grow_at(ct, np.ones_like(e.array), no_liver, lesion_centroids_ct()[0], "lesion_1")


def test_origin_words_and_seg_nrrd_round_trip(case, tmp_path):
    ct, labels = case
    assert anatomy_origin(labels) == {"source": AUTOMATIC, "reviewed": False}
    assert origin_text(anatomy_origin(labels)) == "anatomy: automatic segmentation, not reviewed"
    plain = LabelMap(labels.array, ct.spacing, ct.origin, ct.direction, labels.names, {"source": "/x/labels.nrrd"})
    assert origin_text(anatomy_origin(plain)) == "anatomy: label map labels.nrrd"
    e = _edit(case)
    e.add_lesion(grow_at(ct, e.array.copy(), dict(e.names), lesion_centroids_ct()[1], "lesion_1"))
    path = save_segmentation(e, tmp_path / "seg.seg.nrrd")
    assert seg_status(path) == "inprogress"
    back = load_segmentation(path, ct)
    assert back.names == e.names and np.array_equal(back.array, e.array)
    assert anatomy_origin(back) == {"source": AUTOMATIC, "reviewed": False}
    e.set_reviewed(True)
    save_segmentation(e, path)
    back = load_segmentation(path, ct)
    assert seg_status(path) == "completed" and anatomy_origin(back)["reviewed"] is True
    assert origin_text(anatomy_origin(back)) == "anatomy: automatic segmentation, reviewed by user"
    # the plan's anatomy_source as the PDF report states it
    assert anatomy_source_text({"anatomy_source": anatomy_origin(back)}) == "ANATOMY: automatic segmentation, reviewed"
    assert anatomy_source_text({"anatomy_source": anatomy_origin(labels)}).endswith("not reviewed: check the "
                                                                                  "structures before use")
    assert anatomy_source_text({"anatomy_source": anatomy_origin(plain)}) == "Anatomy source: label map (labels.nrrd)"
    header = open(path, "rb").read(6000)
    assert b"Segment4_Name:=lesion_1" in header and b"Segment4_Color:=" in header
