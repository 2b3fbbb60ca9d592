"""Simulated demo landmark clicks: the pairs are the truth plus the stated error, no more."""
import numpy as np

from registration.align.landmarks import register_landmarks
from registration.spatial.transforms import apply, invert, rigid_matrix
from sample_data.sweeps.demo_landmarks import demo_landmark_pairs


def test_pairs_register_back_to_truth():
    reference_to_ct = rigid_matrix([20, -35, 10, 50, -80, 120])
    rng = np.random.default_rng(3)
    landmarks = {f"v{i}": list(rng.uniform(-80, 80, 3)) for i in range(8)}
    truth = {"reference_to_ct": reference_to_ct.tolist(), "landmarks": landmarks}
    exact = demo_landmark_pairs(truth, fle_ct_mm=0.0, fle_us_mm=0.0)
    for p in exact["pairs"]:
        assert np.allclose(apply(reference_to_ct, p["reference"]), p["ct"], atol=2e-3)
    noisy = demo_landmark_pairs(truth, seed=1)
    ct = np.array([p["ct"] for p in noisy["pairs"]])
    ref = np.array([p["reference"] for p in noisy["pairs"]])
    res = register_landmarks(ct, ref)
    target = np.zeros(3)
    err = np.linalg.norm(apply(res.reference_to_ct, apply(invert(reference_to_ct), target)) - target)
    assert err < 4.0  # 8 landmarks with 1.5/3 mm FLE: TRE of a few mm, not zero
    assert res.fre_mm > 0.5
