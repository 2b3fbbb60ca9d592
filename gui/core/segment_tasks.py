"""The segmentation work the window runs: thin calls into ``planner.segmentation``, no Qt.

* :func:`segment_ct`: the automatic anatomy of a CT (``segment_anatomy``) with the
  window's ``progress(fraction, message) -> bool`` (False = cancel: the pipeline
  raises CancelledError between its steps).
* :func:`grow_at`: a lesion grown from a click (``grow_lesion``) inside the liver
  of the label map being edited (liver + its vessels + lesions), bone kept out.
* :func:`save_segmentation` / :func:`load_segmentation`: the label map as a Slicer
  ``.seg.nrrd`` with names and colours; the origin and review state are header fields
  (``ctus_anatomy_source``, ``ctus_anatomy_reviewed``) and Slicer's segment status says the
  same (``completed`` once reviewed, ``inprogress`` before); both come back on reading.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from planner.anatomy.provenance import AUTOMATIC, mark_origin
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

from .label_editing import EditableLabels

#: Slicer's segment status of a reviewed segmentation (and of one still to be reviewed)
REVIEWED_STATUS, UNREVIEWED_STATUS = "completed", "inprogress"
#: header fields of our .seg.nrrd with the anatomy's origin (Slicer keeps unknown fields)
SOURCE_KEY, REVIEWED_KEY = "ctus_anatomy_source", "ctus_anatomy_reviewed"


def segment_ct(ct: Volume, progress=None):
    """``planner.segmentation.pipeline.segment_anatomy`` of ``ct`` (an AnatomySegmentation whose
    label map is marked "automatic segmentation, not reviewed")."""
    from planner.segmentation.pipeline import segment_anatomy
    if progress is not None:
        progress(0.0, "segmentation: checking the CT")
    result = segment_anatomy(ct, progress=progress, path=ct.metadata.get("source"))
    mark_origin(result.labels, AUTOMATIC, False)
    return result


def grow_at(ct: Volume, array: np.ndarray, names: dict, point_lps, name: str, liver_region=None):
    """Grow lesion ``name`` from the click ``point_lps`` (CT LPS mm) with the label ``array`` /
    ``names`` being edited (a copy: this runs in a worker). ``liver_region`` (bool, CT grid)
    overrides the liver taken from the labels. InputError, in words for the user, when the click
    is refused (outside the CT, air, fat, bone, outside the liver, no contrast)."""
    from planner.segmentation.lesion_grow import grow_lesion
    if liver_region is None:
        values = [v for n, v in names.items() if n == "liver" or n in ("portal_vein", "hepatic_vein",
                                                                        "liver_vessel") or n.startswith("lesion")]
        liver_region = np.isin(array, values) if "liver" in names else None
    if liver_region is None or not liver_region.any():
        raise InputError("there is no liver in the label map, so no lesion can be grown",
                         fix="press Segment first (or open a label map with a liver)")
    bone = array == names["bone"] if "bone" in names else None
    inside_lesion = next((n for n, v in names.items() if n.startswith("lesion")
                          and _value_at(ct, array, point_lps) == v), None)
    if inside_lesion is not None:
        raise InputError(f"the click is inside {inside_lesion}, which is already segmented",
                         fix="click another lesion, or correct this one with the brush")
    return grow_lesion(ct, point_lps, liver_region, name=name, bone=bone)


def _value_at(ct: Volume, array: np.ndarray, lps) -> int:
    ijk = np.rint(ct.lps_to_index(np.asarray(lps, float))).astype(int)
    if np.any(ijk < 0) or np.any(ijk >= np.array(ct.shape_ijk)):
        return 0
    return int(array[ijk[2], ijk[1], ijk[0]])


def save_segmentation(edit: EditableLabels, path) -> str:
    """Write the edited label map as a Slicer ``.seg.nrrd`` (names, colours, review status)."""
    from registration.io.seg_nrrd_write import write_seg_nrrd
    status = REVIEWED_STATUS if edit.reviewed else UNREVIEWED_STATUS
    extra = {SOURCE_KEY: edit.source, REVIEWED_KEY: {True: "yes", False: "no", None: "unknown"}[edit.reviewed]}
    return write_seg_nrrd(edit.to_labelmap(), str(path), status=status, extra=extra)


def _header(path) -> dict:
    import SimpleITK as sitk
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return {key: reader.GetMetaData(key) for key in reader.GetMetaDataKeys()}


def seg_status(path) -> Optional[str]:
    """The common Slicer segment status of a ``.seg.nrrd`` (None when absent or mixed)."""
    header = _header(path)
    found = set()
    for key, tags in header.items():
        if key.startswith("Segment") and key.endswith("_Tags"):
            found.add(next((t.split(":", 1)[1] for t in tags.split("|") if t.startswith("Segmentation.Status:")),
                           None))
    return found.pop() if len(found) == 1 else None


def load_segmentation(path, reference: Volume, progress=None) -> LabelMap:
    """A ``.seg.nrrd`` (or any label map the loaders read) on the CT grid. A ``.seg.nrrd`` written
    here comes back with the anatomy's origin and review state (its ``ctus_anatomy_*`` fields);
    any other file is a label map whose review is not known."""
    from .loaders import load_labels
    labels = load_labels(str(path), None, reference, progress=progress)
    if str(path).lower().endswith(".seg.nrrd"):
        header = _header(path)
        if header.get(SOURCE_KEY):
            reviewed = {"yes": True, "no": False}.get(header.get(REVIEWED_KEY, "").strip())
            mark_origin(labels, header[SOURCE_KEY].strip(), reviewed)
    return labels
