"""Sweeps of a liver deformed between the CT and the scan, with the truth to judge a registration.

Issue 19: a rigid registration cannot remove organ deformation, and must say
so. These sweeps are simulated from the CT and labels warped by

* the organ field ``u`` (:mod:`sample_data.sweeps.organ_field`): 3 smooth bumps
  of 5-10 mm in the liver, falling off outside it; the tissue at CT point p is
  at p + u(p) at scan time (CT-aligned scan space, see
  :mod:`sample_data.sweeps.deformation`);
* probe compression per frame (:mod:`sample_data.sweeps.compression`): up to
  ~4 mm along the beam at the skin, none below 35 mm; the tracked probe pose
  is the pressed one.

A frame at scan-space position x shows the CT at ``D^-1(C_i^-1(x))`` (D = p ->
p + u(p), C_i the frame's compression). The probe aims at where the target
really is (its displaced position). Files: ``sweep_survey_deformed.igs.mha``,
``sweep_<lesion>_deformed.igs.mha`` (sorting after the static sweeps, so a
"first sweep" of the folder is still a static one).

Truth, beside the usual sweep entry (``reference_to_ct`` the rigid part):
``deformed: true``; ``compression`` (per-frame face, beam, lateral axis and
amplitude); ``best_rigid_reference_to_ct`` (the best rigid fit of D over the
whole liver: what a perfect rigid registration reaches), and
``best_rigid_local_reference_to_ct`` (the fit over the liver this sweep
imaged); ``targets``: lesion centroids, vessel landmarks and liver points at
increasing distance from the imaged region, each with its CT point, displaced
point, displacement, distance to the imaged region (from the displaced point to
the union of the valid frames' fans) and the residuals of both rigid fits.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .compression import DEPTH_MM, ELEVATION_SIGMA_MM, LATERAL_SIGMA_MM, ProbeCompression, pressure_profile
from .deformation import (OrganDeformation, best_rigid_fit, best_rigid_reference_to_ct, points_of,
                          rigid_residual_mm, sample_points)
from .imaged_region import fan_distance_mm
from .organ_field import liver_values, random_organ_deformation
from .sweep_recording import Plan, Session, record_sweep

#: Random stream of the deformed sweeps: (seed, 19) -- 19 for the issue; independent of the
#: case's main stream, so adding these sweeps leaves every other file byte-identical.
STREAM = 19
#: Liver points picked as targets at these distances (mm) from the imaged region (+-2.5 mm).
TARGET_DISTANCES_MM = (0.0, 10.0, 20.0, 30.0, 40.0, 60.0, 80.0)
COMPRESSION_PEAK_MM = (3.0, 4.5)
LOCAL_FIT_MM = 2.0   # liver points this close to a fan count as imaged (local rigid fit)


class _FrameWarp:
    """Per frame: press the probe in and return the simulator's tissue lookup for that frame."""

    def __init__(self, organ_source, amplitudes: np.ndarray):
        self.organ_source = organ_source
        self.amplitudes = amplitudes
        self.compressions: List[ProbeCompression] = []

    def __call__(self, i: int, nominal_probe_to_ct: np.ndarray):
        comp = ProbeCompression.under(nominal_probe_to_ct, float(self.amplitudes[i]))
        self.compressions.append(comp)

        def source_of(x):
            return self.organ_source(comp.inverse(x))
        return comp.pressed_pose(nominal_probe_to_ct), source_of

    def truth(self) -> dict:
        c = self.compressions
        return {"model": "beam-axis push (sample_data.sweeps.compression)", "depth_mm": DEPTH_MM,
                "lateral_sigma_mm": LATERAL_SIGMA_MM, "elevation_sigma_mm": ELEVATION_SIGMA_MM,
                "max_amplitude_mm": round(float(max(x.amplitude_mm for x in c)), 3),
                "frames": [x.to_dict() for x in c]}


def frame_source_of(entry: dict, i: int, field: OrganDeformation):
    """The simulator's tissue lookup for frame ``i`` of a deformed sweep, rebuilt from its truth
    ``entry`` and the case's organ ``field``: x -> D^-1(C_i^-1(x))."""
    c = entry["compression"]
    f = c["frames"][i]
    comp = ProbeCompression(np.asarray(f["face_lps"], float), np.asarray(f["beam"], float),
                            np.asarray(f["lateral"], float), float(f["amplitude_mm"]), float(c["depth_mm"]),
                            float(c["lateral_sigma_mm"]), float(c["elevation_sigma_mm"]))
    organ = field.source_lookup()
    return lambda x: organ(comp.inverse(x))


def _pick_lesions(field: OrganDeformation, lesions, labels, count: int) -> list:
    """The ``count`` lesions (in the label map) the organ field moves most."""
    lesions = [les for les in lesions if les["name"] in labels.names]
    moved = [float(np.linalg.norm(field.displacement(les["centroid_lps"]))) for les in lesions]
    order = np.argsort(moved)[::-1][:max(0, count)]
    return [lesions[i] for i in sorted(order)]


