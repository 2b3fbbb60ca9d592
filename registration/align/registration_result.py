"""Results of a CT -> sweep intensity registration (LC2 or MI).

``reference_to_ct`` maps Reference mm to CT LPS mm; metrics are the method's own
(higher = better); ``StartResult.start_params`` is the perturbation of the start
(deg, mm) about the registration's centre. ``to_dict`` gives the JSON form that
RESULT.json carries (:mod:`registration.align.result_document`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Tuple

import numpy as np

from .assessment import Assessment

#: ``progress(fraction 0..1, message)``; returning False cancels the registration.
ProgressFn = Callable[[float, str], Optional[bool]]


@dataclass
class StartResult:
    """One start of the multi-start search, at the level where the starts are compared."""
    start_params: np.ndarray       # perturbation of the start (deg, mm) about the centre
    reference_to_ct: np.ndarray    # where this start ended (Reference mm -> CT LPS mm)
    metric_initial: float
    metric_final: float
    evaluations: int


@dataclass
class RegistrationResult:
    """Outcome of :func:`~registration.align.intensity_registration.register_sweep`.

    Metrics are the method's own (LC2 or MI, higher = better); ``center_ct`` is the
    rotation centre of the rigid updates (CT LPS mm); ``history`` holds ``(evaluation
    number, level index, metric)`` per cost evaluation, in completion order."""
    reference_to_ct: np.ndarray
    method: str
    metric_initial: float
    metric_final: float
    iterations: int                        # cost evaluations over all levels and starts
    wall_time_s: float
    center_ct: np.ndarray
    starts: List[StartResult] = field(default_factory=list)
    history: List[Tuple[int, int, float]] = field(default_factory=list)
    frames_used: List[int] = field(default_factory=list)
    init_reference_to_ct: Optional[np.ndarray] = None
    uncertainty: Optional[Assessment] = None
    timings_s: dict = field(default_factory=dict)   # wall time per stage (where the time goes)
    breathing: Optional[dict] = None       # registration.align.motion.BreathingReport.to_dict() (LC2)
    #: the second search with small patches (LC2, lc2_stages.small_patch_search): "chosen" (its pose
    #: replaced the levels' result), the fine level's LC2 of both ("fine_lc2": [levels', second's]),
    #: how far apart they are ("apart_mm", at the rotation centre); None when it did not run
    second_search: Optional[dict] = None
    #: the comparable starts the middle level left more than AGREE_MM apart, each polished through the
    #: fine levels (lc2_stages.confirm_starts; [] when none were): whether they agree at the finest level
    fine_starts: List[np.ndarray] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON form (the registration fields of RESULT.json)."""
        return {
            "reference_to_ct": np.asarray(self.reference_to_ct).tolist(),
            "method": self.method,
            "metric_initial": float(self.metric_initial),
            "metric_final": float(self.metric_final),
            "iterations": int(self.iterations),
            "wall_time_s": float(self.wall_time_s),
            "center_ct": [float(v) for v in self.center_ct],
            "frames_used": [int(f) for f in self.frames_used],
            "starts": [{"start_params": s.start_params.tolist(), "metric_initial": s.metric_initial,
                        "metric_final": s.metric_final, "evaluations": s.evaluations,
                        "reference_to_ct": s.reference_to_ct.tolist()} for s in self.starts],
            "history": [list(h) for h in self.history],
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "timings_s": {k: round(float(v), 3) for k, v in self.timings_s.items()},
            "breathing": self.breathing,
            "second_search": self.second_search,
            "fine_starts": [np.asarray(m).tolist() for m in self.fine_starts],
        }
