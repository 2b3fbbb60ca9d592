"""MR -> tracked-ultrasound registration: the CT's LC2 pipeline on the MR's own features.

Result: ``reference_to_mr`` (Reference mm -> MR LPS mm). The pipeline is
:func:`registration.align.intensity_registration.register_sweep` unchanged
(frames, multi-resolution, multi-start, Laplace covariance, verdicts), given
the MR through :func:`registration.align.image_features.lc2_intensity_volume`,
so LC2 explains the US by the normalised MR intensity and its gradient
(docs/mri.md), on smaller patches than the CT's (:data:`SWEEP_LEVELS`: the
organ moves against its surroundings between the MR and the sweep, and large
patches let the surroundings decide the pose). A sweep made of a 3D ultrasound volume's slices is registered on
each slice's imaged region only (:mod:`.volume_sweep`). Acoustic shadows (behind
ribs, the lung, bowel gas) and their reflectors are left out of LC2
(``shadows="drop"``, :mod:`registration.ultrasound.shadows`; not for a volume's
slices, which are not beams): between the MR's
session and the sweep the liver moves against the ribs and the lung, so the rib
echoes and shadow edges pulled the pose off the liver (benchmarks/results/mri.md,
2026-12-03). The RegistrationResult it returns names its matrix
``reference_to_ct`` (the fixed image's frame): here that frame is the MR's, and
:func:`mr_result_document` writes the RESULT.json with MR names
(``reference_to_mr``, ``center_mr``, ``point_mr``, ``"fixed_modality": "MR"``)
so an MR result cannot be mistaken for a CT one. With the MR -> CT transform of
``ctus align`` the same document also carries ``reference_to_ct``
(``= mr_to_ct @ reference_to_mr``) and that transform's own error.

Verdict: at best "check" (:data:`MR_BEST_VERDICT`, a heuristic). The MR and
the ultrasound are recorded in different sessions, so the liver has moved
against the body wall and ribs between them (another breath-hold, another
position); a rigid result can then settle, with every start agreeing and a
sharp optimum, on the wall instead of the liver. The estimate (Laplace + start
spread) cannot see that: on the demo MR a lesion_3 sweep was called "good"
with 8.2 mm RMS error (benchmarks/results/mri.md). The per-target TRE and hit
probability are kept; only the word is capped, with the reason.

Entry points a GUI worker calls (progress ``(fraction, message)``, returning
False cancels): :func:`register_mr_sweep`, then :func:`mr_result_document`.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import as_matrix
from registration.spatial.volume import Volume

from .image_features import focus_features, lc2_intensity_volume, liver_focus_mask
from .registration_result import ProgressFn, RegistrationResult
from .result_document import result_document
from .uncertainty import RADIUS_95_PER_RMS, hit_probability, total_error_mm
from .volume_sweep import check_shadows_option, is_volume_stack, mark_unimaged, with_shadows_marked

#: The best verdict an MR -> ultrasound registration gets (heuristic, docs/clinical_evidence.md 11).
MR_BEST_VERDICT = "check"
MR_VERDICT_REASON = ("MR and ultrasound come from different sessions: the organ may have moved against its "
                     "surroundings between them (another breath-hold or position, brain shift), which is not in "
                     "this estimate (a rigid result can align the surroundings and miss the target); check the "
                     "overlay at the target")

#: LC2 levels (pixel mm, patch px, frames) for a freehand sweep: patches of 12.5 and 11.2 mm instead of
#: the CT's 20 / 17.5 / 14.4 mm (``lc2_stages.DEFAULT_LEVELS``). Between the MR's session and the sweep
#: the organ moves against its surroundings (the liver slides under the wall and ribs; brain shift), so
#: no rigid pose fits both: a large patch spans the organ's edge and the wall's layers and is explained
#: best by aligning the wall, a small one by what lies inside it. On the demo's dome sweeps (lesion_3,
#: lesion_6) the truth has the lower LC2 with 14.4-20 mm patches and the higher with 8-12.5 mm ones;
#: 20 starts of 5-20 mm: 75 % -> 100 % success (benchmarks/results/mri.md, 2026-12-03).
SWEEP_LEVELS = ((2.5, 5, 10), (1.6, 7, 12))

#: LC2 levels (pixel mm, patch px, frames) for a 3D volume's slices: the CT's 4 mm coarse level left
#: out. On volumes reconstructed from the demo sweeps the coarse level led the starts away from an
#: optimum the finer levels prefer (survey volume from an 8 mm start: 6.2 mm, its fine LC2 0.276
#: against 0.297 at the truth polished); without it 1.2 mm (benchmarks/results/mri.md).
VOLUME_LEVELS = ((2.5, 7, 12), (1.6, 9, 12))

#: RESULT.json keys renamed for an MR result (the fixed image's frame is the MR's).
_MR_KEYS = {"reference_to_ct": "reference_to_mr", "center_ct": "center_mr", "point_ct": "point_mr",
            "ct": "mr"}


def register_mr_sweep(mr: Volume, sweep: Sweep, init_reference_to_mr, *, progress: Optional[ProgressFn] = None,
                      targets: Optional[dict] = None, seed: int = 0, n_starts: int = 4,
                      breathing: str = "detect", breath_hold: str = "expiration", focus: str = "none",
                      shadows: str = "drop",
                      **options) -> RegistrationResult:
    """Refine ``init_reference_to_mr`` (4x4, Reference mm -> MR LPS mm) by LC2 on the MR's features.

    ``targets``: ``{name: {"point": MR LPS mm, "radius_mm": R}}`` for the error report. ``focus``:
    "none", or "liver" (a hepatobiliary-phase MR: LC2 explains the US by the liver's features only,
    :func:`~registration.align.image_features.liver_focus_mask`). ``shadows``: "drop" (default)
    leaves the sweep's acoustic shadows out, "keep" uses every fan pixel (as for a CT). Other
    keyword ``options`` go to :func:`~registration.align.intensity_registration.register_sweep`.
    The returned result's ``reference_to_ct`` is Reference -> MR. Raises InputError when the
    sweep does not overlap the MR under the start, CancelledError when ``progress`` says so."""
    from .intensity_registration import register_sweep

    check_shadows_option(shadows)
    fixed = lc2_intensity_volume(mr, "MR")
    if focus == "liver":
        fixed = focus_features(fixed, liver_focus_mask(mr))
    elif focus != "none":
        raise InputError(f"unknown focus '{focus}'", fix="use none or liver")
    init = as_matrix(init_reference_to_mr, name="initial reference_to_mr")
    if is_volume_stack(sweep):
        # A 3D volume's slices were not recorded over time: there is no breathing to find in them
        # (the analysis would fit slice-to-slice anatomy as motion and cost 1-3 s).
        breathing = "off"
        options.setdefault("levels", VOLUME_LEVELS)
    options.setdefault("levels", SWEEP_LEVELS)
    sweep = prepare_sweep(sweep, shadows)
    res = register_sweep(fixed, sweep, init, method="lc2", progress=progress, seed=seed, n_starts=n_starts,
                         targets=targets, breathing=breathing, breath_hold=breath_hold, shadows=shadows,
                         shadow_edge_mm=0.0, **options)
    cap_mr_verdict(res.uncertainty)
    return res


def prepare_sweep(sweep: Sweep, shadows: str = "drop") -> Sweep:
    """The sweep as LC2 reads it for an MR: a 3D US volume's slices keep their own imaged region
    (:mod:`.volume_sweep`); a freehand sweep's acoustic shadows are left out (``shadows="drop"``:
    rib and lung shadows move with the wall, not with the organ). A volume's slices are not beams
    (no scan line to follow, zeros where not imaged): shadows are not looked for there."""
    if is_volume_stack(sweep):
        return mark_unimaged(sweep)
    return with_shadows_marked(sweep, shadows)


def cap_mr_verdict(assessment) -> None:
    """"good" -> :data:`MR_BEST_VERDICT` overall and per target, with the reason (module docstring)."""
    if assessment is None:
        return
    if assessment.verdict == "good":
        assessment.verdict = MR_BEST_VERDICT
        assessment.reasons.append(MR_VERDICT_REASON)
    for row in assessment.targets:
        if row.verdict == "good":
            row.verdict = MR_BEST_VERDICT
            row.why.append(MR_VERDICT_REASON)


def _renamed(obj):
    if isinstance(obj, dict):
        return {_MR_KEYS.get(k, k): _renamed(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_renamed(v) for v in obj]
    return obj


def mr_result_document(result: RegistrationResult, *, mr_path, sweep_path, calibration_path, init_source: str,
                       init_file, landmarks=None, targets: Optional[Mapping[str, dict]] = None,
                       mr_to_ct: Optional[dict] = None) -> dict:
    """The RESULT.json of an MR -> sweep registration (the CT document with MR names).

    ``mr_to_ct``: ``{"matrix": 4x4 MR -> CT, "file": path, "tre_mm": its error estimate or None,
    "verdict": ...}`` from ``ctus align``: then ``reference_to_ct = mr_to_ct @ reference_to_mr`` is
    added with the combined error note, so ``ctus plan --registration`` can use the result on the CT."""
    doc = _renamed(result_document(result, ct_path=mr_path, sweep_path=sweep_path,
                                   calibration_path=calibration_path, init_source=init_source,
                                   init_file=init_file, landmarks=landmarks, targets=targets))
    doc["fixed_modality"] = "MR"
    doc["frames"] = "reference_to_mr: Reference mm -> MR LPS mm; target points (point_mr) in MR LPS mm"
    if mr_to_ct is not None:
        m = as_matrix(mr_to_ct["matrix"], name="mr_to_ct", path=mr_to_ct.get("file"))
        doc["mr_to_ct"] = {"matrix": m.tolist(), "file": mr_to_ct.get("file"), "tre_mm": mr_to_ct.get("tre_mm"),
                           "verdict": mr_to_ct.get("verdict")}
        doc["reference_to_ct"] = (m @ np.asarray(result.reference_to_ct, float)).tolist()
        doc["reference_to_ct_note"] = ("mr_to_ct @ reference_to_mr: 'targets' and 'verdict' (what a planner on the "
                                       "CT reads) add the MR-CT error (mr_to_ct.tre_mm) to the MR-US one in "
                                       "quadrature; 'uncertainty' is the MR-US registration's own report")
        doc["targets"] = [_with_mr_ct(row, mr_to_ct.get("tre_mm")) for row in doc["targets"]]
        order = {"good": 0, "check": 1, "poor": 2}
        verdicts = [v for v in (doc.get("verdict"), mr_to_ct.get("verdict")) if v in order]
        doc["verdict"] = max(verdicts, key=order.get) if mr_to_ct.get("tre_mm") is not None else "poor"
    return doc


def _with_mr_ct(row: dict, mr_ct_mm) -> dict:
    """A target row whose errors include the MR -> CT error (None when either is unknown)."""
    row = dict(row)
    tre = row.get("tre_registration_mm")
    combined = None if tre is None or mr_ct_mm is None else math.hypot(tre, float(mr_ct_mm))
    row.update(tre_registration_mm=combined, tre_registration_95_mm=None if combined is None
               else RADIUS_95_PER_RMS * combined, includes_mr_to_ct=True,
               tre_total_mm=None if combined is None else total_error_mm(combined))
    if row.get("radius_mm") is not None:
        row["hit_probability"] = None if combined is None else hit_probability(row["radius_mm"], row["tre_total_mm"])
        row["hit_probability_registration_only"] = (None if combined is None
                                                    else hit_probability(row["radius_mm"], combined))
    return row
