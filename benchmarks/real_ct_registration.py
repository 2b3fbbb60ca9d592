"""CT -> ultrasound registration on sweeps simulated from a REAL CT (crlm-1004).

    .venv/bin/python benchmarks/real_ct_registration.py [--variants default,plain] [--sweep-seed 3]
                                                        [--trials 6] [--seed 1] [--far-trials 12]
                                                        [--json OUT.json]

Every other registration benchmark simulates its sweeps from the demo case's synthetic CT; the
product is judged on sweeps simulated from other, real CTs. This one takes the real
contrast-enhanced CT ``../shared/data/ct/crlm-1004`` (TCIA, 5 mm slices, no labels), labels it
with the product's own automatic segmentation (the simulator's tissue classes need names; the
``plain`` variant uses the HU alone), simulates a survey sweep and one sweep over each of the two
liver foci read on this CT (the seeds of tests/test_segmentation_lesion.py), and registers the CT
to them from random starts (5-20 mm, 0-10 deg about the liver, as benchmarks/registration.py).

Targets (exact: the sweeps come from this CT): the two foci and the centroids of the liver's
eight octants that hold at least 1000 voxels. Success = every target within 5 mm, as elsewhere.
Variants: those of benchmarks/simulator_variants.py (``default``, ``plain``, ``settings``,
``knobs:...``). ``--far-trials N`` adds, per variant, N starts 20-30 mm / 10-15 deg off (issue 19's far
starts, set ``far:<variant>``) and the count of correct results called poor and wrong ones called
good. Results: benchmarks/results/real_ct_registration.md.

``--deformed-case DIR`` instead writes a case of this CT with the liver deformed between the CT and
the scan (issue 19: the demo case's organ field and probe compression, sample_data.sweeps.deformed_sweeps,
on our own segmentation's liver; a survey and a sweep over each focus, then the deformed survey and
deformed focus sweeps) and its truth.json in the demo case's layout, for
``benchmarks/deformation.py --case DIR`` (the honest-error measures on a real CT); ``--deformed-variant``
simulates it with another simulator (``plain``, ``settings``).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.registration import far_start_verdicts, run_trials, summarise  # noqa: E402
from benchmarks.simulator_variants import report, simulator_of  # noqa: E402
from registration.io.ct_io import load_ct  # noqa: E402
from registration.io.sequence_io import load_sweep  # noqa: E402

DATA = Path(os.environ.get("CTUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
#: Foci read on crlm-1004's slices (CT LPS mm; tests/test_segmentation_lesion.py CRLM_SEEDS).
FOCI = {"hypo_focus": (-107.4, 35.1, -270.0), "dense_focus": (-89.0, -4.0, -215.0)}
#: Octants of the liver with fewer voxels than this give no target.
MIN_OCTANT_VOXELS = 1000


def liver_targets(labels) -> tuple:
    """({name: {"point", "radius_mm"?}}, liver centroid): the foci and the liver octants' centroids."""
    k, j, i = np.nonzero(labels.mask("liver"))
    pts = labels.index_to_lps(np.stack([i, j, k], -1).astype(float))
    centre = pts.mean(axis=0)
    targets = {name: {"point": list(p), "radius_mm": 3.0} for name, p in FOCI.items()}
    for o in range(8):
        sel = np.all(((pts - centre) > 0) == [(o >> b) & 1 for b in range(3)], axis=1)
        if sel.sum() >= MIN_OCTANT_VOXELS:
            targets[f"liver_octant_{o}"] = {"point": [float(v) for v in pts[sel].mean(axis=0)]}
    return targets, centre


def foci_truth(diameters_mm=None) -> dict:
    """The simulator's truth of the foci (``lesions``; diameter 6 mm unless ``diameters_mm`` {name: mm})."""
    return {"lesions": [{"name": n, "type": "adenocarcinoma", "diameter_mm": float((diameters_mm or {}).get(n, 6.0)),
                         "centroid_lps": list(p)} for n, p in FOCI.items()], "landmarks": {}}


def variant_sweeps(ct, labels, variant: str, seed: int, out: Path):
    """(reference_to_ct, [(file, Sweep)]): survey + one sweep per focus, written under ``out``."""
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    us = make_sweeps(ct, labels, foci_truth(), out, seed=seed, frames_per_sweep=100, simulator=simulator_of(variant))
    cfg = out / us["config"]
    return np.array(us["reference_to_ct"]), [(s["file"], load_sweep(out / s["file"], calibration=cfg))
                                             for s in us["sweeps"]]


