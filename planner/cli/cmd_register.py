"""``ctus register``: register the CT to a tracked sweep (Reference frame).

    ctus register --ct CT --sweep SWEEP [--calibration PLUS_CONFIG.xml]
                  (--init INIT.json | --landmarks PAIRS.json) --out RESULT.json
                  [--method lc2|mi] [--targets T.json]
                  [--labels L [--label-names N] | --lesions SEEDS.json | --lesion NAME=X,Y,Z ...]
                  [--breathing gate|detect|off] [--breath-hold expiration|inspiration]
                  [--focus NAME|X,Y,Z [--focus-radius MM]] [--feature-cache DIR]
                  [--json-progress] [--force]

RESULT.json holds ``reference_to_ct`` (4x4 row-major nested list, Reference mm
-> CT LPS mm), the method, the metric before/after, evaluations, wall time, the
uncertainty (verdict good/check/poor with its reasons) and per-target TRE
estimates and hit probabilities (targets from --targets and/or the lesions of
--labels). With --landmarks the landmark fit (FRE, residuals, leave-one-out,
predicted TRE) is the start and is reported too. With --focus the whole-sweep
result is refined on the part of the sweep within --focus-radius (default 30 mm)
of one target (a target name, or a CT LPS point) and RESULT.json is that focused
result: its ``focus`` field names the target and gives the whole-sweep estimate
there, its one target row the focused error (the planner uses it for that
lesion). Progress goes to stderr
(``--json-progress``: one JSON object per line; stage lines carry the wall-clock
``time`` in seconds since the epoch, so a caller can split the process's time into
start-up, CT load, sweep load and registration). ``--feature-cache DIR`` keeps the
CT's LC2 features there and reuses them when the same CT is registered again over
the same region (:mod:`registration.align.lc2_features`). Bad input exits 2 with one
line and writes nothing.

Without ``--labels``, clicked lesions (``--lesions SEEDS.json``, ``--lesion
NAME=X,Y,Z``, CT LPS mm) are segmented first by the same code as ``ctus
segment`` (automatic anatomy, each lesion grown from its click) and become
targets; stderr and RESULT.json (``anatomy_source``: automatic segmentation,
not reviewed, with the grown lesions) say so.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.transforms import as_matrix

from .register_mr import read_json_input


def add_parser(sub):
    """The ``register`` sub-command and its options."""
    p = sub.add_parser("register", help="register the CT to a tracked ultrasound sweep (LC2 or MI)",
                       description=__doc__)
    fixed = p.add_mutually_exclusive_group(required=True)
    fixed.add_argument("--ct", help="CT: DICOM folder or image file (.nrrd, .nii.gz, .mha)")
    fixed.add_argument("--mr", help="MR instead of a CT (docs/mri.md): DICOM folder or 3D image file; "
                                    "RESULT.json then holds reference_to_mr")
    p.add_argument("--sweep", required=True, help="tracked sweep (.igs.mha, .mha, .mhd, .seq.nrrd)")
    p.add_argument("--calibration", metavar="PLUS_CONFIG.xml", help="PLUS device-set config with ImageToProbe")
    start = p.add_mutually_exclusive_group(required=True)
    start.add_argument("--init", metavar="INIT.json", help='{"reference_to_ct": 4x4 row-major}')
    start.add_argument("--landmarks", metavar="PAIRS.json",
                       help='{"pairs": [{"name", "ct": [x,y,z] LPS, "reference": [x,y,z]}]}')
    p.add_argument("--out", required=True, metavar="RESULT.json", help="result file (written atomically)")
    p.add_argument("--method", choices=["lc2", "mi"], default="lc2", help="similarity (default lc2)")
    p.add_argument("--targets", metavar="T.json",
                   help='{"targets": [{"name", "point": [x,y,z] CT LPS mm, "radius_mm"}]}')
    p.add_argument("--labels", help="label map: its lesion_* labels become targets")
    p.add_argument("--label-names", metavar="N", help="names JSON {name: value} for --labels")
    p.add_argument("--lesions", metavar="SEEDS.json",
                   help="without --labels: clicked lesions, segmented from their clicks, become targets")
    p.add_argument("--lesion", metavar="NAME=X,Y,Z", action="append", default=[],
                   help="without --labels: one clicked lesion (CT LPS mm); repeat for more")
    p.add_argument("--seed", type=int, default=0, help="seed of the multi-start perturbations")
    p.add_argument("--starts", type=int, default=4, help="number of starts (default 4)")
    p.add_argument("--breathing", choices=["detect", "gate", "off"], default="detect",
                   help="LC2: find breathing in the sweep; 'detect' (default) reports it and adds half its "
                        "amplitude to the registration error; 'gate' (experimental) registers again on the "
                        "frames at the CT's breath-hold phase")
    p.add_argument("--shadows", choices=["drop", "keep"], default="drop",
                   help="LC2 on a freehand sweep: leave the acoustic shadows behind ribs and gas out of the "
                        "metric (default drop) or use every fan pixel (keep)")
    p.add_argument("--breath-hold", choices=["expiration", "inspiration"], default="expiration",
                   help="the CT's breath-hold phase (default expiration: liver at its most cranial)")
    p.add_argument("--focus", metavar="NAME|X,Y,Z",
                   help="refine on the region around one target (a --targets / --labels name, or a CT LPS point "
                        "in mm) and report the focused error there: under organ deformation a locally rigid "
                        "fit holds where the whole-sweep one does not")
    p.add_argument("--focus-radius", type=float, default=None, metavar="MM",
                   help="radius of the focused region (mm, default 30)")
    p.add_argument("--mr-series", metavar="UID", help="with --mr: the series of a DICOM folder to use")
    p.add_argument("--mr-to-ct", metavar="MR_TO_CT.json", help="with --mr: 'ctus align' result; adds reference_to_ct")
    p.add_argument("--n4", action="store_true", help="with --mr: N4 bias-field correction first")
    p.add_argument("--mr-focus", choices=["none", "liver"], default="none",
                   help="with --mr: 'liver' explains the US by the liver's features only (hepatobiliary phase)")
    p.add_argument("--feature-cache", metavar="DIR",
                   help="keep the CT's LC2 features in DIR and reuse them when the same CT is registered "
                        "again over the same region (saves their computation on a rerun)")
    p.add_argument("--json-progress", action="store_true", help="progress as JSON lines on stderr")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    return p


def read_init(path) -> np.ndarray:
    """The start ``reference_to_ct`` (4x4, Reference mm -> CT LPS mm) of an INIT.json; it must be
    rigid: a mirror or a scaling cannot be a patient registration."""
    data = read_json_input(path, "--init")
    if not isinstance(data, dict) or "reference_to_ct" not in data:
        raise InputError('no "reference_to_ct"', path=path, fix='write {"reference_to_ct": [[4 numbers] x 4]}')
    try:
        m = np.asarray(data["reference_to_ct"], dtype=float)
    except (TypeError, ValueError):
        raise InputError('"reference_to_ct" is not a numeric 4x4', path=path,
                         fix="write 4 rows of 4 numbers") from None
    if m.shape != (4, 4):
        raise InputError(f'"reference_to_ct" has shape {m.shape}, not 4x4', path=path,
                         fix="write 4 rows of 4 numbers (row-major)")
    m = as_matrix(m, name='"reference_to_ct"', path=path)
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
        raise InputError('"reference_to_ct" is not a rigid transform (rotation + translation)', path=path,
                         fix="give a rigid matrix; a mirror or scaling cannot be a patient registration")
    return m


def read_targets(path) -> dict:
    """``--targets`` file -> ``{name: {"point": [x, y, z] CT LPS mm, "radius_mm": R or None}}``."""
    data = read_json_input(path, "--targets")
    items = data.get("targets") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError('no "targets" list', path=path,
                         fix='write {"targets": [{"name": ..., "point": [x,y,z], "radius_mm": R}]}')
    out = {}
    for i, t in enumerate(items):
        try:
            p = np.asarray(t["point"], dtype=float).reshape(3)
        except (KeyError, TypeError, ValueError):
            raise InputError(f'target {i} needs "point": [x, y, z] (CT LPS mm)', path=path) from None
        if not np.all(np.isfinite(p)):
            raise InputError(f"target {i} contains NaN or infinite values", path=path, fix="fix its point")
        r = t.get("radius_mm")
        out[str(t.get("name", f"target_{i + 1}"))] = {"point": p.tolist(),
                                                      "radius_mm": None if r is None else float(r)}
    return out


class _Reporter:
    """Progress on stderr: a line every 5 % (or every call as JSON lines); never cancels."""

    def __init__(self, json_lines: bool):
        self.json_lines = json_lines
        self.last = -1.0

    def __call__(self, fraction: float, message: str):
        if self.json_lines:
            print(json.dumps({"progress": round(float(fraction), 4), "message": message}), file=sys.stderr,
                  flush=True)
        elif fraction - self.last >= 0.05 or fraction >= 1.0:
            print(f"register: {100 * fraction:3.0f} % {message}", file=sys.stderr, flush=True)
            self.last = fraction
        return True

    def stage(self, message: str):
        if self.json_lines:
            print(json.dumps({"stage": message, "time": round(time.time(), 4)}), file=sys.stderr, flush=True)
        else:
            print(f"register: {message}", file=sys.stderr, flush=True)


def run(args) -> int:
    """Load, register, write RESULT.json (:func:`registration.align.result_document.result_document`)."""
    from registration.align.intensity_registration import register_sweep
    from registration.align.landmarks import register_landmarks_file
    from registration.align.lc2_features import FEATURE_CACHE
    from registration.align.result_document import result_document
    from registration.io.ct_io import load_ct
    from registration.io.sequence_io import load_sweep

    out = os.fspath(args.out)
    if os.path.exists(out) and not args.force:
        raise InputError("exists already", path=out, fix="pass --force to overwrite it or choose another --out")
    if os.path.isdir(out):
        raise InputError("is a folder", path=out, fix="give a file name such as result.json")
    rep = _Reporter(args.json_progress)
    if args.mr:  # issue 18: the MR instead of the CT
        if args.focus:
            raise InputError("--focus refines a CT registration; it does not work with --mr", fix="drop --focus")
        from .register_mr import run_mr
        return run_mr(args, rep, read_targets=read_targets, print_summary=_print_summary)
    # Cheap inputs first, so a bad file fails before seconds of loading.
    landmark_result = None
    if args.landmarks:
        landmark_result = register_landmarks_file(args.landmarks)
        init = landmark_result.reference_to_ct
    else:
        init = read_init(args.init)
    targets = read_targets(args.targets) if args.targets else {}
    if args.focus_radius is not None and (not args.focus or not np.isfinite(args.focus_radius)
                                          or args.focus_radius <= 0):
        raise InputError(f"--focus-radius {args.focus_radius} needs --focus and a positive radius (mm)",
                         fix="pass --focus NAME|X,Y,Z with --focus-radius 20..60")
    seeds = _clicked_lesions(args)
    rep.stage("loading CT")
    ct = load_ct(args.ct)
    from .register_mr import refuse_mr_as_ct
    refuse_mr_as_ct(ct, args.ct)
    anatomy_source = None
    if args.labels or seeds:
        from registration.align.targets import targets_from_labels   # label maps only: their readers
    if args.labels:
        from registration.io.labelmap_io import load_labels           # cost start-up time
        targets.update(targets_from_labels(load_labels(args.labels, args.label_names, reference=ct)))
        anatomy_source = {"source": "label map", "path": os.path.abspath(args.labels)}
    elif seeds:
        from planner.cli.cmd_plan import segment_first
        case = segment_first(ct, None, seeds, command="ctus register")
        targets.update(targets_from_labels(case.labels))
        anatomy_source = case.provenance()
    focus = None
    if args.focus:
        from registration.align.focus import parse_focus
        focus = parse_focus(args.focus, targets)
    rep.stage("loading sweep")
    sweep = load_sweep(args.sweep, calibration=args.calibration)
    rep.stage(f"registering ({args.method})")
    # One registration per process: nothing to keep in memory (hashing the CT would cost more)
    # unless a second, gated pass may reuse it; on disk only when asked for.
    with FEATURE_CACHE.settings(folder=args.feature_cache, max_entries=2 if args.breathing == "gate" else 0):
        res = register_sweep(ct, sweep, init, method=args.method, progress=rep, seed=args.seed,
                             n_starts=max(1, int(args.starts)), targets=targets, breathing=args.breathing,
                             breath_hold=args.breath_hold, shadows=args.shadows)
        if focus is not None:
            res = _focus(ct, sweep, res, focus, targets, args, rep)
    doc = result_document(res, ct_path=args.ct, sweep_path=args.sweep, calibration_path=args.calibration,
                          init_source="landmarks" if landmark_result is not None else "init",
                          init_file=args.landmarks or args.init, landmarks=landmark_result, targets=targets)
    if anatomy_source is not None:
        doc["anatomy_source"] = anatomy_source
    rep.stage("writing the result")
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    _print_summary(res, out)
    return 0


def _focus(ct, sweep, res, focus, targets, args, rep):
    """The whole-sweep ``res`` refined around the ``focus`` (name, point) target."""
    from registration.align.focus import FOCUS_RADIUS_MM, refine_near_target
    name, point = focus
    rep.stage(f"refining near {name}")
    return refine_near_target(ct, sweep, res, name, point, seed=args.seed, progress=rep,
                              radius_mm=args.focus_radius or FOCUS_RADIUS_MM,
                              radius_target_mm=(targets.get(name) or {}).get("radius_mm"), targets=targets,
                              shadows=getattr(args, "shadows", "drop"))


def _clicked_lesions(args) -> list:
    """The seeds of ``--lesions`` / ``--lesion NAME=X,Y,Z`` (read before the CT: a bad file fails
    fast); InputError beside ``--labels`` or for ``--label-names`` without ``--labels``."""
    if args.labels and (args.lesions or args.lesion):
        raise InputError("--lesions / --lesion are clicks to segment, and --labels is already segmented",
                         fix="give the lesions in the label map, or drop --labels to segment")
    if args.label_names and not args.labels:
        raise InputError("--label-names needs --labels", fix="pass the label map with --labels")
    if not (args.lesions or args.lesion):
        return []
    from planner.cli.cmd_segment import read_seeds_args
    return read_seeds_args(args.lesions, args.lesion)


def _print_summary(res, out: str) -> None:
    """The verdict with its reasons and one line per target (stdout)."""
    u = res.uncertainty
    print(f"{res.method.upper()} {res.metric_initial:.3f} -> {res.metric_final:.3f} in {res.wall_time_s:.1f} s; "
          f"verdict {u.verdict}: {'; '.join(u.reasons)}")
    if u.focus:
        print(f"focused on {u.focus['name']} (radius {u.focus['radius_mm']:.0f} mm, {len(u.focus['frames'])} "
              f"frames); whole-sweep estimate there {_mm(u.focus.get('whole_sweep_tre_mm'))}")
    second = getattr(res, "second_search", None) or {}
    if second.get("chosen"):
        a, b = second["fine_lc2"][:2]
        print(f"a second search with small patches moved the result {second['apart_mm']:.1f} mm (fine-level LC2 "
              f"{a:.3f} -> {b:.3f})")
    for t in u.targets:
        hp = t.hit_probability
        print(f"  {t.name}: registration TRE ~{_mm(t.tre_registration_mm)}, total "
              f"{_mm(t.tre_total_mm)}" + ("" if hp is None else f", hit probability {100 * hp:.0f} %")
              + (f", extrapolated ({t.distance_to_imaged_region_mm:.0f} mm from the imaged region)"
                 if t.extrapolated else "") + f", {t.verdict}")
    print(f"wrote {out}")


def _mm(v) -> str:
    return "unknown" if v is None else f"{v:.1f} mm"
