"""MR -> CT registration: Mattes mutual information, rigid then affine, multi-resolution, masks.

Frames: the CT (fixed, LPS mm) and the MR (moving, LPS mm of the MR scanner).
SimpleITK's registration finds the resampling transform ``ct_to_mr`` (a CT
point -> the MR point showing the same anatomy); the result is reported as
``mr_to_ct = inv(ct_to_mr)`` (p_ct = mr_to_ct @ p_mr) and written to an ITK
``.tfm`` as ``ct_to_mr`` (the resampling direction, fixed = CT, moving = MR:
Slicer applies it to the MR to lay it on the CT).

Stages (each Mattes MI, 32 bins, random 10 % sampling with a fixed seed,
regular-step gradient descent with scales from a 1 mm physical shift, on
images resampled to ``WORK_SPACING_MM``: the CT clipped to -200..500 HU, the MR
normalised by :func:`registration.io.mr_intensity.normalise`):

1. ``rigid_body``: Euler 3D, fixed mask = the CT's body, shrink 4-2-1, sigma 4-2-0 mm;
2. ``rigid_focus``: Euler 3D, fixed mask = the focus (the CT's liver label dilated by
   ``FOCUS_MARGIN_MM``, or the body when no liver is known), shrink 2-1;
3. ``affine_focus``: 12-parameter affine, same mask (breath-hold changes compress
   and shear the liver a little), shrink 2-1.

The start (``init``): ``"header"`` trusts both files' coordinates (the two
volumes must overlap there, else InputError); ``"centres"`` aligns the centres
of the two bodies and searches the table axis (S) for the best MI, for two
scanners whose frames differ; or a 4x4 ``mr_to_ct``. The error estimate and
the verdict are in :mod:`.mr_ct_error`. A GUI worker calls
:func:`register_mr_to_ct` with ``progress(fraction, message)`` (False cancels).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from registration.io.mr_intensity import foreground_mask, normalise
from registration.spatial.errors import CancelledError, InputError
from registration.spatial.transforms import invert, sitk_transform_to_matrix
from registration.spatial.volume import LabelMap, Volume

WORK_SPACING_MM = 2.0
CT_CLIP_HU = (-200.0, 500.0)
BODY_HU = -400.0
FOCUS_MARGIN_MM = 15.0
SAMPLING = 0.10
SEED = 1
HISTOGRAM_BINS = 32
#: The two volumes' boxes must share at least this fraction of the smaller one's extent on each axis (header start).
MIN_HEADER_OVERLAP = 0.2
#: Table-axis search of the "centres" start: +- range and step (mm).
Z_SEARCH_MM, Z_STEP_MM = 90.0, 6.0

ProgressFn = Callable[[float, str], Optional[bool]]


@dataclass
class StageResult:
    name: str
    metric: float            # Mattes MI (ITK's sign: lower = better)
    iterations: int
    time_s: float
    stop: str


@dataclass
class MRCTResult:
    """``mr_to_ct`` (4x4, MR LPS mm -> CT LPS mm) and how it was found; ``error`` is filled by
    :func:`registration.align.mr_ct_error.assess_mr_ct`."""
    mr_to_ct: np.ndarray
    rigid_mr_to_ct: np.ndarray
    stages: List[StageResult]
    focus: str
    init: str
    metric_initial: float
    metric_final: float
    wall_time_s: float
    work: dict = field(default_factory=dict, repr=False)    # images and masks the error estimate reuses
    error: Optional[object] = None

    @property
    def ct_to_mr(self) -> np.ndarray:
        return invert(self.mr_to_ct)


# ----------------------------------------------------------------------------- images
def _resampled(img: sitk.Image, spacing_mm: float, default: float) -> sitk.Image:
    """Gaussian (sigma = spacing/2 where coarser than the input) then linear to ``spacing_mm``."""
    sp = np.asarray(img.GetSpacing(), float)
    sigma = np.sqrt(np.maximum((spacing_mm / 2.0) ** 2 - (sp / 2.0) ** 2, 0.0))
    if np.any(sigma > 1e-3):
        img = sitk.SmoothingRecursiveGaussian(img, [float(max(s, 1e-3)) for s in sigma])
    size = np.maximum(np.round(np.asarray(img.GetSize()) * sp / spacing_mm).astype(int), 1)
    return sitk.Resample(img, [int(v) for v in size], sitk.Transform(), sitk.sitkLinear, img.GetOrigin(),
                         [float(spacing_mm)] * 3, img.GetDirection(), float(default), sitk.sitkFloat32)


def _mask_image(mask: np.ndarray, like: sitk.Image) -> sitk.Image:
    m = sitk.GetImageFromArray(mask.astype(np.uint8))
    m.CopyInformation(like)
    return m


def _body_mask_ct(ct_work: np.ndarray) -> np.ndarray:
    body = ct_work > BODY_HU
    lab, n = ndimage.label(body)
    if n > 1:
        sizes = ndimage.sum_labels(body, lab, index=np.arange(1, n + 1))
        body = lab == 1 + int(np.argmax(sizes))
    for k in range(body.shape[0]):
        body[k] = ndimage.binary_fill_holes(body[k])
    return body


def prepare(ct: Volume, mr: Volume, ct_labels: Optional[LabelMap] = None) -> dict:
    """Working images (sitk, ``WORK_SPACING_MM``), the CT body and focus masks, the MR foreground."""
    ct_img = sitk.Cast(ct.to_sitk(), sitk.sitkFloat32)
    ct_img = sitk.Clamp(ct_img, sitk.sitkFloat32, *CT_CLIP_HU)
    ct_w = _resampled(ct_img, WORK_SPACING_MM, CT_CLIP_HU[0])
    mr_n = normalise(mr)
    mr_w = _resampled(sitk.Cast(mr_n.to_sitk(), sitk.sitkFloat32), WORK_SPACING_MM, 0.0)
    body = _body_mask_ct(sitk.GetArrayFromImage(ct_w))
    focus, focus_name = body, "body"
    if ct_labels is not None and "liver" in ct_labels.names:
        liver = sitk.Cast(ct_labels.with_array((ct_labels.array == ct_labels.names["liver"]).astype(np.uint8))
                          .to_sitk(), sitk.sitkFloat32)
        liver_w = sitk.GetArrayFromImage(sitk.Resample(liver, ct_w, sitk.Transform(), sitk.sitkLinear, 0.0)) > 0.5
        if liver_w.any():
            d = ndimage.distance_transform_edt(~liver_w, sampling=(WORK_SPACING_MM,) * 3)
            focus, focus_name = (d <= FOCUS_MARGIN_MM) & body, "liver"
    mr_vol_w = Volume.from_sitk(mr_w)
    mr_fg = foreground_mask(mr_vol_w)
    return {"ct": ct_w, "mr": mr_w, "body": _mask_image(body, ct_w), "focus": _mask_image(focus, ct_w),
            "focus_name": focus_name, "mr_foreground": _mask_image(mr_fg, mr_w),
            "body_array": body, "focus_array": focus}


# ----------------------------------------------------------------------------- one stage
def _method(fixed_mask: sitk.Image, shrink, sigmas, iterations: int, seed: int = SEED) -> sitk.ImageRegistrationMethod:
    r = sitk.ImageRegistrationMethod()
    r.SetMetricAsMattesMutualInformation(HISTOGRAM_BINS)
    r.SetMetricSamplingStrategy(r.RANDOM)
    r.SetMetricSamplingPercentage(SAMPLING, seed)
    r.SetMetricFixedMask(fixed_mask)
    r.SetInterpolator(sitk.sitkLinear)
    r.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01, numberOfIterations=iterations,
                                               relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    r.SetOptimizerScalesFromPhysicalShift()
    r.SetShrinkFactorsPerLevel(list(shrink))
    r.SetSmoothingSigmasPerLevel(list(sigmas))
    r.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return r


def run_stage(name: str, work: dict, tx: sitk.Transform, mask: str, shrink, sigmas, iterations: int,
              report: Callable[[str], None], seed: int = SEED):
    """One MI stage from ``tx`` (a ct_to_mr sitk transform); returns (new transform, StageResult)."""
    r = _method(work[mask], shrink, sigmas, iterations, seed)
    r.SetInitialTransform(tx, inPlace=False)
    stop = {"cancel": False}

    def on_iteration():
        if report(f"{name}: level {r.GetCurrentLevel() + 1}, MI {r.GetMetricValue():.4f}") is False:
            stop["cancel"] = True
            r.StopRegistration()

    r.AddCommand(sitk.sitkIterationEvent, on_iteration)
    t0 = time.perf_counter()
    out = r.Execute(work["ct"], work["mr"])
    if stop["cancel"]:
        raise CancelledError("MR-CT registration cancelled")
    return out, StageResult(name, float(r.GetMetricValue()), int(r.GetOptimizerIteration()),
                            time.perf_counter() - t0, r.GetOptimizerStopConditionDescription()[:160])


def metric_value(work: dict, tx: sitk.Transform, mask: str = "focus") -> float:
    """Mattes MI (ITK sign, lower = better) of ``tx`` at full working resolution."""
    r = _method(work[mask], [1], [0], 1)
    r.SetInitialTransform(tx, inPlace=False)
    try:
        return float(r.MetricEvaluate(work["ct"], work["mr"]))
    except RuntimeError:      # too few samples map into the MR: no overlap
        return 0.0


# ----------------------------------------------------------------------------- start
def _euler(ct_to_mr: np.ndarray, centre) -> sitk.Euler3DTransform:
    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(v) for v in centre])
    tx.SetMatrix([float(v) for v in ct_to_mr[:3, :3].reshape(-1)])
    c = np.asarray(centre, float)
    tx.SetTranslation([float(v) for v in ct_to_mr[:3, 3] + ct_to_mr[:3, :3] @ c - c])
    return tx


def _box(img: sitk.Image):
    n = np.asarray(img.GetSize()) - 1
    corners = [img.TransformContinuousIndexToPhysicalPoint([float(a), float(b), float(c)])
               for a in (0, n[0]) for b in (0, n[1]) for c in (0, n[2])]
    pts = np.asarray(corners)
    return pts.min(axis=0), pts.max(axis=0)


def header_overlap(work: dict) -> np.ndarray:
    """Per axis (x, y, z), the overlap of the two volumes' boxes over the smaller extent (0..1)."""
    (a0, a1), (b0, b1) = _box(work["ct"]), _box(work["mr"])
    inter = np.minimum(a1, b1) - np.maximum(a0, b0)
    return np.clip(inter / np.maximum(np.minimum(a1 - a0, b1 - b0), 1e-6), 0.0, 1.0)


