"""Volume validation and geometry, frame graph chains."""
import numpy as np
import pytest

from registration.spatial.errors import InputError
from registration.spatial.frames import FrameGraph
from registration.spatial.transforms import apply, rigid_matrix
from registration.spatial.volume import LabelMap, Volume, orientation_letters


def test_volume_validates_geometry():
    with pytest.raises(InputError, match="3D"):
        Volume(np.zeros((4, 4)))
    with pytest.raises(InputError, match="positive"):
        Volume(np.zeros((2, 2, 2)), spacing=(1, 0, 1))
    with pytest.raises(InputError, match="orthonormal"):
        Volume(np.zeros((2, 2, 2)), direction=np.diag([1, 2, 1]))
    with pytest.raises(InputError, match="finite"):
        Volume(np.zeros((2, 2, 2)), origin=(0, np.nan, 0))


def test_ijk_to_lps_matches_sitk():
    d = rigid_matrix([10, 20, -30, 0, 0, 0])[:3, :3]
    v = Volume(np.zeros((5, 6, 7), np.int16), (0.5, 0.7, 2.0), (10, -20, 30), d)
    img = v.to_sitk()
    for ijk in [(0, 0, 0), (6, 5, 4), (3, 1, 2)]:
        assert np.allclose(v.index_to_lps(ijk), img.TransformIndexToPhysicalPoint(ijk))
        assert np.allclose(apply(v.ijk_to_lps, ijk), v.index_to_lps(ijk))
    p = [12.3, -4.5, 6.7]
    assert np.allclose(v.lps_to_index(p), img.TransformPhysicalPointToContinuousIndex(p))
    assert np.allclose(v.lps_to_ijk @ v.ijk_to_lps, np.eye(4))
    back = Volume.from_sitk(img)
    assert back.same_grid(v) and back.array.shape == (5, 6, 7)


def test_array_order_is_kji():
    arr = np.zeros((3, 4, 5))
    arr[2, 1, 0] = 1  # k=2, j=1, i=0
    v = Volume(arr, spacing=(1, 1, 1))
    assert v.shape_ijk == (5, 4, 3)
    img = v.to_sitk()
    assert img.GetSize() == (5, 4, 3) and img[0, 1, 2] == 1


def test_orientation_letters():
    assert orientation_letters(np.eye(3)) == "LPS"
    # a coronal-acquired image: i -> L, j -> I (rows downwards), k -> A
    assert orientation_letters(np.array([[1, 0, 0], [0, 0, -1], [0, -1, 0]]).T) == "LIA"


def test_labelmap_names():
    lm = LabelMap(np.array([[[0, 1, 2]]]), names={"liver": 1, "lesion_1": 2})
    assert lm.mask("liver").sum() == 1
    assert list(lm.lesion_names()) == ["lesion_1"]
    with pytest.raises(InputError, match="not in the label map"):
        lm.value_of("kidney")
    with pytest.raises(InputError, match="integer"):
        LabelMap(np.array([[[0.5]]]))
    with pytest.raises(InputError, match="background"):
        LabelMap(np.zeros((1, 1, 1), int), names={"x": 0})


def test_frame_graph_chain_and_inverse():
    g = FrameGraph()
    image_to_probe = np.diag([0.1, 0.1, 1, 1])
    probe_to_tracker = rigid_matrix([0, 0, 90, 100, 0, 0])
    reference_to_tracker = rigid_matrix([0, 0, 0, 0, 50, 0])
    g.set("Image", "Probe", image_to_probe)
    g.set("Probe", "Tracker", probe_to_tracker)
    g.set("Reference", "Tracker", reference_to_tracker)
    image_to_reference = g.get("Image", "Reference")
    expected = np.linalg.inv(reference_to_tracker) @ probe_to_tracker @ image_to_probe
    assert np.allclose(image_to_reference, expected)
    assert np.allclose(g.get("Reference", "Image") @ image_to_reference, np.eye(4))
    assert g.path("Image", "Reference") == ["Image", "Probe", "Tracker", "Reference"]
    with pytest.raises(InputError, match="unknown frame 'CT'"):
        g.get("Image", "CT")
    g.set("Stylus", "Pointer", np.eye(4))
    with pytest.raises(InputError, match="no chain"):
        g.get("Image", "Stylus")


def test_check_choice_lists_the_choices_and_maps_aliases():
    from registration.spatial.errors import check_choice
    assert check_choice("gzip", ("raw", "gzip"), "encoding") == "gzip"
    assert check_choice("maximum", {"max": "max", "maximum": "max"}, "compounding") == "max"
    with pytest.raises(InputError, match=r"^f.nrrd: NRRD encoding 'hex' is not supported "
                                         r"\(choices: raw, gzip\); re-export$"):
        check_choice("hex", ("raw", "gzip"), "NRRD encoding", path="f.nrrd", fix="re-export")
    with pytest.raises(InputError, match=r"'\[1, 2\]' is not supported"):
        check_choice([1, 2], ("a",), "mode")                 # unhashable: still an InputError
    with pytest.raises(InputError, match="'x{60}' is not"):
        check_choice("x" * 500, ("a",), "mode")               # long junk is shortened


def test_transform_names_and_the_no_chain_error():
    from registration.spatial.frames import is_transform_name, no_chain_error, split_transform_name
    assert split_transform_name("ProbeToTrackerTransform") == ("Probe", "Tracker")
    assert split_transform_name("TrackerToolToReference") == ("TrackerTool", "Reference")
    assert is_transform_name("ImageToProbe") and not is_transform_name("Toxic")
    with pytest.raises(InputError, match="not a transform name"):
        split_transform_name("ToProbe")
    e = no_chain_error("Image", "CT", ["ImageToProbe"], missing="ProbeToCT", path="a.mha", fix="add it")
    assert str(e) == ("a.mha: no ProbeToCT transform to link Image to CT "
                      "(transforms known: ImageToProbe); add it")
    g = FrameGraph()
    g.set("Image", "Probe", np.eye(4))
    g.set("Stylus", "Pointer", np.eye(4))
    with pytest.raises(InputError, match=r"no chain of transforms links Image to Stylus "
                                         r"\(transforms known: ImageToProbe, StylusToPointer\)"):
        g.path("Image", "Stylus")
