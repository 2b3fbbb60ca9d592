"""Wall time of the whole ``ctus plan`` process on a case of issue 16's size, this version against a
previous one, interleaved in one run; the two plans compared, and the new plan's paths re-checked.

    .venv/bin/python benchmarks/planning_speed.py [--baseline-ref REF] [--runs 3]
                                                  [--ct-format dicom|nrrd] [--json OUT.json]

Case (:func:`benchmarks.speed_case.ensure_plan_case`): the demo's CTs (portal, arterial) and
labels (6 lesions, vessels, organs) resampled to 512x512x119 at 0.74 x 0.74 x 1.6 mm. Each run
is one ``ctus plan --ct CT --labels --label-names --ct-arterial --out DIR --force`` process per
variant (PDF included), the order alternating from run to run, so both see the same machine
at the same moment. ``base`` = the project at ``--baseline-ref`` (default: main where this
work branched off), extracted with ``git archive`` into a temporary folder and run with this
venv; ``new`` = this tree.

Reported: wall time (spawn to exit) median and p90 and CPU time (user + sys, the forked PDF
process included) per variant, the ratio new / base, the load average; then whether the
plans agree (plan.json of the first run of each, without timings and creation time: every
recommendation, reason, path, clearance) and whether each variant's plan is the same from run
to run; then every path the new plan calls safe re-checked against the full-resolution labels
by tests/planning_phantom.independent_violations (scipy distance transforms of each
structure, sampled every 0.5 mm: not the planner's own oracle). Results:
benchmarks/results/planning.md.
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
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.registration_speed import LAUNCH, baseline_tree  # noqa: E402
from benchmarks.speed_case import ensure_plan_case  # noqa: E402

#: main at the merge this work started from (planning as it was before issue 16's planning part).
BASELINE_REF = "07a21cb"
#: Fields that differ from run to run by nature.
VOLATILE = {"planning_time_s", "created_utc", "timing"}


def run_one(tree: Path, case: Path, ct_format: str, out: Path) -> dict:
    """One ``ctus plan`` process of the project in ``tree``: wall and CPU time (children included)."""
    ct = case / ("ct_dicom" if ct_format == "dicom" else "ct.nrrd")
    cmd = [sys.executable, "-c", LAUNCH, "plan", "--ct", str(ct), "--labels", str(case / "labels.nrrd"),
           "--label-names", str(case / "label_names.json"), "--ct-arterial", str(case / "ct_arterial.nrrd"),
           "--out", str(out), "--force"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=str(tree), env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True,
                          text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return {"error": tail, "wall_s": wall, "cpu_s": cpu}
    return {"wall_s": wall, "cpu_s": cpu, "plan": json.loads((out / "plan.json").read_text()),
            "pdf_bytes": (out / "plan.pdf").stat().st_size}


def differences(a, b, path: str = "") -> list:
    """Where two plan.json documents differ (``VOLATILE`` keys ignored), as 'path: a vs b'."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k in VOLATILE:
                continue
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'the second' if k in b else 'the first'}")
            else:
                out += differences(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        out = [f"{path}: {len(a)} vs {len(b)} items"] if len(a) != len(b) else []
        for n, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{n}]")
        return out
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def recheck_paths(plan: dict, case: Path, log) -> int:
    """Re-check every safe path of ``plan`` against the full-resolution labels; returns the failures."""
    from planning_phantom import independent_violations
    from registration.io.labelmap_io import load_labels
    labels = load_labels(case / "labels.nrrd", case / "label_names.json")
    c = plan["constraints"]
    vessels = tuple(n for n in labels.names if n in ("portal_vein", "hepatic_vein", "artery", "ivc"))
    bad = checked = 0
    for les in plan["lesions"]:
        for t in les["trajectories"]:
            if t.get("safe", True) is False:
                continue
            checked += 1
            v = independent_violations(labels, t["entry_ct"], t["target_ct"], max_length_mm=c["max_length_mm"],
                                       vessel_floor_mm=c["vessel_floor_mm"], vessel_margin_mm=c["vessel_margin_mm"],
                                       vessel_names=vessels, lesion_value=labels.names.get(les["name"]),
                                       clearance=t["clearance_mm"], cautions=t.get("cautions"))
            if v:
                bad += 1
                log(f"  {les['name']} {t['guidance']} path: {'; '.join(v)}")
    log(f"new plan: {checked} safe paths re-checked against the full-resolution labels, {bad} failed")
    return bad