def _centre_of(mask_img: sitk.Image) -> np.ndarray:
    a = sitk.GetArrayFromImage(mask_img)
    k, j, i = np.nonzero(a)
    idx = np.stack([i, j, k], axis=1).mean(axis=0)
    return np.asarray(mask_img.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx]))


def initial_transform(work: dict, init: Union[str, np.ndarray], source=None) -> sitk.Euler3DTransform:
    """The ct_to_mr start (see the module docstring); InputError when the header start has no overlap."""
    centre = _centre_of(work["focus"])
    if not isinstance(init, str):
        return _euler(invert(np.asarray(init, float)), centre)
    if init == "header":
        ov = header_overlap(work)
        if np.any(ov < MIN_HEADER_OVERLAP):
            raise InputError(f"the MR and the CT do not overlap in their own coordinates (overlap per axis x, y, z: "
                             f"{', '.join(f'{100 * v:.0f} %' for v in ov)})", path=source,
                             fix="if they show the same region from two scanners, pass --init centres (align the "
                                 "bodies and search along the table) or --init-matrix with a rough mr_to_ct")
        return _euler(np.eye(4), centre)
    if init != "centres":
        raise InputError(f"unknown start '{init}'", fix="use header, centres or a matrix file")
    shift = _centre_of(work["mr_foreground"]) - _centre_of(work["body"])
    best = None
    for dz in np.arange(-Z_SEARCH_MM, Z_SEARCH_MM + 1e-6, Z_STEP_MM):
        m = np.eye(4)
        m[:3, 3] = shift + np.array([0.0, 0.0, dz])
        tx = _euler(m, centre)
        v = metric_value(work, tx, "body")
        if best is None or v < best[0]:
            best = (v, tx)
    return best[1]


