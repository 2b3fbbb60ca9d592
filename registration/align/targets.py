"""Targets of the registration uncertainty report: where the error is estimated.

A target mapping is ``{name: {"point": [x, y, z] CT LPS mm, "radius_mm": R or None}}``
(the ``targets`` argument of :func:`~registration.align.intensity_registration.register_sweep`);
a radius makes the report give a hit probability for a lesion of that size.
"""
from __future__ import annotations

from typing import Dict

from registration.spatial.lesions import lesion_table
from registration.spatial.volume import LabelMap


def targets_from_labels(labels: LabelMap) -> Dict[str, dict]:
    """Every lesion of ``labels`` (``lesion_*`` labels and the components of a generic
    ``lesion`` label, as :func:`registration.spatial.lesions.lesion_table` finds them) as a
    target: its centroid (CT LPS mm, when the labels are on the CT's grid) and the radius of
    the sphere of equal volume (mm). ``ctus register --labels`` and the GUI use this."""
    return {row["name"]: {"point": [float(v) for v in row["centroid_lps"]],
                          "radius_mm": float(row["equivalent_diameter_mm"]) / 2.0}
            for row in lesion_table(labels)}
