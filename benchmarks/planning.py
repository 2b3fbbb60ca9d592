"""Planning benchmark: candidate paths checked per second, and planning time per lesion.

    .venv/bin/python benchmarks/planning.py [--demo] [--directions 10000]

1. Vectorised candidate check (planner.paths.trajectories.evaluate) on the real
   20-slice CT in ../shared/data (point target in the liver) and on the
   synthetic torso, against a baseline measured in the same run: the same
   constraints checked one path at a time in a Python loop (per-path
   map_coordinates). Target: >= 10,000 candidates/s on 2 cores.
2. plan_case end to end per lesion (anatomy, windows, trajectories, US
   probe poses, CT description), on the demo case with --demo (cached by
   sample_data.case.demo_case.ensure_demo_case), else on the synthetic torso.
No assertions: numbers and ratios only.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from planner.anatomy.structures import build_anatomy                      # noqa: E402
from planner.case.case_plan import plan_case                             # noqa: E402
from planner.paths.trajectories import (Constraints, build_maps, evaluate,  # noqa: E402
                                  fibonacci_sphere)


def loop_baseline(maps, target, dirs):
    """One path at a time: the plain implementation the vectorised one replaces."""
    c = maps.constraints
    s = np.arange(0.0, c.max_length_mm + c.step_mm, c.step_mm)
    ok = np.zeros(len(dirs), bool)
    for n, d in enumerate(dirs):
        pts = target + s[:, None] * d
        kji = maps.to_kji(pts)
        reg = maps.nearest(maps.region, kji, fill=-1)
        out = np.flatnonzero(reg <= 0)
        if out.size == 0 or reg[out[0]] < 0:
            continue
        inside = kji[:, :out[0]]
        clear = ndimage.map_coordinates(maps.hard_clearance_mm, inside, order=1, mode="constant", cval=1e4)
        ok[n] = clear.min() > c.needle_radius_mm + maps.anatomy.half_voxel_diagonal_mm
    return ok


def bench_candidates(name, ct, labels, target, n_dirs):
    an = build_anatomy(ct, labels)
    maps = build_maps(an, None, Constraints())
    dirs = fibonacci_sphere(n_dirs)
    evaluate(maps, target, dirs[:200])                       # warm up
    t0 = time.perf_counter()
    res = evaluate(maps, target, dirs)
    t_vec = time.perf_counter() - t0
    sub = dirs[: min(300, n_dirs)]
    t0 = time.perf_counter()
    loop_baseline(maps, target, sub)
    t_loop = (time.perf_counter() - t0) * n_dirs / len(sub)
    print(f"{name}: {n_dirs} candidates in {t_vec:.3f} s = {n_dirs / t_vec:,.0f}/s vectorised; "
          f"per-path loop {n_dirs / t_loop:,.0f}/s; speed-up x{t_loop / t_vec:.1f}; "
          f"safe {int(res['ok'].sum())}")


def real_ct():
    d = ROOT.parent / "shared" / "data" / "ct" / "abdomen-20slice"
    if not d.exists():
        return None
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    ct = load_ct(d / "dicom")
    lm = load_labels(d / "labels.nii.gz", d / "label_names.txt", reference=ct)
    return ct, lm, np.array([-90.0, -127.0, -786.0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", action="store_true", help="time plan_case on the demo case")
    ap.add_argument("--directions", type=int, default=10000)
    args = ap.parse_args(argv)
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    rc = real_ct()
    if rc is not None:
        bench_candidates("real CT 512x512x20", rc[0], rc[1], rc[2], args.directions)
    from planning_phantom import make_phantom
    ct, lm = make_phantom()
    bench_candidates("synthetic torso 171x131x66", ct, lm, np.array([-65.0, 30.0, -2.0]), args.directions)

    if args.demo:
        from registration.io.ct_io import load_ct
        from registration.io.labelmap_io import load_labels
        from sample_data.case.demo_case import ensure_demo_case
        d = ensure_demo_case()
        ct = load_ct(d / "ct_portal.nrrd")
        art = load_ct(d / "ct_arterial.nrrd")
        lm = load_labels(d / "labels.nrrd", d / "label_names.json", reference=ct)
        name = "demo case"
    else:
        art = None
        name = "synthetic torso"
    t0 = time.perf_counter()
    res = plan_case(ct, lm, ct_arterial=art, n_directions=3000)
    total = time.perf_counter() - t0
    lesions = res.plan["lesions"]
    print(f"plan_case on {name}: {len(lesions)} lesions in {total:.1f} s "
          f"({total / len(lesions):.1f} s per lesion incl. shared anatomy); "
          f"{res.plan['timing']['candidates_per_s']:,}/s candidates inside plan_case")
    for les in lesions:
        print(f"  {les['name']}: {les['planning_time_s']:.2f} s, {les['candidates']['checked']} candidates, "
              f"{les['candidates']['safe']} safe, guidance {les['recommendation']['guidance']}")


if __name__ == "__main__":
    main()