def deformed_case(ct, anatomy, folder: Path, seed: int, out: Path, variant: str = "default") -> Path:
    """A case folder ``out`` for benchmarks/deformation.py: this CT's static and deformed sweeps
    (simulated by ``variant``, a benchmarks/simulator_variants.py variant: the error model was tuned
    on the default simulator's sweeps, and the product is judged on an independent one), their truth
    (``ultrasound``) and the CT and label files it names. ``anatomy``: the CT's automatic segmentation
    (planner.segmentation.pipeline.segment_anatomy)."""
    import json

    from registration.io.labelmap_io import write_labels
    from registration.spatial.atomic_io import atomic_write_text
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    from planner.segmentation.lesion_grow import grow_lesion
    from planner.segmentation.lesion_labels import compose_labels
    out.mkdir(parents=True, exist_ok=True)
    # the foci grown from their clicks (the product's lesion tool): the deformed sweeps go over
    # the lesions of the label map
    bone = anatomy.labels.array == anatomy.names["bone"]
    grown = [grow_lesion(ct, p, anatomy.liver_region, name=n, bone=bone) for n, p in FOCI.items()]
    labels = compose_labels(anatomy.labels, grown)[0]
    truth = foci_truth({g.name: g.diameter_mm for g in grown})
    us = make_sweeps(ct, labels, truth, out, seed=seed, frames_per_sweep=100, deformed=3,
                     simulator=simulator_of(variant))
    write_labels(labels, out / "labels.nrrd")
    doc = {"case": "crlm-1004 (real CT), own segmentation", "simulator": variant, "ultrasound": us,
           "files": {"ct": {"portal": str(folder.resolve())}, "labels": "labels.nrrd"}}
    atomic_write_text(out / "truth.json", json.dumps(doc, indent=1, default=float))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="default,plain", help="comma-separated (a knobs: variant's own "
                    "settings separated by '+')")
    ap.add_argument("--trials", type=int, default=6, help="registrations per variant")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random starts")
    ap.add_argument("--sweep-seed", type=int, default=3, help="seed of the simulated sweeps")
    ap.add_argument("--keep", help="write the sweeps here (default: a temporary folder)")
    ap.add_argument("--json", help="write all rows and summaries here")
    ap.add_argument("--deformed-case", help="only write a deformed case of this CT here (for deformation.py)")
    ap.add_argument("--deformed-variant", default="default", help="the simulator of --deformed-case (a variant as "
                    "in --variants: default, settings, plain, knobs:...)")
    ap.add_argument("--far-trials", type=int, default=0, help="also this many trials per variant from far starts "
                    "(20-30 mm, 10-15 deg, issue 19): correct results called poor, wrong ones called good")
    args = ap.parse_args(argv)
    folder = DATA / "ct" / "crlm-1004" / "dicom"
    if not folder.exists():
        print(f"real CT not available: {folder}")
        return 0

    def log(s):
        print(s, flush=True)
    from planner.segmentation.pipeline import segment_anatomy
    t0 = time.perf_counter()
    ct = load_ct(folder)
    anatomy = segment_anatomy(ct, path=folder)
    labels = anatomy.labels
    targets, centre = liver_targets(labels)
    log(f"crlm-1004 {ct}: segmented in {time.perf_counter() - t0:.0f} s; {len(targets)} targets; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    if args.deformed_case:
        out = deformed_case(ct, anatomy, folder, args.sweep_seed, Path(args.deformed_case),
                            args.deformed_variant.replace("+", ","))
        log(f"deformed case written: {out} (run benchmarks/deformation.py --case {out})")
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ctus-realct-"))
    rows, summaries = [], []
    for variant in args.variants.split(","):
        variant = variant.replace("+", ",")
        truth_m, sweeps = variant_sweeps(ct, labels, variant, args.sweep_seed, root / variant.replace(":", "_"))
        rows += run_trials(ct, sweeps, truth_m, targets, centre, args.trials, args.seed, ["lc2"], variant, log)
        summaries.append(summarise(rows, variant, "lc2"))
        if args.far_trials:
            rows += run_trials(ct, sweeps, truth_m, targets, centre, args.far_trials, args.seed + 200, ["lc2"],
                               f"far:{variant}", log, trans_range=(20.0, 30.0), rot_range=(10.0, 15.0))
            summaries.append(summarise(rows, f"far:{variant}", "lc2"))
    report(rows, summaries, args.json, log)
    for variant in args.variants.split(",") if args.far_trials else []:
        log(far_start_verdicts(rows, f"far:{variant.replace('+', ',')}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
