"""CT -> sweep registration on the demo case: LC2 vs the Mattes-MI baseline, same starts, same run.

    .venv/bin/python benchmarks/registration.py [--trials 20] [--quick] [--seed 1]
                                                [--methods lc2,mi,mi:12] [--breathing-trials 6]
                                                [--breathing-methods lc2,lc2:gate] [--breathing-mm 10]
                                                [--baseline-ref REF] [--json OUT.json] [--case DIR]

Per trial: a random initial error about the liver centroid (|t| uniform 5-20 mm,
angle uniform 0-10 deg about a random axis) applied to the true reference_to_ct;
the sweeps of the demo case are used in turn. Both methods start from the same
initial pose (and the same seeded multi-start perturbations).

Reported per method: success rate (every lesion centroid and vessel landmark
within 5 mm), median and 90th-percentile TRE (RMS over those targets), median
wall time, the verdict counts, and coverage: the fraction of targets whose true
error lies inside the predicted 95 % radius (1.614 x the predicted RMS TRE).
Breathing sweeps (liver moving along -S during the sweep; generated here, the
demo case has none) are reported separately. Ratios are MI / LC2 from the same
run.

A method written ``NAME@base`` (e.g. ``lc2@base``) runs the project as it was at
``--baseline-ref`` (default: the commit before the issue-16 speed work), extracted
with ``git archive`` and run in a worker process with this venv, on the same trials,
interleaved with this tree's runs: the table then shows the previous version's
figures next to this one's from one run (``lc2 / lc2@base`` ratios). CPU timings are noisy: the machine is shared by several engineers, so the
load average is printed with them.

Results of dated runs (tables, per-stage timings, calibration checks):
benchmarks/results/registration.md; what they decided: docs/registration_tuning.md.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# A baseline worker imports the project from the extracted tree it is given, not from this one.
sys.path.insert(0, os.environ.get("CTUS_BENCH_TREE") or str(ROOT))

from registration.io.ct_io import load_ct  # noqa: E402
from registration.align.multistart import random_rigid_perturbation  # noqa: E402
from registration.align.intensity_registration import register_sweep  # noqa: E402
from registration.io.labelmap_io import load_labels  # noqa: E402
from registration.io.sequence_io import load_sweep  # noqa: E402
from registration.spatial.transforms import apply, invert  # noqa: E402

#: The last commit before the issue-16 speed work (the registration as issue 16 measured it).
BASELINE_REF = "7899178"


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
    sweeps = [(s["file"], load_sweep(d / s["file"], calibration=cfg), (str(d / s["file"]), str(cfg)))
              for s in truth["ultrasound"]["sweeps"]]
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
    """Lesion sweeps with the liver moving by up to ``breathing_mm`` (written to a temp dir)."""
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    out = Path(tempfile.mkdtemp(prefix="ctus-breathing-"))
    names = [les["name"] for les in truth["lesions"]][:n_lesions]
    us = make_sweeps(ct, labels, truth, out, seed=seed, breathing_mm=breathing_mm, frames_per_sweep=n,
                     lesions=names, survey=False)
    cfg = out / us["config"]
    sw = [(s["file"], load_sweep(out / s["file"], calibration=cfg), (str(out / s["file"]), str(cfg)))
          for s in us["sweeps"]]
    return np.array(us["reference_to_ct"]), sw


class BaselineWorker:
    """This script in ``--worker`` mode with the project at a git ref on its path: it registers
    what it is sent (one JSON line per request on stdin) and answers with ``to_dict()`` of the
    result (one JSON line on stdout)."""

    def __init__(self, ref: str, ct_path: str):
        self.dir = Path(tempfile.mkdtemp(prefix="ctus-bench-base-"))
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(self.dir)], input=archive, check=True)
        env = dict(os.environ, CTUS_BENCH_TREE=str(self.dir), PYTHONPATH=str(self.dir))
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", ct_path],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=str(self.dir))

    def register(self, sweep_paths, init, method, seed, targets, kw) -> dict:
        req = {"sweep": sweep_paths, "init": np.asarray(init).tolist(), "method": method, "seed": seed,
               "targets": targets, "kw": kw}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def worker(ct_path: str) -> int:
    """``--worker CT``: register requests from stdin with the project on this process's path."""
    import registration
    print(f"baseline worker: registration from {Path(registration.__file__).parent}", file=sys.stderr, flush=True)
    ct = load_ct(ct_path)
    sweeps = {}
    for line in sys.stdin:
        req = json.loads(line)
        key = tuple(req["sweep"])
        if key not in sweeps:
            sweeps[key] = load_sweep(key[0], calibration=key[1])
        try:
            res = register_sweep(ct, sweeps[key], np.array(req["init"]), method=req["method"], seed=req["seed"],
                                 targets=req["targets"], **req["kw"])
            answer = res.to_dict()
        except Exception as exc:
            answer = {"error": str(exc)}
        print(json.dumps(answer), flush=True)
    return 0


