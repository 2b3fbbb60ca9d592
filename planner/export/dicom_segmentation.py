"""The plan's label map as a DICOM Segmentation (SEG, binary) on the CT's slices, with highdicom.

One segment per label present in the map, numbered 1..N in the order of the
label values (DICOM wants consecutive segment numbers; the label values of a
map such as 21..26 for lesions are not), labelled with our structure name
(``liver``, ``lesion_2``...) so that reading the SEG back
(:mod:`registration.io.dicom_seg`) gives the same names and masks. Each
segment carries SNOMED CT codes (Segmented Property Category and Type,
DICOM CID 7150/7151) for the standard names of DESIGN section 6; other
names are coded as "Tissue" and keep their name as label.

The algorithm type is MANUAL: ctus did not compute the label map and cannot
tell how it was made; it was the user's input, reviewed before planning.

Frames: one per (segment, slice) where the segment is present (empty frames
omitted), each referring to the CT slice it lies on; the label map must be
on the CT's grid, which the caller guarantees (``load_labels(reference=ct)``
and :func:`planner.export.dicom_source.check_on_slices`).
"""
from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from planner.anatomy.structures import risk_class_of
from planner.case.case_plan import SOFTWARE_VERSION
from registration.spatial.volume import LabelMap

from .dicom_objects import MANUFACTURER, SeriesIds, copy_body_part

_ANATOMY = ("123037004", "Anatomical Structure")
_ABNORMAL = ("49755003", "Morphologically Abnormal Structure")
_TISSUE = ("85756007", "Tissue")
_TYPES: Dict[str, Tuple[Tuple[str, str], Tuple[str, str]]] = {      # name -> (category, type), SNOMED CT
    "body": (_ANATOMY, ("38266002", "Entire body")), "liver": (_ANATOMY, ("10200004", "Liver")),
    "portal_vein": (_ANATOMY, ("32764006", "Portal vein")), "hepatic_vein": (_ANATOMY, ("8993003", "Hepatic vein")),
    "artery": (_ANATOMY, ("51114001", "Artery")), "bone": (_TISSUE, ("272673000", "Bone")),
    "lung": (_ANATOMY, ("39607008", "Lung")), "gallbladder": (_ANATOMY, ("28231008", "Gallbladder")),
    "bowel": (_ANATOMY, ("113276009", "Intestine")), "kidney": (_ANATOMY, ("64033007", "Kidney")),
    "spleen": (_ANATOMY, ("78961009", "Spleen")), "pancreas": (_ANATOMY, ("15776009", "Pancreas")),
    "pancreatic_mass": (_ABNORMAL, ("4147007", "Mass")), "heart": (_ANATOMY, ("80891009", "Heart")),
    "ivc": (_ANATOMY, ("64131007", "Inferior vena cava")),
}
_BY_CLASS = {"lesion": (_ABNORMAL, ("52988006", "Lesion")), "vessel": (_ANATOMY, ("59820001", "Blood vessel")),
             "bone": _TYPES["bone"], "lung": _TYPES["lung"], "bowel": _TYPES["bowel"],
             "kidney": _TYPES["kidney"], "heart": _TYPES["heart"]}


def _codes(name: str):
    category, kind = _TYPES.get(name) or _BY_CLASS.get(risk_class_of(name) or "", (_TISSUE, _TISSUE))
    return hd.sr.CodedConcept(category[0], "SCT", category[1]), hd.sr.CodedConcept(kind[0], "SCT", kind[1])


def segment_table(labels: LabelMap) -> List[Tuple[int, str, int]]:
    """(segment number, name, label value) for every named label present in the map, by value."""
    present = set(int(v) for v in np.unique(labels.array) if v != 0)
    named = sorted((int(v), n) for n, v in labels.names.items() if int(v) in present)
    return [(k + 1, name, value) for k, (value, name) in enumerate(named)]


def segmentation(headers: Sequence[Dataset], labels: LabelMap, ids: SeriesIds) -> hd.seg.Segmentation:
    """A binary DICOM SEG of ``labels`` (on the CT grid, k = slice order of ``headers``)."""
    table = segment_table(labels)
    if not table:
        raise ValueError("the label map has no named label with voxels")
    if labels.array.shape != (len(headers), int(headers[0].Rows), int(headers[0].Columns)):
        raise ValueError(f"label map {labels.array.shape} is not on the CT's {len(headers)} slices")
    lut = np.zeros(int(labels.array.max()) + 1, np.uint16)
    for number, _, value in table:
        lut[value] = number
    pixels = lut[labels.array]                      # unnamed values map to 0 (background)
    pixels = pixels.astype(np.uint8 if len(table) < 256 else np.uint16)
    descriptions = []
    for number, name, _ in table:
        category, kind = _codes(name)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=name, segmented_property_category=category,
            segmented_property_type=kind, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL))
    seg = hd.seg.Segmentation(
        source_images=list(headers), pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=ids.series_uid, series_number=ids.series_number,
        sop_instance_uid=ids.sop_uids[0], instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name="ctus planner", software_versions=SOFTWARE_VERSION,
        device_serial_number="none", series_description=ids.description, omit_empty_frames=True,
        transfer_syntax_uid=ExplicitVRLittleEndian)
    copy_body_part(headers[0], seg)
    return seg
