"""Automatic anatomy benchmark: time and peak memory for a 512 x 512 x 300 CT on 2 cores.

    .venv/bin/python benchmarks/segment.py [--slices 300] [--threads 2]

The CT is the real crlm-1004 (512 x 512 x 41, 5 mm, in ../shared/data)
resampled linearly along z to ``--slices`` slices over the same 205 mm
(0.67 mm apart): a thin-slice abdominal CT of the size the product meets.
Each measurement runs in a fresh subprocess so that its peak resident memory
(``ru_maxrss``, which includes the CT itself) is its own.

Baseline, measured in the same run on the same volume: a plain SimpleITK
pass, threshold at 200 HU + connected components + relabel by size (the
cheapest whole-volume segmentation there is). Printed: total time, the
share of each step of ``segment_anatomy``, the ratio to the baseline, peak
memory. Targets: <= 60 s and <= 4 GB. No assertions: numbers only
(benchmarks/results/segment.md keeps them).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CTUS_SHARED_DATA", ROOT.parent / "shared" / "data"))

CHILD = r"""
import json, os, resource, sys, time
import numpy as np
import SimpleITK as sitk
sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(int(sys.argv[3]))
from registration.io.ct_io import load_ct
from registration.spatial.volume import Volume

def big_ct(folder, n):
    ct = load_ct(folder)
    img = ct.to_sitk()
    extent = ct.spacing[2] * (ct.array.shape[0] - 1)
    ref = sitk.Image([int(ct.shape_ijk[0]), int(ct.shape_ijk[1]), n], sitk.sitkInt16)
    ref.SetSpacing((float(ct.spacing[0]), float(ct.spacing[1]), extent / (n - 1)))
    ref.SetOrigin(tuple(map(float, ct.origin)))
    ref.SetDirection(tuple(map(float, ct.direction.reshape(-1))))
    out = sitk.Resample(img, ref, sitk.Transform(), sitk.sitkLinear, -1024.0)
    return Volume.from_sitk(out, dict(ct.metadata, source="crlm-1004 resampled along z"))

ct = big_ct(sys.argv[1], int(sys.argv[2]))
rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
what = sys.argv[4]
t = time.perf_counter()
if what == "baseline":
    img = ct.to_sitk()
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.BinaryThreshold(img, 200, 4000, 1, 0)),
                               sortByObjectSize=True)
    n = int(sitk.GetArrayViewFromImage(cc).max())
    out = {"components": n}
else:
    from planner.segmentation.pipeline import segment_anatomy
    r = segment_anatomy(ct)
    out = {"timings_s": r.timings_s, "names": r.names, "measures": r.measures,
           "warnings": r.warnings}
out["seconds"] = time.perf_counter() - t
out["shape_ijk"] = list(ct.shape_ijk)
out["spacing"] = [round(float(s), 4) for s in ct.spacing]
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
out["input_rss_gb"] = rss_input
print("RESULT " + json.dumps(out))
"""


def run(what: str, folder: Path, slices: int, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    p = subprocess.run([sys.executable, "-c", CHILD, str(folder), str(slices), str(threads), what],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{what} failed:\n{p.stderr[-3000:]}")
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder = DATA / "ct" / "crlm-1004" / "dicom"
    if not folder.exists():
        raise SystemExit(f"real data not available: {folder}")
    load = os.getloadavg()[0]
    base = run("baseline", folder, args.slices, args.threads)
    t0 = time.perf_counter()
    seg = run("segment", folder, args.slices, args.threads)
    wall = time.perf_counter() - t0
    total = seg["seconds"]
    print(f"CT {' x '.join(map(str, seg['shape_ijk']))} voxels, spacing {seg['spacing']} mm, "
          f"{args.threads} threads, load average at start {load:.1f}")
    print(f"baseline (threshold + connected components + relabel): {base['seconds']:.2f} s, "
          f"peak {base['peak_rss_gb']:.2f} GB")
    print(f"segment_anatomy: {total:.1f} s ({total / base['seconds']:.0f} x baseline; target <= 60 s), "
          f"peak {seg['peak_rss_gb']:.2f} GB (the CT alone: {seg['input_rss_gb']:.2f} GB; target <= 4 GB); "
          f"subprocess wall {wall:.1f} s")
    for step, s in seg["timings_s"].items():
        print(f"  {step:28s} {s:6.1f} s  {100.0 * s / total:5.1f} %  ({s / base['seconds']:.1f} x baseline)")
    print(f"structures: {', '.join(seg['names'])}; measures {seg['measures']}")


if __name__ == "__main__":
    main()
