"""Honest registration error under organ deformation (issue 19): what ``ctus register`` claims
at each target of a deformed sweep against the true error.

    .venv/bin/python benchmarks/deformation.py [--case DIR] [--runs 3] [--seed 0] [--starts 4]
                                               [--sweeps NAME,...] [--no-baseline] [--focus-shadows drop|keep]
                                               [--json OUT.json] [--markdown OUT.md]

The case (default: the cached demo case; any folder with the same truth.json works, e.g.
deformed sweeps simulated from a real CT) holds sweeps of a liver deformed between the CT
and the scan (``truth.ultrasound.deformed_sweeps``, see sample_data/sweeps/deformed_sweeps.py).
Per deformed sweep and run: a random start (|t| uniform 5-20 mm, angle 0-10 deg about a random
axis through the liver centroid, seeded) applied to the true (rigid-part) reference_to_ct;
the registration runs on it as ``ctus register --init --targets`` does (engine calls in this
process, RESULT.json document from ``result_document``). Then the focused refinement
(``ctus register --focus``, :func:`registration.align.focus.refine_near_target`) on the sweep's
lesion (a lesion sweep's target; for a survey the lesion it cuts in most frames): the focus
table compares the whole-sweep and the focused true error there.
Targets: the sweep's truth targets (lesion centroids, vessel branch points, liver points at
increasing distance from the sweep).

Per run and target it prints the true error (sample_data.sweeps.deformation.true_target_error_mm:
where the overlay puts the target vs where the deformed organ really put it, Reference mm),
the predicted registration TRE and its 95 % radius, the verdict (RESULT.json ``targets``),
the distance of the target from the imaged region (its true scan-time position to the union
of the valid frames' fans: the fan mask detected from the frames, placed by the tracked
image_to_reference), and the floor a perfect rigid registration leaves there (truth's
residual of the best rigid fit over the liver). Summary per set: share of targets whose 95 %
radius covers the true error, targets called good with a true error above 5 mm, and the same
by distance band. The rigid baseline runs the static survey sweep of the same case with the
same targets and starts (no deformation: true error = rigid TRE). Measured numbers go to
benchmarks/results/deformation.md (``--markdown``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registration.align.multistart import random_rigid_perturbation  # noqa: E402
from registration.io.sequence_io import load_sweep  # noqa: E402
from registration.spatial.errors import InputError  # noqa: E402
from registration.spatial.fan_mask import detect_fan_mask  # noqa: E402
from registration.spatial.transforms import apply, invert  # noqa: E402
from sample_data.sweeps.deformation import OrganDeformation, organ_deformation, true_target_error_mm  # noqa: E402
from sample_data.sweeps.imaged_region import fan_distance_mm  # noqa: E402

BANDS_MM = ((0.0, 10.0), (10.0, 30.0), (30.0, np.inf))
BAD_MM = 5.0


def load_case(case_dir=None, ct=None) -> dict:
    if case_dir:
        d = Path(case_dir)
    else:
        from sample_data.case.demo_case import ensure_demo_case
        d = Path(ensure_demo_case())
    truth = json.loads((d / "truth.json").read_text())
    us = truth["ultrasound"]
    if not us.get("deformed_sweeps"):
        raise SystemExit(f"{d}: truth.json has no deformed sweeps; generate the case without --no-deformed")
    files = truth.get("files", {}).get("ct", {})
    ct_path = Path(ct) if ct else d / (files.get("portal") or next(iter(files.values()), "ct_portal.nrrd"))
    field = organ_deformation(truth)
    pts = [t["point_ct"] for t in us["deformed_sweeps"][0]["targets"] if t["kind"] in ("lesion", "liver_point")]
    return {"dir": d, "truth": truth, "ct": ct_path, "config": d / us["config"], "field": field,
            "center": _liver_centroid(d, truth, pts)}


def _liver_centroid(d: Path, truth: dict, fallback) -> np.ndarray:
    """Centroid of the liver label (the registration benchmark's rotation centre), else of the targets."""
    labels = truth.get("files", {}).get("labels")
    if labels and (d / labels).exists():
        from registration.io.labelmap_io import load_labels
        names = truth["files"].get("label_names")
        lab = load_labels(d / labels, d / names if names else None)
        if "liver" in lab.names:
            ijk = np.argwhere(lab.mask("liver"))[:, ::-1].astype(float)
            return lab.index_to_lps(ijk.mean(axis=0))
    return np.mean(np.asarray(fallback, float), axis=0)


def sweep_fan(case: dict, entry: dict):
    """(image_to_reference [n_valid, 4, 4], fan mask) of a sweep, from its file."""
    sw = load_sweep(case["dir"] / entry["file"], calibration=case["config"])
    mats, valid = sw.image_to_reference_all()
    mask = sw.fan_mask if sw.fan_mask is not None else detect_fan_mask(sw.frames)
    return mats[valid], mask


def focus_target(entry: dict, targets: list) -> Optional[str]:
    """The lesion a focused refinement is about: a lesion sweep's target, else the lesion the
    sweep cuts in most frames (None if none)."""
    names = {t["name"] for t in targets}
    if entry.get("target") in names:
        return entry["target"]
    cut = {k: len(v) for k, v in (entry.get("lesions_cut") or {}).items() if k in names}
    return max(cut, key=cut.get) if cut else None


def register(case: dict, entry: dict, targets: list, init: np.ndarray, seed: int, starts: int,
             focus: Optional[str] = None, focus_shadows: str = "drop") -> dict:
    """What ``ctus register --init --targets`` writes (RESULT.json document), and with ``focus`` also
    the focused RESULT (``ctus register --focus``) as ``["focused"]``; or {'error': ...}."""
    from registration.align.focus import refine_near_target
    from registration.align.intensity_registration import register_sweep
    from registration.align.result_document import result_document
    from registration.io.ct_io import load_ct
    if "ct_volume" not in case:
        case["ct_volume"] = load_ct(case["ct"])
    tg = {t["name"]: {"point": t["point_ct"], "radius_mm": t.get("radius_mm")} for t in targets}
    try:
        sweep = load_sweep(case["dir"] / entry["file"], calibration=case["config"])
        res = register_sweep(case["ct_volume"], sweep, init, seed=seed, n_starts=starts, targets=tg)
        kw = dict(ct_path=case["ct"], sweep_path=case["dir"] / entry["file"], calibration_path=case["config"],
                  init_source="init", init_file=None, targets=tg)
        doc = result_document(res, **kw)
    except Exception as exc:  # a failed run is a result, not a crash of the benchmark
        return {"error": f"{exc.__class__.__name__}: {exc}"}
    if focus is not None:
        try:
            f = refine_near_target(case["ct_volume"], sweep, res, focus, tg[focus]["point"], seed=seed,
                                   radius_target_mm=tg[focus]["radius_mm"], targets=tg, shadows=focus_shadows)
            doc["focused"] = result_document(f, **kw)
        except InputError as exc:   # the focus refused (ctus register --focus exits 2): the whole sweep stands
            doc["focus_refused"] = {"lesion": focus, "why": str(exc)}
    return doc


def measure(case: dict, entry: dict, targets: list, result: dict, fan) -> list:
    """Per-target rows: truth vs what RESULT.json claims."""
    field = case["field"] if entry.get("deformed") else OrganDeformation.zero()
    true_m = np.asarray(entry["reference_to_ct"], float)
    pts = np.array([t["point_ct"] for t in targets], float)
    scan_ref = apply(invert(true_m), field.deformed(pts))       # where the targets really are (Reference)
    dist = fan_distance_mm(scan_ref, fan[0], fan[1])
    reg = np.asarray(result["reference_to_ct"], float)
    err = true_target_error_mm(case["truth"], entry["file"], reg, pts, field=field)
    claimed = {t["name"]: t for t in result.get("targets", [])}
    rows = []
    for t, e, dd in zip(targets, err, dist):
        c = claimed.get(t["name"], {})
        r95 = c.get("tre_registration_95_mm")
        rows.append({"name": t["name"], "kind": t["kind"], "true_mm": float(e), "distance_mm": float(dd),
                     "predicted_mm": c.get("tre_registration_mm"), "radius95_mm": r95,
                     "covered": None if r95 is None else bool(e <= r95), "verdict": c.get("verdict"),
                     "product_distance_mm": c.get("distance_to_sweep_mm"), "extrapolated": c.get("extrapolated"),
                     "deformation_mm": c.get("tre_deformation_mm"), "hessian_mm": c.get("tre_hessian_mm"),
                     "multistart_mm": c.get("tre_multistart_mm"), "agreeing": c.get("starts_agreeing"),
                     "depth_below_probe_mm": c.get("depth_below_probe_mm"),
                     "rigid_floor_mm": t.get("rigid_residual_mm") if entry.get("deformed") else 0.0})
    return rows


def summarise(rows: list) -> dict:
    """Coverage, good-but-wrong counts and error levels over target rows (all, and per distance band)."""
    def block(rs):
        est = [r for r in rs if r["covered"] is not None]
        true = np.array([r["true_mm"] for r in rs]) if rs else np.zeros(0)
        return {"targets": len(rs), "with_estimate": len(est),
                "coverage_95": float(np.mean([r["covered"] for r in est])) if est else None,
                "good": sum(r["verdict"] == "good" for r in rs),
                "good_true_over_5mm": sum(r["verdict"] == "good" and r["true_mm"] > BAD_MM for r in rs),
                "extrapolated": sum(bool(r.get("extrapolated")) for r in rs),
                "check": sum(r["verdict"] == "check" for r in rs), "poor": sum(r["verdict"] == "poor" for r in rs),
                "mean_true_mm": float(true.mean()) if len(true) else None,
                "median_true_mm": float(np.median(true)) if len(true) else None,
                "max_true_mm": float(true.max()) if len(true) else None}
    out = block(rows)
    out["bands"] = {f"{lo:.0f}-{hi:.0f} mm" if np.isfinite(hi) else f">{lo:.0f} mm":
                    block([r for r in rows if lo <= r["distance_mm"] < hi]) for lo, hi in BANDS_MM}
    return out


def _fmt(v, spec="5.2f"):
    return "  -  " if v is None else format(v, spec)


def focus_row(case: dict, entry: dict, res: dict, rows: list, name: str) -> dict:
    """Whole-sweep vs focused true error (and claims) at the focus lesion ``name``."""
    foc = res["focused"]
    field = case["field"] if entry.get("deformed") else OrganDeformation.zero()
    row = next(r for r in rows if r["name"] == name)
    claim = next((t for t in foc.get("targets", []) if t["name"] == name), {})
    true_f = float(true_target_error_mm(case["truth"], entry["file"], np.asarray(foc["reference_to_ct"], float),
                                        np.asarray(claim.get("point_ct"), float), field=field))
    return {"lesion": name, "global_true_mm": row["true_mm"], "global_pred_mm": row["predicted_mm"],
            "global_verdict": row["verdict"], "focused_true_mm": true_f,
            "focused_pred_mm": claim.get("tre_registration_mm"), "focused_r95_mm": claim.get("tre_registration_95_mm"),
            "focused_verdict": claim.get("verdict"), "frames": len((foc.get("focus") or {}).get("frames", [])),
            "time_s": foc.get("wall_time_s")}


def run_set(case, label, entries, targets_of, runs, seed, starts, log, focus: bool = False,
            focus_shadows: str = "drop") -> list:
    out = []
    for si, entry in enumerate(entries):
        targets = targets_of(entry)
        fan = sweep_fan(case, entry)
        true_m = np.asarray(entry["reference_to_ct"], float)
        for r in range(runs):
            rng = np.random.default_rng([seed, si, r])
            init = random_rigid_perturbation(rng, (5.0, 20.0), (0.0, 10.0), center=case["center"]) @ true_m
            t0 = time.perf_counter()
            res = register(case, entry, targets, init, seed=r, starts=starts,
                           focus=focus_target(entry, targets) if focus else None, focus_shadows=focus_shadows)
            if "error" in res:
                log(f"{label} {entry['file']} run {r}: FAILED {res['error']}")
                out.append({"set": label, "sweep": entry["file"], "run": r, "error": res["error"], "targets": []})
                continue
            rows = measure(case, entry, targets, res, fan)
            out.append({"set": label, "sweep": entry["file"], "run": r, "verdict": res.get("verdict"),
                        "time_s": time.perf_counter() - t0, "targets": rows,
                        "register_s": res.get("wall_time_s"), "timings_s": res.get("timings_s"),
                        "init": init.tolist(), "reference_to_ct": res.get("reference_to_ct"),
                        "focused_reference_to_ct": (res.get("focused") or {}).get("reference_to_ct"),
                        "deformation": {k: v for k, v in ((res.get("uncertainty") or {}).get("deformation")
                                                          or {}).items() if k != "local_fits"},
                        "local_fits": ((res.get("uncertainty") or {}).get("deformation") or {}).get("local_fits"),
                        "capture": (res.get("uncertainty") or {}).get("capture"),
                        "resolution_floor_mm": (res.get("uncertainty") or {}).get("resolution_floor_mm")})
            if "focus_refused" in res:
                out[-1]["focus_refused"] = res["focus_refused"]
                log(f"  focus {res['focus_refused']['lesion']}: refused ({res['focus_refused']['why']})")
            if "focused" in res:
                out[-1]["focus"] = f = focus_row(case, entry, res, rows, res["focused"]["focus"]["name"])
                log(f"  focus {f['lesion']}: whole-sweep true {f['global_true_mm']:.2f} mm -> focused "
                    f"{f['focused_true_mm']:.2f} mm (claimed {_fmt(f['focused_pred_mm'])}, {f['focused_verdict']}, "
                    f"{f['frames']} frames, {f['time_s']:.1f} s)")
            s = summarise(rows)
            log(f"\n{label} {entry['file']} run {r}: overall verdict {res.get('verdict')}, "
                f"{time.perf_counter() - t0:.0f} s; mean true {s['mean_true_mm']:.2f} mm, covered "
                f"{_fmt(s['coverage_95'], '.2f')}, good {s['good']}/{s['targets']}, good & > 5 mm "
                f"{s['good_true_over_5mm']}")
            log("  target                      kind          true   pred   r95  verdict  dist  floor")
            for t in rows:
                log(f"  {t['name']:27s} {t['kind']:13s} {t['true_mm']:5.2f}  {_fmt(t['predicted_mm'])}  "
                    f"{_fmt(t['radius95_mm'])}  {str(t['verdict']):6s} {t['distance_mm']:5.1f}  "
                    f"{_fmt(t['rigid_floor_mm'])}{'' if t['covered'] in (None, True) else '  NOT COVERED'}")
    return out


def report(sets: dict, log) -> dict:
    summaries = {}
    log("\nset        targets  covered95  good  good&>5mm  check  poor  mean/median/max true (mm)")
    for label, runs in sets.items():
        rows = [t for r in runs for t in r["targets"]]
        if not rows:
            continue
        s = summaries[label] = summarise(rows)
        for name, b in [("all", s)] + list(s["bands"].items()):
            if not b["targets"]:
                continue
            log(f"{label:9s} {name:>9s} {b['targets']:4d}   {_fmt(b['coverage_95'], '5.2f')}    {b['good']:4d}  "
                f"{b['good_true_over_5mm']:6d}    {b['check']:4d}  {b['poor']:4d}  {b['mean_true_mm']:.2f} / "
                f"{b['median_true_mm']:.2f} / {b['max_true_mm']:.2f}")
    return summaries


def markdown(path: Path, case: dict, args, sets: dict, summaries: dict, seconds: float) -> None:
    lines = ["# Registration error under organ deformation (benchmarks/deformation.py)", "",
             f"Run: `benchmarks/deformation.py --runs {args.runs} --seed {args.seed} --starts {args.starts}` on "
             f"`{case['dir'].name}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds:.0f} s, load "
             f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus). Organ field: "
             + json.dumps({k: v for k, v in case["truth"]["ultrasound"]["deformation"]["organ_field"].items()
                           if k.endswith("_mm") or k == "min_jacobian"}) + "; best rigid fit over the liver leaves "
             + json.dumps(case["truth"]["ultrasound"]["deformation"]["rigid_residual_liver_mm"]) + " mm.", "",
             "## Summary (all runs, all targets)", "",
             "| set | distance band | targets | 95 % radius covers | good | good & true > 5 mm | check | poor "
             "| extrapolated | true error mean / median / max (mm) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, s in summaries.items():
        for name, b in [("all", s)] + list(s["bands"].items()):
            if b["targets"]:
                lines.append(f"| {label} | {name} | {b['targets']} | {_fmt(b['coverage_95'], '.2f')} | {b['good']} | "
                             f"{b['good_true_over_5mm']} | {b['check']} | {b['poor']} | {b['extrapolated']} | "
                             f"{b['mean_true_mm']:.2f} / {b['median_true_mm']:.2f} / {b['max_true_mm']:.2f} |")
    lines += _focus_and_cost_tables(sets)
    lines += ["", "## Per run and target", "",
              "true: true error (Reference mm); pred / r95: RESULT.json tre_registration_mm and its 95 % radius; "
              "dist: distance of the target's true position from the imaged region (mm); floor: residual of the "
              "best rigid fit over the liver (what a perfect rigid registration leaves).", ""]
    for label, runs in sets.items():
        for r in runs:
            lines.append(f"### {label}: {r['sweep']}, run {r['run']}, overall verdict {r.get('verdict')}")
            if "error" in r:
                lines += ["", f"failed: {r['error']}", ""]
                continue
            lines += ["", "| target | kind | true | pred | r95 | covered | verdict | extrapolated | dist | floor |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for t in r["targets"]:
                lines.append(f"| {t['name']} | {t['kind']} | {t['true_mm']:.2f} | {_fmt(t['predicted_mm'], '.2f')} | "
                             f"{_fmt(t['radius95_mm'], '.2f')} | {t['covered']} | {t['verdict']} | "
                             f"{t.get('extrapolated')} | {t['distance_mm']:.1f} | {_fmt(t['rigid_floor_mm'], '.2f')} |")
            lines.append("")
    path.write_text("\n".join(lines) + "\n")


def _focus_and_cost_tables(sets: dict) -> list:
    """Markdown: whole-sweep vs focused error per lesion and run; the deformation estimate and its cost."""
    lines = ["", "## Focused refinement at the sweep's lesion (`ctus register --focus`)", "",
             "| sweep | run | lesion | whole-sweep true / claimed / verdict | focused true / claimed / r95 / verdict "
             "| frames | time (s) |", "|---|---|---|---|---|---|---|"]
    for r in (r for runs in sets.values() for r in runs if r.get("focus")):
        f = r["focus"]
        lines.append(f"| {r['sweep']} | {r['run']} | {f['lesion']} | {f['global_true_mm']:.2f} / "
                     f"{_fmt(f['global_pred_mm'], '.2f')} / {f['global_verdict']} | {f['focused_true_mm']:.2f} / "
                     f"{_fmt(f['focused_pred_mm'], '.2f')} / {_fmt(f['focused_r95_mm'], '.2f')} / "
                     f"{f['focused_verdict']} | {f['frames']} | {_fmt(f['time_s'], '.1f')} |")
    for r in (r for runs in sets.values() for r in runs if r.get("focus_refused")):
        lines.append(f"| {r['sweep']} | {r['run']} | {r['focus_refused']['lesion']} | - | refused: "
                     f"{r['focus_refused']['why']} | - | - |")
    lines += ["", "## Residual-deformation estimate per run", "",
              "| set | sweep | run | local (mm) | growth (mm/mm) | RMS local-fit shift (mm) | its time (s) "
              "| registration (s) |", "|---|---|---|---|---|---|---|---|"]
    for label, runs in sets.items():
        for r in runs:
            d = r.get("deformation") or {}
            lines.append(f"| {label} | {r['sweep']} | {r['run']} | {_fmt(d.get('local_mm'), '.2f')} | "
                         f"{_fmt(d.get('growth_mm_per_mm'), '.3f')} | {_fmt(d.get('local_fit_shift_rms_mm'), '.2f')} "
                         f"| {_fmt((r.get('timings_s') or {}).get('deformation'), '.1f')} | "
                         f"{_fmt(r.get('register_s'), '.1f')} |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", help="case folder (default: the cached demo case)")
    ap.add_argument("--ct", help="CT file (default: the case's portal-phase CT from truth.json)")
    ap.add_argument("--runs", type=int, default=3, help="random starts per sweep (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--starts", type=int, default=4, help="ctus register --starts (default 4)")
    ap.add_argument("--sweeps", help="comma-separated deformed sweep files (default: all)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the static survey sweep")
    ap.add_argument("--no-focus", action="store_true", help="skip the focused refinements")
    ap.add_argument("--focus-shadows", choices=["drop", "keep"], default="drop",
                    help="acoustic shadows in the focused refinement (refine_near_target's shadows; default drop)")
    ap.add_argument("--json", help="write every row and the summaries here")
    ap.add_argument("--markdown", help="write the report here (e.g. benchmarks/results/deformation.md)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    case = load_case(args.case, args.ct)
    us = case["truth"]["ultrasound"]
    deformed = [s for s in us["deformed_sweeps"] if not args.sweeps or s["file"] in args.sweeps.split(",")]
    print(f"case {case['dir']}: {len(deformed)} deformed sweep(s); load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cpus", flush=True)

    def log(s):
        print(s, flush=True)
    sets = {"deformed": run_set(case, "deformed", deformed, lambda e: e["targets"], args.runs, args.seed,
                                args.starts, log, focus=not args.no_focus, focus_shadows=args.focus_shadows)}
    survey = next((s for s in us.get("sweeps", []) if s["kind"] == "survey"), None)
    if survey is not None and not args.no_baseline:
        # the deformed survey's targets (same points and starts) on the static survey sweep
        base = next((s for s in us["deformed_sweeps"] if s["kind"] == "survey"), us["deformed_sweeps"][0])
        sets["static"] = run_set(case, "static", [survey], lambda e: base["targets"], args.runs, args.seed,
                                 args.starts, log)
    summaries = report(sets, log)
    seconds = time.perf_counter() - t0
    log(f"total {seconds:.0f} s; load average now {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"sets": sets, "summaries": summaries}, indent=1))
    if args.markdown:
        markdown(Path(args.markdown), case, args, sets, summaries, seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
