"""The label map of a CT without one: automatic anatomy, TotalSegmentator's if given, clicked lesions.

One function for every command that needs labels and was given none
(``ctus segment``, and ``ctus plan`` / ``ctus register`` without ``--labels``),
so they all build the same map: :func:`segment_case` runs the automatic
anatomy (:func:`planner.segmentation.pipeline.segment_anatomy`), replaces its
structures by TotalSegmentator's of the same name when that output is given,
grows every seeded lesion from its click inside the liver
(:func:`planner.segmentation.lesion_grow.grow_lesion`) and composes one label
map on the CT's grid (:func:`planner.segmentation.lesion_labels.compose_labels`:
lesions get 21, 22, ... in seed order and keep their names).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from registration.spatial.errors import CancelledError, InputError, ProjectError
from registration.spatial.volume import LabelMap, Volume

#: What plan.json / RESULT.json / the PDF call anatomy made by :func:`segment_case`.
AUTOMATIC_SOURCE = "automatic segmentation"


@dataclass
class SegmentedCase:
    """The label map of one CT built without a label file.

    ``labels`` (on the CT's grid, standard names, lesions 21 and up), ``sources``
    ({name: "automatic" | "imported" | "lesion"}, "imported" = TotalSegmentator), ``lesions`` (the grown
    :class:`~planner.segmentation.lesion_grow.LesionSegmentation` in seed order),
    ``anatomy`` (the automatic :class:`~planner.segmentation.pipeline.AnatomySegmentation`,
    None when TotalSegmentator's structures were used alone), ``warnings``
    (sentences) and ``timings_s`` (seconds per step).
    """
    labels: LabelMap
    sources: Dict[str, str]
    lesions: list
    anatomy: Optional[object]
    warnings: List[str] = field(default_factory=list)
    timings_s: Dict[str, float] = field(default_factory=dict)

    def provenance(self) -> dict:
        """The ``anatomy_source`` block of plan.json / RESULT.json: automatic, not reviewed."""
        return {"source": AUTOMATIC_SOURCE, "reviewed": False,
                "method": "planner.segmentation (classical, deterministic)"
                          + (" + TotalSegmentator structures" if "imported" in self.sources.values() else ""),
                "structures": sorted(n for n, s in self.sources.items() if s != "lesion"),
                "lesions": [les.summary() for les in self.lesions],
                "warnings": list(self.warnings)}


def segment_case(ct: Volume, seeds: Sequence, *, arterial: Optional[Volume] = None,
                 totalsegmentator: Optional[str] = None,
                 progress: Optional[Callable[[float, str], Optional[bool]]] = None) -> SegmentedCase:
    """Anatomy and the seeded lesions of ``ct`` as one label map.

    ``seeds``: :class:`~planner.segmentation.lesion_seeds_file.LesionSeed` (CT LPS mm),
    checked on the CT first; ``arterial`` on the CT's grid (tells portal from hepatic
    veins, shows hyper-enhancing lesions); ``totalsegmentator``: its output folder or
    multi-label file, whose structures replace the automatic ones of the same name (and
    stand alone, with a warning, when the automatic method refuses the CT). Raises
    InputError for a CT the method refuses or a click it cannot use.
    """
    from .lesion_labels import compose_labels
    from .lesion_seeds_file import check_seeds_on_ct
    progress = progress or (lambda *a: True)
    check_seeds_on_ct(ct, seeds)
    timings: Dict[str, float] = {}
    warnings: List[str] = []
    anatomy, imported = _anatomy(ct, arterial, totalsegmentator, progress, timings, warnings)
    t = time.perf_counter()
    lesions = _grow(ct, arterial, anatomy, imported, seeds, progress, warnings)
    timings["lesions_s"] = time.perf_counter() - t
    if anatomy is not None:
        from .viscera import release_lesions
        warnings += release_lesions(anatomy, lesions)
    labels, sources, overlap = compose_labels(None if anatomy is None else anatomy.labels, lesions,
                                              imported=imported, grid=ct)
    warnings += overlap
    return SegmentedCase(labels, sources, lesions, anatomy, warnings, timings)


def _anatomy(ct, arterial, ts_path, progress, timings, warnings):
    """(automatic AnatomySegmentation or None, imported TotalSegmentator LabelMap or None)."""
    from .pipeline import segment_anatomy
    imported = None
    if ts_path:
        from registration.io.totalsegmentator import load_totalsegmentator

        from .totalsegmentator_names import to_standard_names
        t = time.perf_counter()
        progress(0.0, "reading the TotalSegmentator output")
        imported, _ = to_standard_names(load_totalsegmentator(ts_path, reference=ct, progress=progress))
        warnings += [f"TotalSegmentator: {w}" for w in imported.metadata.get("warnings", [])]
        timings["totalsegmentator_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        result = segment_anatomy(ct, arterial=arterial, progress=progress, path=ct.metadata.get("source"))
    except CancelledError:
        raise
    except ProjectError as exc:               # InputError included: a CT the automatic method refuses
        if imported is None:
            raise
        warnings.append(f"automatic anatomy not available ({exc}); the TotalSegmentator structures are used "
                        "alone")
        return None, imported
    timings["anatomy_s"] = time.perf_counter() - t
    prefix = "automatic anatomy: " if imported is not None else ""
    warnings += [prefix + w for w in result.warnings]
    return result, imported


def _grow(ct, arterial, anatomy, imported, seeds, progress, warnings):
    """Every seeded lesion, grown inside TotalSegmentator's liver when given, else inside the
    automatic liver region (the liver with its vessels and lesions)."""
    from .lesion_grow import grow_lesion
    liver = bone = None
    if anatomy is not None:
        liver = anatomy.liver_region
        bone = anatomy.labels.array == anatomy.names["bone"] if "bone" in anatomy.names else None
    if imported is not None:
        if "liver" in imported.names:
            liver = imported.array == imported.names["liver"]
        if "bone" in imported.names:
            bone = imported.array == imported.names["bone"]
    if seeds and (liver is None or not liver.any()):
        raise InputError("no liver was found, so no lesion can be grown", path=ct.metadata.get("source"),
                         fix="check the CT covers the liver, or give --totalsegmentator with a liver")
    lesions = []
    for seed in seeds:
        progress(0.0, f"growing {seed.name} from ({', '.join(f'{v:.1f}' for v in seed.point_lps)})")
        if seed.warning():
            warnings.append(seed.warning())
        try:
            lesions.append(grow_lesion(ct, seed.point_lps, liver, name=seed.name, arterial=arterial, bone=bone))
        except InputError as exc:
            raise InputError(str(exc), path=seed.path) from None
        warnings += lesions[-1].warnings
    return lesions
