"""What the residual-deformation local fits measure, patch by patch, against the truth.

    .venv/bin/python benchmarks/local_fit_truth.py [--case DIR] [--sets static,deformed] [--json OUT.json]
                                                   [--level 1] [--wall-mm 35] [--patch-px 7]

The deformation term of the error model (registration/align/deformation_error.py) is built
from :func:`registration.align.local_fits.local_offsets`: every patch of the sweep (frame
group x depth band) is fitted alone with an in-plane translation from the registered pose, and
its shift is read as the part of the error the rigid pose cannot explain there. This script
checks that reading directly, without a registration: it runs the product's local fits from
the **true** pose of every sweep of a case (the rigid part of the truth), where

* on a static sweep the right shift of every patch is 0: whatever a patch asks for is the
  metric's bias (or noise) at that patch;
* on a deformed sweep the right shift is the in-plane part of ``p* - c``: ``c`` the patch's
  centre (CT mm, scan space under the true pose) and ``p*`` the CT tissue the organ field put
  there (``OrganDeformation.inverse``; probe compression, confined to the first 35 mm that the
  error model's bands leave out, is not in it).

Per set and depth band it prints the RMS of the measured shifts, of the true shifts, of their
difference, the least-squares slope of measured on true (1: the fits follow the field; 0: they
do not see it) and the RMS of the noise each fit measured on its even / odd frames. The same
LC2 level as the product's (the registration's middle level, CT features prepared about the
true pose) and the same frames (acoustic shadows left out with their sides, ``shadows.EDGE_MM``,
as ``register_sweep`` marks them; the ninth session's first table was measured before that margin
existed). Units: mm. Results: benchmarks/results/deformation.md.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from deformation import load_case  # noqa: E402
from registration.align import local_fits  # noqa: E402
from registration.align.intensity_registration import LC2Options  # noqa: E402
from registration.align.lc2_stages import prepare_levels  # noqa: E402
from registration.align.local_fits import in_plane_axes, local_offsets  # noqa: E402
from registration.align.volume_sweep import with_shadows_marked  # noqa: E402
from registration.io.ct_io import load_ct  # noqa: E402
from registration.io.sequence_io import load_sweep  # noqa: E402
from registration.ultrasound.shadows import EDGE_MM as SHADOW_EDGE_MM  # noqa: E402
from sample_data.sweeps.deformation import OrganDeformation  # noqa: E402


def patch_rows(case: dict, entry: dict, ct, deformed: bool, level_index: int = 1) -> list:
    """One row per local fit of ``entry``'s sweep from its true pose: measured and true in-plane
    shift (mm, CT axes), the fit's noise, its depth band."""
    field = case["field"] if deformed else OrganDeformation.zero()
    # as register_sweep prepares it: acoustic shadows left out of the LC2 (shadows="drop"), with their sides
    sweep = with_shadows_marked(load_sweep(case["dir"] / entry["file"], calibration=case["config"]), "drop",
                                edge_mm=SHADOW_EDGE_MM)
    true_m = np.asarray(entry["reference_to_ct"], float)
    costs = prepare_levels(ct, sweep, true_m, LC2Options()).costs
    level = costs[min(level_index, len(costs) - 1)].level
    _, valid = sweep.require_image_to_reference()
    mats = sweep.image_to_reference_all()[0]
    rows = []
    for f in local_offsets(sweep, level, true_m, np.flatnonzero(valid)):
        c = np.asarray(f.center_ct, float)
        p_star = field.inverse(c[None])[0] if deformed else c
        axes = in_plane_axes(true_m @ mats[f.frames[len(f.frames) // 2]])
        true_shift = axes @ (axes.T @ (p_star - c))
        rows.append({"sweep": entry["file"], "depth": f.depth, "measured_mm": [float(v) for v in f.offset_mm],
                     "true_mm": [float(v) for v in true_shift], "noise_mm": f.noise_mm,
                     "measured_lateral_beam_mm": [float(v) for v in axes.T @ f.offset_mm],
                     "true_lateral_beam_mm": [float(v) for v in axes.T @ true_shift],
                     "lc2_before": float(f.lc2_before), "lc2_after": float(f.lc2_after)})
    return rows


def rms(a: np.ndarray) -> float:
    """RMS length (mm) of the vectors ``a`` [n, 3]; nan for none."""
    return float(np.sqrt(np.mean(np.sum(np.square(a), axis=-1)))) if len(a) else float("nan")


def summary(rows: list) -> str:
    """RMS measured / true / difference, slope of measured on true, RMS noise (mm)."""
    if not rows:
        return "no patches"
    m = np.array([r["measured_mm"] for r in rows])
    t = np.array([r["true_mm"] for r in rows])
    noise = np.array([r["noise_mm"] for r in rows if r["noise_mm"] is not None])
    tt = float(np.sum(t * t))
    slope = float(np.sum(m * t)) / tt if tt > 1e-9 else float("nan")
    noise_rms = float(np.sqrt(np.mean(noise ** 2))) if len(noise) else float("nan")
    return (f"{len(rows):3d} patches: measured {rms(m):4.2f}, true {rms(t):4.2f}, measured - true {rms(m - t):4.2f} "
            f"RMS mm; slope {slope:5.2f}; noise {noise_rms:4.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", help="case folder (default: the cached demo case)")
    ap.add_argument("--sets", default="static,deformed", help="static and/or deformed (default both)")
    ap.add_argument("--json", help="write every patch row here")
    ap.add_argument("--level", type=int, default=1,
                    help="LC2 level of the fits (0 coarse .. 2 fine; default 1, the product's)")
    ap.add_argument("--wall-mm", type=float, default=local_fits.WALL_MM, help="local_fits.WALL_MM for this run")
    ap.add_argument("--patch-px", type=int, default=local_fits.PATCH_PX, help="local_fits.PATCH_PX for this run")
    args = ap.parse_args(argv)
    local_fits.WALL_MM, local_fits.PATCH_PX = args.wall_mm, args.patch_px
    t0 = time.perf_counter()
    case = load_case(args.case)
    ct = load_ct(case["ct"])
    us = case["truth"]["ultrasound"]
    out = {}
    for name in args.sets.split(","):
        entries = us["deformed_sweeps"] if name == "deformed" else us["sweeps"]
        rows = [r for e in entries for r in patch_rows(case, e, ct, name == "deformed", args.level)]
        out[name] = rows
        print(f"{name:8s} all   {summary(rows)}", flush=True)
        for depth in sorted({r['depth'] for r in rows}):
            print(f"{name:8s} {depth:5s} {summary([r for r in rows if r['depth'] == depth])}", flush=True)
    print(f"case {case['dir']}; {time.perf_counter() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
