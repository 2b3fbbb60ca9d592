"""``ctus guide``: tracked-needle guidance, one line per tracked frame.

    ctus guide (--connect HOST:PORT | --sweep SWEEP) --registration RESULT.json --plan PLAN_DIR
               --labels LABELS [--label-names NAMES] [--lesion NAME] [--trajectory N]
               [--calibration PLUS_CONFIG.xml | --pivot-recording SEQ] [--tool Needle]
               [--needle-axis auto] [--json] [--duration S] [--exit-on-disconnect]

For every ``NeedleToReference`` sample: the tip in CT, its distance to the
target, the miss distance of the projected path, the angle to the planned
path, clearances to every risk structure, a breach warning naming the
structure, the offset from the ultrasound image plane; stale or INVALID
needle -> the numbers are hidden and the line says why. Definitions:
docs/needle_guidance.md. plan.json does not record its label map: give the
labels the plan was made with.
"""
from __future__ import annotations

import os
import sys

from registration.spatial.errors import InputError


def add_parser(sub):
    p = sub.add_parser("guide", help="tracked needle guidance: distance to target, miss, angle, breach warning",
                       description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--connect", metavar="HOST:PORT", help="PlusServer or ctus replay (OpenIGTLink)")
    src.add_argument("--sweep", help="recorded sequence with NeedleToReference (or NeedleToTracker) per frame")
    p.add_argument("--registration", required=True, metavar="RESULT", help="RESULT.json with reference_to_ct")
    p.add_argument("--plan", required=True, metavar="PLAN_DIR", help="folder written by ctus plan")
    p.add_argument("--labels", help="the label map the plan was made with (default: PLAN_DIR/labels.nrrd, "
                                    "written by ctus plan)")
    p.add_argument("--label-names", metavar="NAMES", help="names JSON {name: value} of the labels")
    p.add_argument("--lesion", metavar="NAME", help="lesion to guide to (default: the plan's biopsy-first)")
    p.add_argument("--trajectory", type=int, default=1, metavar="N", help="which of the lesion's paths (1 = best)")
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--calibration", metavar="PLUS_CONFIG", help="PLUS config with <Transform From=\"NeedleTip\" To=\"Needle\">")
    cal.add_argument("--pivot-recording", metavar="SEQ", help="recorded sequence of the needle pivoting about its tip")
    p.add_argument("--tool", default="Needle", help="tracked tool name (Needle; Stylus for a PLUS stylus)")
    p.add_argument("--needle-axis", default="auto", choices=("auto", "x", "-x", "y", "-y", "z", "-z"),
                   help="shaft direction in the tool frame: auto = marker origin -> tip, or a NeedleTip axis")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds (--connect)")
    p.add_argument("--exit-on-disconnect", action="store_true", help="stop when the server closes (--connect)")
    return p


def parse_host_port(text: str):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"--connect {text!r} is not HOST:PORT", fix="e.g. --connect 127.0.0.1:18944")
    return host, int(port)


def load_calibration(args, sweep=None):
    """The needle calibration from --calibration, --pivot-recording, or the recorded sequence; None if absent."""
    from registration.tracking.needle_tool import calibration_from_config, calibration_from_pivot_recording, \
        calibration_in_sweep
    if args.calibration:
        return calibration_from_config(args.calibration, tool=args.tool, axis=args.needle_axis)
    if args.pivot_recording:
        cal, result = calibration_from_pivot_recording(args.pivot_recording, tool=args.tool)
        print(f"ctus guide: pivot calibration of {args.tool}: tip {cal.tip_mm.round(2).tolist()} mm, "
              f"RMS {result.rms_mm:.2f} mm over {result.n_poses} poses, {len(result.segments)} pivot(s)",
              file=sys.stderr)
        return cal
    if sweep is not None:
        return calibration_in_sweep(sweep, tool=args.tool, axis=args.needle_axis, name_of_file=args.sweep)
    return None


def build_guide(args):
    """The NeedleGuide (no calibration yet) for the plan, registration and labels arguments."""
    from planner.cli.cmd_plan import load_registration
    from planner.guidance.needle_guide import guide_for_plan
    from planner.guidance.planned_path import read_plan
    from registration.io.labelmap_io import load_labels
    if args.trajectory < 1:
        raise InputError(f"--trajectory must be 1 or more, got {args.trajectory}")
    plan, plan_path = read_plan(args.plan)
    reference_to_ct, _ = load_registration(args.registration)
    from planner.export.plan_files import plan_labels_path
    labels = load_labels(plan_labels_path(args.plan, args.labels), args.label_names)
    guide = guide_for_plan(plan, labels, reference_to_ct, lesion=args.lesion, trajectory=args.trajectory,
                           plan_path=plan_path, missing_calibration_reason=(
                               f"no {args.tool} calibration yet (waiting for {args.tool}TipTo{args.tool} "
                               "from the server)"))
    path, risk = guide.path, guide.risk
    print(f"ctus guide: {path.lesion} path {path.index} ({path.guidance}, {path.length_mm:.0f} mm) from "
          f"{plan_path}; checking {', '.join(risk.names) or 'no structure'}"
          + (f"; {'; '.join(risk.notes)}" if risk.notes else ""), file=sys.stderr, flush=True)
    return guide


def run(args) -> int:
    from planner.guidance.guidance_stream import LiveGuidance, missing_calibration_error, sweep_states, write_state
    host_port = parse_host_port(args.connect) if args.connect else None
    if args.sweep and not os.path.exists(args.sweep):
        raise InputError("file not found", path=args.sweep, fix="give a recorded sequence (.mha/.mhd)")
    guide = build_guide(args)
    out = sys.stdout
    if args.sweep:
        from registration.io.sequence_io import load_sweep
        from registration.io.sweep_calibration import merge_calibration
        sweep = load_sweep(args.sweep)
        if args.calibration:
            try:  # the same PLUS config may hold ImageToProbe: then the image plane is known too
                merge_calibration(sweep, args.calibration)
            except InputError:
                pass
        guide.calibration = load_calibration(args, sweep)
        if guide.calibration is None:
            raise missing_calibration_error(args.tool, args.sweep)
        for state in sweep_states(sweep, guide, tool=args.tool):
            write_state(state, out, as_json=args.json, live=False)
        return 0
    guide.calibration = load_calibration(args)
    session = LiveGuidance(guide, *host_port, tool=args.tool, needle_axis=args.needle_axis).start()
    try:
        for state in session.states(duration_s=args.duration, exit_on_disconnect=args.exit_on_disconnect):
            write_state(state, out, as_json=args.json)
    except KeyboardInterrupt:
        pass
    finally:
        session.stop()
    return 0
