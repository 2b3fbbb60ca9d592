"""Benchmark: volume reconstruction insertion speed and hole-filling time.

Prints numbers and ratios against plain-Python-loop reference implementations
measured in the same run (never used as a pass/fail gate):

* insertion: 640x480 uint8 frames (0.2 mm pixels, every pixel valid) into a
  0.5 mm grid, MEAN compounding; frames/s of ``reconstruct`` vs the per-pixel
  loop ``reference_insert`` timed on a small subset and extrapolated per pixel.
  Target >= 100 frames/s.
* hole filling: a 300^3 grid holding tilted slices every third voxel over a
  slab (known fraction ~ 0.2), default growing Gaussian elements; seconds vs a
  per-voxel loop of the same rule timed on a sample of holes and extrapolated.
  Target <= 2 s.
* wall and CPU (process) time: the machine is shared, so wall time includes waiting
  for a core; the load average is printed.
* peak memory of each phase (tracemalloc: numpy buffers are traced) and the
  process's max RSS.
* ``--block-sizes 64,96,128``: hole-filling CPU time for each block edge of the
  GAUSSIAN filler (``gaussian_hole_filling.BLOCK_VOXELS``), relative to the first.

Run: ``.venv/bin/python benchmarks/reconstruct.py [--quick] [--block-sizes N,N,...]``
Results of past runs: ``benchmarks/results/reconstruct.md``.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from registration.ultrasound import gaussian_hole_filling  # noqa: E402
from registration.ultrasound.hole_filling_elements import DEFAULT_ELEMENTS  # noqa: E402
from registration.ultrasound.gaussian_hole_filling import fill_holes  # noqa: E402
from registration.ultrasound.reconstruction import reconstruct  # noqa: E402
from registration.ultrasound.reference_insertion import reference_insert  # noqa: E402
from registration.spatial.sweep import Sweep  # noqa: E402


def synthetic_sweep(n_frames: int, rows: int = 480, cols: int = 640, px_mm: float = 0.2,
                    step_mm: float = 0.5, seed: int = 0) -> Sweep:
    """A linear sweep: frames tilted 20 deg, translated ``step_mm`` along z per frame."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, size=(n_frames, rows, cols), dtype=np.uint8)
    a = math.radians(20)
    rot = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    mats = np.tile(np.eye(4), (n_frames, 1, 1))
    mats[:, :3, :3] = rot @ np.diag([px_mm, px_mm, 1.0])
    mats[:, 2, 3] = np.arange(n_frames) * step_mm
    return Sweep(frames, np.arange(n_frames) / 30.0, {"ImageToReference": mats})


def bench_insertion(n_frames: int) -> dict:
    sweep = synthetic_sweep(n_frames)
    reconstruct(sweep.subset([0, 1]), spacing_mm=0.5, fill_holes=False)       # warm-up
    tracemalloc.start()
    t, c = time.perf_counter(), time.process_time()
    res = reconstruct(sweep, spacing_mm=0.5, fill_holes=False)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    fps = n_frames / res.timings["insert_s"]
    # Plain loop on a small crop of two frames, extrapolated per pixel.
    small = synthetic_sweep(2, rows=40, cols=60, seed=1)
    ext = (0, 30, 0, 30, 0, 30)
    t = time.perf_counter()
    reference_insert(small, 0.5, (-2.0, -2.0, -2.0), ext, "mean")
    t_ref = time.perf_counter() - t
    per_pixel = t_ref / (2 * 40 * 60)
    ref_fps = 1.0 / (per_pixel * 480 * 640)
    return {"frames": n_frames, "grid": res.volume.shape_ijk, "total_s": elapsed, "cpu_s": cpu,
            "insert_s": res.timings["insert_s"], "fps": fps,
            "fps_cpu": n_frames / res.timings["insert_cpu_s"], "ref_fps": ref_fps,
            "speedup": fps / ref_fps, "peak_mb": peak / 2 ** 20}


