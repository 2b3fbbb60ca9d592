"""Oblique-plane reslicing speed: 640x480 planes from a 512x512x300 CT.

Prints ms per plane and planes/s for SimpleITK (the product path, linear and
nearest) against scipy.ndimage.map_coordinates (baseline) in the same run.
Target: >= 200 planes/s (linear) on 2 cores.
Run: .venv/bin/python benchmarks/reslice.py [--planes N]
Results of past runs: benchmarks/results/reslice.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from registration.spatial.reslice import Reslicer, plane_pixel_to_lps  # noqa: E402
from registration.spatial.transforms import rigid_matrix  # noqa: E402
from registration.spatial.volume import Volume  # noqa: E402


def make_ct(rng) -> Volume:
    arr = rng.integers(-100, 200, size=(300, 512, 512), dtype=np.int16)
    return Volume(arr, (0.78, 0.78, 1.0), (-200.0, -200.0, -150.0))


def planes(vol: Volume, n: int, rng):
    centre = vol.index_to_lps(np.array(vol.shape_ijk) / 2.0)
    out = []
    for _ in range(n):
        r = rigid_matrix(np.concatenate([rng.uniform(-40, 40, 3), rng.uniform(-30, 30, 3)]))
        x = r[:3, :3] @ [1.0, 0, 0]
        y = r[:3, :3] @ [0, 0, -1.0]
        out.append(plane_pixel_to_lps(centre + r[:3, 3], x, y, (640, 480), (0.3, 0.3)))
    return out


def time_sitk(vol, mats, interp):
    rs = Reslicer(vol, interpolator=interp, default=-1000)
    rs.reslice(mats[0], (480, 640))  # warm-up
    t = time.perf_counter()
    for m in mats:
        rs.reslice(m, (480, 640))
    return (time.perf_counter() - t) / len(mats)


def time_scipy(vol, mats):
    yy, xx = np.mgrid[0:480, 0:640].astype(np.float64)
    t = time.perf_counter()
    for m in mats:
        pts = np.stack([xx, yy, np.zeros_like(xx)], -1) @ m[:3, :3].T + m[:3, 3]
        ijk = vol.lps_to_index(pts)
        ndimage.map_coordinates(vol.array, [ijk[..., 2], ijk[..., 1], ijk[..., 0]], order=1,
                                cval=-1000, prefilter=False)
    return (time.perf_counter() - t) / len(mats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--planes", type=int, default=100)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    vol = make_ct(rng)
    mats = planes(vol, args.planes, rng)
    base = time_scipy(vol, mats[: max(5, args.planes // 10)])
    print(f"CT 512x512x300 int16, planes 640x480, {args.planes} random oblique planes, {os.cpu_count()} cores")
    print(f"{'method':34s} {'ms/plane':>9s} {'planes/s':>9s} {'vs scipy':>9s}")
    print(f"{'scipy map_coordinates (baseline)':34s} {base * 1e3:9.2f} {1 / base:9.1f} {1.0:9.2f}")
    for interp in ("linear", "nearest"):
        t = time_sitk(vol, mats, interp)
        print(f"{'SimpleITK Resample ' + interp:34s} {t * 1e3:9.2f} {1 / t:9.1f} {base / t:9.2f}")
    print("target: >= 200 planes/s (linear)")


if __name__ == "__main__":
    main()
