"""Replay the residual-deformation term of ``benchmarks/deformation.py`` runs with other constants,
in seconds, without registering again.

    .venv/bin/python benchmarks/deformation_replay.py RUN.json [RUN.json ...] [--growth-prior 0.15]
                                                      [--local-factor 1.5] [--pose-calibration 0.5]
                                                      [--local-floor 2.0] [--near-probe-mm 4]
                                                      [--near-probe-radius 40]

Each RUN.json is a ``deformation.py --json`` output (it keeps every run's local fits). Per run the
deformation term is rebuilt from those fits by the product's own
:func:`registration.align.deformation_error.from_fits` with the constants given (module constants
patched for the call), and every target row's registration TRE is recomputed as
``sqrt(TRE^2 - old_deformation^2 + new_deformation^2)`` at the target's distance from the imaged
region (RESULT's ``distance_to_imaged_region_mm``) and depth below the probe face
(``depth_below_probe_mm``, the near-probe prior, scaled by the run's ``probe_indentation_mm``; runs
made before those were recorded have none: no prior, resp. the prior in full); its
verdict is moved the way
:func:`registration.align.uncertainty.assess` would for that number (a "good" above
``GOOD_TRE_MM`` becomes "check", anything above ``POOR_TRE_MM`` "poor"; other reasons stay).
It never promotes: a "check" whose claim falls below ``GOOD_TRE_MM`` stays "check" (the row does not
say whether the claim was its only reason), so a change that *lowers* claims gains goods the replay
does not show; measure such a change with ``deformation.py`` (on 2026-12-05 a lower near-probe
amplitude replayed as "same goods" and measured 75 checks -> good, 12 of them above 5 mm).
``--local-floor MM`` adds a stated deformation prior: the term's ``local`` becomes
``hypot(local, MM)`` (the product decision of docs/registration_tuning.md#residual-deformation).
``--pose-calibration K`` also replaces the pose term's factor (``uncertainty.CALIBRATION["lc2"]``
on the larger of the Hessian and multi-start estimates; rows of runs made before those two were
recorded keep their pose term). With the constants unchanged it reproduces the benchmark's
summaries (checked on eight cases, 2026-12-03): a quick screen for a constant, to be confirmed by
``deformation.py`` itself.
Prints the summary per file and set (coverage of the 95 % radius, good, good with a true error
above 5 mm, poor).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registration.align import deformation_error  # noqa: E402
from registration.align.local_fits import LocalFit  # noqa: E402
from registration.align.uncertainty import CALIBRATION, GOOD_TRE_MM, POOR_TRE_MM, RADIUS_95_PER_RMS  # noqa: E402

BAD_MM = 5.0


def fits_of(run: dict) -> list:
    """The run's local fits (RESULT ``uncertainty.deformation.local_fits``) as LocalFit objects."""
    return [LocalFit(np.asarray(f["center_ct"], float), np.asarray(f["offset_mm"], float), f["lc2_before"],
                     f["lc2_after"], f["frames"], f["depth"], f.get("noise_mm")) for f in run.get("local_fits") or []]


def pose_term_mm(target: dict, calibration: float) -> float:
    """The pose term of a target row (mm): ``calibration`` x the larger of its Hessian and
    multi-start estimates (0 when the row does not record them)."""
    raw = [v for v in (target.get("hessian_mm"), target.get("multistart_mm")) if v is not None]
    return calibration * max(raw) if raw else 0.0


def replay_run(run: dict, constants: dict, pose_calibration: Optional[float] = None,
               local_floor_mm: float = 0.0) -> list:
    """[(true_mm, radius95_mm or None, verdict)] per target of one run under ``constants``
    ({module constant of deformation_error: value}) and, if given, the pose term's factor
    ``pose_calibration``; ``local_floor_mm``: a prior added in quadrature to the term's local part."""
    fits = fits_of(run)
    if not fits and pose_calibration is None and not local_floor_mm:
        return [(t["true_mm"], t["radius95_mm"], t["verdict"]) for t in run["targets"]]
    saved = {k: getattr(deformation_error, k) for k in constants}
    try:
        # patched for the whole run: the near-probe prior is read when each target's error is built
        for k, v in constants.items():
            setattr(deformation_error, k, v)
        return _replay_targets(run, fits, pose_calibration, local_floor_mm)
    finally:
        for k, v in saved.items():
            setattr(deformation_error, k, v)


