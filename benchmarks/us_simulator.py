"""Frames per second of the ultrasound simulator at 640 x 480, against a baseline in the same run.

Run ``python benchmarks/us_simulator.py [--phantom]``. The baseline is the
cheapest thing any simulator must do: one trilinear ``sitk.Resample`` of the
CT onto the 640 x 480 image plane (DESIGN: 3-5 ms). ``--phantom`` uses the
demo phantom (``make_phantom``, ~30 s to build); the default is a 0.8 mm
synthetic block of the same size class so the benchmark starts at once.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from registration.spatial.volume import LabelMap, Volume  # noqa: E402
from sample_data.simulator.us_simulator import UltrasoundSimulator  # noqa: E402


def block_phantom():
    rng = np.random.default_rng(0)
    shape = (134, 380, 440)                      # k, j, i at 1.5 x 0.8 x 0.8 mm, like the phantom
    hu = (60 + rng.normal(0, 10, shape)).astype(np.int16)
    lab = np.full(shape, 2, np.int16)
    lab[:, :40] = 1
    hu[:, :40] = -100
    geo = dict(spacing=(0.8, 0.8, 1.5), origin=(-176.0, -152.0, -100.0))
    return Volume(hu, **geo), LabelMap(lab, names={"body": 1, "liver": 2}, **geo)


def poses(ct, n):
    lo, hi = ct.bounds_lps()
    out = []
    for t in np.linspace(-20, 20, n):
        m = np.eye(4)
        m[:3, 3] = [(lo[0] + hi[0]) / 2 + t, lo[1] + 2.0, (lo[2] + hi[2]) / 2]
        out.append(m)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phantom", action="store_true")
    ap.add_argument("-n", type=int, default=40)
    args = ap.parse_args()
    if args.phantom:
        from sample_data.phantom.build import make_phantom
        ph = make_phantom(0)
        ct, labels = ph.ct_portal, ph.labels
    else:
        ct, labels = block_phantom()
    sim = UltrasoundSimulator(ct, labels, seed=0)
    i2p = sim.image_to_probe
    ps = [p @ i2p for p in poses(ct, args.n)]
    sim.simulate(ps[0])
    t = time.perf_counter()
    for m in ps:
        sim.simulate(m)
    t_sim = (time.perf_counter() - t) / len(ps)

    # Baseline: resample the CT on the same 640 x 480 plane (trilinear, SimpleITK).
    img = ct.to_sitk()
    rows, cols = sim.probe.rows, sim.probe.cols

    def plane(m):
        ref = sitk.Image([cols, rows, 1], sitk.sitkFloat32)
        ref.SetSpacing((float(np.linalg.norm(m[:3, 0])), float(np.linalg.norm(m[:3, 1])), 1.0))
        ref.SetOrigin(tuple(float(v) for v in m[:3, 3]))
        d = np.c_[m[:3, 0] / np.linalg.norm(m[:3, 0]), m[:3, 1] / np.linalg.norm(m[:3, 1]),
                  np.cross(m[:3, 0], m[:3, 1]) / np.linalg.norm(np.cross(m[:3, 0], m[:3, 1]))]
        ref.SetDirection(tuple(d.reshape(-1)))
        return sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, -1000.0)

    plane(ps[0])
    t = time.perf_counter()
    for m in ps:
        plane(m)
    t_base = (time.perf_counter() - t) / len(ps)
    print(f"volume {ct.shape_ijk} ({'phantom' if args.phantom else 'synthetic block'}), "
          f"{cols}x{rows} frames, {sim.probe.n_beams} beams x {sim.probe.n_samples} samples")
    print(f"simulate:                {1000 * t_sim:7.1f} ms/frame  = {1 / t_sim:6.1f} frames/s")
    print(f"baseline sitk.Resample:  {1000 * t_base:7.1f} ms/frame  = {1 / t_base:6.1f} frames/s")
    print(f"ratio simulate/baseline: {t_sim / t_base:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
