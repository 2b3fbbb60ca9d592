"""Live OpenIGTLink streaming speed over loopback.

For 640x480 and 1024x768 uint8 frames, a replay server streams IMAGE +
TRANSFORM messages at a requested rate to a LiveClient on 127.0.0.1 and we
print frames/s received, median and 95th-percentile latency, and the time to
pack one IMAGE message. Each size runs with crcmod's C extension (the
product path) and again with the pure-Python CRC-64 patched in (what pyigtl
does when the C extension did not build), in the same process: the ratio
shows why scripts/setup.sh builds crcmod from source.

Needle guidance: the same 640x480 stream carries a simulated needle
(``NeedleToReference`` + ``NeedleTipToNeedle``) inserted along a straight
path through a hand-built label map (three vessels, bone, kidney and
gallbladder around a spherical target: six risk structures); ``LiveGuidance`` turns each transform into a guidance line, and we
print the lag from the transform's arrival to its line (target <= 50 ms
median), beside the stream's own send -> receive latency measured in the
same run.

GUI (``--gui``, needs a display: run under ``xvfb-run -a``): the real main window
(1366x768, Guidance panel, needle overlays on the US, fused and slice views) connected
to the same needle stream; we print the lag from a transform's arrival to the guidance
panel showing its state (target <= 50 ms median), how many states the GUI showed and
how many it skipped for a newer one (it shows the newest when it is behind), beside the
engine's own arrival -> state time for the same states (the baseline, same run).

Run: .venv/bin/python benchmarks/live.py [--seconds 5] [--fps 30] [--gui]
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import pyigtl.messages as pm  # noqa: E402
from registration.live import igtl_protocol  # noqa: E402
from registration.live.igtl_client import LiveClient  # noqa: E402
from registration.live.igtl_server import IgtlServer, SweepStreamer  # noqa: E402
from registration.spatial.sweep import Sweep  # noqa: E402


def make_sweep(rows, cols, n=60):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    p2r = np.repeat(np.eye(4)[None], n, 0)
    return Sweep(frames, np.arange(n) / 30.0, {"ProbeToReference": p2r}, {},
                 {"ImageToProbe": np.diag([0.3, 0.3, 1.0, 1.0])})


def use_crc(fn):
    pm.CRC64 = fn
    igtl_protocol.CRC64 = fn


def pack_ms(frame, reps=20):
    m = np.eye(4)
    t = time.perf_counter()
    for _ in range(reps):
        igtl_protocol.image_message(frame, m, 0.0, "Image_Reference")
    return (time.perf_counter() - t) / reps * 1e3


def stream(rows, cols, seconds, fps):
    sweep = make_sweep(rows, cols)
    with IgtlServer(port=0) as server, LiveClient(port=server.port) as client:
        t = time.monotonic()
        while server.n_clients == 0 and time.monotonic() - t < 2:
            time.sleep(0.01)
        streamer = SweepStreamer(sweep, server, fps=fps, loop=True).start()
        got = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            got += client.drain()
            time.sleep(0.005)
        streamer.stop()
        got += client.drain()
        sent = streamer.sent_frames
    lat = np.array([f.latency_ms for f in got]) if got else np.array([np.nan])
    return len(got) / seconds, len(got) / max(sent, 1), np.median(lat), np.percentile(lat, 95)


def guidance_geometry():
    """Label map (0.5 mm, 120^3): three vessels, bone, kidney, gallbladder, a spherical target; the path."""
    from planner.guidance.planned_path import PlannedPath
    from registration.spatial.volume import LabelMap
    c = -30.0 + 0.5 * np.arange(120)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    arr = np.full((120, 120, 120), 2, np.uint8)
    arr[(x - 5.0) ** 2 + y ** 2 <= 9.0] = 3
    arr[(x + 20.0) ** 2 + (y - 10.0) ** 2 <= 6.0] = 4
    arr[(y - 4.0) ** 2 + (z + 12.0) ** 2 <= 4.0] = 5
    arr[y >= 22.0] = 6
    arr[(x - 18.0) ** 2 + (y + 15.0) ** 2 + (z + 15.0) ** 2 <= 64.0] = 10
    arr[(x + 18.0) ** 2 + (y + 18.0) ** 2 + (z - 5.0) ** 2 <= 36.0] = 8
    arr[(x + 5.0) ** 2 + y ** 2 + z ** 2 <= 16.0] = 21
    labels = LabelMap(arr, (0.5,) * 3, (-30.0,) * 3, names={
        "liver": 2, "portal_vein": 3, "hepatic_vein": 4, "artery": 5, "bone": 6, "gallbladder": 8, "kidney": 10,
        "lesion_1": 21})
    return labels, PlannedPath("lesion_1", np.array([-5.0, 0.0, 28.0]), np.array([-5.0, 0.0, 0.0]))


def guidance_lag(seconds, fps):
    """(lines, median and p95 lag arrival -> line ms, median image latency ms) for a needle stream."""
    import io
    from planner.guidance.guidance_stream import LiveGuidance, write_state
    from planner.guidance.needle_guide import NeedleGuide
    from planner.guidance.needle_simulation import SIMULATED_NEEDLE, simulate_insertion
    from planner.guidance.risk_field import build_risk_field
    labels, path = guidance_geometry()
    risk = build_risk_field(labels, needle_radius_mm=0.635, roi_points=[path.entry_ct, path.target_ct],
                            target_name="lesion_1")
    sweep = make_sweep(480, 640, n=90)
    sim = simulate_insertion(path, len(sweep), np.eye(4), deviation_mm=3.0, risk=risk)
    guide = NeedleGuide(path, risk, np.eye(4))
    lags, sink = [], io.StringIO()
    with IgtlServer(port=0) as server:
        session = LiveGuidance(guide, "127.0.0.1", server.port).start()
        t = time.monotonic()
        while server.n_clients == 0 and time.monotonic() - t < 2:
            time.sleep(0.01)
        streamer = SweepStreamer(sweep, server, fps=fps, loop=True,
                                 extra_transforms={"NeedleToReference": (sim.needle_to_reference,
                                                                         np.ones(len(sweep), bool))},
                                 static_transforms={"NeedleTipToNeedle": SIMULATED_NEEDLE.tip_to_tool()}).start()
        for state in session.states(duration_s=seconds):
            lag = write_state(state, sink, as_json=True)
            if state.valid:
                lags.append(lag)
        streamer.stop()
        image_lat = session.client.stats()["latency_ms_median"]
        session.stop()
    lags = np.array(lags) if lags else np.array([np.nan])
    return len(lags), float(np.median(lags)), float(np.percentile(lags, 95)), image_lat


def gui_guidance_lag(seconds, fps, with_guidance=True):
    """The real window on the needle stream: (shown, superseded, median and p95 lag arrival -> panel
    updated ms, median engine arrival -> state ms, US frames shown per s). Without guidance: the
    same window and stream, no guidance set up (the baseline of the frame rate)."""
    from PyQt5.QtWidgets import QApplication
    from gui.core.session import RegistrationState
    from gui.window.main_window import MainWindow
    from planner.guidance.needle_simulation import SIMULATED_NEEDLE, simulate_insertion
    from planner.guidance.risk_field import build_risk_field
    from registration.spatial.volume import Volume
    app = QApplication.instance() or QApplication([])
    labels, path = guidance_geometry()
    hu = np.where(labels.array == 6, 700.0, np.where(labels.array == 3, 180.0, 60.0)).astype(np.float32)
    w = MainWindow(enable_3d=False, panels=True)
    w.reporter.show_dialogs = False
    w.resize(1366, 768)
    w.show()
    w.set_ct(Volume(hu, labels.spacing, labels.origin), labels)
    w.set_registration(RegistrationState(np.eye(4), method="benchmark"))
    plan = {"lesions": [{"name": "lesion_1", "trajectories": [
        {"guidance": "us", "entry_ct": path.entry_ct.tolist(), "target_ct": path.target_ct.tolist(), "length_mm": 28.0}]}],
        "constraints": {"needle_gauge": "18G", "vessel_margin_mm": 5.0}}
    if with_guidance:
        w.guidance.start_setup(plan, labels, np.eye(4), lesion="lesion_1")
    while with_guidance and w.guidance.guide is None:
        app.processEvents()
        time.sleep(0.01)
    w.panel_docks["guidance"].raise_()
    engine = []
    put = w.guidance._put
    w.guidance._put = lambda state: (engine.append(state.lag_ms) if state.valid else None, put(state))
    risk = build_risk_field(labels, needle_radius_mm=0.635, roi_points=[path.entry_ct, path.target_ct],
                            target_name="lesion_1")
    sweep = make_sweep(480, 640, n=90)
    sim = simulate_insertion(path, len(sweep), np.eye(4), deviation_mm=3.0, risk=risk)
    server = IgtlServer(port=0)
    w.live.connect_host("127.0.0.1", server.port)
    t = time.monotonic()
    while server.n_clients == 0 and time.monotonic() - t < 3:
        app.processEvents()
        time.sleep(0.01)
    streamer = SweepStreamer(sweep, server, fps=fps, loop=True,
                             extra_transforms={"NeedleToReference": (sim.needle_to_reference, np.ones(len(sweep), bool))},
                             static_transforms={"NeedleTipToNeedle": SIMULATED_NEEDLE.tip_to_tool()}).start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        app.processEvents()
        time.sleep(0.002)
    streamer.stop()
    frames_shown = w.live.frames_shown
    w.live.disconnect_all()
    server.close()
    lags = np.array(w.guidance.lags_ms) if w.guidance.lags_ms else np.array([np.nan])
    shown, skipped = len(w.guidance.lags_ms), w.guidance.skipped
    w.close()
    return shown, skipped, float(np.median(lags)), float(np.percentile(lags, 95)), \
        float(np.median([x for x in engine if x is not None])) if engine else float("nan"), frames_shown / seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--gui", action="store_true", help="also the real window (needs a display: xvfb-run -a)")
    args = ap.parse_args(argv)
    import crcmod
    c_crc = pm.CRC64
    try:
        import crcmod._crcfunext  # noqa: F401
        have_c = True
    except ImportError:
        have_c = False
    import crcmod._crcfunpy as crcpy
    cm = importlib.import_module("crcmod.crcmod")
    table = cm._mkTable(0x142F0E1EBA9EA3693, 64)  # crcmod's own pure-Python path, no C extension

    def py_crc64(data, _table=table):
        return crcpy._crc64(data, 0, _table)
    assert py_crc64(b"123456789") == c_crc(b"123456789")
    print(f"crcmod C extension available: {have_c}; requested {args.fps:g} frames/s for {args.seconds:g} s each; "
          f"{os.cpu_count()} cores")
    print(f"{'frame':>9s} {'CRC':>7s} {'pack ms':>8s} {'recv fps':>9s} {'recv %':>7s} {'lat med ms':>11s} "
          f"{'lat p95 ms':>11s}")
    for rows, cols in ((480, 640), (768, 1024)):
        frame = np.zeros((rows, cols), np.uint8)
        results = {}
        for label, fn in (("C", c_crc), ("python", py_crc64)):
            use_crc(fn)
            p = pack_ms(frame, reps=20 if label == "C" else 3)
            fps, frac, med, p95 = stream(rows, cols, args.seconds, args.fps)
            results[label] = p
            print(f"{cols:>4d}x{rows:<4d} {label:>7s} {p:8.2f} {fps:9.1f} {frac * 100:6.1f}% {med:11.1f} {p95:11.1f}")
        use_crc(c_crc)
        print(f"{'':9s} pure-Python CRC packs {results['python'] / results['C']:.0f}x slower than the C extension")
    n, med, p95, image_lat = guidance_lag(args.seconds, args.fps)
    print(f"needle guidance, 640x480 + NeedleToReference @ {args.fps:g} frames/s: {n} guidance lines; "
          f"lag transform arrival -> line median {med:.2f} ms, p95 {p95:.2f} ms (target <= 50 ms median: "
          f"{med / 50.0:.2f} of it); the stream's own send -> receive latency in this run {image_lat:.1f} ms")
    if args.gui:
        base_fps = gui_guidance_lag(args.seconds, args.fps, with_guidance=False)[-1]
        shown, skipped, gmed, gp95, emed, us_fps = gui_guidance_lag(args.seconds, args.fps)
        print(f"GUI window 1366x768 on the same stream: US frames shown {us_fps:.1f}/s with guidance, "
              f"{base_fps:.1f}/s without (ratio {us_fps / max(base_fps, 1e-6):.2f}); {shown} guidance states "
              f"shown, {skipped} superseded by a newer one; "
              f"lag transform arrival -> guidance panel updated median {gmed:.1f} ms, p95 {gp95:.1f} ms (target "
              f"<= 50 ms median: {gmed / 50.0:.2f} of it); engine arrival -> state median {emed:.2f} ms "
              f"(GUI / engine {gmed / max(emed, 1e-6):.0f}x)")


if __name__ == "__main__":
    main()