# ----------------------------------------------------------------------------- entry
# long: the three stages in order with their progress shares, then the result
def register_mr_to_ct(ct: Volume, mr: Volume, *, ct_labels: Optional[LabelMap] = None,
                      init: Union[str, np.ndarray] = "header", affine: bool = True,
                      progress: Optional[ProgressFn] = None, source=None) -> MRCTResult:
    """Register the MR to the CT (see the module docstring). ``ct_labels``: the CT's label map (its
    ``liver`` focuses stages 2-3); ``init``: "header", "centres" or a 4x4 ``mr_to_ct``."""
    t0 = time.perf_counter()
    fraction = [0.0]

    def report(msg: str, f: Optional[float] = None):
        if f is not None:
            fraction[0] = f
        if progress is not None and progress(fraction[0], msg) is False:
            return False
        return True

    if report("preparing images", 0.02) is False:
        raise CancelledError("MR-CT registration cancelled")
    work = prepare(ct, mr, ct_labels)
    tx = initial_transform(work, init, source)
    m0 = metric_value(work, tx)
    stages: List[StageResult] = []
    plan = [("rigid_body", "body", (4, 2), (4.0, 2.0), 120, 0.1),
            ("rigid_focus", "focus", (2, 1), (2.0, 0.0), 100, 0.45)]
    centre = np.asarray(tx.GetCenter(), float)
    for name, mask, shrink, sigmas, its, f in plan:
        report(name, f)
        out, st = run_stage(name, work, tx, mask, shrink, sigmas, its, report)
        tx = _euler(sitk_transform_to_matrix(out), centre)
        stages.append(st)
    rigid = invert(sitk_transform_to_matrix(tx))
    if affine:
        report("affine_focus", 0.7)
        aff = sitk.AffineTransform(3)
        aff.SetCenter([float(v) for v in centre])
        aff.SetMatrix(tx.GetMatrix())
        aff.SetTranslation(tx.GetTranslation())
        tx, st = run_stage("affine_focus", work, aff, "focus", (2, 1), (2.0, 0.0), 100, report)
        stages.append(st)
    mr_to_ct = invert(sitk_transform_to_matrix(tx))
    m1 = metric_value(work, tx)
    report("registered", 0.9)
    return MRCTResult(mr_to_ct, rigid, stages, work["focus_name"], init if isinstance(init, str) else "matrix",
                      m0, m1, time.perf_counter() - t0, work)


def stage_table(result: MRCTResult) -> List[Dict[str, object]]:
    """The stages as JSON rows."""
    return [{"name": s.name, "mattes_mi": round(s.metric, 5), "iterations": s.iterations,
             "time_s": round(s.time_s, 2), "stop": s.stop} for s in result.stages]
