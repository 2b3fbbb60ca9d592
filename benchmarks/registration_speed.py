"""Wall time of the whole ``ctus register`` process on a CT and sweeps of issue 16's size, this
version against a previous one, interleaved in one run, with the accuracy of both.

    .venv/bin/python benchmarks/registration_speed.py [--baseline-ref REF] [--starts 4]
                                                      [--ct-format dicom|nrrd] [--seed 1]
                                                      [--variants base,new] [--json OUT.json]

Case (:mod:`benchmarks.speed_case`): a 512x512x119 CT (0.74 x 0.74 x 1.6 mm) and four
sweeps of 120 frames of 400x320 pixels. Per trial: one sweep (in turn) and a random
start about the liver centroid (|t| uniform 5-20 mm, angle uniform 0-10 deg about a
random axis) applied to the true ``reference_to_ct``; ``--starts`` trials per sweep.
Every variant registers every trial as its own process (``ctus register`` with
``--targets``: the demo's lesions and vessel landmarks), one after the other, the
order alternating from trial to trial, so both see the same machine at the same moment.

Variants: ``base`` = the project at ``--baseline-ref`` (default: the commit before the
issue-16 speed work), extracted with ``git archive`` into a temporary folder and run
with this venv; ``new`` = this tree; ``new+cache`` = this tree with ``--feature-cache``
(a folder made for the run: the first registration of a region computes the features,
later ones over the same region read them).

Reported per variant: wall time of the process from spawn to exit (RESULT.json
written) median and p90, CPU time (user + sys) median, success (every target within
5 mm), median and p90 TRE (RMS over the targets), coverage (fraction of targets whose
true error lies inside the predicted 95 % radius) and verdict counts; the ratio of the
medians new / base; and for the new version where the time goes (from the stage lines
of ``--json-progress``: start-up and imports, CT load, sweep load, the registration's
stages, writing). CPU time is the steadier figure on a shared machine: the load average
is printed with the table. Results: benchmarks/results/registration_speed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.speed_case import ensure_speed_case  # noqa: E402
from registration.align.multistart import random_rigid_perturbation  # noqa: E402
from registration.spatial.transforms import apply, invert  # noqa: E402

#: The last commit before the issue-16 speed work (registration as the issue measured it).
BASELINE_REF = "7899178"
LAUNCH = "import sys; from planner.cli.main import main; sys.exit(main())"


def baseline_tree(ref: str, into: Path) -> Path:
    """The project at git ``ref``, extracted into ``into`` (InputError-free: raises on failure)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def trials(case: Path, starts_per_sweep: int, seed: int):
    """[(k, sweep file, init 4x4)]: the sweeps in turn, seeded random starts about the liver."""
    truth = json.loads((case / "truth.json").read_text())
    m = np.array(truth["reference_to_ct"])
    rng = np.random.default_rng(seed)
    sweeps = [s["file"] for s in truth["ultrasound"]["sweeps"]]
    out = []
    for k in range(starts_per_sweep * len(sweeps)):
        pert = random_rigid_perturbation(rng, (5.0, 20.0), (0.0, 10.0), center=truth["liver_centroid_lps"])
        out.append((k, sweeps[k % len(sweeps)], pert @ m))
    return truth, out


def targets_file(truth, path: Path) -> dict:
    t = {les["name"]: {"point": les["centroid_lps"], "radius_mm": les["diameter_mm"] / 2.0} for les in truth["lesions"]}
    t.update({name: {"point": p} for name, p in truth["landmarks"].items()})
    path.write_text(json.dumps({"targets": [{"name": n, **v} for n, v in t.items()]}))
    return t


def run_one(tree: Path, case: Path, ct: str, sweep: str, init_path: Path, targets_path: Path, out: Path,
            extra=()) -> dict:
    """One ``ctus register`` process of the project in ``tree``: wall and CPU time, its stage times."""
    cmd = [sys.executable, "-c", LAUNCH, "register", "--ct", str(case / ct), "--sweep", str(case / sweep),
           "--init", str(init_path), "--targets", str(targets_path), "--out", str(out), "--force",
           "--json-progress", *extra]
    env = dict(os.environ, PYTHONPATH=str(tree))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t_spawn = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(tree), env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    t_exit = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}",
                "wall_s": wall, "cpu_s": cpu}
    stages = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"stage"')]
    marks = [(s["stage"], s["time"]) for s in stages if "time" in s]
    phases = {}
    if marks:
        names = {"loading CT": "start_and_imports", "loading sweep": "load_ct", "registering": "load_sweep",
                 "writing the result": "register"}
        prev = t_spawn
        for stage, t in marks:
            key = next((v for k, v in names.items() if stage.startswith(k)), stage)
            phases[key] = t - prev
            prev = t
        phases["write_and_exit"] = t_exit - prev
    doc = json.loads(out.read_text())
    return {"wall_s": wall, "cpu_s": cpu, "phases": phases, "doc": doc}


