"""CT -> ultrasound registration on a sweep simulated from a REAL CT (crlm-1004, 5 mm slices),
labelled by the product's own automatic segmentation: the posterior focus sweep registers from a
start 12 mm off. Before 2026-12-03 the sweep generator put that probe on the CT table, 45 mm of
air from the skin, and the sweep failed by 21-40 mm (benchmarks/results/real_ct_registration.md).
"""
from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.slow
def test_posterior_focus_sweep_of_a_real_ct_registers(tmp_path, shared_data):
    from benchmarks.real_ct_registration import liver_targets, variant_sweeps
    from planner.segmentation.pipeline import segment_anatomy
    from registration.align.intensity_registration import register_sweep
    from registration.io.ct_io import load_ct
    from registration.spatial.transforms import apply, invert
    folder = shared_data("ct", "crlm-1004") / "dicom"
    ct = load_ct(folder)
    labels = segment_anatomy(ct, path=folder).labels
    truth_m, sweeps = variant_sweeps(ct, labels, "default", 3, tmp_path)
    name, sweep = next((n, s) for n, s in sweeps if "hypo_focus" in n)
    # Register from a start 12 mm off (a translation along a fixed direction).
    targets, _ = liver_targets(labels)
    start = truth_m.copy()
    start[:3, 3] += np.array([7.0, -7.0, 7.0])
    res = register_sweep(ct, sweep, start, targets=targets, seed=0)
    pts = np.array([t["point"] for t in targets.values()])
    err = np.linalg.norm(apply(res.reference_to_ct, apply(invert(truth_m), pts)) - pts, axis=1)
    print(f"\n{name}: TRE max {err.max():.2f} mm at the {len(pts)} targets, verdict {res.uncertainty.verdict}")
    assert err.max() < 2.0
    assert res.uncertainty.verdict != "poor"


@pytest.mark.slow
def test_the_dome_sweep_of_a_real_ct_is_not_left_where_the_coarse_levels_pull_it(tmp_path, shared_data):
    """The intercostal sweep under the liver dome (sweep seed 4): the 4 mm level and the large patches
    pulled it to an optimum several mm off that the fine level does not prefer (before 2026-12-03,
    eighth session: 4.9 and 6.6 mm from the benchmark's starts; 8.1 mm from this start); the second
    search with small patches from that result finds the truth's basin and the fine level keeps it.
    Since the ninth session the rib shadows' sides are left out too (shadows.EDGE_MM): the levels
    alone end 3.2 mm off here, the second search closer still."""
    from benchmarks.real_ct_registration import liver_targets, variant_sweeps
    from planner.segmentation.pipeline import segment_anatomy
    from registration.align.intensity_registration import register_sweep
    from registration.io.ct_io import load_ct
    from registration.spatial.transforms import apply, invert
    folder = shared_data("ct", "crlm-1004") / "dicom"
    ct = load_ct(folder)
    labels = segment_anatomy(ct, path=folder).labels
    truth_m, sweeps = variant_sweeps(ct, labels, "default", 4, tmp_path)
    sweep = next(s for n, s in sweeps if "dense_focus" in n)
    targets, _ = liver_targets(labels)
    pts = np.array([t["point"] for t in targets.values()])
    start = truth_m.copy()
    start[:3, 3] += np.array([-6.0, 6.0, 5.0])

    def worst(m):
        return float(np.linalg.norm(apply(m, apply(invert(truth_m), pts)) - pts, axis=1).max())
    before = register_sweep(ct, sweep, start, seed=0, hessian=False, small_patches=False)
    after = register_sweep(ct, sweep, start, seed=0, hessian=False)
    print(f"\ndense_focus: worst target {worst(before.reference_to_ct):.2f} mm without the small-patch search, "
          f"{worst(after.reference_to_ct):.2f} mm with it")
    assert worst(after.reference_to_ct) < 2.5
    assert worst(after.reference_to_ct) < worst(before.reference_to_ct)
