"""``segment_anatomy``: the label map a plan needs, from a contrast-enhanced abdominal CT alone.

Order and why (each step in its own module):

1. input checks (:mod:`.checks`), then the CT is put in anatomical index order
   (:mod:`.orient`) and onto a ~2 mm working grid (:mod:`.grid`);
2. body (:mod:`.body`), dense cortex (:mod:`.bone` stage 1) and the spine's outline;
3. liver and muscle HU from the data (:mod:`.liver`), then aorta and IVC
   (:mod:`.great_vessels`, redrawn at full resolution by :mod:`.vessels`);
   the enhancement check (a non-contrast CT is refused);
4. bone (stage 2: never inside the aorta or IVC), air: lungs (:mod:`.lungs`)
   and bowel gas (:mod:`.gas`);
5. liver on the working grid (kept out of bone, air and the heart
   (:mod:`.heart`)), checked (:mod:`.checks`), redrawn at full resolution
   (:mod:`.liver_refine`);
   costal cartilage (:mod:`.cartilage`), the heart as a structure (:mod:`.heart`);
6. vessels of the liver and its hilum at full resolution, the portal system
   followed outside the liver on the working grid, portal/hepatic split
   (:mod:`.vessel_split`);
7. gallbladder, kidneys, spleen and the bowel around its gas (:mod:`.viscera`):
   hard structures of the planner the steps above do not find;
8. one label map on the CT's own grid (:mod:`.labelling`).

Every step is timed (``timings_s``); ``progress(fraction, message)`` is called
between steps and returning False, or ``cancel()`` returning True (a
``threading.Event`` works too), stops with CancelledError.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from registration.spatial.errors import CancelledError
from registration.spatial.volume import LabelMap, Volume

from . import stages
from .checks import check_ct
from .grid import make_work_grid
from .labelling import paint_labels
from .orient import canonical
from .viscera import viscera_step

ProgressFn = Callable[[float, str], Optional[bool]]


@dataclass
class AnatomySegmentation:
    """The automatic anatomy of one CT.

    ``labels`` lies on the CT's own grid with ``names`` (standard names, see
    :data:`planner.segmentation.labelling.LABEL_VALUES`; values from 21 up are
    left free for lesions); ``liver_region`` is the liver *with* the vessels
    and lesions inside it (bool ``[k, j, i]`` on the CT grid: what a lesion
    grower should stay in); ``warnings`` are sentences for the user;
    ``measures`` the HU and volumes the method found (liver_hu, muscle_hu,
    aorta_hu, liver_ml, ...); ``timings_s`` seconds per step.
    """
    labels: LabelMap
    names: Dict[str, int]
    liver_region: np.ndarray
    warnings: List[str] = field(default_factory=list)
    timings_s: Dict[str, float] = field(default_factory=dict)
    measures: Dict[str, float] = field(default_factory=dict)


class _Clock:
    def __init__(self, progress: Optional[ProgressFn], cancel):
        self.progress, self.cancel = progress, cancel
        self.timings: Dict[str, float] = {}
        self._t = time.perf_counter()

    def step(self, name: str, fraction: float) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self._t, 3)
        self._t = now
        stop = False
        if self.cancel is not None:
            stop = self.cancel.is_set() if hasattr(self.cancel, "is_set") else bool(self.cancel())
        if not stop and self.progress is not None:
            stop = self.progress(float(fraction), f"segmentation: {name} done") is False
        if stop:
            raise CancelledError("anatomy segmentation cancelled")


def segment_anatomy(ct: Volume, *, arterial: Optional[Volume] = None, liver_seed_lps=None,
                    progress: Optional[ProgressFn] = None, cancel=None,
                    path=None) -> AnatomySegmentation:
    """Body, lungs, bowel gas, bone, liver, liver vessels, aorta, IVC, heart, gallbladder,
    kidneys, spleen and bowel of a contrast CT.

    ``arterial`` (optional, any grid; resampled by physical position) lets the
    portal and hepatic veins be told apart by their enhancement;
    ``liver_seed_lps`` (optional, LPS mm) is a click inside the liver.
    ``path`` names the CT in error messages. Raises InputError for a CT the
    method cannot use (too few slices, no contrast, no liver in view).
    """
    clock = _Clock(progress, cancel)
    path = path if path is not None else ct.metadata.get("source")
    warnings = check_ct(ct, path)
    cct, reo = canonical(ct)
    grid = make_work_grid(cct)
    clock.step("checks and working grid", 0.05)
    st = stages.State(ct=cct, grid=grid, path=path, warnings=warnings,
                      seed_lps=None if liver_seed_lps is None else np.asarray(liver_seed_lps, float))
    stages.body_and_cortex(st)
    clock.step("body and cortex", 0.15)
    stages.intensities_and_great_vessels(st)
    clock.step("aorta and IVC", 0.25)
    stages.bone_and_air(st)
    clock.step("bone, lungs and gas", 0.4)
    stages.liver_step(st)
    clock.step("liver", 0.7)
    stages.cartilage_step(st)
    clock.step("costal cartilage", 0.75)
    stages.heart_step(st)
    clock.step("heart", 0.8)
    stages.vessel_step(st, arterial)
    clock.step("liver vessels", 0.88)
    viscera_step(st)
    clock.step("gallbladder, kidneys, spleen, bowel", 0.95)
    labels, names = paint_labels(st)
    out = reo.array_from_canonical(labels)
    lm = LabelMap(out, ct.spacing, ct.origin, ct.direction, names,
                  {"source": "automatic anatomy segmentation", "warnings": list(st.warnings)})
    region = reo.array_from_canonical(st.liver_region)
    clock.step("label map", 1.0)
    return AnatomySegmentation(labels=lm, names=names, liver_region=region, warnings=st.warnings,
                               timings_s=clock.timings, measures=st.measures)
