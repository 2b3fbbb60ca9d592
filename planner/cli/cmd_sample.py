"""``ctus sample --out DIR [--seed N] [--breathing MM] [--force] [--no-sweeps] [--no-deformed] [--no-mr]``

Writes the synthetic demo case (two-phase DICOM + NRRD CT, label map with
names, tracked sweeps, sweeps of the liver deformed between CT and scan, a liver
MR (NIfTI + DICOM) with a metastasis only it shows, truth.json;
see sample_data/case/demo_case.py) and prints the time each stage took. Refuses a
non-empty DIR unless --force.
"""
from __future__ import annotations

import json
import os
import sys
import time

from registration.spatial.errors import InputError


def add_parser(sub):
    p = sub.add_parser("sample", help="write the synthetic demo case (CT, labels, sweeps, truth)",
                       description=__doc__)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--breathing", type=float, default=0.0, metavar="MM",
                   help="cranio-caudal liver motion during the sweeps, 0-15 mm (default 0)")
    p.add_argument("--force", action="store_true", help="write into a non-empty folder")
    p.add_argument("--no-sweeps", action="store_true", help="only the CT part (faster)")
    p.add_argument("--no-deformed", action="store_true",
                   help="skip the sweeps of the deformed liver (sweep_*_deformed.igs.mha; faster)")
    p.add_argument("--no-mr", action="store_true", help="skip the liver MR (mr_hbp.nii.gz, mr/hbp; faster)")
    return p


def run(args) -> int:
    out = os.fspath(args.out)
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError("exists and is not a folder", path=out, fix="give a folder path for --out")
    if os.path.isdir(out) and os.listdir(out) and not args.force:
        raise InputError("folder is not empty", path=out,
                         fix="choose a new or empty folder, or pass --force to replace the case in it")
    if not 0.0 <= args.breathing <= 15.0:
        raise InputError(f"--breathing {args.breathing} mm is outside 0-15 mm",
                         fix="give a cranio-caudal excursion between 0 and 15 mm")
    if args.seed < 0:
        raise InputError(f"--seed {args.seed} is negative", fix="give a seed >= 0")
    from sample_data.case.demo_case import write_case  # the CLI is the only planner module that may

    t0 = time.perf_counter()

    def progress(stage, fraction):
        print(f"  {stage:<10s} done at {time.perf_counter() - t0:6.1f} s ({fraction * 100:3.0f} %)",
              file=sys.stderr, flush=True)

    kwargs = {"deformed": 0} if args.no_deformed else {}
    if args.no_mr:
        kwargs["mr"] = False
    timings = write_case(out, seed=args.seed, breathing_mm=args.breathing, progress=progress,
                         sweeps=not args.no_sweeps, **kwargs)
    total = time.perf_counter() - t0
    print(f"demo case written to {out} in {total:.1f} s")
    for stage, seconds in timings.items():
        print(f"  {stage:<20s} {seconds:7.2f} s")
    truth = json.loads(open(os.path.join(out, "truth.json"), encoding="utf-8").read())
    print("lesions (truth.json):")
    for les in truth["lesions"]:
        c = ", ".join(f"{v:.1f}" for v in les["centroid_lps"])
        print(f"  {les['name']:<9s} {les['type']:<15s} {les['diameter_mm']:4.0f} mm  segment "
              f"{les['segment']:<4s} LPS ({c})  {' '.join(les['notes'])}")
    if "mr" in truth:
        only = truth["mr"]["mr_only_lesion"]
        c = ", ".join(f"{v:.1f}" for v in only["centroid_mr"])
        print(f"  {only['name']:<9s} {only['type']:<15s} {only['diameter_mm']:4.0f} mm  MR only, MR LPS ({c})")
    return 0
