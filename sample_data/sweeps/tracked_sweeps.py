"""Tracked demo sweeps simulated from the CT, written the way PLUS records them.

Frames and matrices (p_b = a_to_b @ p_a, LPS mm unless stated):

* ``reference_to_ct``: the patient marker (Reference) is NOT the CT frame; a
  seeded random rigid transform per case (tens of degrees, ~100 mm).
* ``ReferenceToTracker``: the marker seen by a tracker ~1.5 m away, constant
  (the patient lies still) plus tracking noise.
* ``ProbeToTracker`` = ReferenceToTracker @ ct_to_reference @ probe_to_ct.
* ``ImageToProbe`` (pixels -> mm) from :class:`~sample_data.simulator.probe.ConvexProbe`,
  in the PLUS config XML (and, for convenience, in the sequence header).

So the ground truth mapping of a frame is
``image_to_ct = reference_to_ct @ inv(ReferenceToTracker) @ ProbeToTracker @ ImageToProbe``.

Probe poses: the face centre (Probe origin) sits on the skin (the last body
voxel along the beam axis, 0.5 mm deep), the beam axis points into the body.
A lesion sweep starts from the acoustic window with the shortest unobstructed
(no bone, no gas) straight path to the lesion, with the probe rotated about
its axis so the fan around the lesion is least shadowed, then rocks the plane
through the lesion (tilt) while sliding a little; the middle frame's plane
contains the lesion centroid. The survey sweep does the same over the right
lobe with a wider tilt and a longer slide. The tilt stops on each side where
more than 40 % of the fan down to the target would be shadowed by bone or gas
(no sweeping into the lung). Hand tremor (~0.5 mm, ~0.5 deg),
INVALID tracking bursts of 3-5 frames and cranio-caudal breathing of the
liver (``breathing_mm`` peak over a 4 s cycle, liver moving towards the feet)
are simulated.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from registration.io.seq_mha_write import write_sequence
from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import format_matrix, invert
from registration.spatial.volume import LabelMap, Volume
from sample_data.simulator.probe import ConvexProbe
from sample_data.simulator.us_simulator import UltrasoundSimulator

from .probe_placement import BodyGeometry, best_lateral, face_skin, find_window, probe_pose, skin_normal
from .sweep_motion import _tracking_noise, random_reference_to_ct, sweep_poses, usable_tilt

CONFIG_NAME = "PlusDeviceSet_ctus_convex.xml"
BREATH_PERIOD_S = 4.0


# --------------------------------------------------------------------------- truth input
def lesion_list(truth) -> List[dict]:
    """Normalise ``truth['lesions']`` (list of dicts/objects, or {name: dict}) to dicts
    with name, type ('adenocarcinoma'|'net'), diameter_mm, centroid_lps (3,) mm."""
    lesions = truth.get("lesions", []) if isinstance(truth, dict) else getattr(truth, "lesions", [])
    if isinstance(lesions, dict):
        lesions = [dict(v, name=k) if isinstance(v, dict) else v for k, v in lesions.items()]
    out = []
    for les in lesions:
        get = (les.get if isinstance(les, dict) else lambda k, d=None, o=les: getattr(o, k, d))
        c = get("centroid_lps", None)
        c = get("centroid_ct", None) if c is None else c
        c = get("centroid", None) if c is None else c
        if c is None:
            raise InputError(f"lesion {get('name')} in the truth has no centroid_lps")
        out.append({"name": str(get("name")), "type": str(get("type", get("kind", "adenocarcinoma"))),
                    "diameter_mm": float(get("diameter_mm", 10.0)),
                    "centroid_lps": np.asarray(c, dtype=float).reshape(3)})
    return out


# --------------------------------------------------------------------------- files
def write_plus_config(path, probe: ConvexProbe, sequence_files: Sequence[str]) -> None:
    """PLUS device-set config with ImageToProbe and the fan for volume reconstruction."""
    root = ET.Element("PlusConfiguration", version="2.3")
    dc = ET.SubElement(root, "DataCollection", StartupDelaySec="1.0")
    ET.SubElement(dc, "DeviceSet", Name="ctus synthetic: convex 3.5 MHz simulated from CT",
                  Description=f"Simulated convex probe, radius {probe.radius_mm:g} mm, field "
                              f"{probe.fov_deg:g} deg, depth {probe.depth_mm:g} mm, "
                              f"{probe.pixel_mm:.4f} mm/px. Sequences: {' '.join(sequence_files)}")
    dev = ET.SubElement(dc, "Device", Id="TrackedVideoDevice", Type="SavedDataSource",
                        SequenceFile=sequence_files[0] if sequence_files else "",
                        UseData="IMAGE_AND_TRANSFORM", UseOriginalTimestamps="TRUE", RepeatEnabled="TRUE")
    ds = ET.SubElement(ET.SubElement(dev, "DataSources"), "DataSource", Type="Video", Id="Video")
    ds.set("PortUsImageOrientation", "MF")
    ET.SubElement(ET.SubElement(dev, "OutputChannels"), "OutputChannel",
                  Id="TrackedVideoStream", VideoDataSourceId="Video")
    cd = ET.SubElement(root, "CoordinateDefinitions")
    ET.SubElement(cd, "Transform", From="Image", To="Probe", Matrix=format_matrix(probe.image_to_probe),
                  Error="0.0", Date="simulated")
    apex = probe.probe_to_image @ np.array([0.0, -probe.radius_mm, 0.0, 1.0])
    ET.SubElement(root, "VolumeReconstruction", ImageCoordinateFrame="Image",
                  ReferenceCoordinateFrame="Reference", OutputSpacing="0.5 0.5 0.5",
                  FanAnglesDeg=f"{-probe.fov_deg / 2:g} {probe.fov_deg / 2:g}",
                  FanOriginPixel=f"{apex[0]:.3f} {apex[1]:.3f}",
                  FanRadiusStartPixel=f"{probe.radius_mm / probe.pixel_mm:.3f}",
                  FanRadiusStopPixel=f"{(probe.radius_mm + probe.depth_mm) / probe.pixel_mm:.3f}",
                  Interpolation="LINEAR", Optimization="FULL", CompoundingMode="MEAN",
                  FillHoles="OFF")
    ET.indent(root)
    atomic_write_text(path, ET.tostring(root, encoding="unicode") + "\n")


def _right_lobe_target(labels: LabelMap) -> np.ndarray:
    """Centroid of the right half (patient's right = -x LPS) of the liver label."""
    liver = labels.mask("liver")
    k, j, i = np.nonzero(liver)
    pts = labels.index_to_lps(np.stack([i, j, k], -1)[::7])
    right = pts[pts[:, 0] <= np.median(pts[:, 0])]
    return right.mean(axis=0)


# --------------------------------------------------------------------------- main entry
def make_sweeps(ct: Volume, labels: LabelMap, truth, out_dir, *, seed: int = 0,
                breathing_mm: float = 0.0, frames_per_sweep: int = 100, fps: float = 25.0,
                probe: Optional[ConvexProbe] = None, lesions: Optional[Sequence[str]] = None,
                survey: bool = True, compress: bool = True, embed_calibration: bool = True,
                progress=None) -> dict:
    """Simulate and write the tracked sweeps of a case; return their ground truth.

    ct / labels: the CT (HU) and label map on one grid (LPS mm); ``truth``: a
    dict (or object) with ``lesions`` [{name, type, diameter_mm, centroid_lps}].
    Writes ``out_dir/sweep_survey.igs.mha``, ``out_dir/sweep_<lesion>.igs.mha``
    (PLUS sequence metafiles with ProbeToTracker, ReferenceToTracker, statuses,
    timestamps) and ``out_dir/PlusDeviceSet_ctus_convex.xml`` (ImageToProbe).
    ``lesions`` limits the lesion sweeps (default: all). Same seed, same files.

    Returns {'reference_to_ct': 4x4 list, 'image_to_probe': 4x4 list, 'config': file
    name, 'breathing_mm', 'fps', 'probe': {...}, 'sweeps': [{'file', 'kind', 'target',
    'reference_to_ct', 'frames', 'invalid_frames', 'lesions_cut': {name: [frame indices]},
    'target_in_plane_frame', 'liver_shift_mm' (per frame, along -S), 'poses': {...}}]}.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    all_lesions = lesion_list(truth)
    chosen = [les for les in all_lesions if lesions is None or les["name"] in lesions]
    probe = probe or ConvexProbe()
    sim = UltrasoundSimulator(ct, labels, probe=probe, seed=seed,
                              lesion_types={les["name"]: les["type"] for les in all_lesions})
    body = BodyGeometry(ct, labels)
    reference_to_ct = random_reference_to_ct(rng, ct)
    ct_to_reference = invert(reference_to_ct)
    ref_rot = Rotation.from_rotvec(np.deg2rad(rng.uniform(20, 60)) * _unit(rng.normal(size=3)))
    reference_to_tracker = np.eye(4)
    reference_to_tracker[:3, :3] = ref_rot.as_matrix()
    reference_to_tracker[:3, 3] = [rng.uniform(-200, 200), rng.uniform(-200, 200), rng.uniform(-1800, -1200)]
    lesion_values = {les["name"]: labels.value_of(les["name"]) for les in all_lesions
                     if les["name"] in labels.names}
    plans = []
    if survey:
        plans.append(("survey", "survey", _right_lobe_target(labels), 28.0, 25.0, 10.0))
    for les in chosen:
        plans.append((les["name"], "lesion", les["centroid_lps"], rng.uniform(12, 18),
                      rng.uniform(3, 7), rng.uniform(2, 6)))
    n = int(frames_per_sweep)
    t0 = rng.uniform(100.0, 1000.0)
    result = {"reference_to_ct": reference_to_ct.tolist(), "image_to_probe": probe.image_to_probe.tolist(),
              "config": CONFIG_NAME, "breathing_mm": float(breathing_mm), "fps": float(fps),
              "probe": {"radius_mm": probe.radius_mm, "fov_deg": probe.fov_deg, "depth_mm": probe.depth_mm,
                        "frequency_mhz": probe.frequency_mhz, "cols": probe.cols, "rows": probe.rows,
                        "pixel_mm": probe.pixel_mm},
              "sweeps": []}
    files = []
    for k, (name, kind, target, tilt, slide, lateral) in enumerate(plans):
        skin, beam, depth, obstructed = find_window(body, target, max_depth_mm=probe.depth_mm)
        base_origin = skin + 0.5 * beam
        lat = best_lateral(sim, base_origin, beam, target, rng)
        base = face_skin(probe_pose(base_origin, beam, lat), skin_normal(body, skin))
        tilt_range = usable_tilt(sim, base, depth, tilt)
        poses = sweep_poses(body, base, n=n, fps=fps, tilt_deg=tilt_range, slide_mm=slide,
                            lateral_mm=lateral, rng=rng)
        ts = t0 + np.arange(n) / fps + rng.normal(0, 0.0015, n)
        t0 = ts[-1] + rng.uniform(5.0, 20.0)
        t_rel = np.arange(n) / fps
        # Breathing: liver towards the feet (-S), 0 at the CT's phase, peak mid-cycle.
        shift_mm = breathing_mm * 0.5 * (1 - np.cos(2 * np.pi * t_rel / BREATH_PERIOD_S))
        frames = np.empty((n, probe.rows, probe.cols), np.uint8)
        cut: Dict[str, List[int]] = {}
        for i in range(n):
            frames[i], lab = sim.simulate(poses[i] @ probe.image_to_probe,
                                          liver_shift_lps=(0.0, 0.0, -shift_mm[i]))
            present = np.bincount(lab.reshape(-1), minlength=1 + max(lesion_values.values(), default=0))
            for lname, v in lesion_values.items():
                if present[v] >= 10:
                    cut.setdefault(lname, []).append(i)
            if progress is not None:
                progress(k, i)
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
        ref_rec = reference_to_tracker @ _tracking_noise(rng, n, 0.05, 0.02)
        probe_true = np.einsum("ij,jk,nkl->nil", reference_to_tracker, ct_to_reference, poses)
        probe_rec = probe_true @ _tracking_noise(rng, n)
        probe_rec[~probe_st] = np.eye(4)
        ref_rec[~ref_st] = np.eye(4)
        fname = f"sweep_{name}.igs.mha"
        sweep = Sweep(frames, ts, {"ProbeToTracker": probe_rec, "ReferenceToTracker": ref_rec},
                      {"ProbeToTracker": probe_st, "ReferenceToTracker": ref_st},
                      {"ImageToProbe": probe.image_to_probe} if embed_calibration else {},
                      metadata={"frame_fields": {"FrameNumber": [str(i) for i in range(n)]}},
                      source=os.path.join(out_dir, fname))
        write_sequence(sweep, os.path.join(out_dir, fname), compress=compress)
        files.append(fname)
        invalid = np.nonzero(~(probe_st & ref_st))[0].tolist()
        result["sweeps"].append({
            "file": fname, "kind": kind, "target": name if kind == "lesion" else "right lobe",
            "reference_to_ct": reference_to_ct.tolist(),
            "target_lps": np.asarray(target).tolist(), "frames": n,
            "invalid_frames": invalid, "lesions_cut": cut, "target_in_plane_frame": mid,
            "breathing_mm": float(breathing_mm), "liver_shift_mm": np.round(shift_mm, 3).tolist(),
            "poses": {"skin_point_lps": np.round(skin, 2).tolist(),
                      "beam_direction_lps": np.round(beam, 4).tolist(),
                      "target_depth_mm": round(depth, 1), "window_obstructed": bool(obstructed),
                      "tilt_deg": [round(-tilt_range[0], 1), round(tilt_range[1], 1)],
                      "slide_mm": round(float(slide), 1),
                      "lateral_slide_mm": round(float(lateral), 1)},
            "timestamps_s": [float(ts[0]), float(ts[-1])],
        })
    write_plus_config(os.path.join(out_dir, CONFIG_NAME), probe, files)
    return result


def _unit(v):
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def frame_image_to_ct(sweep: Sweep, reference_to_ct, image_to_probe=None) -> np.ndarray:
    """[n,4,4] image_to_ct from a sweep's recorded transforms (NaN where tracking is INVALID)."""
    i2p = np.asarray(image_to_probe if image_to_probe is not None else sweep.calibration["ImageToProbe"])
    ptt = sweep.transforms["ProbeToTracker"]
    rtt = sweep.transforms["ReferenceToTracker"]
    ok = sweep.statuses["ProbeToTracker"] & sweep.statuses["ReferenceToTracker"]
    out = np.full((len(sweep), 4, 4), np.nan)
    for i in np.nonzero(ok)[0]:
        out[i] = np.asarray(reference_to_ct) @ np.linalg.inv(rtt[i]) @ ptt[i] @ i2p
    return out
