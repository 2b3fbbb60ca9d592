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
from typing import List, Optional, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep
from registration.spatial.transforms import format_matrix, invert
from registration.spatial.volume import LabelMap, Volume
from sample_data.simulator.probe import ConvexProbe
from sample_data.simulator.us_simulator import UltrasoundSimulator

from .probe_placement import BodyGeometry
from .sweep_motion import random_reference_to_ct
from .sweep_recording import Plan, Session, record_sweep

CONFIG_NAME = "PlusDeviceSet_ctus_convex.xml"


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
# long: the case's random draws in their recorded order, then the sweeps one by one
def make_sweeps(ct: Volume, labels: LabelMap, truth, out_dir, *, seed: int = 0,
                breathing_mm: float = 0.0, frames_per_sweep: int = 100, fps: float = 25.0,
                probe: Optional[ConvexProbe] = None, lesions: Optional[Sequence[str]] = None,
                survey: bool = True, compress: bool = True, embed_calibration: bool = True,
                deformed: int = 0, progress=None, simulator=None) -> dict:
    """Simulate and write the tracked sweeps of a case; return their ground truth.

    ct / labels: the CT (HU) and label map on one grid (LPS mm); ``truth``: a
    dict (or object) with ``lesions`` [{name, type, diameter_mm, centroid_lps}]
    (and optionally ``landmarks`` {name: LPS}, targets of the deformed sweeps).
    Writes ``out_dir/sweep_survey.igs.mha``, ``out_dir/sweep_<lesion>.igs.mha``
    (PLUS sequence metafiles with ProbeToTracker, ReferenceToTracker, statuses,
    timestamps) and ``out_dir/PlusDeviceSet_ctus_convex.xml`` (ImageToProbe).
    ``lesions`` limits the lesion sweeps (default: all). Same seed, same files.
    ``simulator``: a factory ``(ct, labels, probe=, seed=, lesion_types=) -> simulator`` used
    instead of :class:`UltrasoundSimulator` (e.g. a variant of its settings, or
    :class:`sample_data.simulator.plain_physics.PlainPhysicsSimulator`: robustness tests).
    ``deformed``: how many sweeps of the liver deformed between CT and scan to add
    after them (:mod:`sample_data.sweeps.deformed_sweeps`: a survey, then lesion sweeps;
    ``sweep_*_deformed.igs.mha``), with their own random stream, so the other files do
    not change with it.

    Returns {'reference_to_ct': 4x4 list, 'image_to_probe': 4x4 list, 'config': file
    name, 'breathing_mm', 'fps', 'probe': {...}, 'sweeps': [{'file', 'kind', 'target',
    'reference_to_ct', 'frames', 'invalid_frames', 'lesions_cut': {name: [frame indices]},
    'target_in_plane_frame', 'liver_shift_mm' (per frame, along -S), 'poses': {...}}]}
    and, with ``deformed``, 'deformation' (the organ field) and 'deformed_sweeps'.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    all_lesions = lesion_list(truth)
    chosen = [les for les in all_lesions if lesions is None or les["name"] in lesions]
    probe = probe or ConvexProbe()
    sim = (simulator or UltrasoundSimulator)(ct, labels, probe=probe, seed=seed,
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
        plans.append(Plan("survey", "survey", _right_lobe_target(labels), 28.0, 25.0, 10.0))
    for les in chosen:
        plans.append(Plan(les["name"], "lesion", les["centroid_lps"], rng.uniform(12, 18),
                          rng.uniform(3, 7), rng.uniform(2, 6)))
    n = int(frames_per_sweep)
    t0 = rng.uniform(100.0, 1000.0)
    result = {"reference_to_ct": reference_to_ct.tolist(), "image_to_probe": probe.image_to_probe.tolist(),
              "config": CONFIG_NAME, "breathing_mm": float(breathing_mm), "fps": float(fps),
              "probe": {"radius_mm": probe.radius_mm, "fov_deg": probe.fov_deg, "depth_mm": probe.depth_mm,
                        "frequency_mhz": probe.frequency_mhz, "cols": probe.cols, "rows": probe.rows,
                        "pixel_mm": probe.pixel_mm},
              "sweeps": []}
    session = Session(sim, body, probe, reference_to_ct, ct_to_reference, reference_to_tracker,
                      lesion_values, n, fps, float(breathing_mm), out_dir, compress, embed_calibration,
                      progress)
    files = []
    for k, plan in enumerate(plans):
        entry, t0, _ = record_sweep(session, rng, k, plan, t0)
        files.append(entry["file"])
        result["sweeps"].append(entry)
    if deformed > 0:
        from .deformed_sweeps import add_deformed_sweeps
        landmarks = truth.get("landmarks", {}) if isinstance(truth, dict) else getattr(truth, "landmarks", {})
        deformation, entries = add_deformed_sweeps(
            session, labels, all_lesions, dict(landmarks or {}), seed=seed, count=int(deformed),
            first_index=len(plans), t0=t0, right_lobe=_right_lobe_target(labels))
        result["deformation"] = deformation
        result["deformed_sweeps"] = entries
        files += [e["file"] for e in entries]
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