def _targets(field, lesions, landmarks, labels, rng, image_to_ct, fan_mask, global_fit) -> Tuple[list, np.ndarray]:
    """Target rows for one sweep and its local best rigid fit (ct_to_scan)."""
    liver = sample_points(points_of(labels, [labels.value_of("liver")], stride=3), 20000, rng)
    liver_d = fan_distance_mm(field.deformed(liver), image_to_ct, fan_mask)
    rows = [{"name": les["name"], "kind": "lesion", "point_ct": les["centroid_lps"],
             "radius_mm": les["diameter_mm"] / 2.0} for les in lesions]
    rows += [{"name": n, "kind": "vessel_branch", "point_ct": np.asarray(p, float)} for n, p in landmarks.items()]
    for d in TARGET_DISTANCES_MM:
        near = np.nonzero(np.abs(liver_d - d) <= 2.5)[0]
        if len(near):
            rows.append({"name": f"liver_{d:.0f}mm", "kind": "liver_point", "point_ct": liver[rng.choice(near)]})
    imaged = liver[liver_d <= LOCAL_FIT_MM]
    local_fit = best_rigid_fit(imaged, field.deformed(imaged)) if len(imaged) >= 30 else global_fit
    pts = np.array([np.asarray(r["point_ct"], float) for r in rows])
    moved = field.deformed(pts)
    dist = fan_distance_mm(moved, image_to_ct, fan_mask)
    res_g = rigid_residual_mm(field, global_fit, pts)
    res_l = rigid_residual_mm(field, local_fit, pts)
    for r, p, q, dd, rg, rl in zip(rows, pts, moved, dist, res_g, res_l):
        r.update({"point_ct": np.round(p, 3).tolist(), "displaced_ct": np.round(q, 3).tolist(),
                  "displacement_mm": round(float(np.linalg.norm(q - p)), 3),
                  "distance_to_sweep_mm": round(float(dd), 2), "rigid_residual_mm": round(float(rg), 3),
                  "rigid_residual_local_mm": round(float(rl), 3)})
    return rows, local_fit


# long: field, plans, then per sweep record + targets, all from the one deformed stream
def add_deformed_sweeps(session: Session, labels, lesions, landmarks, *, seed: int, count: int,
                        first_index: int, t0: float, right_lobe) -> Tuple[dict, list]:
    """Record ``count`` deformed sweeps (a survey of the right lobe, then the lesions the field
    moves most) after the static ones; returns (the case's deformation truth, sweep entries).
    ``lesions``: [{name, diameter_mm, centroid_lps}]; ``landmarks``: {name: LPS} (vessel
    branch points, targets too)."""
    rng = np.random.default_rng([int(seed), STREAM])
    sim_rng = np.random.default_rng([int(seed), STREAM, 1])
    field = random_organ_deformation(labels, rng)
    organ_source = field.source_lookup()
    liver = points_of(labels, liver_values(labels), stride=3)
    global_fit = best_rigid_fit(liver, field.deformed(liver))
    res = rigid_residual_mm(field, global_fit, liver)
    plans = [Plan("survey", "survey", field.deformed(np.asarray(right_lobe, float)), 28.0, 25.0, 10.0)]
    for les in _pick_lesions(field, lesions, labels, count - 1):
        plans.append(Plan(les["name"], "lesion", field.deformed(les["centroid_lps"]), rng.uniform(12, 18),
                          rng.uniform(3, 7), rng.uniform(2, 6)))
    entries = []
    probe = session.probe
    for j, plan in enumerate(plans[:count]):
        warp = _FrameWarp(organ_source, pressure_profile(rng, session.n, session.fps,
                                                         rng.uniform(*COMPRESSION_PEAK_MM)))
        entry, t0, poses = record_sweep(session, rng, first_index + j, plan, t0, warp=warp, sim_rng=sim_rng,
                                        fname=f"sweep_{plan.name}_deformed.igs.mha")
        valid = np.setdiff1d(np.arange(len(poses)), entry["invalid_frames"])
        image_to_ct = poses[valid] @ probe.image_to_probe
        targets, local_fit = _targets(field, lesions, landmarks, labels, rng, image_to_ct, probe.fan_mask,
                                      global_fit)
        r2c = session.reference_to_ct
        entry.update({"deformed": True, "compression": warp.truth(),
                      "best_rigid_reference_to_ct": best_rigid_reference_to_ct(r2c, global_fit).tolist(),
                      "best_rigid_local_reference_to_ct": best_rigid_reference_to_ct(r2c, local_fit).tolist(),
                      "targets": targets})
        entries.append(entry)
    deformation = {
        "organ_field": field.to_dict(),
        "ct_to_scan_rigid": global_fit.tolist(),
        "rigid_residual_liver_mm": {"mean": round(float(res.mean()), 3),
                                    "p95": round(float(np.percentile(res, 95)), 3),
                                    "max": round(float(res.max()), 3)},
        "scan_space": "CT LPS mm through the true reference_to_ct: tissue at CT p is at Reference "
                      "inv(reference_to_ct) @ (p + u(p)); probe compression (per frame, < 35 mm deep) is "
                      "not in u",
        "true_error": "sample_data.sweeps.deformation.true_target_error_mm(truth, sweep, reference_to_ct, "
                      "target_ct)",
    }
    return deformation, entries
