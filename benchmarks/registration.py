"""CT -> sweep registration on the demo case: LC2 vs the Mattes-MI baseline, same starts, same run.

    .venv/bin/python benchmarks/registration.py [--trials 20] [--quick] [--seed 1]
                                                [--methods lc2,mi,mi:12] [--breathing-trials 6]
                                                [--breathing-methods lc2,lc2:gate] [--breathing-mm 10]
                                                [--far-trials 12] [--deformed-runs 2]
                                                [--json OUT.json] [--case DIR] [--mr [--mr-focus liver]]

Per trial: a random initial error about the liver centroid (|t| uniform 5-20 mm,
angle uniform 0-10 deg about a random axis) applied to the true reference_to_ct;
the sweeps of the demo case are used in turn. Both methods start from the same
initial pose (and the same seeded multi-start perturbations).

Reported per method: success rate (every lesion centroid and vessel landmark
within 5 mm), median and 90th-percentile TRE (RMS over those targets), median
wall time, the verdict counts, and coverage: the fraction of targets whose true
error lies inside the predicted 95 % radius (1.614 x the predicted RMS TRE).
Breathing sweeps (liver moving along -S during the sweep; generated here, the
demo case has none) are reported separately. Far starts (``--far-trials``: |t|
20-30 mm, 10-15 deg, beyond the fixed capture range of old) are a set of their
own, with the count of correct results (every target < 2 mm) called poor and of
wrong ones (any target > 5 mm) called good. ``--deformed-runs N`` runs
benchmarks/deformation.py (the case's deformed sweeps, N starts each) after them.
Ratios are MI / LC2 from the same run. ``--mr`` adds the MR rows (issue 18): the
demo MR registered to the same sweeps from starts drawn the same way
(benchmarks/mri.py, which has the details and runs MR -> CT too). CPU timings are
noisy: the machine is shared by several engineers, so the
load average is printed with them.

Results of dated runs (tables, per-stage timings, calibration checks):
benchmarks/results/registration.md; what they decided: docs/registration_tuning.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registration.io.ct_io import load_ct  # noqa: E402
from registration.align.multistart import random_rigid_perturbation  # noqa: E402
from registration.align.intensity_registration import register_sweep  # noqa: E402
from registration.io.labelmap_io import load_labels  # noqa: E402
from registration.io.sequence_io import load_sweep  # noqa: E402
from registration.spatial.transforms import apply, invert  # noqa: E402


def load_demo(case_dir=None):
    """The demo case (generated and cached on first use), or a copy of one in ``case_dir``
    (the cache is regenerated whenever the generator's source changes: pin a copy to compare runs)."""
    if case_dir:
        d = Path(case_dir)
    else:
        from sample_data.case.demo_case import ensure_demo_case
        d = ensure_demo_case()
    truth = json.loads((d / "truth.json").read_text())
    ct = load_ct(d / "ct_portal.nrrd")
    labels = load_labels(d / "labels.nrrd", d / "label_names.json", reference=ct)
    cfg = d / truth["ultrasound"]["config"]
    sweeps = [(s["file"], load_sweep(d / s["file"], calibration=cfg)) for s in truth["ultrasound"]["sweeps"]]
    return d, truth, ct, labels, sweeps


def targets_of(truth) -> dict:
    t = {les["name"]: {"point": les["centroid_lps"], "radius_mm": les["diameter_mm"] / 2.0}
         for les in truth["lesions"]}
    t.update({name: {"point": p} for name, p in truth["landmarks"].items()})
    return t


def liver_centroid(labels) -> np.ndarray:
    ijk = np.argwhere(labels.mask("liver"))[:, ::-1].astype(float)
    return labels.index_to_lps(ijk.mean(axis=0))


def breathing_sweeps(ct, labels, truth, n: int, breathing_mm: float, seed: int, n_lesions: int = 3):
    """Lesion sweeps with the liver moving by up to ``breathing_mm`` (written to a temp dir, loaded,
    and the dir removed)."""
    import shutil
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    out = Path(tempfile.mkdtemp(prefix="ctus-breathing-"))
    try:
        names = [les["name"] for les in truth["lesions"]][:n_lesions]
        us = make_sweeps(ct, labels, truth, out, seed=seed, breathing_mm=breathing_mm, frames_per_sweep=n,
                         lesions=names, survey=False)
        cfg = out / us["config"]
        sw = [(s["file"], load_sweep(out / s["file"], calibration=cfg)) for s in us["sweeps"]]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return np.array(us["reference_to_ct"]), sw


def far_start_verdicts(rows: list, label: str) -> str:
    """Issue 19's far-start line for the rows of set ``label``: correct results (every target < 2 mm)
    called poor, wrong ones (a target > 5 mm) called good; "" without such rows."""
    far = [r for r in rows if r["set"] == label and "error" not in r]
    if not far:
        return ""
    right = [r for r in far if r["tre_max_mm"] < 2.0]
    wrong = [r for r in far if r["tre_max_mm"] > 5.0]
    return (f"{label} starts: {len(right)} correct (every target < 2 mm), "
            f"{sum(r['verdict'] == 'poor' for r in right)} of them called poor; {len(wrong)} wrong (a target > 5 mm), "
            f"{sum(r['verdict'] == 'good' for r in wrong)} of them called good; verdicts of the rest: "
            f"{[r['verdict'] for r in far if r not in right + wrong]}")


def run_trials(ct, sweeps, truth_m, targets, center, n_trials, seed, methods, label, log,
               trans_range=(5.0, 20.0), rot_range=(0.0, 10.0)):
    rng = np.random.default_rng(seed)
    pts = np.array([t["point"] for t in targets.values()], float)
    ref_pts = apply(invert(truth_m), pts)
    rows = []
    for k in range(n_trials):
        name, sweep = sweeps[k % len(sweeps)]
        pert = random_rigid_perturbation(rng, trans_range, rot_range, center=center)
        init = pert @ truth_m
        e0 = np.linalg.norm(apply(init, ref_pts) - pts, axis=1)
        for method in methods:
            t0 = time.perf_counter()
            # "mi:12" = MI with 12 starts; "lc2:detect" = LC2 with breathing="detect"
            name_m, _, opt = method.partition(":")
            kw = {} if not opt else ({"n_starts": int(opt)} if opt.isdigit() else {"breathing": opt})
            try:
                res = register_sweep(ct, sweep, init, method=name_m, seed=k, targets=targets, **kw)
            except Exception as exc:  # a failed trial is a result, not a crash of the benchmark
                rows.append({"set": label, "trial": k, "sweep": name, "method": method, "error": str(exc),
                             "success": False, "tre_rms_mm": float("inf"), "time_s": time.perf_counter() - t0})
                log(f"{label} {k:2d} {method:3s} {name}: FAILED {exc}")
                continue
            e = np.linalg.norm(apply(res.reference_to_ct, ref_pts) - pts, axis=1)
            u = res.uncertainty
            rows_by_name = {n: u.target(n) for n in targets}
            covered = [r is not None and r.tre_registration_95_mm is not None and err <= r.tre_registration_95_mm
                       for r, err in zip(rows_by_name.values(), e)]
            per_target = [{"name": n, "true_mm": float(err),
                           **{k: None if r is None else getattr(r, k, None) for k in
                              ("tre_registration_mm", "tre_hessian_mm", "tre_multistart_mm", "verdict",
                               "tre_deformation_mm", "distance_to_imaged_region_mm", "extrapolated")}}
                          for (n, r), err in zip(rows_by_name.items(), e)]
            br = res.breathing or {}
            rows.append({"set": label, "trial": k, "sweep": name, "method": method,
                         "breathing": {key: br.get(key) for key in ("detected", "amplitude_mm", "period_s", "gain",
                                                                    "held_out_gain",
                                                                    "gated_frames", "notes")},
                         "moved_from_start": u.to_dict()["moved_from_start"],
                         "timings_s": res.timings_s,
                         "init_tre_rms_mm": float(np.sqrt(np.mean(e0 ** 2))),
                         "tre_rms_mm": float(np.sqrt(np.mean(e ** 2))), "tre_max_mm": float(e.max()),
                         "success": bool(e.max() < 5.0), "time_s": res.wall_time_s,
                         "verdict": u.verdict, "reasons": u.reasons,
                         "covered": float(np.mean(covered)),
                         "deformation": {k: v for k, v in (getattr(u, "deformation", None) or {}).items()
                                         if k != "local_fits"},
                         "capture": getattr(u, "capture", None),
                         "metric": [res.metric_initial, res.metric_final], "evaluations": res.iterations,
                         "targets": per_target})
            r = rows[-1]
            gated = br.get("gated_frames")
            btxt = "" if not br.get("detected") else (f"  breathing {br.get('amplitude_mm'):.1f} mm"
                                                     + (f", gated {len(gated)} fr" if gated else ", not gated"))
            log(f"{label} {k:2d} {method:4s} {name:24s} init {r['init_tre_rms_mm']:5.1f} -> TRE {r['tre_rms_mm']:5.2f} "
                f"(max {r['tre_max_mm']:5.2f}) mm  {r['time_s']:5.1f} s  {r['verdict']:5s} covered {r['covered']:.2f}"
                + btxt)
    return rows


def mr_summary(args, n_trials, log) -> dict:
    """The MR rows: benchmarks/mri.py's MR -> sweep trials, summarised in this table's form. Its
    ``success_rate`` counts every target within 5 mm, as the CT rows do (comparable);
    ``success_near_rate`` only the targets within 30 mm of the sweep (benchmarks/mri.py's success:
    far targets are extrapolated from a lesion sweep), printed on a line of its own."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import mri
    _, truth, _, _, mr, sweeps = mri.load_case(args.case)
    rows = mri.run_us(None, mr, sweeps, truth, n_trials, args.seed, log, with_ct=False, focus=args.mr_focus)
    s = mri.summarise(rows, "mr")
    good = [x["success_all"] for x in rows if x["verdict"] == "good"]
    return {"set": "static", "method": "mr" if args.mr_focus == "none" else "mr:liver", "trials": s["trials"],
            "success_rate": s["success_all_rate"], "success_near_rate": s["success_rate"],
            "median_tre_mm": s["median_tre_mm"], "p90_tre_mm": s["p90_tre_mm"],
            "median_time_s": s["median_time_s"], "verdicts": s["verdicts"],
            "good_verdicts_that_succeeded": float(np.mean(good)) if good else None, "coverage_95": s["coverage_95"]}


def summarise(rows, label, method):
    r = [x for x in rows if x["set"] == label and x["method"] == method]
    if not r:
        return None
    tre = np.array([x["tre_rms_mm"] for x in r])
    t = np.array([x["time_s"] for x in r])
    verdicts = {v: sum(1 for x in r if x.get("verdict") == v) for v in ("good", "check", "poor")}
    good_ok = [x["success"] for x in r if x.get("verdict") == "good"]
    return {"set": label, "method": method, "trials": len(r), "success_rate": float(np.mean([x["success"] for x in r])),
            "median_tre_mm": float(np.median(tre)), "p90_tre_mm": float(np.percentile(tre, 90)),
            "median_time_s": float(np.median(t)), "verdicts": verdicts,
            "good_verdicts_that_succeeded": (float(np.mean(good_ok)) if good_ok else None),
            "coverage_95": float(np.mean([x.get("covered", 0.0) for x in r]))}


def print_summaries(summaries, log) -> None:
    """The results table: one row per :func:`summarise` dict."""
    log("\nset        method trials success  medianTRE  p90TRE  median_s  good/check/poor  good&ok  cover95")
    for s in summaries:
        v = s["verdicts"]
        gk = "-" if s["good_verdicts_that_succeeded"] is None else f"{s['good_verdicts_that_succeeded']:.2f}"
        log(f"{s['set']:10s} {s['method']:6s} {s['trials']:6d} {100 * s['success_rate']:6.0f} % "
            f"{s['median_tre_mm']:8.2f}   {s['p90_tre_mm']:6.2f}  {s['median_time_s']:7.1f}   "
            f"{v['good']:4d}/{v['check']}/{v['poor']:<4d}     {gk:5s}  {s['coverage_95']:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="4 trials, no breathing sweeps")
    ap.add_argument("--breathing-trials", type=int, default=6)
    ap.add_argument("--breathing-mm", type=float, default=10.0)
    ap.add_argument("--methods", default="lc2,mi,mi:12",
                    help="comma-separated; 'mi:12' = MI with 12 starts (about LC2's time: equal-time "
                         "comparison); 'lc2:detect' / 'lc2:off' = LC2 with that breathing mode")
    ap.add_argument("--breathing-methods", help="methods for the breathing set (default: --methods)")
    ap.add_argument("--far-trials", type=int, default=12, help="LC2 trials from far starts (20-30 mm, 10-15 deg)")
    ap.add_argument("--deformed-runs", type=int, default=0,
                    help="then benchmarks/deformation.py with this many starts per deformed sweep")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write all rows and summaries here")
    ap.add_argument("--case", help="use this case folder instead of the cached demo case")
    ap.add_argument("--mr", action="store_true", help="add MR -> sweep rows (the demo MR, benchmarks/mri.py)")
    ap.add_argument("--mr-focus", choices=["none", "liver"], default="none", help="with --mr: its focus")
    args = ap.parse_args(argv)
    n = 4 if args.quick else args.trials
    nb = 0 if args.quick else args.breathing_trials
    methods = args.methods.split(",")

    def log(s):
        print(s, flush=True)

    t0 = time.perf_counter()
    d, truth, ct, labels, sweeps = load_demo(args.case)
    log(f"demo case {d}: CT {ct}, {len(sweeps)} sweeps; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    targets = targets_of(truth)
    center = liver_centroid(labels)
    truth_m = np.array(truth["reference_to_ct"])
    rows = run_trials(ct, sweeps, truth_m, targets, center, n, args.seed, methods, "static", log)
    if nb:
        log(f"generating breathing sweeps ({args.breathing_mm} mm along -S) ...")
        bm, bsw = breathing_sweeps(ct, labels, truth, 100, args.breathing_mm, args.seed)
        bmethods = args.breathing_methods.split(",") if args.breathing_methods else methods
        rows += run_trials(ct, bsw, bm, targets, center, nb, args.seed + 100, bmethods, "breathing", log)
    nf = 0 if args.quick else args.far_trials
    if nf:
        rows += run_trials(ct, sweeps, truth_m, targets, center, nf, args.seed + 200, ["lc2"], "far", log,
                           trans_range=(20.0, 30.0), rot_range=(10.0, 15.0))
    all_methods = list(dict.fromkeys(methods + (args.breathing_methods.split(",") if args.breathing_methods else [])))
    summaries = [s for s in (summarise(rows, lab, m) for lab in ("static", "breathing", "far") for m in all_methods)
                 if s]
    if args.mr:
        summaries.append(mr_summary(args, n, log))
    print_summaries(summaries, log)
    for s in summaries:
        if "success_near_rate" in s:
            log(f"{s['method']}: success {100 * s['success_rate']:.0f} % over every target (as the CT rows), "
                f"{100 * s['success_near_rate']:.0f} % over the targets within 30 mm of the sweep (benchmarks/mri.py)")
    by = {(s["set"], s["method"]): s for s in summaries}
    for lab in ("static", "breathing"):
        a = by.get((lab, "lc2"))
        for m in all_methods:
            b = by.get((lab, m))
            if a and b and m != "lc2":
                ratio = b['median_tre_mm'] / max(a['median_tre_mm'], 1e-9)
                log(f"{lab}: {m.upper()} / LC2 ratios: median TRE {ratio:.2f}, "
                    f"median time {b['median_time_s'] / max(a['median_time_s'], 1e-9):.2f}; "
                    f"success {100 * b['success_rate']:.0f} % vs {100 * a['success_rate']:.0f} %")
    # Calibration of the predicted TRE: true error / predicted RMS over every target of every trial.
    for lab in ("static", "breathing"):
        for m in all_methods:
            t = [x for r in rows if r["set"] == lab and r["method"] == m for x in r.get("targets", [])
                 if x.get("tre_registration_mm")]
            if t:
                ratio = np.array([x["true_mm"] / x["tre_registration_mm"] for x in t])
                log(f"{lab} {m}: true / predicted TRE over {len(t)} targets: median {np.median(ratio):.2f}, "
                    f"p95 {np.percentile(ratio, 95):.2f} (95 % radius = 1.614 x predicted covers "
                    f"{100 * np.mean(ratio <= 1.614):.0f} %)")
    # The residual-deformation estimate on rigid sweeps (should be ~0; each patch's own noise is subtracted).
    for lab in ("static", "far"):
        rms = [r["deformation"]["local_fit_shift_rms_mm"] for r in rows if r["set"] == lab
               and (r.get("deformation") or {}).get("local_fit_shift_rms_mm") is not None]
        if rms:
            loc = [r["deformation"]["local_mm"] for r in rows if r["set"] == lab and r.get("deformation")]
            log(f"{lab}: local-fit RMS shift over {len(rms)} runs: median {np.median(rms):.2f}, max {max(rms):.2f} mm; "
                f"deformation term local > 0 in {sum(v > 0 for v in loc)} (max {max(loc):.2f} mm)")
    line = far_start_verdicts(rows, "far")
    if line:
        log(line)
    if args.deformed_runs:
        import deformation
        deformation.main(["--runs", str(args.deformed_runs)] + (["--case", args.case] if args.case else []))
    log(f"targets: LC2 median TRE <= 2 mm, success >= 95 %, median time <= 10 s on 2 cores; "
        f"load average now {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summaries": summaries}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
