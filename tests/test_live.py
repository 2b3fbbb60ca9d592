"""Live OpenIGTLink: loopback streaming, recording, and the faults a clinic sees.

Real sockets on 127.0.0.1 with ephemeral ports; every wait is bounded.
"""
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.live.igtl_client import LiveClient
from registration.live.igtl_protocol import StreamParser, transform_message
from registration.live.igtl_server import IgtlServer, SweepStreamer
from registration.live.live_recorder import SequenceRecorder
from registration.io.seq_mha_read import read_sequence
from registration.io.seq_mha_write import write_sequence
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import rigid_matrix


def synthetic_sweep(n=60, rows=480, cols=640, seed=0, invalid=(20, 21, 22)):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    p2r = np.stack([rigid_matrix([i * 0.2, 0, 3, i * 0.5, 10, -5]) for i in range(n)])
    ok = np.ones(n, bool)
    ok[list(invalid)] = False
    return Sweep(frames, np.arange(n) / 30.0, {"ProbeToReference": p2r}, {"ProbeToReference": ok},
                 {"ImageToProbe": np.diag([0.3, 0.3, 1.0, 1.0])})


def wait_until(cond, timeout):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if cond():
            return time.monotonic() - t
        time.sleep(0.005)
    raise AssertionError(f"condition not met within {timeout} s")



@pytest.mark.slow
def test_loopback_demo_sweep_30fps_10s_receives_records_and_matches(tmp_path, demo_case):
    """The demo lesion sweep (640x480) replayed at 30 fps, looping, for 10 s."""
    truth_cfg = next(demo_case.glob("PlusDeviceSet_*.xml"))
    sweep = read_sequence(demo_case / "sweep_lesion_1.igs.mha", calibration=truth_cfg)
    assert sweep.image_shape == (480, 640)
    n = len(sweep)
    rec = SequenceRecorder(tmp_path / "live.igs.mhd")
    with IgtlServer(port=0) as server, LiveClient(port=server.port) as client:
        wait_until(lambda: server.n_clients == 1, 2)
        streamer = SweepStreamer(sweep, server, fps=30, loop=True).start()
        got = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10.0:
            for f in client.drain():
                got.append(f)
                rec.add_frame(f)
            time.sleep(0.01)
        streamer.stop()
        time.sleep(0.3)
        for f in client.drain():
            got.append(f)
            rec.add_frame(f)
        sent = streamer.sent_frames
        stats = client.stats()
    rec.finish()
    lat = np.median([f.latency_ms for f in got])
    print(f"\ndemo sweep 640x480 @30 fps for 10 s: received {len(got)}/{sent} frames, median latency "
          f"{lat:.1f} ms, client fps {stats['fps']:.1f}")
    assert sent >= 290
    assert len(got) >= 0.95 * sent
    assert lat <= 30.0
    # the recording equals the source frame by frame (the stream loops over the sweep)
    i2r, valid = sweep.image_to_reference_all()
    back = read_sequence(tmp_path / "live.igs.mhd")
    assert len(back) == len(got)
    src = np.array([f.index % n for f in got])
    assert np.array_equal(back.frames, sweep.frames[src])
    b_i2r, b_valid = back.image_to_reference_all()
    assert np.array_equal(b_valid, valid[src])
    assert b_valid.sum() > 0.9 * len(back)
    assert np.allclose(b_i2r[b_valid], i2r[src][b_valid], rtol=1e-6, atol=1e-3)  # float32 on the wire
    img = sitk.ReadImage(str(tmp_path / "live.igs.mhd"))
    assert img.GetSize() == (640, 480, len(back))


def test_recording_is_valid_when_the_app_is_killed(tmp_path):
    sweep = synthetic_sweep(n=12, rows=48, cols=64, invalid=(3,))
    path = tmp_path / "killed.igs.mhd"
    rec = SequenceRecorder(path, header_every_s=0.0)
    i2r, _ = sweep.image_to_reference_all()
    for i in range(10):
        rec.add(sweep.frames[i], i2r[i] if sweep.valid[i] else None, sweep.timestamps[i])
    # "kill": more pixels reach the .raw, the header is never updated again, no finish()
    rec.header_every_s = 1e9
    rec.add(sweep.frames[10], i2r[10], sweep.timestamps[10])
    rec._raw.write(b"\x07" * 100)  # a partly written frame
    rec._raw.flush()
    back = read_sequence(path)
    assert len(back) == 10 and np.array_equal(back.frames, sweep.frames[:10])
    assert sitk.ReadImage(str(path)).GetSize() == (64, 48, 10)
    with pytest.raises(InputError, match="never overwrites"):
        SequenceRecorder(path)


