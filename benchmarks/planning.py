"""Planning benchmark: candidate paths checked per second, and planning time per lesion.

    .venv/bin/python benchmarks/planning.py [--demo] [--directions 10000] [--grids 6000000,12000000]
                                            [--compare-tree DIR [--repeats 2]]

1. Vectorised candidate check (planner.paths.trajectories.evaluate) on the real
   20-slice CT in ../shared/data (point target in the liver) and on the
   synthetic torso, against a baseline measured in the same run: the same
   constraints checked one path at a time in a Python loop (per-path
   map_coordinates). Target: >= 10,000 candidates/s on 2 cores.
2. The in-plane probe-pose search for the US_POSE_CANDIDATES cheapest safe
   paths of one target (planner.advice.probe_poses), on the synthetic torso.
3. plan_case end to end per lesion (anatomy, windows, trajectories, US
   probe poses, CT description), on the demo case with --demo (cached by
   sample_data.case.demo_case.ensure_demo_case), else on the synthetic torso;
   with --demo also one lesion planned at each planning-grid budget (--grids,
   voxels; planner.case.case_plan.DEFAULT_MAX_PLANNING_VOXELS is the default).
4. With --demo --compare-tree DIR (a copy of an older commit, e.g. ``git archive
   COMMIT | tar -x -C DIR``): plan_case on the same demo files by both code trees,
   each in its own process, alternating ``--repeats`` times; prints both medians and
   the ratio (the machine is shared: alternate, never compare runs of two sessions).
No assertions: numbers and ratios only. Results: benchmarks/results/planning.md.
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

from planner.advice.probe_poses import inplane_probe_poses                 # noqa: E402
from planner.advice.visibility import acoustic_block_map, depth_limit_mm    # noqa: E402
from planner.anatomy.structures import build_anatomy                        # noqa: E402
from planner.case.case_plan import plan_case                                # noqa: E402
from planner.case.lesion_paths import US_POSE_CANDIDATE_SEPARATION_DEG, US_POSE_CANDIDATES  # noqa: E402
from planner.paths.constraints import Constraints                           # noqa: E402
from planner.paths.planning_maps import build_maps                          # noqa: E402
from planner.paths.trajectories import evaluate, fibonacci_sphere, select_diverse  # noqa: E402


def loop_baseline(maps, target, dirs):
    """One path at a time: the plain implementation the vectorised one replaces (hard structures
    and the vessel floor; point target, so no lesion)."""
    c = maps.constraints
    s = np.arange(0.0, c.max_length_mm + c.step_mm, c.step_mm)
    thr = c.needle_radius_mm + maps.anatomy.half_voxel_diagonal_mm
    ok = np.zeros(len(dirs), bool)
    for n, d in enumerate(dirs):
        pts = target + s[:, None] * d
        kji = maps.to_kji(pts)
        reg = maps.nearest(maps.region, kji, fill=-1)
        out = np.flatnonzero(reg <= 0)
        if out.size == 0 or reg[out[0]] < 0:
            continue
        inside = kji[:, :out[0]]
        organ = ndimage.map_coordinates(maps.organ_mm, inside, order=1, mode="constant", cval=1e4)
        ok[n] = organ.min() > thr
        if maps.vessel_mm is not None:
            vessel = ndimage.map_coordinates(maps.vessel_mm, inside, order=1, mode="constant", cval=1e4)
            ok[n] &= vessel.min() > thr + c.vessel_floor_mm
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


def bench_probe_poses(name, ct, labels, target):
    """Time of the probe-pose search for the US_POSE_CANDIDATES cheapest safe paths of one target."""
    an = build_anatomy(ct, labels)
    maps = build_maps(an, None, Constraints())
    dirs = fibonacci_sphere(3000)
    res = evaluate(maps, target, dirs)
    pre = select_diverse(res["cost"], res["ok"], dirs, US_POSE_CANDIDATES,
                         min_angle_deg=US_POSE_CANDIDATE_SEPARATION_DEG)
    block = acoustic_block_map(an)
    t0 = time.perf_counter()
    poses = inplane_probe_poses(maps, block, target, res["entry_ct"][pre], dirs[pre], depth_limit_mm(3.5))
    dt = time.perf_counter() - t0
    print(f"{name}: probe poses for {len(pre)} candidate paths in {dt:.3f} s "
          f"({sum(p is not None for p in poses)} with a pose)")


def bench_grids(ct, lm, art, budgets):
    """plan_case for one lesion at each planning-grid budget (voxels)."""
    for budget in budgets:
        t0 = time.perf_counter()
        res = plan_case(ct, lm, ct_arterial=art, lesion="lesion_1", n_directions=3000,
                        max_planning_voxels=budget)
        total = time.perf_counter() - t0
        les = res.plan["lesions"][0]
        print(f"  grid budget {budget:,} voxels: spacing {res.plan['ct']['spacing_mm']} mm, lesion_1 "
              f"planned in {total:.1f} s (anatomy + {les['planning_time_s']:.1f} s for the lesion)")


def real_ct():
    d = ROOT.parent / "shared" / "data" / "ct" / "abdomen-20slice"
    if not d.exists():
        return None
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    ct = load_ct(d / "dicom")
    lm = load_labels(d / "labels.nii.gz", d / "label_names.txt", reference=ct)
    return ct, lm, np.array([-90.0, -127.0, -786.0])


_TIME_PLAN = """
import sys, time
sys.path.insert(0, sys.argv[1])
from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from planner.case.case_plan import plan_case
d = sys.argv[2]
ct = load_ct(d + '/ct_portal.nrrd'); art = load_ct(d + '/ct_arterial.nrrd')
lm = load_labels(d + '/labels.nrrd', d + '/label_names.json', reference=ct)
t = time.perf_counter()
r = plan_case(ct, lm, ct_arterial=art, n_directions=3000)
print(time.perf_counter() - t, ' '.join(l['recommendation']['guidance'] for l in r.plan['lesions']))
"""


def compare_trees(case_dir, other, repeats):
    """plan_case on the demo files by this tree and by ``other``, alternating, each in a fresh process."""
    import statistics
    import subprocess
    times = {"this": [], "other": []}
    for _ in range(repeats):
        for key, tree in (("other", str(other)), ("this", str(ROOT))):
            out = subprocess.run([sys.executable, "-c", _TIME_PLAN, tree, str(case_dir)], capture_output=True,
                                 text=True, check=True).stdout.split()
            times[key].append(float(out[0]))
            print(f"  {key:5s} ({tree}): {float(out[0]):.1f} s, guidance {' '.join(out[1:])}")
    a, b = statistics.median(times["other"]), statistics.median(times["this"])
    print(f"plan_case on the demo case, median of {repeats}: other tree {a:.1f} s, this tree {b:.1f} s, "
          f"ratio this/other {b / a:.2f}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", action="store_true", help="time plan_case on the demo case")
    ap.add_argument("--directions", type=int, default=10000)
    ap.add_argument("--grids", default="6000000,12000000",
                    help="planning-grid budgets (voxels, comma separated) timed with --demo")
    ap.add_argument("--compare-tree", metavar="DIR", help="with --demo: time an older code tree against this one")
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs per tree with --compare-tree")
    args = ap.parse_args(argv)
    print(f"cores available: {len(os.sched_getaffinity(0))}")
    rc = real_ct()
    if rc is not None:
        bench_candidates("real CT 512x512x20", rc[0], rc[1], rc[2], args.directions)
    from planning_phantom import make_phantom
    ct, lm = make_phantom()
    bench_candidates("synthetic torso 171x131x66", ct, lm, np.array([-65.0, 30.0, -2.0]), args.directions)
    bench_probe_poses("synthetic torso, subcapsular lesion", ct, lm, np.array([-10.0, -35.0, -10.0]))

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
    if args.demo:
        bench_grids(ct, lm, art, [int(b) for b in args.grids.split(",") if b])
        if args.compare_tree:
            compare_trees(d, args.compare_tree, args.repeats)


if __name__ == "__main__":
    main()
