"""Where a label map's anatomy came from and whether a person reviewed it: the plan states both.

A label map carries its origin in ``labels.metadata["anatomy"]`` as
``{"source": ..., "reviewed": ...}``: ``source`` is :data:`AUTOMATIC` for the
automatic segmentation (``ctus segment``, the GUI's Segment, ``ctus plan``
without ``--labels``), ``reviewed`` is False until a person marked it reviewed
(the GUI's "Mark anatomy reviewed"). A label map read from a file without that
entry is a ``"label map"`` whose review is not known (``reviewed: None``).
:func:`planner.case.case_plan.plan_case` writes :func:`anatomy_origin` as plan.json's
``anatomy_source`` (the field ``ctus plan`` writes when it segments first) and
the PDF report states it, so every export says whether the anatomy it was
planned on is an unreviewed automatic result.
"""
from __future__ import annotations

import os
from typing import Optional

#: ``source`` of an automatic segmentation (the same words in plan.json, the PDF and the GUI).
AUTOMATIC = "automatic segmentation"
LABEL_FILE = "label map"
#: what the automatic pipeline writes in ``LabelMap.metadata["source"]``
_PIPELINE_SOURCE = "automatic anatomy segmentation"


def mark_origin(labels, source: str, reviewed: Optional[bool]) -> None:
    """Set ``labels.metadata["anatomy"]`` (the label map's origin and review state)."""
    labels.metadata["anatomy"] = {"source": str(source), "reviewed": None if reviewed is None else bool(reviewed)}


def anatomy_origin(labels) -> dict:
    """plan.json's ``anatomy_source`` of a label map: ``{"source", "reviewed"}`` (``reviewed``
    absent when not known; ``"path"``, the file, for a label map): its own entry when set, an
    automatic segmentation when the pipeline made it, else a label map file."""
    md = getattr(labels, "metadata", None) or {}
    entry = md.get("anatomy")
    if isinstance(entry, dict) and entry.get("source"):
        reviewed = entry.get("reviewed")
        out = {"source": str(entry["source"]), "reviewed": None if reviewed is None else bool(reviewed)}
    elif md.get("source") == _PIPELINE_SOURCE:
        out = {"source": AUTOMATIC, "reviewed": False}
    else:
        out = {"source": LABEL_FILE, "reviewed": None}
    if out["source"] == LABEL_FILE and md.get("source"):
        out["path"] = os.path.abspath(str(md["source"]))
    if out["reviewed"] is None:
        del out["reviewed"]                  # plan.json: a boolean when known, absent otherwise
    return out


def origin_text(origin: dict) -> str:
    """One line for the GUI: "anatomy: automatic segmentation, not reviewed", "anatomy:
    automatic segmentation, reviewed by user", "anatomy: label map labels.nrrd"."""
    source = str(origin.get("source", "unknown"))
    if origin.get("path"):
        source += f" {os.path.basename(str(origin['path']))}"
    reviewed = origin.get("reviewed")
    if reviewed is None:
        return f"anatomy: {source}"
    return f"anatomy: {source}, {'reviewed by user' if reviewed else 'not reviewed'}"
