"""``ctus plan``: per-lesion visibility, safe trajectories, guidance recommendation, plan export.

    ctus plan --ct CT (--labels LABELS [--label-names NAMES.json] | [--lesions SEEDS.json]
              [--lesion NAME=X,Y,Z ...]) [--ct-arterial CT2]
              [--sweep SWEEP --registration RESULT.json] [--lesion NAME] [--target x,y,z]
              [--guidance us|ct|auto] [--max-length-mm 150] [--needle-gauge 18G]
              [--patient-position supine] [--max-gantry-tilt-deg 15]
              --out DIR [--force] [--include-patient-id]

Writes DIR/plan.json, DIR/plan.mrk.json, DIR/plan.pdf, DIR/labels.nrrd (+ its
names JSON: the label map on the CT grid the plan used, read by ctus guide and
ctus pacs send) and, when registered, DIR/reference_to_ct.tfm. ``--target`` is a
point in CT LPS mm inside the liver.

Without ``--labels`` the CT is segmented first, by the same code as ``ctus
segment`` (automatic anatomy, every clicked lesion of ``--lesions SEEDS.json``
and ``--lesion NAME=X,Y,Z`` grown from its click); the label map goes to
DIR/segmentation/ (as ``ctus segment`` writes it, for review and for planning
again with ``--labels``), and stderr, stdout, plan.json (``anatomy_source``)
and the PDF say that the anatomy is an automatic segmentation, not reviewed.
``--lesion NAME`` without ``=`` still selects the one lesion to plan.
Prints the case recommendation and one line per lesion: its guidance (with
its condition when the advice is conditional), the safe US/CT paths, the
predicted B-mode visibility and the registration TRE fusion would need, and
for a lesion without a safe path the least-risk path's violations (UNSAFE) and
the other rejected paths that came closest, each with the rules it breaks.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from planner.case.case_plan import (
    DEFAULT_DIRECTIONS,
    DEFAULT_MAX_PLANNING_VOXELS,
    GUIDANCE_CHOICES,
    MAX_LENGTH_LIMIT_MM,
)
from planner.paths.constraints import GAUGE_OD_MM, MAX_GANTRY_TILT_LIMIT_DEG, TABLE_SIDE, Constraints
from registration.spatial.errors import InputError

_DEFAULTS = Constraints()


def add_parser(sub):
    """The ``ctus plan`` sub-command and its options (defaults from the planner's constants)."""
    p = sub.add_parser("plan", help="plan a liver biopsy: visibility, safe paths, US/fusion/CEUS/CT guidance",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--ct", required=True, help="portal-venous CT: DICOM folder or image file")
    p.add_argument("--labels", help="label map (NRRD, NIfTI, .seg.nrrd, DICOM SEG); without it the CT is "
                                    "segmented first (automatic anatomy + the clicked lesions)")
    p.add_argument("--label-names", metavar="NAMES", help="names JSON {name: value} (or '<value> <name>' .txt)")
    p.add_argument("--ct-arterial", metavar="CT2", help="arterial-phase CT on the same grid (lesion type)")
    p.add_argument("--sweep", help="tracked US sweep (.igs.mha/.mhd/.seq.nrrd) for measured visibility")
    p.add_argument("--registration", metavar="RESULT", help="RESULT.json with reference_to_ct (with --sweep)")
    p.add_argument("--lesions", metavar="SEEDS.json",
                   help='without --labels: clicked lesions {"lesions": [{"name": "lesion_1", "point": [x, y, z]}]} '
                        "(CT LPS mm), segmented from their clicks")
    p.add_argument("--lesion", metavar="NAME | NAME=X,Y,Z", action="append", default=[],
                   help="NAME: plan only this lesion (e.g. lesion_2); NAME=X,Y,Z (without --labels): a clicked "
                        "lesion in CT LPS mm, repeat for more")
    p.add_argument("--target", metavar="X,Y,Z", help="plan to a point (LPS mm) inside the liver instead; write --target=X,Y,Z when X is negative")
    p.add_argument("--guidance", choices=GUIDANCE_CHOICES, default="auto",
                   help="which paths to propose (default: both, and recommend)")
    p.add_argument("--max-length-mm", type=float, default=_DEFAULTS.max_length_mm,
                   help=f"usable needle length: longest path (150 or up to {MAX_LENGTH_LIMIT_MM:g} mm)")
    p.add_argument("--patient-position", choices=sorted(TABLE_SIDE), default=_DEFAULTS.patient_position,
                   help="the side the patient lies on cannot be entered (default supine)")
    p.add_argument("--max-gantry-tilt-deg", type=float, default=_DEFAULTS.max_gantry_tilt_deg,
                   help=f"CT gantry tilt the scanner reaches (<= {MAX_GANTRY_TILT_LIMIT_DEG:g}; steeper paths "
                        "are planned double oblique)")
    p.add_argument("--needle-gauge", default=_DEFAULTS.needle_gauge, choices=sorted(GAUGE_OD_MM),
                   help=f"needle gauge (default {_DEFAULTS.needle_gauge})")
    p.add_argument("--directions", type=int, default=DEFAULT_DIRECTIONS, help="candidate directions per target")
    p.add_argument("--max-planning-voxels", type=int, default=DEFAULT_MAX_PLANNING_VOXELS,
                   help="plan larger CTs on a coarser grid (0 = always full resolution)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--include-patient-id", action="store_true",
                   help="keep the patient id in the report (de-identified by default)")
    p.add_argument("--no-pdf", action="store_true", help="skip the PDF report")
    from . import plan_mr  # issue 18: lesions seen on an MR
    plan_mr.add_options(p)
    return p


def parse_target(text: str) -> np.ndarray:
    """``--target x,y,z`` (LPS mm; ';' also separates) -> (3,) array; InputError otherwise."""
    try:
        vals = [float(v) for v in text.replace(";", ",").split(",")]
    except ValueError:
        vals = []
    if len(vals) != 3 or not np.all(np.isfinite(vals)):
        raise InputError(f"--target {text!r} is not three numbers", fix="write --target x,y,z in LPS mm")
    return np.array(vals)


def load_registration(path: str) -> tuple:
    """RESULT.json -> (reference_to_ct 4x4, the dict), read by the registration's own parser
    (registration.align.result_document: InputError naming the file and the field)."""
    from registration.align.result_document import read_result_file
    if not os.path.isfile(path):
        raise InputError("file not found", path=path, fix="give the RESULT.json written by ctus register")
    record = read_result_file(path)
    return record.reference_to_ct, record.document


def _check_args(args) -> tuple:
    """(clicked lesions ``NAME=X,Y,Z``, the one lesion to plan or None) of the command line;
    InputError for options that exclude each other or leave nothing to plan."""
    clicks = [t for t in args.lesion if "=" in t]
    only = [t for t in args.lesion if "=" not in t]
    if len(only) > 1:
        raise InputError(f"--lesion {only[0]} and --lesion {only[1]}: only one lesion can be selected",
                         fix="give one --lesion NAME, or none to plan every lesion")
    only = only[0] if only else None
    if args.target and only:
        raise InputError("--target and --lesion exclude each other", fix="give one of them")
    if args.labels and (args.lesions or clicks):
        raise InputError("--lesions / --lesion NAME=X,Y,Z are clicks to segment, and --labels is already "
                         "segmented", fix="give the lesions in the label map, or drop --labels to segment")
    if not args.labels and args.label_names:
        raise InputError("--label-names needs --labels", fix="pass the label map with --labels")
    if not args.labels and not (args.lesions or clicks or args.target):
        raise InputError("nothing to plan: no --labels, no clicked lesion and no --target",
                         fix="give --labels LABELS, or --lesions SEEDS.json / --lesion NAME=X,Y,Z "
                             "(the CT is then segmented first), or --target X,Y,Z")
    if (args.sweep is None) != (args.registration is None):
        raise InputError("--sweep and --registration go together",
                         fix="give both to measure visibility on the registered sweep, or neither")
    return clicks, only


def run(args) -> int:
    """Load the inputs, plan, write the outputs and print the recommendation; 0 when done."""
    from planner.case.case_plan import plan_case
    from planner.cli.cmd_segment import load_arterial, read_seeds_args, write_segmentation
    from planner.export.plan_files import prepare_pdf_in_background, write_outputs
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels

    clicks, only = _check_args(args)
    out = os.path.abspath(args.out)
    seeds = None
    if not args.labels:
        seeds = read_seeds_args(args.lesions, clicks)
    if not args.force:
        for name in ("plan.json", "plan.mrk.json", "plan.pdf", "reference_to_ct.tfm", "labels.nrrd",
                     *(["segmentation"] if seeds is not None else [])):
            if os.path.exists(os.path.join(out, name)):
                raise InputError("already exists", path=os.path.join(out, name),
                                 fix="pass --force to overwrite or choose another --out folder")
    target = parse_target(args.target) if args.target else None
    ct = load_ct(args.ct)
    # Both phases come from one exam in one scanner frame: resampled by physical position.
    arterial = load_arterial(args.ct_arterial, ct, lambda *a: True) if args.ct_arterial else None
    seg_folder = os.path.join(out, "segmentation")
    if seeds is None:
        labels = load_labels(args.labels, args.label_names, reference=ct)
        provenance, labels_path, case = {"source": "label map", "path": os.path.abspath(args.labels)}, \
            args.labels, None
    else:
        case = segment_first(ct, arterial, seeds)
        labels, labels_path = case.labels, os.path.join(seg_folder, "labels.nrrd")
        provenance = dict(case.provenance(), folder=seg_folder)
    sweep = reference_to_ct = registration = None
    if args.sweep:
        from registration.io.sequence_io import load_sweep
        reference_to_ct, registration = load_registration(args.registration)
        sweep = load_sweep(args.sweep)
    from . import plan_mr  # issue 18: MR lesions on the CT grid, their MR -> CT error in the registration rows
    labels, registration, mr_import = plan_mr.prepare(args, ct, labels, registration)
    if not args.no_pdf:
        # issue 16: the PDF's imports and fonts load while we plan (not before: imports hold the GIL,
        # and the loading above is Python too; the planning's grids are numpy and C, which release it)
        prepare_pdf_in_background()
    constraints = Constraints(max_length_mm=args.max_length_mm, needle_gauge=args.needle_gauge,
                              patient_position=args.patient_position, max_gantry_tilt_deg=args.max_gantry_tilt_deg)
    result = plan_case(ct, labels, ct_arterial=arterial, sweep=sweep, reference_to_ct=reference_to_ct,
                       registration=registration, lesion=only, target_lps=target,
                       guidance=args.guidance, constraints=constraints, n_directions=args.directions,
                       labels_path=labels_path, ct_path=args.ct, max_planning_voxels=args.max_planning_voxels)
    plan_mr.finish(result, mr_import)
    result.plan["anatomy_source"] = provenance
    written = write_outputs(result, out, force=args.force, include_patient_id=args.include_patient_id,
                            ct_metadata=ct.metadata, reference_to_ct=reference_to_ct, pdf=not args.no_pdf,
                            sweep=sweep, labels=labels, pdf_workers=2)   # issue 16: PDF pages on two processes
    if case is not None:
        write_segmentation(seg_folder, ct, case, ct_path=args.ct, arterial_path=args.ct_arterial, force=args.force)
        written["segmentation"] = seg_folder
    rec = result.plan["recommendation"]
    if case is not None:
        print(f"anatomy: {AUTOMATIC_NOTE} ({os.path.join(out, 'segmentation')})")
    print(f"recommendation: {rec['guidance']}" + (f", biopsy {rec['biopsy_first']} first" if rec["biopsy_first"] else ""))
    for r in rec["reasons"]:
        print(f"  {r}")
    for les in result.plan["lesions"]:
        print(lesion_summary(les))
    for name, path in written.items():
        print(f"wrote {path}")
    sys.stdout.flush()
    return 0


#: How the plan's outputs name anatomy made by :func:`segment_first`.
AUTOMATIC_NOTE = "automatic segmentation, not reviewed"


def segment_first(ct, arterial, seeds, command: str = "ctus plan"):
    """The :class:`~planner.segmentation.auto_labels.SegmentedCase` of a CT given without labels
    (:func:`~planner.segmentation.auto_labels.segment_case`, as ``ctus segment``), said on stderr
    with its warnings; its lesions on stdout."""
    from planner.cli.cmd_segment import Progress, print_lesions
    from planner.segmentation.auto_labels import segment_case
    print(f"{command}: no --labels: segmenting the CT first ({AUTOMATIC_NOTE}; "
          f"{len(seeds)} clicked lesion(s))", file=sys.stderr, flush=True)
    case = segment_case(ct, seeds, arterial=arterial, progress=Progress(command))
    for w in case.warnings:
        print(f"{command}: segmentation warning: {w}", file=sys.stderr)
    print_lesions(case.lesions)
    return case


def lesion_summary(les: dict) -> str:
    """One line per lesion: guidance (and its condition), safe paths, B-mode visibility, fusion need,
    and for a lesion without a safe path the least-risk path's violations and the next-best lesion."""
    rec = les["recommendation"]
    safe = [t for t in les["trajectories"] if t.get("safe", True) is not False]
    unsafe = [t for t in les["trajectories"] if t.get("safe", True) is False]
    g = rec["guidance"].upper()
    cond = rec.get("condition")
    if cond:
        g += f" if registration TRE <= {cond['max_tre_rms_mm']:g} mm"
    n_us = sum(t["guidance"] == "us" for t in safe)
    n_ct = sum(t["guidance"] == "ct" for t in safe)
    oblique = sum(bool((t.get("ct") or {}).get("double_oblique")) for t in safe)
    vis = les["visibility"]
    pred = vis["predicted"]
    p = pred.get("probability", pred.get("score"))
    size = "?" if les["diameter_mm"] is None else f"{les['diameter_mm']:.0f}"
    depth = "no window" if les["depth_mm"] is None else f"{les['depth_mm']:.0f} mm deep"
    parts = [f"{les['name']} ({size} mm, {vis['lesion_type']}, {depth}): {g}",
             f"{n_us} US, {n_ct} CT safe paths" + (f" ({oblique} double oblique)" if oblique else ""),
             f"B-mode {pred['category']}" + ("" if p is None else f" (p {p:.2f})")]
    need = vis.get("fusion_need")
    if need:
        tre = need["registration_allowed_mm"]
        parts.append("fusion cannot reach 90 %" if tre is None else f"fusion needs TRE <= {tre:.1f} mm")
    line = "; ".join(parts)
    if unsafe:
        line += "\n    least-risk path UNSAFE: " + "; ".join(v["text"] for v in unsafe[0]["violations"])
    line += rejected_lines(les.get("rejected_candidates") or [])
    nxt = [r for r, c in zip(rec["reasons"], rec.get("reason_codes", [])) if c == "next_best_lesion"]
    if nxt:
        line += f"\n    {nxt[0]}"
    if les.get("no_us_path_reason"):
        line += f"\n    no US path: {les['no_us_path_reason']}"
    return line


def rejected_lines(rejected: list) -> str:
    """The other rejected paths that came closest (plan.json ``rejected_candidates``), one line each
    with every rule it breaks and its margin: why the lesion has no safe path, checkable by a person."""
    from planner.paths.rejected import rejected_path_lines
    if not rejected:
        return ""
    return "\n    other rejected paths, closest first (none is a plan):" + "".join(
        f"\n      {line}" for line in rejected_path_lines(rejected))