def row_of(doc: dict, targets, pts, ref_pts, e0, label, k, name, method, log) -> dict:
    """A benchmark row from a result's ``to_dict()`` (this tree's or a baseline worker's)."""
    e = np.linalg.norm(apply(np.array(doc["reference_to_ct"]), ref_pts) - pts, axis=1)
    u = doc["uncertainty"]
    by_name = {t["name"]: t for t in u["targets"]}
    rows_by_name = {n: by_name.get(n) for n in targets}
    covered = [r is not None and r.get("tre_registration_95_mm") is not None and err <= r["tre_registration_95_mm"]
               for r, err in zip(rows_by_name.values(), e)]
    per_target = [{"name": n, "true_mm": float(err),
                   **{key: None if r is None else r.get(key) for key in
                      ("tre_registration_mm", "tre_hessian_mm", "tre_multistart_mm", "verdict")}}
                  for (n, r), err in zip(rows_by_name.items(), e)]
    br = doc.get("breathing") or {}
    r = {"set": label, "trial": k, "sweep": name, "method": method,
         "breathing": {key: br.get(key) for key in ("detected", "amplitude_mm", "period_s", "gated_frames", "notes")},
         "moved_from_start": u["moved_from_start"], "timings_s": doc["timings_s"],
         "init_tre_rms_mm": float(np.sqrt(np.mean(e0 ** 2))),
         "tre_rms_mm": float(np.sqrt(np.mean(e ** 2))), "tre_max_mm": float(e.max()),
         "success": bool(e.max() < 5.0), "time_s": doc["wall_time_s"],
         "verdict": u["verdict"], "reasons": u["reasons"], "covered": float(np.mean(covered)),
         "metric": [doc["metric_initial"], doc["metric_final"]], "evaluations": doc["iterations"],
         "targets": per_target}
    gated = br.get("gated_frames")
    btxt = "" if not br.get("detected") else (f"  breathing {br.get('amplitude_mm'):.1f} mm"
                                             + (f", gated {len(gated)} fr" if gated else ", not gated"))
    log(f"{label} {k:2d} {method:8s} {name:24s} init {r['init_tre_rms_mm']:5.1f} -> TRE {r['tre_rms_mm']:5.2f} "
        f"(max {r['tre_max_mm']:5.2f}) mm  {r['time_s']:5.1f} s  {r['verdict']:5s} covered {r['covered']:.2f}" + btxt)
    return r


