"""MRI on the demo case: MR -> sweep (LC2 on the MR's features) and MR -> CT (Mattes MI), against the truth.

    .venv/bin/python benchmarks/mri.py [--trials 20] [--quick] [--seed 1] [--case DIR] [--json OUT.json]
                                       [--skip-us] [--skip-ct] [--no-ct-baseline] [--focus none|liver] [--plan]
                                       [--shadows drop|keep] [--levels "PX,PATCH,FRAMES;..."]

MR -> sweep: per trial a random start about the liver centroid (|t| uniform
5-20 mm, angle 0-10 deg about a random axis, as benchmarks/registration.py)
applied to the true ``reference_to_mr`` (truth.json ``mr``); the static sweeps
in turn. The error is measured per point (lesion centroids incl. the MR-only
lesion, vessel landmarks): ``|reference_to_mr @ inv(reference_to_ct) @ p_ct -
p_mr|`` with both positions from the truth (the MR-CT mapping is not rigid, so
no rigid result is exact: the truth's rigid fit leaves ~0.1-0.4 mm). Reported
as benchmarks/registration.py does: success (every target within ``NEAR_MM`` =
30 mm of the sweep's imaged region under the truth within 5 mm: farther ones are
extrapolated from a lesion sweep, their error is in each result's own rows; the
rate over every target is printed beside it), median
and p90 TRE (RMS over the targets), median time, verdicts, "good" verdicts
that succeeded, and the fraction of targets inside the predicted 95 % radius.
The CT with the same starts runs beside it as the baseline (ratios in the same
run).

Plan (``--plan``): the CLI chain on the demo, ``ctus align`` -> ``ctus register
--ct`` and ``ctus register --mr --mr-to-ct`` (the survey sweep, both from the
same 8 mm / 7 deg start) -> ``ctus plan --mr ... --mr-lesions`` (a click at the
MR-only lesion's true MR centroid) with each registration: the MR-only lesion's
CT position error, size, MR -> CT error, the TRE the plan uses, the total
error and the hit probability.

Head (``--head N``): N starts 5-9 mm / 0-5 deg of MR -> a 3D US volume on the synthetic head
(sample_data.phantom.brain_us, not liver; :func:`run_head`).

MR -> CT: ``register_mr_to_ct`` from the header start with the CT's liver label
as focus, and without labels (body focus), with TRE at each lesion and the
MR-only lesion and the estimated error next to it. Dated results:
benchmarks/results/mri.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registration.align.intensity_registration import register_sweep  # noqa: E402
from registration.align.mr_us import register_mr_sweep  # noqa: E402
from registration.align.multistart import random_rigid_perturbation  # noqa: E402
from registration.io.ct_io import load_ct  # noqa: E402
from registration.io.labelmap_io import load_labels  # noqa: E402
from registration.io.mr_io import load_mr  # noqa: E402
from registration.io.sequence_io import load_sweep  # noqa: E402
from registration.spatial.transforms import apply, invert  # noqa: E402


def load_case(case_dir=None):
    if case_dir:
        d = Path(case_dir)
    else:
        from sample_data.case.demo_case import ensure_demo_case
        d = ensure_demo_case()
    truth = json.loads((d / "truth.json").read_text())
    if "mr" not in truth:
        raise SystemExit(f"{d}: the case has no MR (made with --no-mr or by an older generator)")
    ct = load_ct(d / "ct_portal.nrrd")
    labels = load_labels(d / "labels.nrrd", d / "label_names.json", reference=ct)
    mr = load_mr(d / truth["mr"]["files"]["nifti"])
    cfg = d / truth["ultrasound"]["config"]
    sweeps = [(s["file"], load_sweep(d / s["file"], calibration=cfg)) for s in truth["ultrasound"]["sweeps"]]
    return d, truth, ct, labels, mr, sweeps


def point_truth(truth):
    """{name: (p_ct, p_mr, radius_mm or None)} for lesions (incl. the MR-only one) and landmarks."""
    mr = truth["mr"]
    pts = {les["name"]: (les["centroid_ct"], les["centroid_mr"], les["diameter_mm"] / 2) for les in mr["lesions"]}
    only = mr["mr_only_lesion"]
    pts[only["name"]] = (only["centroid_ct"], only["centroid_mr"], only["diameter_mm"] / 2)
    for name, p in truth["landmarks"].items():
        pts[name] = (p, mr["landmarks_mr"][name], None)
    return {k: (np.asarray(a, float), np.asarray(b, float), r) for k, (a, b, r) in pts.items()}


#: Targets this close to the sweep's imaged region (mm) judge a trial's success (farther ones are extrapolated).
NEAR_MM = 30.0


def _row(res, ref_pts, fixed_pts, names, e0, label, k, sweep_name, t_s, near):
    e = np.linalg.norm(apply(res.reference_to_ct, ref_pts) - fixed_pts, axis=1)
    near = np.asarray(near, bool) if np.any(near) else np.ones(len(e), bool)
    u = res.uncertainty
    covered = []
    for n, err in zip(names, e):
        r = u.target(n)
        covered.append(r is not None and r.tre_registration_95_mm is not None and err <= r.tre_registration_95_mm)
    return {"set": label, "trial": k, "sweep": sweep_name, "init_tre_rms_mm": float(np.sqrt(np.mean(e0 ** 2))),
            "tre_rms_mm": float(np.sqrt(np.mean(e ** 2))), "tre_max_mm": float(e.max()),
            "success": bool(e[near].max() < 5.0), "success_all": bool(e.max() < 5.0),
            "tre_near_max_mm": float(e[near].max()), "n_near": int(near.sum()), "time_s": t_s,
            "verdict": u.verdict, "covered": float(np.mean(covered)),
            "metric": [res.metric_initial, res.metric_final],
            "per_target_true_mm": dict(zip(names, map(float, e))),
            "per_target_est95_mm": {n: (None if u.target(n) is None else u.target(n).tre_registration_95_mm)
                                    for n in names}}


def run_us(ct, mr, sweeps, truth, n_trials, seed, log, with_ct=True, focus="none", shadows="drop", levels=None):
    pts = point_truth(truth)
    names = list(pts)
    p_ct = np.array([pts[n][0] for n in names])
    p_mr = np.array([pts[n][1] for n in names])
    ref_to_ct = np.asarray(truth["reference_to_ct"], float)
    ref_to_mr = np.asarray(truth["mr"]["reference_to_mr"], float)
    ref_pts = apply(invert(ref_to_ct), p_ct)
    centre_mr = np.asarray(truth["mr"]["lesions"][0]["centroid_mr"], float) * 0 + p_mr.mean(axis=0)
    centre_ct = p_ct.mean(axis=0)
    mr_targets = {n: {"point": pts[n][1].tolist(), "radius_mm": pts[n][2]} for n in names}
    ct_targets = {n: {"point": pts[n][0].tolist(), "radius_mm": pts[n][2]} for n in names}
    rng = np.random.default_rng(seed)
    rows = []
    from registration.align.imaged_region import ImagedRegion
    near_of = {name: ImagedRegion.of_sweep(sw).distance_mm(p_mr, ref_to_mr) <= NEAR_MM for name, sw in sweeps}
    for k in range(n_trials):
        sweep_name, sweep = sweeps[k % len(sweeps)]
        near = near_of[sweep_name]
        pert = random_rigid_perturbation(rng, (5.0, 20.0), (0.0, 10.0), center=centre_mr)
        init = pert @ ref_to_mr
        e0 = np.linalg.norm(apply(init, ref_pts) - p_mr, axis=1)
        t0 = time.perf_counter()
        extra = {} if levels is None else {"levels": levels}
        res = register_mr_sweep(mr, sweep, init, targets=mr_targets, seed=k, focus=focus, shadows=shadows, **extra)
        rows.append(_row(res, ref_pts, p_mr, names, e0, "mr", k, sweep_name, time.perf_counter() - t0, near))
        r = rows[-1]
        log(f"mr {k:2d} {sweep_name:24s} init {r['init_tre_rms_mm']:5.1f} -> TRE {r['tre_rms_mm']:5.2f} "
            f"(max {r['tre_max_mm']:5.2f}, near {r['tre_near_max_mm']:5.2f}) mm {r['time_s']:5.1f} s "
            f"{r['verdict']:5s} covered {r['covered']:.2f} "
            f"LC2 {r['metric'][0]:.3f}->{r['metric'][1]:.3f}")
        if with_ct:
            # The same start, carried to the CT: pert about the MR centre is a CT-space perturbation of
            # the same size about the corresponding CT point.
            rigid = np.asarray(truth["mr"]["mr_to_ct_rigid_liver"], float)
            init_ct = rigid @ init
            e0c = np.linalg.norm(apply(init_ct, ref_pts) - p_ct, axis=1)
            t0 = time.perf_counter()
            res = register_sweep(ct, sweep, init_ct, targets=ct_targets, seed=k)
            rows.append(_row(res, ref_pts, p_ct, names, e0c, "ct", k, sweep_name, time.perf_counter() - t0, near))
            r = rows[-1]
            log(f"ct {k:2d} {sweep_name:24s} init {r['init_tre_rms_mm']:5.1f} -> TRE {r['tre_rms_mm']:5.2f} "
                f"(max {r['tre_max_mm']:5.2f}) mm {r['time_s']:5.1f} s {r['verdict']:5s} covered {r['covered']:.2f}")
    del centre_ct
    return rows


def summarise(rows, label):
    r = [x for x in rows if x["set"] == label]
    if not r:
        return None
    tre = np.array([x["tre_rms_mm"] for x in r])
    good = [x["success"] and x["tre_near_max_mm"] <= 3.0 for x in r if x["verdict"] == "good"]
    return {"set": label, "trials": len(r), "success_rate": float(np.mean([x["success"] for x in r])),
            "success_all_rate": float(np.mean([x["success_all"] for x in r])),
            "median_tre_mm": float(np.median(tre)), "p90_tre_mm": float(np.percentile(tre, 90)),
            "median_time_s": float(np.median([x["time_s"] for x in r])),
            "verdicts": {v: sum(1 for x in r if x["verdict"] == v) for v in ("good", "check", "poor")},
            "good_verdicts_within_3mm": float(np.mean(good)) if good else None,
            "coverage_95": float(np.mean([x["covered"] for x in r]))}


def run_head(n_trials, seed, log, levels=None) -> dict:
    """MR -> a 3D US volume on the synthetic head (sample_data.phantom.brain_us; not liver, the form of
    public MR/iUS datasets such as RESECT): ``n_trials`` starts 5-9 mm / 0-5 deg about the landmarks
    in the cone (the hidden real pair's start range), each the CLI's path (the volume's slices as a
    sweep). Success: every landmark within 2 mm (the real-data target). Synthetic and made from the
    MR: an optimistic check that nothing in the pipeline is liver-specific, not an accuracy figure."""
    from registration.io.us_volume import sweep_from_volume
    from sample_data.phantom.brain_us import brain_pair
    mr, us, reference_to_mr, marks = brain_pair()
    inside = {}
    for name, (p_ref, p_mr) in marks.items():
        ijk = np.rint(us.lps_to_index(p_ref)).astype(int)
        if np.all(ijk >= 0) and np.all(ijk < us.array.shape[::-1]) and us.array[ijk[2], ijk[1], ijk[0]] > 0:
            inside[name] = (p_ref, p_mr)
    names = list(inside)
    p_ref = np.array([inside[n][0] for n in names])
    p_mr = np.array([inside[n][1] for n in names])
    targets = {n: {"point": inside[n][1].tolist(), "radius_mm": 5.0} for n in names}
    sweep = sweep_from_volume(us)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_trials):
        init = random_rigid_perturbation(rng, (5.0, 9.0), (0.0, 5.0), center=p_mr.mean(0)) @ reference_to_mr
        e0 = np.linalg.norm(apply(init, p_ref) - p_mr, axis=1)
        t0 = time.perf_counter()
        extra = {} if levels is None else {"levels": levels}
        res = register_mr_sweep(mr, sweep, init, targets=targets, seed=k, **extra)
        t = time.perf_counter() - t0
        e = np.linalg.norm(apply(res.reference_to_ct, p_ref) - p_mr, axis=1)
        u = res.uncertainty
        covered = float(np.mean([err <= u.target(n).tre_registration_95_mm for n, err in zip(names, e)]))
        rows.append({"trial": k, "init_median_mm": float(np.median(e0)), "tre_median_mm": float(np.median(e)),
                     "tre_max_mm": float(e.max()), "success": bool(e.max() <= 2.0), "time_s": t,
                     "verdict": u.verdict, "covered": covered})
        log(f"head {k:2d} init {np.median(e0):4.1f} -> median {np.median(e):5.2f} max {e.max():5.2f} mm "
            f"{t:5.1f} s {u.verdict:5s} covered {covered:.2f}")
    summary = {"trials": len(rows), "success_rate": float(np.mean([r["success"] for r in rows])),
               "median_tre_mm": float(np.median([r["tre_median_mm"] for r in rows])),
               "median_time_s": float(np.median([r["time_s"] for r in rows])),
               "verdicts": {v: sum(r["verdict"] == v for r in rows) for v in ("good", "check", "poor")},
               "good_over_3mm": sum(r["verdict"] == "good" and r["tre_max_mm"] > 3.0 for r in rows),
               "coverage_95": float(np.mean([r["covered"] for r in rows]))}
    log(f"head: {summary['trials']} trials, success (every landmark <= 2 mm) {100 * summary['success_rate']:.0f} %, "
        f"median TRE {summary['median_tre_mm']:.2f} mm, median time {summary['median_time_s']:.1f} s, verdicts "
        f"{summary['verdicts']}, good > 3 mm {summary['good_over_3mm']}, cover95 {summary['coverage_95']:.2f}")
    return {"rows": rows, "summary": summary}


def run_ct(ct, labels, mr, truth, log):
    from registration.align.mr_ct import register_mr_to_ct
    from registration.align.mr_ct_error import assess_mr_ct
    pts = point_truth(truth)
    lesions = {n: v for n, v in pts.items() if n.startswith("lesion")}
    targets = {n: {"point": v[0].tolist(), "radius_mm": v[2]} for n, v in lesions.items()}
    out = []
    for focus, lab in (("liver", labels), ("body", None)):
        t0 = time.perf_counter()
        res = register_mr_to_ct(ct, mr, ct_labels=lab)
        assess_mr_ct(res, targets)
        t = time.perf_counter() - t0
        errs = {n: float(np.linalg.norm(apply(res.mr_to_ct, v[1]) - v[0])) for n, v in lesions.items()}
        est = {row.name: row.tre_mm for row in res.error.targets}
        log(f"mr->ct focus {focus}: {t:.1f} s, verdict {res.error.verdict}; TRE true/est (mm): "
            + ", ".join(f"{n} {errs[n]:.2f}/{est.get(n, float('nan')):.2f}" for n in errs))
        out.append({"focus": focus, "time_s": t, "verdict": res.error.verdict, "true_mm": errs, "est_mm": est,
                    "median_true_mm": float(np.median(list(errs.values()))),
                    "max_true_mm": float(np.max(list(errs.values())))})
    return out


def run_plan(d, truth, log) -> dict:
    """The CLI chain of ``--plan`` (module docstring); {registration kind: MR-only lesion row}."""
    import tempfile

    from planner.cli.main import main as ctus
    from registration.spatial.transforms import rigid_matrix
    tmp = Path(tempfile.mkdtemp(prefix="ctus-mri-plan-"))
    mr_truth, only = truth["mr"], truth["mr"]["mr_only_lesion"]
    ct_args = ["--fixed-labels", str(d / "labels.nrrd"), "--label-names", str(d / "label_names.json")]
    t0 = time.perf_counter()
    assert ctus(["align", "--fixed", str(d / "ct_portal.nrrd"), "--moving", str(d / "mr_hbp.nii.gz"), *ct_args,
                 "--out", str(tmp / "mr_to_ct.json")]) == 0
    log(f"plan chain: align {time.perf_counter() - t0:.0f} s")
    start = rigid_matrix([4.0, -3.0, 4.0, 5.0, -4.0, 4.0], center=only["centroid_ct"])
    init_ct = start @ np.asarray(truth["reference_to_ct"])
    init_mr = invert(np.asarray(mr_truth["mr_to_ct_rigid_liver"])) @ init_ct
    (tmp / "init_ct.json").write_text(json.dumps({"reference_to_ct": init_ct.tolist()}))
    (tmp / "init_mr.json").write_text(json.dumps({"reference_to_mr": init_mr.tolist()}))
    (tmp / "seeds.json").write_text(json.dumps({"lesions": [{"name": only["name"], "point": only["centroid_mr"]}]}))
    sweep = ["--sweep", str(d / "sweep_survey.igs.mha"), "--calibration", str(d / truth["ultrasound"]["config"])]
    t0 = time.perf_counter()
    assert ctus(["register", "--ct", str(d / "ct_portal.nrrd"), *sweep, "--init", str(tmp / "init_ct.json"),
                 "--out", str(tmp / "reg_ct.json")]) == 0
    t1 = time.perf_counter()
    assert ctus(["register", "--mr", str(d / "mr_hbp.nii.gz"), *sweep, "--init", str(tmp / "init_mr.json"),
                 "--mr-to-ct", str(tmp / "mr_to_ct.json"), "--out", str(tmp / "reg_mr.json")]) == 0
    log(f"plan chain: register --ct {t1 - t0:.0f} s, --mr {time.perf_counter() - t1:.0f} s")
    p_ref = apply(invert(np.asarray(truth["reference_to_ct"])), only["centroid_ct"])
    out = {}
    for kind in ("ct", "mr"):
        reg = json.loads((tmp / f"reg_{kind}.json").read_text())
        true_err = float(np.linalg.norm(apply(np.asarray(reg["reference_to_ct"]), p_ref) - only["centroid_ct"]))
        assert ctus(["plan", "--ct", str(d / "ct_portal.nrrd"), "--labels", str(d / "labels.nrrd"),
                     "--label-names", str(d / "label_names.json"), "--sweep", str(d / "sweep_survey.igs.mha"),
                     "--registration", str(tmp / f"reg_{kind}.json"), "--mr", str(d / "mr_hbp.nii.gz"),
                     "--mr-to-ct", str(tmp / "mr_to_ct.json"), "--mr-lesions", str(tmp / "seeds.json"),
                     "--lesion", only["name"], "--out", str(tmp / f"plan_{kind}")]) == 0
        plan = json.loads((tmp / f"plan_{kind}" / "plan.json").read_text())
        row = next(r for r in plan["lesions"] if r["name"] == only["name"])
        fusion = row["visibility"].get("fusion") or {}
        pos_err = float(np.linalg.norm(np.asarray(row["centroid_ct"]) - only["centroid_ct"]))
        out[kind] = {"seen_on": row["seen_on"], "diameter_mm": row["diameter_mm"], "ct_position_error_mm": pos_err,
                     "mr_ct_error_est_mm": row["mr"]["mr_ct_error_mm"], "registration_verdict": reg["verdict"],
                     "true_registration_error_at_lesion_mm": true_err, "plan_tre_mm": fusion.get("tre_rms_mm"),
                     "total_error_mm": fusion.get("total_error_mm"), "hit_probability": fusion.get("hit_probability"),
                     "guidance": (row.get("recommendation") or {}).get("guidance")}
        log(f"plan with register --{kind}: " + ", ".join(f"{k} {v}" for k, v in out[kind].items()))
    return out


def parse_levels(text):
    """``"4,5,10;2.5,7,10"`` -> ((4.0, 5, 10), (2.5, 7, 10)); None -> None (the product's levels)."""
    if not text:
        return None
    return tuple((float(a), int(b), int(c)) for a, b, c in (part.split(",") for part in text.split(";")))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="4 trials")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--case", help="a case folder (default: the cached demo case)")
    ap.add_argument("--json", help="write rows and summaries here")
    ap.add_argument("--skip-us", action="store_true")
    ap.add_argument("--skip-ct", action="store_true")
    ap.add_argument("--no-ct-baseline", action="store_true", help="MR -> sweep only (no CT run beside it)")
    ap.add_argument("--focus", choices=["none", "liver"], default="none", help="MR -> sweep focus (docs/mri.md)")
    ap.add_argument("--plan", action="store_true", help="also the CLI chain align -> register -> plan")
    ap.add_argument("--head", type=int, default=0, metavar="N",
                    help="also N trials MR -> 3D US volume on the synthetic head (not liver; run_head)")
    ap.add_argument("--levels", help="MR -> sweep LC2 levels 'pixel_mm,patch_px,frames;...' coarse to fine "
                    "(default: the product's, registration.align.mr_us)")
    ap.add_argument("--volume-levels", help="the same for --head (a 3D volume's slices; default mr_us.VOLUME_LEVELS)")
    ap.add_argument("--shadows", choices=["drop", "keep"], default="drop",
                    help="MR -> sweep: leave acoustic shadows out of LC2 (default) or keep them (as before)")
    args = ap.parse_args(argv)

    def log(s):
        print(s, flush=True)

    d, truth, ct, labels, mr, sweeps = load_case(args.case)
    log(f"case {d}: MR {mr}, {len(sweeps)} sweeps; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    result = {}
    if not args.skip_us:
        rows = run_us(ct, mr, sweeps, truth, 4 if args.quick else args.trials, args.seed, log,
                      with_ct=not args.no_ct_baseline, focus=args.focus, shadows=args.shadows,
                      levels=parse_levels(args.levels))
        sums = [s for s in (summarise(rows, "mr"), summarise(rows, "ct")) if s]
        log("\nset  trials success (all targets)  medianTRE  p90TRE  median_s  good/check/poor  good<=3mm  cover95")
        for s in sums:
            v = s["verdicts"]
            g = "-" if s["good_verdicts_within_3mm"] is None else f"{s['good_verdicts_within_3mm']:.2f}"
            log(f"{s['set']:4s} {s['trials']:6d} {100 * s['success_rate']:6.0f} % "
                f"({100 * s['success_all_rate']:3.0f} %)"
                f"        {s['median_tre_mm']:8.2f}   "
                f"{s['p90_tre_mm']:6.2f}  {s['median_time_s']:7.1f}   {v['good']:4d}/{v['check']}/{v['poor']:<4d}"
                f"    {g:5s}    {s['coverage_95']:.2f}")
        if len(sums) == 2:
            log(f"ratio MR/CT: median TRE {sums[0]['median_tre_mm'] / max(sums[1]['median_tre_mm'], 1e-9):.2f}, "
                f"median time {sums[0]['median_time_s'] / max(sums[1]['median_time_s'], 1e-9):.2f}")
        result.update(rows=rows, summaries=sums)
    if not args.skip_ct:
        result["mr_ct"] = run_ct(ct, labels, mr, truth, log)
    if args.plan:
        result["plan"] = run_plan(d, truth, log)
    if args.head:
        result["head"] = run_head(args.head, args.seed, log, levels=parse_levels(args.volume_levels))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