def hole_volume(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    z = np.arange(n)[:, None, None]
    y = np.arange(n)[None, :, None]
    x = np.arange(n)[None, None, :]
    known = ((z + y // 10) % 3 == 0) & (np.abs(x - n // 2) < 0.4 * n) & (y > 0.13 * n) & (y < 0.87 * n)
    values = rng.integers(0, 256, size=known.shape).astype(np.float32)
    return values, known


def loop_fill_voxel(values, known, k, j, i, elements):
    """Plain-Python PLUS GAUSSIAN rule for one voxel (the reference)."""
    nk, nj, ni = known.shape
    for e in elements:
        r = (e.size - 1) // 2
        num = den = 0.0
        count = 0
        for dk in range(-r, r + 1):
            for dj in range(-r, r + 1):
                for di in range(-r, r + 1):
                    kk, jj, ii = k + dk, j + dj, i + di
                    if 0 <= kk < nk and 0 <= jj < nj and 0 <= ii < ni and known[kk, jj, ii]:
                        w = math.exp(-(dk * dk + dj * dj + di * di) / (2 * e.stdev ** 2))
                        num += w * float(values[kk, jj, ii])
                        den += w
                        count += 1
        if den > 0 and count > e.min_ratio * e.size ** 3:
            return num / den
    return None


def bench_fill(n: int) -> dict:
    values, known = hole_volume(n)
    tracemalloc.start()
    t, c = time.perf_counter(), time.process_time()
    out, filled = fill_holes(values, known, DEFAULT_ELEMENTS)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Reference: loop over a random sample of holes, extrapolate to all holes; check agreement.
    rng = np.random.default_rng(5)
    holes = np.argwhere(~known)
    sample = holes[rng.choice(len(holes), 300, replace=False)]
    t = time.perf_counter()
    worst = 0.0
    for k, j, i in sample:
        v = loop_fill_voxel(values, known, k, j, i, DEFAULT_ELEMENTS)
        if v is None:
            worst = max(worst, 1e9 if filled[k, j, i] else 0.0)
        else:
            worst = max(worst, abs(v - out[k, j, i]) if filled[k, j, i] else 1e9)
    t_ref = (time.perf_counter() - t) / len(sample) * len(holes)
    return {"n": n, "known_fraction": float(known.mean()), "filled_fraction": float(filled.mean()),
            "fill_s": elapsed, "cpu_s": cpu, "ref_s": t_ref, "speedup": t_ref / elapsed, "peak_mb": peak / 2 ** 20,
            "max_diff_vs_loop": worst}


def bench_block_sizes(n: int, sizes, repeats: int = 3) -> list:
    """[(block edge, best-of-``repeats`` CPU s, wall s)] of the GAUSSIAN filler on the hole volume."""
    values, known = hole_volume(n)
    saved = gaussian_hole_filling.BLOCK_VOXELS
    rows = []
    try:
        for size in sizes:
            gaussian_hole_filling.BLOCK_VOXELS = size
            cpu, wall = [], []
            for _ in range(repeats):
                t, c = time.perf_counter(), time.process_time()
                fill_holes(values, known, DEFAULT_ELEMENTS)
                wall.append(time.perf_counter() - t)
                cpu.append(time.process_time() - c)
            rows.append((size, min(cpu), min(wall)))
    finally:
        gaussian_hole_filling.BLOCK_VOXELS = saved
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 frames and a 150^3 grid")
    ap.add_argument("--block-sizes", metavar="N,N,...",
                    help="only time the Gaussian hole filling for these block edges (voxels)")
    args = ap.parse_args(argv)
    if args.block_sizes:
        sizes = [int(v) for v in args.block_sizes.split(",")]
        n = 150 if args.quick else 300
        rows = bench_block_sizes(n, sizes)
        print(f"hole filling of a {n}^3 grid by block edge (best of 3; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
        print(f"{'block':>6s} {'CPU s':>7s} {'wall s':>7s} {'CPU vs first':>13s}")
        for size, cpu, wall in rows:
            print(f"{size:6d} {cpu:7.2f} {wall:7.2f} {cpu / rows[0][1]:13.2f}")
        return 0
    ins = bench_insertion(30 if args.quick else 100)
    print(f"insertion: {ins['frames']} frames 640x480 -> grid {ins['grid']} at 0.5 mm, "
          f"{ins['insert_s']:.2f} s = {ins['fps']:.0f} frames/s wall, {ins['fps_cpu']:.0f} frames/s of CPU "
          f"(target >= 100; whole call "
          f"{ins['total_s']:.2f} s wall, {ins['cpu_s']:.2f} s CPU); plain loop "
          f"{ins['ref_fps']:.3f} frames/s; speed-up x{ins['speedup']:.0f}; peak traced "
          f"{ins['peak_mb']:.0f} MB")
    fil = bench_fill(150 if args.quick else 300)
    print(f"hole filling: {fil['n']}^3 grid, {100 * fil['known_fraction']:.1f} % inserted, "
          f"{100 * fil['filled_fraction']:.1f} % filled, {fil['fill_s']:.2f} s wall, "
          f"{fil['cpu_s']:.2f} s CPU (target <= 2 s); "
          f"plain loop (extrapolated) {fil['ref_s']:.0f} s; speed-up x{fil['speedup']:.0f}; "
          f"max |fast - loop| on 300 sampled holes {fil['max_diff_vs_loop']:.2e}; peak traced "
          f"{fil['peak_mb']:.0f} MB")
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
