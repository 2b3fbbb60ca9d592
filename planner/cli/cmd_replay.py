"""``ctus replay --sweep S [--calibration C] [--host 127.0.0.1] [--port 18944] [--fps F|--realtime] [--loop]``
``[--needle-path PLAN_DIR[:LESION] [--needle-deviation-mm D] [--registration RESULT.json] [--labels L]]``

Streams a recorded sweep over OpenIGTLink the way PlusServer does (IMAGE
``Image_Reference`` with its image-to-reference matrix, TRANSFORM
``ProbeToReference`` and ``ImageToReference`` with TransformStatus, and any
tracked tool of the sweep as ``<Tool>ToReference``), to any number of
clients, until the sweep ends (or Ctrl-C with --loop).

``--needle-path`` adds a simulated needle insertion along the plan's path
(``planner.guidance.needle_simulation``), bent ``--needle-deviation-mm``
sideways towards the nearest vessel: TRANSFORM ``NeedleToReference`` with
every frame (the plan is in CT, the stream in Reference: mapped with the
registration's ``reference_to_ct``) and the simulated needle's calibration
``NeedleTipToNeedle``.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from registration.spatial.errors import InputError


def add_parser(sub):
    p = sub.add_parser("replay", help="stream a recorded sweep over OpenIGTLink like PlusServer",
                       description=__doc__)
    p.add_argument("--sweep", required=True, help="PLUS sequence (.mha/.mhd) or Slicer .seq.nrrd")
    p.add_argument("--calibration", help="PLUS device-set config XML with ImageToProbe")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=18944, help="port (PlusServer's default 18944)")
    rate = p.add_mutually_exclusive_group()
    rate.add_argument("--fps", type=float, default=None, help="frames per second (default: as recorded)")
    rate.add_argument("--realtime", action="store_true", help="replay at the recorded timestamps (default)")
    p.add_argument("--loop", action="store_true", help="start again at the end")
    p.add_argument("--wait-for-client", type=float, default=0.0, metavar="S",
                   help="wait up to S seconds for the first client before streaming (default: do not wait)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--stop-tracking-after", type=float, default=None, metavar="S",
                   help="simulate tracker loss: stop sending transforms after S seconds "
                        "(images go on), to check a client's stale-tracking watchdog")
    needle = p.add_argument_group("simulated needle")
    needle.add_argument("--needle-path", metavar="PLAN_DIR[:LESION]",
                        help="stream a needle inserted along this plan's path (default lesion: biopsy-first)")
    needle.add_argument("--needle-deviation-mm", type=float, default=0.0, metavar="D",
                        help="aim D mm beside the target, towards the nearest vessel (of --labels, "
                             "default the plan folder's labels.nrrd)")
    needle.add_argument("--trajectory", type=int, default=1, metavar="N", help="which of the lesion's paths")
    needle.add_argument("--registration", metavar="RESULT",
                        help="RESULT.json with reference_to_ct (default: the plan's registration)")
    needle.add_argument("--labels", help="label map of the plan (to find the nearest vessel; default "
                                         "PLAN_DIR/labels.nrrd)")
    needle.add_argument("--label-names", metavar="NAMES", help="names JSON of the labels")
    needle.add_argument("--stop-needle-after", type=float, default=None, metavar="S",
                        help="stop sending the needle after S seconds (images go on): a stale needle")
    return p


def split_plan_arg(text: str):
    """'PLAN_DIR[:LESION]' -> (plan dir, lesion or None)."""
    import os
    if os.path.exists(text) or ":" not in text:
        return text, None
    plan_dir, _, lesion = text.rpartition(":")
    return plan_dir, lesion or None


def needle_transforms(args, sweep) -> tuple:
    """({'NeedleToReference': (poses, ok)}, {'NeedleTipToNeedle': 4x4}, text) for --needle-path."""
    from planner.cli.cmd_plan import load_registration
    from planner.guidance.needle_simulation import SIMULATED_NEEDLE, simulate_insertion
    from planner.guidance.planned_path import plan_needle, plan_reference_to_ct, planned_path, read_plan
    plan_dir, lesion = split_plan_arg(args.needle_path)
    plan, plan_path = read_plan(plan_dir)
    path = planned_path(plan, lesion, args.trajectory, path=plan_path)
    if args.registration:
        reference_to_ct, _ = load_registration(args.registration)
    else:
        reference_to_ct = plan_reference_to_ct(plan, path=plan_path)
        if reference_to_ct is None:
            raise InputError("the plan was made without a registration: the needle cannot be put in Reference",
                             path=plan_path, fix="pass --registration RESULT.json")
    risk = None
    if args.needle_deviation_mm:
        from planner.export.plan_files import plan_labels_path
        from planner.guidance.risk_field import build_risk_field
        from registration.io.labelmap_io import load_labels
        radius, margin = plan_needle(plan)
        labels_path = plan_labels_path(plan_dir, args.labels)    # the plan's own labels by default
        risk = build_risk_field(load_labels(labels_path, args.label_names), needle_radius_mm=radius,
                                vessel_margin_mm=margin, roi_points=[path.entry_ct, path.target_ct])
    sim = simulate_insertion(path, len(sweep), reference_to_ct, deviation_mm=args.needle_deviation_mm, risk=risk)
    text = f"needle along {path.lesion} path {path.index} ({path.length_mm:.0f} mm)"
    if sim.deviation_towards:
        text += f", aimed {sim.deviation_mm:g} mm beside the target towards {sim.deviation_towards}"
    return ({"NeedleToReference": (sim.needle_to_reference, np.ones(len(sweep), bool))},
            {"NeedleTipToNeedle": SIMULATED_NEEDLE.tip_to_tool()}, text)


def run(args) -> int:
    from registration.io.sequence_io import load_sweep
    from registration.live.igtl_server import IgtlServer, SweepStreamer
    if args.fps is not None and args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}", fix="e.g. --fps 30")
    sweep = load_sweep(args.sweep, calibration=args.calibration)
    extra = static = None
    needle_text = ""
    if args.needle_path:
        extra, static, needle_text = needle_transforms(args, sweep)
    elif args.needle_deviation_mm or args.stop_needle_after is not None:
        raise InputError("--needle-deviation-mm and --stop-needle-after go with --needle-path",
                         fix="add --needle-path PLAN_DIR[:LESION]")
    server = IgtlServer(args.host, args.port)
    streamer = SweepStreamer(sweep, server, fps=None if args.realtime else args.fps, loop=args.loop,
                             extra_transforms=extra, static_transforms=static)
    rate = f"{args.fps:g} frames/s" if args.fps else "recorded timing"
    print(f"ctus replay: {len(sweep)} frames ({sweep.invalid_count} with invalid tracking) from "
          f"{args.sweep} on {args.host}:{server.port} at {rate}{', looping' if args.loop else ''}"
          + (f"; tools: {', '.join(streamer.tools)}" if streamer.tools else "")
          + (f"; {needle_text}" if needle_text else ""), file=sys.stderr, flush=True)
    t_wait = time.monotonic()
    while args.wait_for_client > 0 and server.n_clients == 0 and time.monotonic() - t_wait < args.wait_for_client:
        time.sleep(0.02)
    t0 = time.monotonic()
    streamer.start()
    try:
        while streamer.running:
            time.sleep(0.1)
            elapsed = time.monotonic() - t0
            if args.duration is not None and elapsed >= args.duration:
                break
            if args.stop_tracking_after is not None and elapsed >= args.stop_tracking_after \
                    and not streamer.stop_transforms.is_set():
                streamer.stop_transforms.set()
                print("ctus replay: tracking stopped (simulated tracker loss)", file=sys.stderr, flush=True)
            if args.stop_needle_after is not None and elapsed >= args.stop_needle_after \
                    and not streamer.stop_tools.is_set():
                streamer.stop_tools.set()
                print("ctus replay: needle no longer sent (simulated marker out of view)", file=sys.stderr,
                      flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        streamer.stop()
        time.sleep(0.1)  # let the last queued messages go out
        server.close()
    print(f"ctus replay: sent {streamer.sent_frames} frames in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0