def run_trials(ct, sweeps, truth_m, targets, center, n_trials, seed, methods, label, log, baseline=None):
    rng = np.random.default_rng(seed)
    pts = np.array([t["point"] for t in targets.values()], float)
    ref_pts = apply(invert(truth_m), pts)
    rows = []
    for k in range(n_trials):
        name, sweep, paths = sweeps[k % len(sweeps)]
        pert = random_rigid_perturbation(rng, (5.0, 20.0), (0.0, 10.0), center=center)
        init = pert @ truth_m
        e0 = np.linalg.norm(apply(init, ref_pts) - pts, axis=1)
        for method in (methods if k % 2 == 0 else methods[::-1]):   # alternate who runs first
            t0 = time.perf_counter()
            # "mi:12" = MI with 12 starts; "lc2:detect" = LC2 with breathing="detect"; "@base" = baseline
            plain, _, where = method.partition("@")
            name_m, _, opt = plain.partition(":")
            kw = {} if not opt else ({"n_starts": int(opt)} if opt.isdigit() else {"breathing": opt})
            try:
                if where:
                    doc = baseline.register(paths, init, name_m, k, targets, kw)
                else:
                    doc = register_sweep(ct, sweep, init, method=name_m, seed=k, targets=targets, **kw).to_dict()
            except Exception as exc:  # a failed trial is a result, not a crash of the benchmark
                rows.append({"set": label, "trial": k, "sweep": name, "method": method, "error": str(exc),
                             "success": False, "tre_rms_mm": float("inf"), "time_s": time.perf_counter() - t0})
                log(f"{label} {k:2d} {method:3s} {name}: FAILED {exc}")
                continue
            rows.append(row_of(doc, targets, pts, ref_pts, e0, label, k, name, method, log))
    return rows


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
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write all rows and summaries here")
    ap.add_argument("--case", help="use this case folder instead of the cached demo case")
    ap.add_argument("--baseline-ref", default=BASELINE_REF,
                    help="git ref run for the methods written NAME@base (default: before the issue-16 speed work)")
    ap.add_argument("--worker", metavar="CT", help=argparse.SUPPRESS)   # internal: the baseline worker
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker)
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
    bmethods = args.breathing_methods.split(",") if args.breathing_methods else methods
    baseline = None
    if any("@" in m for m in methods + (bmethods if nb else [])):
        baseline = BaselineWorker(args.baseline_ref, str(d / "ct_portal.nrrd"))
        log(f"baseline: the project at {args.baseline_ref} in a worker process ({baseline.dir})")
    try:
        rows = run_trials(ct, sweeps, truth_m, targets, center, n, args.seed, methods, "static", log, baseline)
        if nb:
            log(f"generating breathing sweeps ({args.breathing_mm} mm along -S) ...")
            bm, bsw = breathing_sweeps(ct, labels, truth, 100, args.breathing_mm, args.seed)
            rows += run_trials(ct, bsw, bm, targets, center, nb, args.seed + 100, bmethods, "breathing", log, baseline)
    finally:
        if baseline is not None:
            baseline.close()
    all_methods = list(dict.fromkeys(methods + (args.breathing_methods.split(",") if args.breathing_methods else [])))
    summaries = [s for s in (summarise(rows, lab, m) for lab in ("static", "breathing") for m in all_methods) if s]
    log("\nset        method    trials success  medianTRE  p90TRE  median_s  good/check/poor  good&ok  cover95")
    for s in summaries:
        v = s["verdicts"]
        gk = "-" if s["good_verdicts_that_succeeded"] is None else f"{s['good_verdicts_that_succeeded']:.2f}"
        log(f"{s['set']:10s} {s['method']:9s} {s['trials']:6d} {100 * s['success_rate']:6.0f} % "
            f"{s['median_tre_mm']:8.2f}   {s['p90_tre_mm']:6.2f}  {s['median_time_s']:7.1f}   "
            f"{v['good']:4d}/{v['check']}/{v['poor']:<4d}     {gk:5s}  {s['coverage_95']:.2f}")
    by = {(s["set"], s["method"]): s for s in summaries}
    for lab in ("static", "breathing"):
        for m in all_methods:
            plain, _, where = m.partition("@")
            a, b = by.get((lab, plain)), by.get((lab, m))
            if a and b and where:
                log(f"{lab}: {plain} / {m}: median time x{a['median_time_s'] / max(b['median_time_s'], 1e-9):.2f}, "
                    f"median TRE {a['median_tre_mm']:.2f} vs {b['median_tre_mm']:.2f} mm, success "
                    f"{100 * a['success_rate']:.0f} vs {100 * b['success_rate']:.0f} %, cover95 "
                    f"{a['coverage_95']:.2f} vs {b['coverage_95']:.2f}, verdicts {a['verdicts']} vs {b['verdicts']}")
        a = by.get((lab, "lc2"))
        for m in all_methods:
            b = by.get((lab, m))
            if a and b and m != "lc2" and "@" not in m:
                log(f"{lab}: {m.upper()} / LC2 ratios: median TRE {b['median_tre_mm'] / max(a['median_tre_mm'], 1e-9):.2f}, "
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
    log(f"targets: LC2 median TRE <= 2 mm, success >= 95 %, median time <= 10 s on 2 cores; "
        f"load average now {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "summaries": summaries}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