def score(doc: dict, truth_m: np.ndarray, targets: dict) -> dict:
    """TRE (RMS over the targets), success, coverage of the 95 % radius, verdict of one RESULT."""
    pts = np.array([t["point"] for t in targets.values()], float)
    ref = apply(invert(truth_m), pts)
    e = np.linalg.norm(apply(np.array(doc["reference_to_ct"]), ref) - pts, axis=1)
    rows = {t["name"]: t for t in doc.get("targets", [])}
    covered = [rows.get(n, {}).get("tre_registration_95_mm") is not None and err <= rows[n]["tre_registration_95_mm"]
               for n, err in zip(targets, e)]
    return {"tre_rms_mm": float(np.sqrt(np.mean(e ** 2))), "tre_max_mm": float(e.max()), "success": bool(e.max() < 5.0),
            "covered": float(np.mean(covered)), "verdict": doc.get("verdict"),
            "registration_s": doc.get("wall_time_s"), "timings_s": doc.get("timings_s", {})}


#: What ``ctus register`` imports before it loads anything, per variant: the parser (the base
#: version builds every sub-command's), and the modules its ``run`` imports.
_IMPORTS = {"base": ("full", ["registration.align.intensity_registration", "registration.align.landmarks",
                              "registration.align.result_document", "registration.align.targets",
                              "registration.io.ct_io", "registration.io.labelmap_io", "registration.io.sequence_io"]),
            "new": ("register", ["registration.align.intensity_registration", "registration.align.landmarks",
                                 "registration.align.lc2_features", "registration.align.result_document",
                                 "registration.io.ct_io", "registration.io.sequence_io"])}
_PHASES = """
import importlib, json, resource, sys, time
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
out = {}
t = time.perf_counter(); c = cpu()
import planner.cli.main as M
M.build_parser() if sys.argv[1] == "full" else M.build_parser([sys.argv[1]])
for name in sys.argv[2].split(","):
    importlib.import_module(name)
out["imports"] = (time.perf_counter() - t, cpu() - c)
from registration.io.ct_io import load_ct
from registration.io.sequence_io import load_sweep
for key, path in (("load_ct_dicom", sys.argv[3] + "/ct_dicom"), ("load_ct_nrrd", sys.argv[3] + "/ct.nrrd"),
                  ("load_sweep", sys.argv[3] + "/sweep_survey.igs.mha")):
    t = time.perf_counter(); c = cpu()
    (load_sweep if key == "load_sweep" else load_ct)(path)
    out[key] = (time.perf_counter() - t, cpu() - c)
print(json.dumps(out))
"""


def phase_breakdown(trees: dict, case: Path, log, repeats: int = 3) -> dict:
    """Median (wall, CPU) seconds of a new interpreter's imports, the CT load (DICOM, NRRD) and the
    sweep load, per variant: the part of ``ctus register`` before the registration."""
    result = {}
    for v, tree in trees.items():
        if v not in _IMPORTS:
            continue
        parser, modules = _IMPORTS[v]
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run = subprocess.run([sys.executable, "-c", _PHASES, parser, ",".join(modules), str(case)], cwd=str(tree),
                                 env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True, check=True)
            d = json.loads(run.stdout)
            d["process"] = (time.perf_counter() - t0, float("nan"))
            runs.append(d)
        result[v] = {k: [float(np.median([r[k][i] for r in runs])) for i in (0, 1)] for k in runs[0]}
        log(f"{v}: before the registration (median of {repeats}, wall / cpu s): " + ", ".join(
            f"{k} {w:.2f}/{c:.2f}" for k, (w, c) in result[v].items() if k != "process"))
    return result


def summarise(rows, variant):
    r = [x for x in rows if x["variant"] == variant]
    ok = [x for x in r if "error" not in x]
    wall = np.array([x["wall_s"] for x in r])
    tre = np.array([x.get("tre_rms_mm", np.inf) for x in r])
    return {"variant": variant, "n": len(r), "failed": len(r) - len(ok),
            "wall_median_s": float(np.median(wall)), "wall_p90_s": float(np.percentile(wall, 90)),
            "cpu_median_s": float(np.median([x["cpu_s"] for x in r])),
            "registration_median_s": float(np.median([x["registration_s"] for x in ok])) if ok else float("nan"),
            "success": float(np.mean([x.get("success", False) for x in r])),
            "tre_median_mm": float(np.median(tre)), "tre_p90_mm": float(np.percentile(tre, 90)),
            "coverage_95": float(np.mean([x.get("covered", 0.0) for x in r])),
            "verdicts": {v: sum(1 for x in ok if x["verdict"] == v) for v in ("good", "check", "poor")}}