def _replay_targets(run: dict, fits: list, pose_calibration: Optional[float], local_floor_mm: float) -> list:
    """:func:`replay_run` with the constants in place."""
    term = deformation_error.from_fits(fits) if fits else None
    if term is not None:
        # the near-probe prior applies as far as the probe pressed (runs made before the
        # indentation was recorded: None, the prior in full)
        term.indentation_mm = (run.get("deformation") or {}).get("probe_indentation_mm")
        if local_floor_mm:
            term.local_mm = math.hypot(term.local_mm, local_floor_mm)
    out = []
    for t in run["targets"]:
        pred = t["predicted_mm"]
        if pred is None:
            out.append((t["true_mm"], None, t["verdict"]))
            continue
        new_def = (t.get("deformation_mm") or 0.0) if term is None else \
            term.error_mm(t.get("product_distance_mm") or 0.0, t.get("depth_below_probe_mm"))
        rest = max(0.0, pred ** 2 - (t.get("deformation_mm") or 0.0) ** 2)
        if pose_calibration is not None:
            rest = max(0.0, rest - pose_term_mm(t, CALIBRATION["lc2"]) ** 2) + pose_term_mm(t, pose_calibration) ** 2
        tre = math.sqrt(rest + new_def ** 2)
        verdict = t["verdict"]
        if verdict in ("good", "check") and tre > POOR_TRE_MM:
            verdict = "poor"
        elif verdict == "good" and tre > GOOD_TRE_MM:
            verdict = "check"
        out.append((t["true_mm"], RADIUS_95_PER_RMS * tre, verdict))
    return out


def summary(rows: list) -> str:
    est = [r for r in rows if r[1] is not None]
    cov = np.mean([r[0] <= r[1] for r in est]) if est else float("nan")
    return (f"covered {cov:.2f}, good {sum(r[2] == 'good' for r in rows)}, good & > {BAD_MM:.0f} mm "
            f"{sum(r[2] == 'good' and r[0] > BAD_MM for r in rows)}, poor {sum(r[2] == 'poor' for r in rows)} "
            f"({len(rows)} targets)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="deformation.py --json outputs")
    ap.add_argument("--growth-prior", type=float, default=deformation_error.GROWTH_PRIOR)
    ap.add_argument("--growth-per-local", type=float, default=deformation_error.GROWTH_PER_LOCAL)
    ap.add_argument("--local-factor", type=float, default=deformation_error.LOCAL_FACTOR)
    ap.add_argument("--near-probe-mm", type=float, default=deformation_error.NEAR_PROBE_MM)
    ap.add_argument("--near-probe-radius", type=float, default=deformation_error.NEAR_PROBE_RADIUS_MM)
    ap.add_argument("--local-floor", type=float, default=0.0,
                    help="a deformation prior (mm) added in quadrature to the term's local part")
    ap.add_argument("--pose-calibration", type=float, default=None,
                    help="factor of the pose term (uncertainty.CALIBRATION['lc2']; default: unchanged)")
    args = ap.parse_args(argv)
    constants = {"GROWTH_PRIOR": args.growth_prior, "GROWTH_PER_LOCAL": args.growth_per_local,
                 "LOCAL_FACTOR": args.local_factor, "NEAR_PROBE_MM": args.near_probe_mm,
                 "NEAR_PROBE_RADIUS_MM": args.near_probe_radius}
    print("constants:", constants, "pose calibration:", args.pose_calibration or "unchanged",
          "local floor (mm):", args.local_floor)
    for path in args.runs:
        doc = json.loads(Path(path).read_text())
        for name, runs in doc["sets"].items():
            rows = [r for run in runs for r in replay_run(run, constants, args.pose_calibration, args.local_floor)]
            print(f"{path} {name}: {summary(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
