"""Progress truth: how far the shown fraction is from the elapsed share of the run, per stage.

    .venv/bin/python benchmarks/progress_stages.py [--starts 4] [--skip-plan]

On the demo case (sample_data.case.demo_case.ensure_demo_case): the GUI's LC2
registration (register_sweep defaults, start = the true registration moved 1-2 deg /
2-3 mm) and plan_case of every lesion. For every stage: where its share begins on the
bar (shown) against the share of the wall time already spent when it began (elapsed),
the stage timings of the run (RegistrationResult.timings_s), and the largest
|shown - elapsed| over every report. A truthful bar keeps that small (a few %) and
starts the last stages (level 3, the error estimate) well below 90 %. The weights
(registration/align/lc2_progress.py, planner/case/case_plan.py CASE_STAGE_S and
LESION_STAGES) are fitted from these numbers. No assertions. Results:
benchmarks/results/registration.md#progress-weights, planning.md#progress-weights.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from planner.case.case_plan import plan_case                                    # noqa: E402
from registration.align.intensity_registration import register_sweep             # noqa: E402
from registration.align.targets import targets_from_labels                       # noqa: E402
from registration.io.ct_io import load_ct                                        # noqa: E402
from registration.io.labelmap_io import load_labels                              # noqa: E402
from registration.io.sequence_io import load_sweep                               # noqa: E402
from registration.spatial.transforms import rigid_matrix                         # noqa: E402


def recorder():
    log, t0 = [], time.perf_counter()

    def fn(fraction, message):
        log.append((time.perf_counter() - t0, float(fraction), str(message)))
        return True
    return log, fn


def report(title: str, log, stage_of) -> None:
    end = log[-1][0]
    print(f"\n{title}: {end:.1f} s, {len(log)} reports, monotone "
          f"{all(b[1] >= a[1] for a, b in zip(log, log[1:]))}")
    seen = {}
    for t, f, m in log:
        seen.setdefault(stage_of(m), (t / end, f))
    print(f"  {'stage':52s} elapsed  shown")
    for stage, (el, shown) in seen.items():
        print(f"  {stage:52s} {el:6.3f} {shown:6.3f}")
    dev = max(abs(f - t / end) for t, f, _ in log)
    print(f"  largest |shown - elapsed| {dev:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--skip-plan", action="store_true")
    args = ap.parse_args()
    from sample_data.case.demo_case import ensure_demo_case
    folder = Path(ensure_demo_case())
    truth = json.loads((folder / "truth.json").read_text())
    ct = load_ct(folder / "ct_portal.nrrd")
    labels = load_labels(folder / "labels.nrrd", folder / "label_names.json")
    sweep_path = sorted(folder.glob("sweep_*.igs.mha"))[0]
    sweep = load_sweep(sweep_path, sorted(folder.glob("*.xml"))[0])
    entry = next(s for s in truth["ultrasound"]["sweeps"] if s["file"] == sweep_path.name)
    init = rigid_matrix([1.0, -1.0, 0.5, 2.0, -1.5, 1.0]) @ np.asarray(entry["reference_to_ct"], float)
    log, fn = recorder()
    res = register_sweep(ct, sweep, init, progress=fn, targets=targets_from_labels(labels), n_starts=args.starts)
    total = sum(res.timings_s.values())
    print("registration stage timings: " + ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f} %)"
                                                    for k, v in res.timings_s.items()))
    report(f"registration ({args.starts} starts)", log, lambda m: m.split(" - ")[0])
    if not args.skip_plan:
        log, fn = recorder()
        plan_case(ct, labels, progress=fn)
        report("planning (every lesion)", log, lambda m: m)


if __name__ == "__main__":
    main()