# long: argument parsing, the interleaved loop and the report belong together
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the previous version (base)")
    ap.add_argument("--runs", type=int, default=3, help="plans per variant")
    ap.add_argument("--ct-format", choices=["dicom", "nrrd"], default="dicom")
    ap.add_argument("--json", help="write the timings and the comparison here")
    ap.add_argument("--no-recheck", action="store_true", help="skip the independent re-check of the paths")
    args = ap.parse_args(argv)

    def log(s):
        print(s, flush=True)

    case = ensure_plan_case(progress=log)
    work = Path(tempfile.mkdtemp(prefix="ctus-planspeed-"))
    try:
        trees = {"base": baseline_tree(args.baseline_ref, work / "base"), "new": ROOT}
        log(f"plan case {case}: CT {args.ct_format}, {args.runs} runs per variant (base = {args.baseline_ref}); "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
        rows = []
        for r in range(args.runs):
            for v in (["base", "new"] if r % 2 == 0 else ["new", "base"]):
                row = run_one(trees[v], case, args.ct_format, work / f"{v}-{r}")
                row.update(variant=v, run=r, load=os.getloadavg()[0])
                rows.append(row)
                log(f"run {r} {v:4s}: " + (f"FAILED {row['error']}" if "error" in row else
                                           f"{row['wall_s']:.2f} s wall, {row['cpu_s']:.2f} s cpu, "
                                           f"recommendation {row['plan']['recommendation']['guidance']}"))
        summary = {}
        log("\nvariant  runs  wall median  wall p90  cpu median   (load average at the end "
            f"{os.getloadavg()[0]:.1f})")
        for v in ("base", "new"):
            ok = [x for x in rows if x["variant"] == v and "error" not in x]
            if not ok:
                continue
            w, c = np.array([x["wall_s"] for x in ok]), np.array([x["cpu_s"] for x in ok])
            summary[v] = {"runs": len(ok), "wall_median_s": float(np.median(w)),
                          "wall_p90_s": float(np.percentile(w, 90)), "cpu_median_s": float(np.median(c))}
            s = summary[v]
            log(f"{v:7s} {s['runs']:5d}  {s['wall_median_s']:9.2f} s {s['wall_p90_s']:7.2f} s "
                f"{s['cpu_median_s']:8.2f} s")
        if len(summary) == 2:
            b, n = summary["base"], summary["new"]
            log(f"new / base: wall median x{n['wall_median_s'] / b['wall_median_s']:.2f}, "
                f"cpu median x{n['cpu_median_s'] / b['cpu_median_s']:.2f}")
        plans = {v: [x["plan"] for x in rows if x["variant"] == v and "error" not in x] for v in ("base", "new")}
        compare = {}
        if plans["base"] and plans["new"]:
            d = differences(plans["base"][0], plans["new"][0])
            compare["base_vs_new"] = d
            log(f"plan.json base vs new: {'identical' if not d else f'{len(d)} differences'}"
                " (recommendations, reasons, paths, clearances; timings and creation time ignored)")
            for line in d[:30]:
                log(f"  {line}")
        for v, ps in plans.items():
            drift = [line for p in ps[1:] for line in differences(ps[0], p)]
            compare[f"{v}_run_to_run"] = drift
            log(f"plan.json {v}, run to run: {'identical' if not drift else f'{len(drift)} differences'}")
        if plans["new"] and not args.no_recheck:
            compare["recheck_failures"] = recheck_paths(plans["new"][0], case, log)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": [{k: v for k, v in x.items() if k != "plan"} for x in rows],
                                                   "summary": summary, "compare": compare}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
