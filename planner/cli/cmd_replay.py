"""``ctus replay --sweep S [--calibration C] [--host 127.0.0.1] [--port 18944] [--fps F|--realtime] [--loop]``

Streams a recorded sweep over OpenIGTLink the way PlusServer does (IMAGE
``Image_Reference`` with its image-to-reference matrix, TRANSFORM
``ProbeToReference`` and ``ImageToReference`` with TransformStatus), to any
number of clients, until the sweep ends (or Ctrl-C with --loop).
"""
from __future__ import annotations

import sys
import time

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
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--stop-tracking-after", type=float, default=None, metavar="S",
                   help="simulate tracker loss: stop sending transforms after S seconds "
                        "(images go on), to check a client's stale-tracking watchdog")
    return p


def run(args) -> int:
    from registration.io.sequence_io import load_sweep
    from registration.live.igtl_server import IgtlServer, SweepStreamer
    if args.fps is not None and args.fps <= 0:
        raise InputError(f"--fps must be positive, got {args.fps}", fix="e.g. --fps 30")
    sweep = load_sweep(args.sweep, calibration=args.calibration)
    server = IgtlServer(args.host, args.port)
    streamer = SweepStreamer(sweep, server, fps=None if args.realtime else args.fps, loop=args.loop)
    rate = f"{args.fps:g} frames/s" if args.fps else "recorded timing"
    print(f"ctus replay: {len(sweep)} frames ({sweep.invalid_count} with invalid tracking) from "
          f"{args.sweep} on {args.host}:{server.port} at {rate}{', looping' if args.loop else ''}",
          file=sys.stderr, flush=True)
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
    except KeyboardInterrupt:
        pass
    finally:
        streamer.stop()
        time.sleep(0.1)  # let the last queued messages go out
        server.close()
    print(f"ctus replay: sent {streamer.sent_frames} frames in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return 0
