"""US view frame rate with the CT overlay, and the worst UI stall while engine work runs.

Run under Xvfb (the numbers are for software rendering on this machine):

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python benchmarks/gui_frame_rate.py [--with-3d]

``--with-3d`` keeps the 3D view (pyvista, docked in the window and rendered
off-screen) open, as in the real window, so its plane updates compete with the US view.

"overlay blend/checker" time the US view alone (show_frame + its repaint), as before the
fusion layout existed; "fusion layout" adds what the screen shows per frame with a
registration: the CT resliced in the US plane beside it and the three slice views
following the probe (their repaints included).

Data: the demo case when ``sample_data.case.demo_case`` exists; otherwise the real
abdominal CT (../shared/data/ct/abdomen-20slice) with the real liver sweep
(../shared/data/liver-us). The real pair has no common patient, so the
registration used here is an ARBITRARY alignment that puts the sweep's
centre into the CT: good for timing (the overlay does all its work), not for
anatomy. Baseline (same run): the same frames drawn without an overlay.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def load_case():
    from gui.core import loaders
    try:
        from sample_data.case.demo_case import ensure_demo_case
        folder = Path(ensure_demo_case())
        ct = loaders.load_ct(folder / "ct_portal.nrrd")
        labels = loaders.load_labels(folder / "labels.nrrd", folder / "label_names.json", ct)
        sweep_path = sorted(folder.glob("*.igs.mha"))[0]
        configs = sorted(folder.glob("*.xml"))
        sweep = loaders.load_sweep(sweep_path, configs[0] if configs else None)
        import json
        truth = json.loads((folder / "truth.json").read_text())
        name = "demo case"
        ref_to_ct = None
        for key, val in truth.items():   # the truth's per-sweep reference_to_ct, for timing only
            if isinstance(val, dict) and "reference_to_ct" in val:
                ref_to_ct = np.asarray(val["reference_to_ct"], float)
                break
        if ref_to_ct is None and "reference_to_ct" in truth:
            ref_to_ct = np.asarray(truth["reference_to_ct"], float)
        return name, ct, labels, sweep, ref_to_ct
    except ImportError:
        pass
    ct_dir = DATA / "ct" / "abdomen-20slice"
    ct = loaders.load_ct(ct_dir / "dicom")
    labels = loaders.load_labels(ct_dir / "labels.nii.gz", ct_dir / "label_names.txt", ct)
    sweep = loaders.load_sweep(DATA / "liver-us" / "liver_sweep.igs.mha")
    return "real abdomen CT + real liver sweep (arbitrary alignment)", ct, labels, sweep, None


def arbitrary_alignment(ct, sweep) -> np.ndarray:
    """reference_to_ct putting the middle frame's centre at the liver/CT centre (timing only)."""
    i2r, valid = sweep.image_to_reference_all()
    mid = int(np.flatnonzero(valid)[len(np.flatnonzero(valid)) // 2])
    rows, cols = sweep.image_shape
    centre_ref = (i2r[mid] @ [cols / 2, rows / 2, 0, 1])[:3]
    lo, hi = ct.bounds_lps()
    m = np.eye(4)
    m[:3, 3] = (lo + hi) / 2 - centre_ref
    return m


def main() -> int:
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])
    from gui.window.main_window import MainWindow
    from gui.core.session import RegistrationState

    t0 = time.perf_counter()
    name, ct, labels, sweep, ref_to_ct = load_case()
    print(f"data: {name}; CT {ct.shape_ijk}, sweep {len(sweep)} frames {sweep.image_shape} "
          f"(loaded in {time.perf_counter() - t0:.1f} s)")
    with_3d = "--with-3d" in sys.argv
    w = MainWindow(enable_3d=with_3d)
    w.resize(1500, 950)
    w.show()
    app.processEvents()
    w.set_ct(ct, labels)
    w.set_sweep(sweep)
    if with_3d:
        w.view3d.wait_for_surfaces()
        app.processEvents()
        print("3D view on, docked in the window (off-screen VTK; surfaces built; while playing the "
              "US plane is redrawn in 3D every 2 s)")
    us = w.us_view
    print(f"US view size {us.width()}x{us.height()} px")

    def run_frames(n: int) -> float:
        """Frames/s for show_frame + synchronous repaint of the US view over n frames."""
        idx = np.arange(n) % len(sweep)
        t = time.perf_counter()
        for i in idx:
            w.player.seek(int(i), force=True)
            us.repaint()
        return n / (time.perf_counter() - t)

    n = min(120, len(sweep))
    run_frames(5)
    base = run_frames(n)
    print(f"baseline (no registration, no overlay): {base:6.1f} frames/s")
    if ref_to_ct is None:
        ref_to_ct = arbitrary_alignment(ct, sweep)
    w.set_follow_probe(False)          # the US view alone, as before the fusion layout
    w.set_registration(RegistrationState(ref_to_ct, "benchmark alignment", tre_mm=None))
    w.set_view_layout("ct_us")
    app.processEvents()
    results = {}
    for mode in ("blend", "checker"):
        w.set_overlay_mode(mode)
        run_frames(5)
        fps = run_frames(n)
        shown = sum(1 for i in range(len(sweep)) if w._valid[i])
        results[mode] = fps
        if mode == "blend":
            print(f"  overlay grid: 1 sample per {us.overlay.step} frame pixels "
                  f"({us.overlay.step * sweep.pixel_spacing[0]:.2f} mm; CT voxel {min(ct.spacing):.2f} mm)")
        print(f"overlay {mode:8s}: {fps:6.1f} frames/s  ({fps / base:.2f}x baseline; "
              f"{shown}/{len(sweep)} frames have valid tracking)")
    # Fusion layout: US, the CT in its plane and the three slice views following the probe.
    w.set_overlay_mode("blend")
    w.set_view_layout("fusion")
    w.set_follow_probe(True)
    app.processEvents()
    panes = [w.fused_view, *w.views.values()]

    def run_fusion(n: int) -> float:
        idx = np.arange(n) % len(sweep)
        t = time.perf_counter()
        for i in idx:
            w.player.seek(int(i), force=True)
            us.repaint()
            for pane in panes:
                pane.repaint()
        return n / (time.perf_counter() - t)

    run_fusion(5)
    fps = run_fusion(n)
    results["fusion"] = fps
    print(f"fusion layout (US + CT in US plane + 3 slices following): {fps:6.1f} frames/s "
          f"({fps / base:.2f}x baseline; fused view {w.fused_view.width()}x{w.fused_view.height()} px)")
    # Breakdown: reslice (CT + labels) vs drawing.
    i2r, valid = sweep.image_to_reference_all()
    k = int(np.flatnonzero(valid)[0])
    t = time.perf_counter()
    for _ in range(30):
        us.engine.compute(sweep.image_shape, i2r[k], w.registration)
    compute_ms = (time.perf_counter() - t) / 30 * 1000
    print(f"  overlay compute (nearest CT + labels samples, lesion distances): {compute_ms:.1f} ms/frame")

    # Playing in real time at 4x: distinct frames shown per second.
    shown = []
    w.player.frame_changed.connect(lambda i: shown.append(time.perf_counter()))
    w.player.set_speed(4.0)
    w.player.seek(0, force=True)
    shown.clear()
    w.player.play()
    t0, cpu0 = time.perf_counter(), time.process_time()
    t_end = t0 + 4.0
    while time.perf_counter() < t_end:
        app.processEvents()
    w.player.pause()
    cpu = time.process_time() - cpu0
    share = cpu / (time.perf_counter() - t0)
    if len(shown) > 1:
        rate = (len(shown) - 1) / (shown[-1] - shown[0])
        rec_fps = 1.0 / np.median(np.diff(sweep.timestamps))
        # CPU per frame does not depend on what else runs on the machine; frames/s does.
        print(f"playing at 4x ({4 * rec_fps:.0f} frames/s demanded): {rate:.1f} frames/s shown (fusion layout, "
              f"slice views following); {cpu / len(shown) * 1000:.1f} ms CPU per frame = "
              f"{len(shown) / cpu:.0f} frames/s on a free core (this process got {share:.0%} of one)")

    # Worst UI stall while engine work runs in a worker (10 ms heartbeat timer).
    def stall_during(label, fn, *args, **kwargs):
        gaps = []
        last = [time.perf_counter()]

        def beat():
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.setInterval(10)
        timer.timeout.connect(beat)
        timer.start()
        t = time.perf_counter()
        worker = w.run_worker(label, fn, lambda r: None, *args, **kwargs)
        while not worker.isFinished():
            app.processEvents()
            time.sleep(0.001)
        app.processEvents()
        timer.stop()
        gaps_ms = np.array(gaps[1:] or [0.0]) * 1000
        print(f"UI heartbeat during {label} ({time.perf_counter() - t:.1f} s): worst gap {gaps_ms.max():.0f} ms, "
              f"95th pct {np.percentile(gaps_ms, 95):.0f} ms (timer interval 10 ms)"
              + ("" if worker.error is None else f"; the work itself failed: {worker.error}"))

    from gui.core import loaders
    stall_during("loading the sweep", loaders.load_sweep, sweep.source)
    try:
        from registration.align.intensity_registration import register_sweep

        def reg(progress):
            return register_sweep(ct, sweep, ref_to_ct, progress=progress, n_starts=1,
                                  max_evals_per_start=60, hessian=False)

        stall_during("LC2 registration", reg)
    except ImportError:
        print("registration.align.intensity_registration not available: no stall measurement during registration")
    w.close()
    ok = all(v >= 30 for v in results.values())
    print(f"target >= 30 frames/s with overlay: {'met' if ok else 'NOT met'} on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
