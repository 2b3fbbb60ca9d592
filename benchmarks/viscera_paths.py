"""Do the automatic organ labels keep needle lines out of the true organs? (planner/segmentation/viscera.py)

    .venv/bin/python benchmarks/viscera_paths.py [--case demo|abdomen-20slice] [--lines 600]

Random straight needle lines from a skin voxel to a voxel >= 10 mm inside the true liver, at most
150 mm long (seed 1). Each line is measured with the planner's clearance oracle
(:class:`planner.paths.clearance.ClearanceOracle`, the segment sampled every 0.25 mm) against

- the true labels (demo: the phantom's; abdomen-20slice: TotalSegmentator's),
- the automatic labels without the organs of ``viscera.py`` ("before": they are put back to
  liver or body), and with them ("after"),

with the hard threshold of an 18 G needle: radius 0.65 mm + half the voxel diagonal. Printed:
of the lines that touch only a true gallbladder / kidney / spleen / bowel / pancreas (no bone,
lung or heart), how many each automatic map rejects (any hard class within the threshold); of
the lines free of every true hard class, how many each rejects (access lost). No assertions:
numbers for benchmarks/results/viscera.md.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("CTUS_SHARED_DATA", ROOT.parent / "shared" / "data"))
ORGANS = ("gallbladder", "kidney", "spleen", "bowel", "pancreas")
OTHER = ("bone", "lung", "heart")
NEEDLE_RADIUS_MM = 0.65


def _case(name):
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    if name == "demo":
        from sample_data.case.demo_case import ensure_demo_case
        folder = Path(ensure_demo_case())
        ct = load_ct(folder / "ct_portal.nrrd")
        return ct, load_labels(folder / "labels.nrrd", folder / "label_names.json", reference=ct)
    folder = DATA / "ct" / "abdomen-20slice"
    ct = load_ct(folder / "dicom")
    return ct, load_labels(folder / "labels.nii.gz", folder / "label_names.txt", reference=ct)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="demo", choices=("demo", "abdomen-20slice"))
    ap.add_argument("--lines", type=int, default=600)
    args = ap.parse_args()
    from scipy import ndimage

    from planner.anatomy.structures import HARD_CLASSES, build_anatomy
    from planner.paths.clearance import ClearanceOracle
    from planner.segmentation.morphology import depth_mm
    from planner.segmentation.pipeline import segment_anatomy
    from planner.segmentation.viscera import NAMES
    from registration.spatial.volume import LabelMap
    ct, truth = _case(args.case)
    res = segment_anatomy(ct)
    after = res.labels.array
    before = after.copy()
    for n in NAMES:
        if n in res.names:
            m = after == res.names[n]
            before[m] = np.where(res.liver_region[m], res.names["liver"], res.names["body"])
    names_after = dict(res.names)
    names_before = {k: v for k, v in res.names.items() if k not in NAMES}

    def oracle(lm):
        return ClearanceOracle(lm, build_anatomy(ct, lm))
    oracles = {"truth": oracle(truth),
               "before": oracle(LabelMap(before, ct.spacing, ct.origin, ct.direction, names_before)),
               "after": oracle(LabelMap(after, ct.spacing, ct.origin, ct.direction, names_after))}
    thr = NEEDLE_RADIUS_MM + oracles["truth"].half_voxel_diagonal_mm
    liver = truth.array == truth.names["liver"]
    targets = np.argwhere(depth_mm(liver, ct.spacing) >= 10.0)
    body = oracles["truth"].anatomy.masks["body"]
    skin = np.argwhere(body & ~ndimage.binary_erosion(body))
    rng = np.random.default_rng(1)
    rows = []
    while len(rows) < args.lines:
        t = ct.index_to_lps(targets[rng.integers(len(targets))][::-1].astype(float))
        e = ct.index_to_lps(skin[rng.integers(len(skin))][::-1].astype(float))
        if np.linalg.norm(t - e) > 150.0:
            continue
        rows.append({k: {c for c, d in o.measure(t, e).by_class.items() if c in HARD_CLASSES and d <= thr}
                     for k, o in oracles.items()})
    organ_only = [r for r in rows if r["truth"] & set(ORGANS) and not r["truth"] & set(OTHER)]
    free = [r for r in rows if not r["truth"]]
    print(f"{args.case}: {len(rows)} lines, hard threshold {thr:.2f} mm; automatic organs "
          f"{ {n: res.measures.get(f'{n}_ml') for n in NAMES} } ml")
    print(f"  {len(organ_only)} lines touch only a true gallbladder/kidney/spleen/bowel/pancreas; "
          f"{len(free)} are free of every true hard class")
    for k in ("before", "after"):
        rej = sum(bool(r[k]) for r in organ_only)
        lost = sum(bool(r[k]) for r in free)
        print(f"  {k:6s}: rejects {rej}/{len(organ_only)} organ-crossing lines "
              f"({100.0 * rej / max(1, len(organ_only)):.0f} %), {lost}/{len(free)} free lines")
    per = {}
    for r in organ_only:
        for c in r["truth"] & set(ORGANS):
            a = per.setdefault(c, [0, 0, 0])
            a[0] += 1
            a[1] += bool(r["before"])
            a[2] += bool(r["after"])
    print("  per true organ [lines, rejected before, after]:", per)


if __name__ == "__main__":
    main()
