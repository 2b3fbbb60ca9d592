"""Record one tracked sweep: place the probe, move it, simulate the frames, write the PLUS file.

Shared by the static sweeps (:mod:`sample_data.sweeps.tracked_sweeps`) and the
deformed ones (:mod:`sample_data.sweeps.deformed_sweeps`). Frames and matrices
as in :mod:`sample_data.sweeps.tracked_sweeps` (LPS mm, ``a_to_b``). The random
draws happen in a fixed order from the ``rng`` passed in, so a case's files do
not change when sweeps are added after it with another generator.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from registration.io.seq_mha_write import write_sequence
from registration.spatial.sweep import Sweep
from sample_data.simulator.probe import ConvexProbe
from sample_data.simulator.us_simulator import UltrasoundSimulator

from .probe_placement import BodyGeometry, best_lateral, face_skin, find_window, probe_pose, skin_normal
from .sweep_motion import _tracking_noise, sweep_poses, usable_tilt

BREATH_PERIOD_S = 4.0

#: A deformation applied while recording: ``warp(frame_index, nominal_probe_to_ct)`` ->
#: (the probe pose actually tracked, ``source_of`` for the simulator or None).
Warp = Callable[[int, np.ndarray], Tuple[np.ndarray, Optional[Callable]]]


@dataclass
class Session:
    """What every sweep of one case shares (the patient, the tracker, the probe, the files)."""

    sim: UltrasoundSimulator
    body: BodyGeometry
    probe: ConvexProbe
    reference_to_ct: np.ndarray
    ct_to_reference: np.ndarray
    reference_to_tracker: np.ndarray
    lesion_values: Dict[str, int]
    n: int
    fps: float
    breathing_mm: float
    out_dir: str
    compress: bool
    embed_calibration: bool
    progress: Optional[Callable] = None


@dataclass
class Plan:
    """One sweep to record: ``kind`` 'survey' | 'lesion', target (LPS mm), motion amplitudes."""

    name: str
    kind: str
    target: np.ndarray
    tilt_deg: float
    slide_mm: float
    lateral_mm: float


# long: one sweep end to end, in the random-draw order the recorded demo files depend on
def record_sweep(s: Session, rng, k: int, plan: Plan, t0: float, *, fname: Optional[str] = None,
                 warp: Optional[Warp] = None, sim_rng=None) -> Tuple[dict, float, np.ndarray]:
    """Record sweep number ``k``; returns (its truth entry, the next sweep's start time, the
    [n, 4, 4] tracked (true) probe_to_ct poses). ``warp`` deforms the tissue per frame;
    ``sim_rng`` is the simulator's noise generator (None: the simulator's own)."""
    probe, n, fps = s.probe, s.n, s.fps
    skin, beam, depth, obstructed = find_window(s.body, plan.target, max_depth_mm=probe.depth_mm)
    base_origin = skin + 0.5 * beam
    lat = best_lateral(s.sim, base_origin, beam, plan.target, rng)
    base = face_skin(probe_pose(base_origin, beam, lat), skin_normal(s.body, skin))
    tilt_range = usable_tilt(s.sim, base, depth, plan.tilt_deg)
    poses = sweep_poses(s.body, base, n=n, fps=fps, tilt_deg=tilt_range, slide_mm=plan.slide_mm,
                        lateral_mm=plan.lateral_mm, rng=rng)
    ts = t0 + np.arange(n) / fps + rng.normal(0, 0.0015, n)
    t0 = ts[-1] + rng.uniform(5.0, 20.0)
    t_rel = np.arange(n) / fps
    # Breathing: liver towards the feet (-S), 0 at the CT's phase, peak mid-cycle.
    shift_mm = s.breathing_mm * 0.5 * (1 - np.cos(2 * np.pi * t_rel / BREATH_PERIOD_S))
    frames = np.empty((n, probe.rows, probe.cols), np.uint8)
    cut: Dict[str, List[int]] = {}
    for i in range(n):
        source_of = None
        if warp is not None:
            poses[i], source_of = warp(i, poses[i])
        frames[i], lab = s.sim.simulate(poses[i] @ probe.image_to_probe, rng=sim_rng,
                                        liver_shift_lps=(0.0, 0.0, -shift_mm[i]), source_of=source_of)
        present = np.bincount(lab.reshape(-1), minlength=1 + max(s.lesion_values.values(), default=0))
        for lname, v in s.lesion_values.items():
            if present[v] >= 10:
                cut.setdefault(lname, []).append(i)
        if s.progress is not None:
            s.progress(k, i)
    probe_st = np.ones(n, bool)
    ref_st = np.ones(n, bool)
    mid = n // 2
    if k == 0 or rng.random() < 0.5:
        length = int(rng.integers(3, 6))
        start = int(rng.choice([rng.integers(5, max(6, mid - 8)), rng.integers(mid + 6, max(mid + 7, n - 8))]))
        probe_st[start:start + length] = False
    if k == 0:
        start = int(rng.integers(mid + 2, max(mid + 3, n - 5)))
        ref_st[start:start + 3] = False
    ref_rec = s.reference_to_tracker @ _tracking_noise(rng, n, 0.05, 0.02)
    probe_true = np.einsum("ij,jk,nkl->nil", s.reference_to_tracker, s.ct_to_reference, poses)
    probe_rec = probe_true @ _tracking_noise(rng, n)
    probe_rec[~probe_st] = np.eye(4)
    ref_rec[~ref_st] = np.eye(4)
    fname = fname or f"sweep_{plan.name}.igs.mha"
    sweep = Sweep(frames, ts, {"ProbeToTracker": probe_rec, "ReferenceToTracker": ref_rec},
                  {"ProbeToTracker": probe_st, "ReferenceToTracker": ref_st},
                  {"ImageToProbe": probe.image_to_probe} if s.embed_calibration else {},
                  metadata={"frame_fields": {"FrameNumber": [str(i) for i in range(n)]}},
                  source=os.path.join(s.out_dir, fname))
    write_sequence(sweep, os.path.join(s.out_dir, fname), compress=s.compress)
    invalid = np.nonzero(~(probe_st & ref_st))[0].tolist()
    entry = {
        "file": fname, "kind": plan.kind, "target": plan.name if plan.kind == "lesion" else "right lobe",
        "reference_to_ct": s.reference_to_ct.tolist(),
        "target_lps": np.asarray(plan.target).tolist(), "frames": n,
        "invalid_frames": invalid, "lesions_cut": cut, "target_in_plane_frame": mid,
        "breathing_mm": float(s.breathing_mm), "liver_shift_mm": np.round(shift_mm, 3).tolist(),
        "poses": {"skin_point_lps": np.round(skin, 2).tolist(),
                  "beam_direction_lps": np.round(beam, 4).tolist(),
                  "target_depth_mm": round(depth, 1), "window_obstructed": bool(obstructed),
                  "tilt_deg": [round(-tilt_range[0], 1), round(tilt_range[1], 1)],
                  "slide_mm": round(float(plan.slide_mm), 1),
                  "lateral_slide_mm": round(float(plan.lateral_mm), 1)},
        "timestamps_s": [float(ts[0]), float(ts[-1])],
    }
    return entry, t0, poses