def test_server_killed_client_reports_within_1s_and_reconnects(free_port):
    port = free_port()
    sweep = synthetic_sweep(n=30, rows=32, cols=32)
    server = IgtlServer(port=port)
    client = LiveClient(port=port, max_backoff_s=0.2).start()
    try:
        wait_until(lambda: client.connected, 2)
        streamer = SweepStreamer(sweep, server, fps=100, loop=True).start()
        wait_until(lambda: client.latest() is not None, 2)
        t_kill = time.monotonic()
        streamer.stop()
        server.close()
        wait_until(lambda: client.state != "connected", 1.0)
        print(f"\ndisconnect noticed after {(time.monotonic() - t_kill) * 1e3:.0f} ms: {client.state_text}")
        ok, why = client.tracking()
        assert not ok and "not connected" in why
        server2 = IgtlServer(port=port)
        try:
            wait_until(lambda: client.connected, 3)
            n0 = client.frames_received
            s2 = SweepStreamer(sweep, server2, fps=100).start()
            wait_until(lambda: client.frames_received > n0 + 5, 3)
            s2.stop()
            assert client.reconnects >= 1
        finally:
            server2.close()
    finally:
        client.stop()


def test_transform_stream_stops_stale_within_300ms():
    sweep = synthetic_sweep(n=400, rows=32, cols=32, invalid=())
    with IgtlServer(port=0) as server, LiveClient(port=server.port, image_device="Image_Reference",
                                                  transform_device="ProbeToReference",
                                                  image_to_probe=np.diag([0.3, 0.3, 1, 1])) as client:
        wait_until(lambda: server.n_clients == 1, 2)
        streamer = SweepStreamer(sweep, server, fps=30).start()
        wait_until(lambda: client.latest() is not None and client.latest().tracking_ok, 2)
        f = client.latest()
        assert f.tracking_ok and f.image_to_reference is not None
        t_stop = time.monotonic()
        streamer.stop_transforms.set()
        dt = wait_until(lambda: not client.tracking()[0], 0.3)
        n0 = client.frames_received
        wait_until(lambda: client.frames_received > n0 + 3, 1)  # images keep coming
        ok, why = client.tracking()
        print(f"\nstale flagged after {dt * 1e3:.0f} ms: {why}")
        assert "stale" in why
        assert not client.latest().tracking_ok and client.latest().image_to_reference is None
        streamer.stop()
        del t_stop


def test_garbage_wrong_crc_and_huge_body_do_not_kill_the_server():
    sweep = synthetic_sweep(n=200, rows=32, cols=32, invalid=())
    with IgtlServer(port=0) as server, LiveClient(port=server.port) as good:
        wait_until(lambda: server.n_clients == 1, 2)
        streamer = SweepStreamer(sweep, server, fps=100).start()
        # 1) garbage bytes
        g = socket.create_connection(("127.0.0.1", server.port))
        g.sendall(b"\xff" * 200)
        # 2) a message with a wrong CRC (connection stays, message skipped)
        c = socket.create_connection(("127.0.0.1", server.port))
        bad = bytearray(transform_message(np.eye(4), time.time(), "Needle"))
        bad[-1] ^= 0xFF
        c.sendall(bytes(bad))
        # 3) a header announcing a 1 TB body
        h = socket.create_connection(("127.0.0.1", server.port))
        hdr = struct.pack("> H 12s 20s I I Q Q", 1, b"IMAGE", b"Evil", 0, 0, 10 ** 12, 0)
        h.sendall(hdr)
        wait_until(lambda: any("CRC mismatch" in e for e in server.events), 2)
        wait_until(lambda: sum("protocol error" in e for e in server.events) >= 2, 2)
        n0 = good.frames_received
        wait_until(lambda: good.frames_received > n0 + 10, 2)  # the good client still streams
        assert good.connected
        for s in (g, c, h):
            s.close()
        streamer.stop()
    assert any("announces a body of 1000000000000 bytes" in e for e in server.events)


