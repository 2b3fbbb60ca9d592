"""Tracked demo sweeps simulated from the CT, written the way PLUS records them.

Frames and matrices (p_b = a_to_b @ p_a, LPS mm unless stated):

* ``reference_to_ct``: the patient marker (Reference) is NOT the CT frame; a
  seeded random rigid transform per case (tens of degrees, ~100 mm).
* ``ReferenceToTracker``: the marker seen by a tracker ~1.5 m away, constant
  (the patient lies still) plus tracking noise.
* ``ProbeToTracker`` = ReferenceToTracker @ ct_to_reference @ probe_to_ct.
* ``ImageToProbe`` (pixels -> mm) from :class:`~sample_data.probe.ConvexProbe`,
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

from registration.errors import InputError
from registration.sequence_io import write_sequence
from registration.sweep import Sweep
from registration.transforms import atomic_write_text, format_matrix, invert, rigid_matrix
from registration.volume import LabelMap, Volume

from .probe import ConvexProbe
from .us_simulator import CLASS, UltrasoundSimulator

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


# --------------------------------------------------------------------------- geometry helpers
class BodyGeometry:
    """Inside-body lookups on the CT grid for placing the probe on the skin."""

    def __init__(self, ct: Volume, labels: LabelMap):
        self.ct = ct
        inside = np.asarray(labels.array) > 0
        # Unlabelled tissue (a CT with organ labels only) counts by HU.
        self.inside = inside | (np.asarray(ct.array) > -400)
        self.hu = ct.array
        self.lab = labels.array
        bone = {v for n, v in labels.names.items() if any(s in n.lower() for s in
                ("bone", "rib", "vertebra", "sacrum", "sternum", "spine"))}
        gas = {v for n, v in labels.names.items() if any(s in n.lower() for s in ("lung", "trachea"))}
        self.bone_values = np.array(sorted(bone) or [-1])
        self.gas_values = np.array(sorted(gas) or [-1])

    def _idx(self, pts):
        ijk = np.rint(self.ct.lps_to_index(pts)).astype(np.intp)
        shape = np.array(self.ct.shape_ijk)
        ok = np.all((ijk >= 0) & (ijk < shape), axis=-1)
        ijk = np.clip(ijk, 0, shape - 1)
        return ok, (ijk[..., 2], ijk[..., 1], ijk[..., 0])

    def is_inside(self, pts) -> np.ndarray:
        ok, idx = self._idx(pts)
        return ok & self.inside[idx]

    def is_obstacle(self, pts) -> np.ndarray:
        """Bone or gas (HU or label) at the points."""
        ok, idx = self._idx(pts)
        hu, lab = self.hu[idx], self.lab[idx]
        obst = (hu > 300) | (hu < -400) | np.isin(lab, self.bone_values) | np.isin(lab, self.gas_values)
        return ok & obst

    def skin_exit(self, start, direction_out, max_mm: float = 400.0, step: float = 0.5):
        """Last inside point when walking from ``start`` along ``direction_out`` (unit).

        Returns the skin point (LPS mm) or None if the walk never leaves the body.
        """
        d = np.asarray(direction_out, float)
        t = np.arange(0.0, max_mm, step)
        pts = np.asarray(start, float) + t[:, None] * d
        in_grid, _ = self._idx(pts)
        inside = self.is_inside(pts)
        if inside[-1] or not inside.any():
            return None
        last = int(np.nonzero(inside)[0][-1])
        # Leaving through a face of the CT box is not skin (the body is cut there).
        if not in_grid[last + 1]:
            return None
        return pts[last], float(t[last])


def skin_normal(body: BodyGeometry, skin_point, radius_mm: float = 8.0) -> np.ndarray:
    """Inward unit normal of the body surface at ``skin_point`` (from which nearby points are inside)."""
    u = _fibonacci_directions(96)
    inside = body.is_inside(np.asarray(skin_point, float) + radius_mm * u)
    if not inside.any() or inside.all():
        return None
    n = u[inside].mean(axis=0) - u[~inside].mean(axis=0)
    return n / np.linalg.norm(n)


def face_skin(pose: np.ndarray, normal, max_deg: float = 20.0) -> np.ndarray:
    """Rotate ``pose`` about its elevation axis (z, through the face) towards the skin normal.

    The image plane and the points in it stay where they are (their fan angle
    changes by at most ``max_deg``), so a target in the plane stays in the fan.
    """
    if normal is None:
        return pose
    x, y = pose[:3, 0], pose[:3, 1]
    phi = np.arctan2(np.dot(normal, x), np.dot(normal, y))
    phi = float(np.clip(phi, -np.deg2rad(max_deg), np.deg2rad(max_deg)))
    out = pose.copy()
    out[:3, 1] = np.cos(phi) * y + np.sin(phi) * x
    out[:3, 0] = np.cos(phi) * x - np.sin(phi) * y
    return out


def _fibonacci_directions(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], -1)


def probe_pose(origin, beam, lateral) -> np.ndarray:
    """4x4 probe_to_ct from the face centre, beam direction (Probe +y) and lateral (+x)."""
    y = np.asarray(beam, float) / np.linalg.norm(beam)
    x = np.asarray(lateral, float) - np.dot(lateral, y) * y
    x /= np.linalg.norm(x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, np.cross(x, y), origin
    return m


def find_window(body: BodyGeometry, target, *, max_depth_mm: float, n_dirs: int = 400):
    """Skin point and inward beam direction with the shortest obstacle-free path to ``target``.

    Directions with a posterior component > 0.35 are excluded: the patient lies
    supine and the probe cannot go under the back. Cost: path length + 80 x
    (1 - cos) of the angle to the skin normal + 12 per blocked neighbouring path
    (10 mm around the axis at the skin). Returns (skin_point, beam_dir, depth_mm,
    obstructed: bool, the central path crosses bone or gas); if every central
    path does, the cheapest is returned with obstructed=True.
    """
    target = np.asarray(target, float)
    best, fallback = None, None
    step = 1.0
    for d in _fibonacci_directions(n_dirs):
        if d[1] > 0.35:
            continue
        hit = body.skin_exit(target, d)
        if hit is None:
            continue
        skin, depth = hit
        if depth > max_depth_mm - 10:
            continue
        # Obstacles on the central path (ignoring the last 2 mm: skin staircase) and on
        # four paths to skin points 10 mm around it, so the window is not on the edge of
        # a rib or of the lung (the fan and the tilt need room around the axis).
        t = np.arange(step, max(depth - 2.0, step), step)
        n_obst = int(body.is_obstacle(target + t[:, None] * d).sum())
        u = np.cross(d, [0.0, 0.0, 1.0] if abs(d[2]) < 0.9 else [1.0, 0.0, 0.0])
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        frac = (t / depth)[:, None]
        n_side = sum(int(np.any(body.is_obstacle(target + t[:, None] * d + frac * (10.0 * off))))
                     for off in (u, -u, v, -v))
        # Prefer windows where the path meets the skin square on: the face then touches
        # the skin across its width instead of hanging in the air on one side.
        normal = skin_normal(body, skin)
        oblique = 1.0 - float(np.dot(normal, -d)) if normal is not None else 1.0
        cand = (depth + 15.0 * n_obst + 12.0 * n_side + 80.0 * oblique, skin, -d, depth, n_obst > 0)
        if n_obst == 0 and (best is None or cand[0] < best[0]):
            best = cand
        if fallback is None or cand[0] < fallback[0]:
            fallback = cand
    pick = best or fallback
    if pick is None:
        raise InputError(f"no skin window within {max_depth_mm:.0f} mm of the target "
                         f"{np.round(target, 1).tolist()}", fix="check the body label and the target")
    return pick[1], pick[2], pick[3], pick[4]


def best_lateral(sim: UltrasoundSimulator, origin, beam, target, rng) -> np.ndarray:
    """Probe rotation about its axis whose fan around the target is least shadowed."""
    beam = np.asarray(beam, float)
    a = np.cross(beam, [0.0, 0.0, 1.0])
    if np.linalg.norm(a) < 1e-3:
        a = np.cross(beam, [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    depth = float(np.linalg.norm(np.asarray(target) - origin))
    p = sim.probe
    near = np.abs(p.sample_depths_mm - depth) < 25.0
    best, best_score = a, -1.0
    offset = rng.uniform(0, 15)
    for ang in np.arange(0.0, 180.0, 15.0) + offset:
        lateral = Rotation.from_rotvec(np.deg2rad(ang) * beam).apply(a)
        pose = probe_pose(origin, beam, lateral)
        hu, lab, pts = sim.sample_polar(pose @ p.image_to_probe)
        cls = sim.tissue_class(hu, lab)
        # Beams that leave the CT box image nothing real: count them as blocked too.
        upto = int(np.searchsorted(p.sample_depths_mm, depth + 25.0))
        ijk = sim.ct.lps_to_index(pts[:, :upto:8].reshape(-1, 3)).reshape(pts.shape[0], -1, 3)
        out = np.any((ijk < -0.5) | (ijk > np.array(sim.ct.shape_ijk) - 0.5), axis=(1, 2))
        blocked = np.maximum.accumulate((cls == CLASS["bone"]) | (cls == CLASS["gas"]), axis=1)
        blocked |= out[:, None]
        score = 1.0 - blocked[:, near].mean()
        if score > best_score + 1e-6:
            best, best_score = lateral, score
    return best


def smooth_noise(rng, n: int, fps: float, sigma: float, dims: int = 3) -> np.ndarray:
    """[n, dims] band-limited (1-8 Hz) noise with RMS ``sigma`` per component: hand tremor."""
    t = np.arange(n) / fps
    out = np.zeros((n, dims))
    for _ in range(6):
        f = rng.uniform(1.0, 8.0)
        out += np.sin(2 * np.pi * f * t[:, None] + rng.uniform(0, 2 * np.pi, dims)) * rng.uniform(0.5, 1.0, dims)
    rms = np.sqrt(np.mean(out ** 2, axis=0))
    return out / np.maximum(rms, 1e-9) * sigma


# --------------------------------------------------------------------------- motion
def _tilt(base: np.ndarray, deg: float) -> np.ndarray:
    local = np.eye(4)
    local[:3, :3] = Rotation.from_rotvec(np.deg2rad(deg) * np.array([1.0, 0, 0])).as_matrix()
    return base @ local


def usable_tilt(sim: UltrasoundSimulator, base: np.ndarray, depth_mm: float, max_deg: float,
                n: int = 7, max_blocked: float = 0.4):
    """(lo, hi) degrees: how far the plane can rock each way before more than
    ``max_blocked`` of the fan down to the target depth (+30 mm) is shadowed by
    bone or gas (a sonographer stops tilting into the lung). At least 3 deg each way."""
    p = sim.probe
    upto = int(np.searchsorted(p.sample_depths_mm, min(depth_mm + 30.0, p.depth_mm)))
    limits = []
    for sign in (-1.0, 1.0):
        ok = 3.0
        for deg in np.linspace(max_deg / n, max_deg, n):
            hu, lab, _ = sim.sample_polar(_tilt(base, sign * deg) @ p.image_to_probe)
            cls = sim.tissue_class(hu[:, :upto], lab[:, :upto])
            blocked = np.maximum.accumulate((cls == CLASS["bone"]) | (cls == CLASS["gas"]), axis=1)
            if blocked.mean() > max_blocked:
                break
            ok = max(ok, float(deg))
        limits.append(ok)
    return limits[0], limits[1]


def sweep_poses(body: BodyGeometry, base: np.ndarray, *, n: int, fps: float, tilt_deg,
                slide_mm: float, lateral_mm: float, rng, tremor_mm: float = 0.5,
                tremor_deg: float = 0.5) -> np.ndarray:
    """[n, 4, 4] probe_to_ct for a fan/tilt sweep around the pose ``base``.

    The plane rocks about the probe's x axis (pivot at the face) from -tilt to
    +tilt (``tilt_deg`` a number, or (lo, hi) degrees for each side), slides
    along the skin (elevation ``slide_mm``, lateral ``lateral_mm``) and rotates
    a few degrees about the beam; at the middle frame all of these are zero, so
    the middle frame is ``base`` (+ tremor). Every pose is snapped back onto
    the skin along its own beam axis.
    """
    lo, hi = (tilt_deg, tilt_deg) if np.isscalar(tilt_deg) else tilt_deg
    mid = n // 2
    s = (np.arange(n) - mid) / max(mid, n - 1 - mid, 1)   # exactly 0 at the middle frame
    wobble = rng.uniform(0.5, 1.5)
    tilt = np.where(s < 0, lo * s, hi * s) + wobble * np.sin(2 * np.pi * 1.5 * s)
    slide_z = slide_mm * np.sin(np.pi * s)
    slide_x = 0.5 * lateral_mm * np.sin(2 * np.pi * s)
    spin = rng.uniform(-4, 4) * np.sin(np.pi * s)
    trem_t = smooth_noise(rng, n, fps, tremor_mm / np.sqrt(3))
    trem_r = smooth_noise(rng, n, fps, tremor_deg / np.sqrt(3))
    poses = np.empty((n, 4, 4))
    for i in range(n):
        local = np.eye(4)
        local[:3, :3] = (Rotation.from_rotvec(np.deg2rad(tilt[i]) * np.array([1.0, 0, 0]))
                         * Rotation.from_rotvec(np.deg2rad(spin[i]) * np.array([0, 1.0, 0]))).as_matrix()
        local[:3, 3] = [slide_x[i], 0.0, slide_z[i]]
        pose = base @ local
        beam = pose[:3, 1]
        hit = body.skin_exit(pose[:3, 3] + 40.0 * beam, -beam)
        if hit is not None:
            pose[:3, 3] = hit[0] + 0.5 * beam
        poses[i] = pose @ rigid_matrix(np.concatenate([trem_r[i], trem_t[i]]))
    return poses


def random_reference_to_ct(rng, ct: Volume) -> np.ndarray:
    """Patient marker pose in the CT: 15-40 deg about a random axis, origin near the body."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    lo, hi = ct.bounds_lps()
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(np.deg2rad(rng.uniform(15, 40)) * axis).as_matrix()
    m[:3, 3] = (lo + hi) / 2 + rng.uniform(-80, 80, 3)
    return m


def _tracking_noise(rng, n: int, mm: float = 0.08, deg: float = 0.03) -> np.ndarray:
    return np.stack([rigid_matrix(np.concatenate([rng.normal(0, deg, 3), rng.normal(0, mm, 3)]))
                     for _ in range(n)])


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
