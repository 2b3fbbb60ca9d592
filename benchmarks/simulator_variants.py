"""CT -> ultrasound registration on sweeps from simulators other than the demo's own.

    .venv/bin/python benchmarks/simulator_variants.py [--trials 8] [--variants default,settings,plain]
                                                      [--seed 1] [--json OUT.json]

The product is judged on an independent ultrasound simulation, so its registration must not
depend on this project's simulator. Each variant simulates the demo case's sweeps (survey +
lesions 1-3, 100 frames, the same poses: the same seed) with another image formation, then
registers the demo CT to them from the same random starts (5-20 mm, 0-10 deg about the liver)
as benchmarks/registration.py, and prints its table (success = every lesion centroid and
vessel landmark within 5 mm; TRE RMS over them; verdicts; coverage of the 95 % radius).

Variants:
- ``default``: the demo simulator (sample_data/simulator/echo_envelope.py), as in the demo case;
- ``settings``: the same model with other knobs: 5 MHz, 50 dB dynamic range, no haze,
  a third of the specular gain, TGC over-compensating (0.55 dB/cm/MHz), coarser speckle,
  darker liver grey;
- ``knobs:name=value,...``: the demo simulator with those SimulatorSettings fields (and
  ``frequency_mhz``) changed, one knob at a time to find which one a failure comes from;
- ``plain``: sample_data/simulator/plain_physics.py: Wein 2008's intensity model from HU
  alone (no labels, no impedance table), fresh speckle per frame, no PSF, enhanced vessels
  brighter than liver instead of anechoic.

Results: benchmarks/results/simulator_variants.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.registration import (  # noqa: E402
    load_demo,
    liver_centroid,
    print_summaries,
    run_trials,
    summarise,
    targets_of,
)
from registration.io.sequence_io import load_sweep  # noqa: E402


#: The ``settings`` variant: the demo simulator with these knobs (a ``knobs:`` variant).
SETTINGS_KNOBS = ("frequency_mhz=5,dynamic_range_db=50,clutter_db=-120,specular_gain=10,tgc_alpha=0.55,"
                  "speckle_cell_mm=0.5,liver_grey=48")


def simulator_of(variant: str):
    """Factory for make_sweeps(simulator=...) of a variant (None: the demo simulator)."""
    from sample_data.simulator.plain_physics import PlainPhysicsSimulator
    from sample_data.simulator.simulator_settings import SimulatorSettings
    from sample_data.simulator.us_simulator import UltrasoundSimulator
    if variant == "default":
        return None
    if variant == "plain":
        return PlainPhysicsSimulator
    if variant == "settings":
        variant = "knobs:" + SETTINGS_KNOBS
    if not variant.startswith("knobs:"):                 # e.g. knobs:frequency_mhz=5,tgc_alpha=0.55
        raise SystemExit(f"unknown variant {variant!r}")
    kv = dict(item.split("=") for item in variant[len("knobs:"):].split(","))
    f = float(kv.pop("frequency_mhz", 3.5))
    st = SimulatorSettings(**{k: float(v) for k, v in kv.items()})

    def make(ct, labels, *, probe, seed, lesion_types):
        return UltrasoundSimulator(ct, labels, frequency_mhz=f, probe=dataclasses.replace(probe, frequency_mhz=f),
                                   seed=seed, lesion_types=lesion_types, settings=st)
    return make


def variant_sweeps(ct, labels, truth, variant: str, seed: int, out: Path):
    """(reference_to_ct, [(file, Sweep)]) of the variant's sweeps, written under ``out``."""
    from sample_data.sweeps.tracked_sweeps import make_sweeps
    names = [les["name"] for les in truth["lesions"]][:3]
    us = make_sweeps(ct, labels, truth, out, seed=seed, frames_per_sweep=100, lesions=names,
                     simulator=simulator_of(variant))
    cfg = out / us["config"]
    return np.array(us["reference_to_ct"]), [(s["file"], load_sweep(out / s["file"], calibration=cfg))
                                             for s in us["sweeps"]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=8, help="registrations per variant")
    ap.add_argument("--variants", default="default,settings,plain", help="comma-separated; a knobs: variant's "
                    "own settings are separated by '+' (knobs:frequency_mhz=5+tgc_alpha=0.55)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sweep-seed", type=int, default=3, help="seed of the simulated sweeps (poses, speckle)")
    ap.add_argument("--keep", help="write the sweeps here (default: a temporary folder)")
    ap.add_argument("--json", help="write all rows and summaries here")
    args = ap.parse_args(argv)

    def log(s):
        print(s, flush=True)
    d, truth, ct, labels, _ = load_demo()
    targets = targets_of(truth)
    center = liver_centroid(labels)
    log(f"demo case {d}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ctus-simvariants-"))
    rows, summaries = [], []
    for variant in args.variants.split(","):
        variant = variant.replace("+", ",")
        t0 = time.perf_counter()
        truth_m, sweeps = variant_sweeps(ct, labels, truth, variant, args.sweep_seed, root / variant)
        log(f"{variant}: {len(sweeps)} sweeps simulated in {time.perf_counter() - t0:.0f} s ({root / variant})")
        rows += run_trials(ct, sweeps, truth_m, targets, center, args.trials, args.seed, ["lc2"], variant, log)
        summaries.append(summarise(rows, variant, "lc2"))
    report(rows, summaries, args.json, log)
    return 0


def report(rows, summaries, json_path, log) -> None:
    """The table (one row per variant: its "set"), the "good" verdicts on failed registrations,
    and (``json_path``) every row and summary as JSON."""
    print_summaries(summaries, log)
    bad_good = [(r["set"], r["trial"], round(r["tre_rms_mm"], 2)) for r in rows
                if r.get("verdict") == "good" and not r["success"]]
    log(f"'good' verdicts on failed registrations: {bad_good or 'none'}")
    if json_path:
        Path(json_path).write_text(json.dumps({"rows": rows, "summaries": summaries}, indent=1, default=float))


if __name__ == "__main__":
    sys.exit(main())