def test_client_survives_a_garbage_server():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    client = LiveClient(port=port, max_backoff_s=0.1).start()
    try:
        conn, _ = srv.accept()
        good = bytearray(transform_message(np.eye(4), time.time(), "ProbeToReference"))
        good[-1] ^= 1
        conn.sendall(bytes(good))  # wrong CRC: skipped, logged
        wait_until(lambda: client.skipped == 1, 2)
        conn.sendall(b"\x00\x01GARBAGE!!" * 20)  # not OpenIGTLink: disconnect, retry
        wait_until(lambda: client.state != "connected", 2)
        assert "protocol error" in " ".join(client.events)
        conn.close()
        conn2, _ = srv.accept()  # it came back by itself
        conn2.close()
    finally:
        client.stop()
        srv.close()


def test_closed_port_clear_message_no_hang(free_port):
    port = free_port()
    client = LiveClient(port=port, max_reconnect_attempts=2, max_backoff_s=0.05).start()
    t = time.monotonic()
    wait_until(lambda: client.state == "disconnected", 1.0)
    assert "connection refused" in client.state_text and str(port) in client.state_text
    client.stop()
    assert time.monotonic() - t < 2.5


def test_ctus_replay_serves_a_sweep_file(tmp_path, free_port):
    sweep = synthetic_sweep(n=40, rows=60, cols=80)
    path = tmp_path / "s.igs.mha"
    write_sequence(sweep, path)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "planner.cli.main", "replay", "--sweep", str(path),
                             "--port", str(port), "--fps", "40", "--loop", "--duration", "4"],
                            stderr=subprocess.PIPE, text=True)
    try:
        client = LiveClient(port=port, max_backoff_s=0.1).start()
        wait_until(lambda: client.frames_received >= 20, 5)
        f = client.latest()
        assert f.image.shape == (60, 80)
        client.stop()
    finally:
        out = proc.communicate(timeout=10)[1]
    assert proc.returncode == 0, out
    assert "40 frames (3 with invalid tracking)" in out