def print_table(summaries, log):
    log("\nvariant     runs  wall median  wall p90  cpu median  registration  success  medianTRE  p90TRE  "
        "cover95  good/check/poor")
    for s in summaries:
        v = s["verdicts"]
        log(f"{s['variant']:10s} {s['n']:5d}  {s['wall_median_s']:9.2f} s {s['wall_p90_s']:7.2f} s "
            f"{s['cpu_median_s']:8.2f} s  {s['registration_median_s']:9.2f} s   {100 * s['success']:4.0f} %  "
            f"{s['tre_median_mm']:7.2f}   {s['tre_p90_mm']:6.2f}    {s['coverage_95']:.2f}    "
            f"{v['good']}/{v['check']}/{v['poor']}" + (f"  ({s['failed']} failed)" if s["failed"] else ""))
    by = {s["variant"]: s for s in summaries}
    if "base" in by:
        for name, s in by.items():
            if name != "base":
                log(f"{name} / base: wall median x{s['wall_median_s'] / by['base']['wall_median_s']:.2f}, "
                    f"wall p90 x{s['wall_p90_s'] / by['base']['wall_p90_s']:.2f}, "
                    f"cpu median x{s['cpu_median_s'] / by['base']['cpu_median_s']:.2f}")


def print_breakdown(rows, variant, log):
    """Median seconds per phase of the process and per registration stage."""
    r = [x for x in rows if x["variant"] == variant and "error" not in x]
    if not r:
        return
    phases = {}
    for x in r:
        for k, v in x.get("phases", {}).items():
            phases.setdefault(k, []).append(v)
        for k, v in x["timings_s"].items():
            phases.setdefault(f"  {k}", []).append(v)
    if phases:
        log(f"{variant}: median s per phase: " + ", ".join(f"{k.strip()} {np.median(v):.2f}" for k, v in phases.items()))


# long: argument parsing, the interleaved loop and the report belong together
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the previous version (base)")
    ap.add_argument("--starts", type=int, default=4, help="random starts per sweep (4 sweeps)")
    ap.add_argument("--ct-format", choices=["dicom", "nrrd"], default="dicom")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--variants", default="base,new", help="comma-separated: base, new, new+cache")
    ap.add_argument("--json", help="write every row and the summaries here")
    args = ap.parse_args(argv)
    variants = args.variants.split(",")

    def log(s):
        print(s, flush=True)

    t_start = time.perf_counter()
    case = ensure_speed_case(progress=log)
    truth, plan = trials(case, args.starts, args.seed)
    truth_m = np.array(truth["reference_to_ct"])
    work = Path(tempfile.mkdtemp(prefix="ctus-speed-"))
    try:
        targets = targets_file(truth, work / "targets.json")
        trees = {"new": ROOT, "new+cache": ROOT}
        if "base" in variants:
            trees["base"] = baseline_tree(args.baseline_ref, work / "base")
        extra = {"new+cache": ["--feature-cache", str(work / "features")]}
        ct = "ct_dicom" if args.ct_format == "dicom" else "ct.nrrd"
        log(f"speed case {case}: CT {ct}, {len(plan)} trials, variants {variants} (base = {args.baseline_ref}); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        # One untimed run per variant first: the file cache, and the compiled kernels built once.
        warm = work / "init-warm.json"
        warm.write_text(json.dumps({"reference_to_ct": plan[0][2].tolist()}))
        for v in variants:
            run_one(trees[v], case, ct, plan[0][1], warm, work / "targets.json", work / "out-warm.json")
        rows = []
        for k, sweep, init in plan:
            init_path = work / f"init{k}.json"
            init_path.write_text(json.dumps({"reference_to_ct": init.tolist()}))
            order = variants if k % 2 == 0 else variants[::-1]
            for v in order:
                res = run_one(trees[v], case, ct, sweep, init_path, work / "targets.json", work / f"out-{v}.json",
                              extra.get(v, ()))
                row = {"variant": v, "trial": k, "sweep": sweep, "wall_s": res["wall_s"], "cpu_s": res["cpu_s"],
                       "phases": res.get("phases", {})}
                if "error" in res:
                    row["error"] = res["error"]
                    log(f"{k:2d} {v:9s} {sweep:24s} FAILED {res['error']}")
                else:
                    row.update(score(res["doc"], truth_m, targets))
                    log(f"{k:2d} {v:9s} {sweep:24s} wall {row['wall_s']:5.2f} s cpu {row['cpu_s']:5.2f} s  "
                        f"TRE {row['tre_rms_mm']:5.2f} mm (max {row['tre_max_mm']:5.2f})  {row['verdict']:5s} "
                        f"covered {row['covered']:.2f}")
                rows.append(row)
        summaries = [summarise(rows, v) for v in variants]
        print_table(summaries, log)
        for v in variants:
            print_breakdown(rows, v, log)
        phases = phase_breakdown({v: trees[v] for v in variants}, case, log)
        log(f"load average now {os.getloadavg()[0]:.1f}; total {time.perf_counter() - t_start:.0f} s")
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "summaries": summaries, "phases": phases}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
