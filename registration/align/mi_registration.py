"""Mattes mutual-information baseline for CT -> sweep registration (SimpleITK).

The sweep is first reconstructed (``registration.ultrasound.reconstruction``, mean
compounding, no hole filling) into a volume in the Reference frame; that
volume is the *fixed* image, restricted to voxels that received pixels, and the
CT is the *moving* image. ITK's transform maps fixed points to moving points,
so it is ``reference_to_ct`` itself (no inversion at this boundary).

Same starts as LC2 (:func:`registration.align.multistart.start_perturbations`);
the best final MI wins. Single resolution on the 2 mm reconstruction (ITK's
shrink-2 level with the fixed mask drove the optimiser off the optimum),
regular-step gradient descent with physical-shift scales, 10 % random sampling
(seeded); the CT is clamped to [-200, 400] HU first. Why each:
docs/registration_tuning.md#mi-baseline.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import CancelledError, InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply, rigid_matrix
from registration.spatial.volume import Volume

from .multistart import start_perturbations
from .registration_result import ProgressFn, RegistrationResult, StartResult

RECON_SPACING_MM = 2.0


def _euler_from_matrix(m: np.ndarray, center) -> sitk.Euler3DTransform:
    tx = sitk.Euler3DTransform()
    c = np.asarray(center, float)
    tx.SetCenter([float(v) for v in c])
    tx.SetMatrix([float(v) for v in m[:3, :3].ravel()])
    # T(x) = R (x - c) + c + t  ==  R x + t0   =>   t = t0 - c + R c
    tx.SetTranslation([float(v) for v in (m[:3, 3] - c + m[:3, :3] @ c)])
    return tx


def _matrix_from_euler(tx: sitk.Euler3DTransform) -> np.ndarray:
    m = np.eye(4)
    r = np.asarray(tx.GetMatrix(), float).reshape(3, 3)
    c = np.asarray(tx.GetCenter(), float)
    t = np.asarray(tx.GetTranslation(), float)
    m[:3, :3] = r
    m[:3, 3] = t + c - r @ c
    return m


def reconstruct_for_mi(sweep: Sweep, frames: Optional[Sequence[int]] = None,
                       spacing_mm: float = RECON_SPACING_MM):
    """(reconstructed volume in the Reference frame, bool mask of the voxels that received
    pixels, frame indices used): the MI baseline's fixed image (mean compounding, no hole filling)."""
    from registration.ultrasound.reconstruction import reconstruct
    _, valid = sweep.require_image_to_reference()
    idx = np.flatnonzero(valid) if frames is None else np.asarray(frames, int)[valid[np.asarray(frames, int)]]
    if idx.size == 0:
        raise InputError("no frame with valid tracking", path=sweep.source,
                         fix="record the sweep again with the probe and reference visible")
    rec = reconstruct(sweep.subset(idx), spacing_mm=spacing_mm, compounding="mean", fill_holes=False)
    return rec.volume, rec.weights > 0, idx


def register_sweep_mi(ct: Volume, sweep: Sweep, init: np.ndarray, *, frames=None, roi_center_ct=None,
                      progress: Optional[ProgressFn] = None, seed: int = 0, n_starts: int = 4,
                      targets: Optional[dict] = None, sampling: float = 0.1,
                      iterations: int = 100) -> RegistrationResult:
    """MI baseline with the same interface and result as the LC2 pipeline."""
    t0 = time.perf_counter()
    if not sweep.has_images:
        raise InputError("the sweep has no image frames (tracker-only sequence)", path=sweep.source,
                         fix="register with a sequence that holds ultrasound images")
    us, filled, idx = reconstruct_for_mi(sweep, frames)
    fixed = sitk.Cast(us.to_sitk(), sitk.sitkFloat32)
    mask_img = sitk.GetImageFromArray(filled.astype(np.uint8))
    mask_img.CopyInformation(fixed)
    # Clamped to a soft-tissue range: with raw HU (air -1000, bone +1000) the moving-image
    # gradient ITK uses drove the optimiser away from the optimum on the synthetic case.
    moving = sitk.Clamp(sitk.Cast(ct.to_sitk(), sitk.sitkFloat32), sitk.sitkFloat32, -200.0, 400.0)
    pts_ref = us.index_to_lps(np.argwhere(filled)[:, ::-1].astype(float))
    lo, hi = ct.bounds_lps()
    pts_ct = apply(init, pts_ref)
    overlap = float(np.mean(np.all((pts_ct >= lo) & (pts_ct <= hi), axis=1))) if len(pts_ct) else 0.0
    if overlap < 0.2:
        raise InputError(f"under the initial transform only {100 * overlap:.0f} % of the sweep lies inside "
                         f"the CT: the sweep and the CT do not overlap", path=sweep.source,
                         fix="check the initial transform / landmarks (units mm, LPS, Reference -> CT)")
    center_ct = (np.asarray(roi_center_ct, float) if roi_center_ct is not None
                 else apply(init, pts_ref.mean(axis=0)))
    history = []
    evals = [0]

    def run(start: np.ndarray, n_iter: int, seed_i: int):
        m_start = rigid_matrix(start, center_ct) @ init
        center_ref = apply(np.linalg.inv(m_start), center_ct)
        tx = _euler_from_matrix(m_start, center_ref)
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(sampling, seed_i + 1)  # seed 0 = wall clock in ITK
        reg.SetMetricFixedMask(mask_img)
        # Central differences on the moving image instead of ITK's gradient filter: more
        # stable here (docs/registration_tuning.md#mi-baseline).
        reg.SetMetricUseMovingImageGradientFilter(False)
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=0.01,
                                                     numberOfIterations=n_iter, relaxationFactor=0.7)
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetInitialTransform(tx, inPlace=True)

        def on_iter():
            evals[0] += 1
            history.append((evals[0], int(reg.GetCurrentLevel()), -float(reg.GetMetricValue())))
            if progress is not None and evals[0] % 10 == 0:
                if progress(min(evals[0] / (n_starts * 2 * n_iter), 0.99), f"MI {-reg.GetMetricValue():.4f}") is False:
                    raise CancelledError("registration cancelled")
        reg.AddCommand(sitk.sitkIterationEvent, on_iter)
        m0 = -float(reg.MetricEvaluate(fixed, moving))
        try:
            reg.Execute(fixed, moving)
        except RuntimeError as exc:  # ITK raises when too few samples map inside the CT
            if "cancelled" in str(exc):
                raise CancelledError("registration cancelled") from None
            return StartResult(start, m_start, m0, -np.inf, int(reg.GetOptimizerIteration()))
        final = -float(reg.MetricEvaluate(fixed, moving))
        return StartResult(start, _matrix_from_euler(tx), m0, final, int(reg.GetOptimizerIteration()))

    results = [run(s, iterations, seed + k) for k, s in enumerate(start_perturbations(n_starts, seed))]
    best = max(results, key=lambda r: r.metric_final)
    if not np.isfinite(best.metric_final):
        from registration.spatial.errors import RegistrationError
        raise RegistrationError("MI registration failed from every start (no overlap while optimising)")
    init_metric = results[0].metric_initial
    result = RegistrationResult(best.reference_to_ct, "mi", init_metric, best.metric_final, evals[0],
                                time.perf_counter() - t0, center_ct, results, history,
                                [int(i) for i in idx], init)
    from .uncertainty import assess
    result.uncertainty = assess(result, targets or {}, resolution_mm=RECON_SPACING_MM)
    result.wall_time_s = time.perf_counter() - t0
    return result
