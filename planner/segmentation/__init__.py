"""Automatic segmentation of a CT: anatomy without a click, lesions from a click.

Owns automatic anatomy segmentation from a contrast-enhanced abdominal CT
(body, lungs, bowel gas, bone, liver, liver vessels, aorta and IVC; entry
point :func:`planner.segmentation.pipeline.segment_anatomy`), classical and
deterministic (SimpleITK, scipy, scikit-image; no model, no download), and,
from its sibling modules, lesions grown from a click and the import of
TotalSegmentator label maps. May import ``registration`` only (it sits at the
bottom of the planner beside ``anatomy``; the planner reads its label map
through the standard structure names).
"""
