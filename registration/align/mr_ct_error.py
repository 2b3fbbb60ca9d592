"""How far an MR -> CT registration is off at each target, and its verdict.

A global rigid or affine fit cannot follow everything that moved between the
MR and the CT breath-holds: the question is how well it fits *at the lesion*.
So the error at a target is measured there: a translation-only Mattes-MI
re-registration of a ``BLOCK_MM`` cube of the CT (inside the body) around the
target, started at the global result (the MR moved by it), finds the shift
that would align that neighbourhood best (``local_shift_mm``). The reported
RMS error combines it with a resolution floor (``FLOOR_FACTOR`` x the working
voxel: neither the global nor the local optimum is finer than the images)::

    tre_mm = sqrt(local_shift^2 + floor^2)

with the 95 % radius ``RADIUS_95_PER_RMS x tre_mm`` (an isotropic Gaussian, as
:mod:`.uncertainty`). The block's gradient descent keeps the best point it saw
(it can step past it); when no step improves on the global result, that result
is the local optimum (shift 0, the floor remains). A block with too few voxels
inside the body or the MR gives no estimate (``None``: unknown, never small).

Verdict per target (heuristic levels; docs/clinical_evidence.md, docs/mri.md):
good when ``tre_mm <= GOOD_TRE_MM``, poor above ``POOR_TRE_MM`` or unknown,
else check; overall: the worst over the targets, and poor when the global MI
did not improve on the start.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from registration.spatial.transforms import apply

from .mr_ct import WORK_SPACING_MM, MRCTResult, _method
from .uncertainty import RADIUS_95_PER_RMS

BLOCK_MM = 60.0
FLOOR_FACTOR = 0.5
GOOD_TRE_MM = 2.5
POOR_TRE_MM = 5.0
#: Default targets when none are given: the focus centroid and this many points around it.
N_DEFAULT_TARGETS = 6
_LOCAL_ITERATIONS = 60
_MIN_BLOCK_VOXELS = 500


@dataclass
class MRCTTarget:
    """Error estimate at one target (CT LPS mm; errors mm RMS)."""
    name: str
    point_ct: List[float]
    point_mr: List[float]
    local_shift_mm: Optional[float]
    tre_mm: Optional[float]
    tre_95_mm: Optional[float]
    radius_mm: Optional[float] = None
    verdict: str = "poor"
    why: List[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"name": self.name, "point_ct": self.point_ct, "point_mr": self.point_mr,
                "local_shift_mm": self.local_shift_mm, "tre_mm": self.tre_mm, "tre_95_mm": self.tre_95_mm,
                "radius_mm": self.radius_mm, "verdict": self.verdict, "why": list(self.why)}


@dataclass
class MRCTAssessment:
    verdict: str
    reasons: List[str]
    targets: List[MRCTTarget]
    tre_mm: Optional[float]          # the largest target estimate (None if any is unknown)
    floor_mm: float

    def target(self, name: str) -> Optional[MRCTTarget]:
        return next((t for t in self.targets if t.name == name), None)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "reasons": list(self.reasons), "tre_mm": self.tre_mm,
                "floor_mm": self.floor_mm, "targets": [t.to_dict() for t in self.targets]}


def default_targets(result: MRCTResult) -> Dict[str, dict]:
    """The focus centroid and ``N_DEFAULT_TARGETS`` points half-way to its extremes (CT LPS mm)."""
    work = result.work
    focus = sitk.GetArrayFromImage(work["focus"]).astype(bool)
    k, j, i = np.nonzero(focus)
    idx = np.stack([i, j, k], axis=1).astype(float)
    img = work["focus"]
    pts = np.array([img.TransformContinuousIndexToPhysicalPoint(list(v)) for v in idx[:: max(len(idx) // 4000, 1)]])
    c = pts.mean(axis=0)
    out = {f"{result.focus}_centre": {"point": c.tolist()}}
    _, _, vt = np.linalg.svd(pts - c, full_matrices=False)
    for n in range(N_DEFAULT_TARGETS):
        axis = vt[n // 2] * (1 if n % 2 == 0 else -1)
        proj = (pts - c) @ axis
        p = pts[int(np.argmin(np.abs(proj - 0.5 * proj.max())))]
        out[f"{result.focus}_{n + 1}"] = {"point": p.tolist()}
    return out


def local_shift(result: MRCTResult, point_ct) -> Optional[float]:
    """|translation| (mm) that best re-aligns the ``BLOCK_MM`` cube around ``point_ct`` (None: unknown)."""
    work = result.work
    ct, body = work["ct"], sitk.GetArrayFromImage(work["body"]).astype(bool)
    idx = np.asarray(ct.TransformPhysicalPointToContinuousIndex([float(v) for v in point_ct]))
    half = BLOCK_MM / 2 / WORK_SPACING_MM
    size = np.asarray(ct.GetSize())
    lo = np.maximum(np.floor(idx - half).astype(int), 0)
    hi = np.minimum(np.ceil(idx + half).astype(int) + 1, size)
    block = np.zeros_like(body)
    block[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] = True
    block &= body
    if block.sum() < _MIN_BLOCK_VOXELS:
        return None
    mask = sitk.GetImageFromArray(block.astype(np.uint8))
    mask.CopyInformation(ct)
    global_tx = sitk.AffineTransform(3)
    m = result.ct_to_mr
    global_tx.SetMatrix([float(v) for v in m[:3, :3].reshape(-1)])
    global_tx.SetTranslation([float(v) for v in m[:3, 3]])
    r = _method(mask, [1], [0.0], _LOCAL_ITERATIONS)
    r.SetMetricSamplingStrategy(r.NONE)     # every block voxel: a deterministic metric to compare
    r.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=0.005, numberOfIterations=_LOCAL_ITERATIONS,
                                               relaxationFactor=0.5, gradientMagnitudeTolerance=1e-8)
    r.SetMovingInitialTransform(global_tx)
    r.SetInitialTransform(sitk.TranslationTransform(3), inPlace=False)
    best = {"value": None, "offset": np.zeros(3)}

    def keep_best():   # gradient descent may end past its best point: keep the best it saw
        v = r.GetMetricValue()
        if best["value"] is None or v < best["value"]:
            best["value"], best["offset"] = v, np.asarray(r.GetOptimizerPosition(), float)

    r.AddCommand(sitk.sitkIterationEvent, keep_best)
    try:
        before = r.MetricEvaluate(ct, work["mr"])
        r.Execute(ct, work["mr"])
    except RuntimeError:      # too few samples inside the MR
        return None
    if best["value"] is None or not np.isfinite(before) or best["value"] >= before:
        return 0.0           # no step improved on the global result: it is the local optimum
    # The translation acts on CT points before the global transform (SimpleITK keeps the moving
    # initial transform apart): compare where the target lands in the MR with and without it.
    p = np.asarray(point_ct, float)
    q = p + best["offset"]
    return float(np.linalg.norm(apply(m, q) - apply(m, p)))


def assess_mr_ct(result: MRCTResult, targets: Optional[Dict[str, dict]] = None) -> MRCTAssessment:
    """Per-target error estimates and verdicts (see the module docstring); stored in ``result.error``."""
    targets = dict(targets or {}) or default_targets(result)
    floor = FLOOR_FACTOR * WORK_SPACING_MM
    rows = []
    for name, t in targets.items():
        p = np.asarray(t["point"], float)
        shift = local_shift(result, p)
        tre = None if shift is None else float(np.hypot(shift, floor))
        row = MRCTTarget(name, p.round(3).tolist(), apply(result.ct_to_mr, p).round(3).tolist(),
                         None if shift is None else round(shift, 3), None if tre is None else round(tre, 3),
                         None if tre is None else round(RADIUS_95_PER_RMS * tre, 3),
                         None if t.get("radius_mm") is None else float(t["radius_mm"]))
        if tre is None:
            row.verdict, row.why = "poor", ["no local estimate: the neighbourhood does not match or lies outside the MR"]
        elif tre > POOR_TRE_MM:
            row.verdict, row.why = "poor", [f"estimated error {tre:.1f} mm above {POOR_TRE_MM:.0f} mm"]
        elif tre > GOOD_TRE_MM:
            row.verdict, row.why = "check", [f"estimated error {tre:.1f} mm above {GOOD_TRE_MM:.1f} mm"]
        else:
            row.verdict = "good"
        rows.append(row)
    order = {"good": 0, "check": 1, "poor": 2}
    verdict = max((r.verdict for r in rows), key=order.get, default="poor")
    reasons = [f"Mattes MI {result.metric_initial:.3f} -> {result.metric_final:.3f} (lower is better), focus "
               f"{result.focus}, start '{result.init}'"]
    if result.metric_final > result.metric_initial - 1e-3:
        verdict = "poor"
        reasons.append("the mutual information did not improve on the start: the images do not match")
    known = [r.tre_mm for r in rows if r.tre_mm is not None]
    worst = None if len(known) < len(rows) else max(known, default=None)
    reasons.append("largest estimated error " + ("unknown" if worst is None else f"{worst:.1f} mm")
                   + f" over {len(rows)} target(s)")
    if result.focus == "body":
        reasons.append("no liver label: registered on the whole body, which breathes differently from the liver "
                       "(pass the CT's labels to focus on the liver)")
    result.error = MRCTAssessment(verdict, reasons, rows, worst, floor)
    return result.error


def errors_at(ct, mr, mr_to_ct: np.ndarray, points_ct: Dict[str, np.ndarray], ct_labels=None) -> Dict[str, Optional[float]]:
    """RMS error estimate (mm, :func:`local_shift` with the floor) of a given ``mr_to_ct`` at each of
    ``points_ct`` (CT LPS mm): for lesions found after ``ctus align`` (the planner's MR lesions).
    None where no estimate can be made."""
    from .mr_ct import prepare

    work = prepare(ct, mr, ct_labels)
    m = np.asarray(mr_to_ct, float)
    res = MRCTResult(m, m, [], work["focus_name"], "given", float("nan"), float("nan"), 0.0, work)
    floor = FLOOR_FACTOR * WORK_SPACING_MM
    out: Dict[str, Optional[float]] = {}
    for name, p in points_ct.items():
        shift = local_shift(res, p)
        out[name] = None if shift is None else float(np.hypot(shift, floor))
    return out