def test_ctus_replay_bad_input(tmp_path):
    r = subprocess.run([sys.executable, "-m", "planner.cli.main", "replay", "--sweep", str(tmp_path / "no.mha")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no.mha" in r.stderr


def test_parser_rejects_non_igtl_header():
    from registration.live.igtl_protocol import ProtocolError
    with pytest.raises(ProtocolError):
        StreamParser().feed(b"\xff" * 58)


# ---------------------------------------------------------------- tracked needle
def needle_poses(n):
    return np.stack([rigid_matrix([0, 5, i, 10 + i, -20, 30 - i]) for i in range(n)])


def test_needle_transform_streams_with_its_status_and_stale_watchdog():
    """NeedleToReference and NeedleTipToNeedle reach the client; INVALID, then stale, are reported."""
    n = 300
    sweep = synthetic_sweep(n=n, rows=32, cols=32, invalid=())
    poses = needle_poses(n)
    ok = np.ones(n, bool)
    ok[20:30] = False
    tip = np.eye(4)
    tip[2, 3] = 160.0
    got = []
    with IgtlServer(port=0) as server, LiveClient(port=server.port, on_transform=got.append) as client:
        wait_until(lambda: server.n_clients == 1, 2)
        streamer = SweepStreamer(sweep, server, fps=60, extra_transforms={"NeedleToReference": (poses, ok)},
                                 static_transforms={"NeedleTipToNeedle": tip}).start()
        wait_until(lambda: any(s.device == "NeedleToReference" and not s.ok for s in got), 3)
        assert client.tool_tracking("NeedleToReference")[1].endswith("INVALID (marker not seen by the tracker)")
        wait_until(lambda: client.tool_tracking("NeedleToReference")[0], 2)
        s = client.latest_transform("NeedleToReference")
        assert s.ok and np.min(np.abs(poses - s.matrix).reshape(n, -1).max(1)) < 1e-3
        assert np.allclose(client.latest_transform("NeedleTipToNeedle").matrix, tip, atol=1e-4)
        f = client.latest()
        assert "NeedleToReference" in f.transforms and "NeedleTipToNeedle" in f.transforms
        streamer.stop_tools.set()
        dt = wait_until(lambda: not client.tool_tracking("NeedleToReference")[0], 0.5)
        print(f"\nneedle stale after {dt * 1e3:.0f} ms: {client.tool_tracking('NeedleToReference')[1]}")
        assert "stale" in client.tool_tracking("NeedleToReference")[1]
        assert client.tracking()[0]          # the probe is still tracked: only the needle is stale
        streamer.stop()
    needle = [s for s in got if s.device == "NeedleToReference" and s.ok]
    assert needle and all(s.received >= s.timestamp - 0.5 for s in needle)
    # every OK sample is one of the poses sent (float32 on the wire)
    assert all(np.min(np.abs(poses - s.matrix).reshape(n, -1).max(1)) < 1e-3 for s in needle)
    assert client.tool_tracking("ProbeToReference")[0] is False   # stopped client: not connected


def test_recorder_stores_the_needle_and_the_replay_streams_it_back(tmp_path):
    n = 40
    sweep = synthetic_sweep(n=n, rows=24, cols=32, invalid=())
    poses = needle_poses(n)
    ok = np.ones(n, bool)
    ok[5] = False
    rec = SequenceRecorder(tmp_path / "needle.igs.mhd")
    with IgtlServer(port=0) as server, LiveClient(port=server.port) as client:
        wait_until(lambda: server.n_clients == 1, 2)
        streamer = SweepStreamer(sweep, server, fps=40, extra_transforms={"NeedleToReference": (poses, ok)}).start()
        wait_until(lambda: not streamer.running, 5)
        time.sleep(0.2)
        frames = client.drain()
    for f in frames:
        rec.add_frame(f)
    rec.finish()
    back = read_sequence(tmp_path / "needle.igs.mhd")
    assert len(back) == len(frames) >= 0.9 * n
    assert "NeedleToReference" in back.transforms and "ProbeToReference" not in back.transforms
    from registration.tracking.needle_tool import tool_to_reference
    mats, valid = tool_to_reference(back, "Needle")
    idx = np.array([f.index for f in frames])
    assert not valid[idx == 5].any() and valid[idx != 5].all()
    assert np.allclose(mats[valid], poses[idx[valid]], atol=1e-3)
    # the replay of the recording streams NeedleToReference from the file again
    with IgtlServer(port=0) as server:
        s2 = SweepStreamer(back, server, fps=50)
        assert list(s2.tools) == ["NeedleToReference"]
        msgs = s2.messages_for(0, time.time())
        parsed = [m for m in StreamParser().feed(b"".join(msgs)) if m.device_name == "NeedleToReference"]
        assert len(parsed) == 1 and np.allclose(parsed[0].matrix, poses[idx[0]], atol=1e-3)


def test_replay_streams_a_plus_stylus_as_stylus_to_reference(shared_data):
    """A real PLUS recording: StylusToTracker and ReferenceToTracker -> StylusToReference on the wire."""
    seq = shared_data("plus", "sequences", "SpinePhantomFreehand.igs.mha")
    cfg = shared_data("plus", "configs", "PlusDeviceSet_SpinePhantomFreehandReconstructionOnly.xml")
    sweep = read_sequence(seq, calibration=cfg)
    with IgtlServer(port=0) as server:
        streamer = SweepStreamer(sweep, server, fps=30)
        assert list(streamer.tools) == ["StylusToReference"]
        msgs = StreamParser().feed(b"".join(streamer.messages_for(3, time.time())))
    stylus = [m for m in msgs if m.device_name == "StylusToReference"]
    expect = np.linalg.inv(sweep.transforms["ReferenceToTracker"][3]) @ sweep.transforms["StylusToTracker"][3]
    assert len(stylus) == 1 and np.allclose(stylus[0].matrix, expect, atol=1e-3)
