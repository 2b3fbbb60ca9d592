"""Local rigid fits: where each part of the sweep wants the CT, relative to the registered pose.

A rigid registration is a compromise when the liver has deformed between the CT
and the scan: every part of the sweep would move the CT somewhat differently.
:func:`local_offsets` measures that. The sweep's valid frames are cut into
``N_GROUPS`` contiguous groups (along the sweep), each group's fan into a near and
a far half (depth; "mid": the near half below the wall); for each patch an in-plane translation LC2 fit starts at the
registered pose and finds the shift (mm, CT axes, in the plane of the group's
middle frame) that patch prefers. Under deformation these shifts sample the error
field of the rigid result inside the imaged region.

The error model (``DEPTHS``) uses the **far half** and the near half **below the body wall**
("mid": deeper than ``WALL_MM`` under the top of the fan), not the first ``WALL_MM``: that
holds the body wall and the tissue the probe presses, and its shifts follow probe
compression and near-field artefacts (reverberation, rib shadows, bright streaks),
not the organ the targets are in: on the demo's deformed sweeps whole near halves asked
for 5.9-8.4 mm where the organ field there was 0.8-1.1 mm, and on rigid lesion
sweeps one near patch asked for 5-6.5 mm with the same evidence (LC2 gain) as a
real shift. The far half alone missed a shallow lesion under the dome of a deformed real
CT 57-120 mm from every far patch (called good at 5.85 mm; docs/registration_tuning.md#residual-deformation).

**Each fit measures its own noise** (``repeat=True``): the patch is fitted again on
its even and on its odd frames alone; the two shifts differ by noise only (the
same tissue, frames a few mm apart), so ``noise_mm = |a - b| / 2`` estimates the
noise of the whole patch's shift (half the frames: twice the variance; the
difference: twice again), and the patch's shift is the medoid of the three (a
whole-patch fit that jumped to another optimum while both halves stayed is
outvoted). The error model subtracts the noise per patch
(:func:`registration.align.deformation_error.from_fits`): a patch that wanders
because its cost is flat or has two optima gives ~0, a consistent shift stays.
In-plane only: the frames of a group are a few mm apart, and tissue that is
uniform along the sweep lets a fit drift freely out of plane; a 6-parameter fit
on a few frames is not conditioned at all. For the same reason only the shift
along in-plane directions the patch's cost determines counts
(:func:`constrained_part`). Measurements: docs/registration_tuning.md#residual-deformation.

The fits run at one LC2 level (its CT features are those of the registration
level passed in), ``FRAMES_PER_GROUP`` frames each, in parallel on ``run``.
Units: mm; points CT LPS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply

from .lc2_cost import FeatureLevel, FrameLC2Cost, FrameSamples, frame_samples

#: Contiguous frame groups along the sweep, and frames used per group.
N_GROUPS = 3
FRAMES_PER_GROUP = 8
#: Depth bands of the fan fitted for the error model (see the module docstring): the far half, and
#: the near half below ``WALL_MM`` ("mid").
DEPTHS: Tuple[str, ...] = ("mid", "far")
#: Depth (mm below the top of the fan) of the body wall and the tissue the probe presses: the "mid"
#: band starts here. Probe compression is confined to the first ~35 mm below the skin (Pheiffer et
#: al., docs/clinical_evidence.md section 12; the simulated compression's DEPTH_MM).
WALL_MM = 35.0
#: LC2 patch (pixels a side) of the local fits, and their evaluation budget.
PATCH_PX = 7
MAX_EVALS = 60
#: A local fit is bounded to this shift (mm) per axis: beyond it the patch has lost its match.
MAX_SHIFT_MM = 12.0
#: A patch needs this many fan samples to be fitted (fewer: the fit is noise); each repeat half.
MIN_SAMPLES = 400
#: Curvature of a patch's cost: finite-difference step (mm), and the share of the largest
#: curvature a direction needs for its shift to count. Measurements: docs/registration_tuning.md.
CURVATURE_STEP_MM = 1.5
MIN_RELATIVE_CURVATURE = 0.3


@dataclass
class LocalFit:
    """One patch's translation-only fit: its centre under the registered pose (CT mm), the shift
    (mm, CT axes) its LC2 prefers, LC2 before / after, frames and depth half; ``noise_mm``: the
    noise of that shift measured by the repeat fits on its even / odd frames (None: not measured)."""
    center_ct: np.ndarray
    offset_mm: np.ndarray
    lc2_before: float
    lc2_after: float
    frames: List[int]
    depth: str
    noise_mm: Optional[float] = None
    repeats: Optional[List[np.ndarray]] = None     # the even / odd frames' shifts (mm, CT axes)

    def to_dict(self) -> dict:
        return {"center_ct": [round(float(v), 2) for v in self.center_ct],
                "offset_mm": [round(float(v), 2) for v in self.offset_mm],
                "lc2_before": round(float(self.lc2_before), 4), "lc2_after": round(float(self.lc2_after), 4),
                "frames": [int(f) for f in self.frames], "depth": self.depth,
                "noise_mm": None if self.noise_mm is None else round(float(self.noise_mm), 3)}


def in_plane_axes(image_to_ct: np.ndarray) -> np.ndarray:
    """[3, 2] unit vectors (CT axes) of a frame's lateral (columns) and beam (rows) directions."""
    a = np.asarray(image_to_ct, float)[:3, :2]
    return a / np.linalg.norm(a, axis=0)


def constrained_part(f, t: np.ndarray, f_t: float) -> np.ndarray:
    """The part of the shift ``t`` (mm) along directions the patch's cost ``f`` determines.

    The 2x2 curvature of ``f`` at ``t`` (central differences, ``CURVATURE_STEP_MM``): along an
    eigen-direction whose curvature is below ``MIN_RELATIVE_CURVATURE`` of the largest (tissue
    uniform along it, e.g. body-wall layers along the lateral axis) the fit drifts freely,
    so that component is dropped; a patch with no positive curvature gives no shift."""
    h, k = CURVATURE_STEP_MM, len(t)
    e = np.eye(k) * h
    fp = np.array([f(t + e[i]) for i in range(k)])
    fm = np.array([f(t - e[i]) for i in range(k)])
    hess = np.diag((fp - 2 * f_t + fm) / h ** 2)
    for i in range(k):
        for j in range(i + 1, k):
            hess[i, j] = hess[j, i] = (f(t + e[i] + e[j]) - fp[i] - fp[j] + f_t) / h ** 2
    w, v = np.linalg.eigh(0.5 * (hess + hess.T))
    if w.max() <= 0:
        return np.zeros(k)
    keep = w >= MIN_RELATIVE_CURVATURE * w.max()
    return v[:, keep] @ (v[:, keep].T @ t)


def frame_groups(valid_frames: Sequence[int], n_groups: int = N_GROUPS,
                 per_group: int = FRAMES_PER_GROUP) -> List[np.ndarray]:
    """``n_groups`` contiguous runs of the (sorted) frames, ``per_group`` evenly spread frames each."""
    idx = np.sort(np.asarray(valid_frames, int))
    out = []
    for part in np.array_split(idx, max(1, min(n_groups, len(idx)))):
        if len(part):
            out.append(part[np.unique(np.round(np.linspace(0, len(part) - 1, min(per_group, len(part)))).astype(int))])
    return out


def subset_samples(s: FrameSamples, keep: np.ndarray) -> FrameSamples:
    """``s`` with only the fan samples ``keep`` (bool over ``s.points_ref``) left in the fan."""
    fan = s.fan.copy()
    flat = fan.reshape(-1)
    pos = np.flatnonzero(flat)
    flat[pos[~keep]] = False
    return FrameSamples(np.where(fan, s.u, 0).astype(np.float32), fan, s.points_ref[keep], s.pixel_mm)


def frame_subset(s: FrameSamples, frames: Sequence[int]) -> FrameSamples:
    """``s`` with only its frames ``frames`` (positions in ``s``, ascending)."""
    ks = np.asarray(frames, int)
    per = s.fan.reshape(len(s.fan), -1).sum(axis=1)
    start = np.concatenate([[0], np.cumsum(per)])
    pts = np.concatenate([s.points_ref[start[k]:start[k + 1]] for k in ks], axis=0)
    return FrameSamples(s.u[ks].copy(), s.fan[ks].copy(), pts, s.pixel_mm)


def medoid(shifts: Sequence[np.ndarray]) -> np.ndarray:
    """The shift closest to the others (least summed distance): a patch's whole-frame fit that
    jumped to another optimum while both its halves stayed is outvoted by them."""
    v = [np.asarray(x, float) for x in shifts]
    return v[int(np.argmin([sum(np.linalg.norm(a - b) for b in v) for a in v]))]


def patches(sweep: Sweep, frames: Sequence[int], pixel_mm: float, reference_to_ct: np.ndarray, *,
            n_groups: int = N_GROUPS, near: Optional[np.ndarray] = None,
            radius_mm: Optional[float] = None, per_group: int = FRAMES_PER_GROUP,
            depths: Sequence[str] = ("near", "far")) -> List[tuple]:
    """(samples, frames, depth) per patch: frame groups x depth bands (those in ``depths``: "near"
    and "far" the halves of the fan at its median row, "mid" the near half below ``WALL_MM``).
    ``near``/``radius_mm`` (CT mm): keep only fan samples within that radius of ``near`` under
    ``reference_to_ct``."""
    out = []
    for grp in frame_groups(frames, n_groups, per_group):
        s = frame_samples(sweep, grp, pixel_mm)
        rows = np.nonzero(s.fan)[1]                      # row (depth) of every fan sample, in order
        keep_all = np.ones(len(rows), bool)
        if near is not None and radius_mm is not None:
            keep_all = np.linalg.norm(apply(reference_to_ct, s.points_ref) - np.asarray(near, float), axis=1) \
                <= radius_mm
        if not keep_all.any():
            continue
        mid = np.median(rows[keep_all])
        below_wall = (rows - rows.min()) * pixel_mm >= WALL_MM
        for depth, sel in (("near", rows <= mid), ("mid", (rows <= mid) & below_wall), ("far", rows > mid)):
            keep = keep_all & sel
            if depth in depths and keep.sum() >= MIN_SAMPLES:
                out.append((subset_samples(s, keep), [int(f) for f in grp], depth))
    return out


def local_offsets(sweep: Sweep, level: FeatureLevel, reference_to_ct: np.ndarray, frames: Sequence[int], *,
                  run: Optional[Callable[[list], list]] = None, near: Optional[np.ndarray] = None,
                  radius_mm: Optional[float] = None, n_groups: int = N_GROUPS,
                  per_group: int = FRAMES_PER_GROUP, depths: Sequence[str] = DEPTHS,
                  repeat: bool = True) -> List[LocalFit]:
    """The translation-only LC2 fit of every patch (see the module docstring), about
    ``reference_to_ct``; with ``repeat`` each patch's noise from its even / odd frames fitted
    alone. ``run(tasks)`` may run the fits in parallel (every fit, repeats included, is a task)."""
    base = np.asarray(reference_to_ct, float)
    todo = patches(sweep, frames, level.spacing_mm, base, n_groups=n_groups, near=near, radius_mm=radius_mm,
                   per_group=per_group, depths=depths)
    mats, _ = sweep.require_image_to_reference()

    def shift(samples: FrameSamples, axes: np.ndarray) -> tuple:
        """(constrained shift mm in CT axes, LC2 before, LC2 after) of one patch's samples."""
        cost = FrameLC2Cost(level, samples, PATCH_PX)
        k = axes.shape[1]      # 2: lateral and beam

        def f(t):
            m = base.copy()
            m[:3, 3] += axes @ t
            return -cost.metric(m)[0]
        f0 = f(np.zeros(k))
        from scipy import optimize    # here, not at import: ctus register starts without scipy.optimize (0.8 s)
        res = optimize.minimize(f, np.zeros(k), method="Nelder-Mead", bounds=[(-MAX_SHIFT_MM, MAX_SHIFT_MM)] * k,
                                options={"initial_simplex": np.vstack([np.zeros(k), 1.5 * np.eye(k)]),
                                         "xatol": 0.1, "fatol": 1e-5, "maxfev": MAX_EVALS})
        t = res.x if res.fun <= f0 else np.zeros(k)
        return axes @ constrained_part(f, np.asarray(t, float), min(res.fun, f0)), -f0, -min(res.fun, f0)

    tasks, jobs = [], []
    for samples, grp, depth in todo:
        axes = in_plane_axes(base @ mats[grp[len(grp) // 2]])
        tasks.append(lambda s=samples, a=axes: shift(s, a))
        halves = []
        if repeat and len(grp) >= 4:
            halves = [frame_subset(samples, range(p, len(grp), 2)) for p in (0, 1)]
            halves = [h for h in halves if len(h.points_ref) >= MIN_SAMPLES // 2]
            if len(halves) == 2:
                tasks += [lambda s=h, a=axes: shift(s, a) for h in halves]
        jobs.append((samples, grp, depth, len(halves) == 2))
    done = run(tasks) if run is not None else [t() for t in tasks]
    out, k = [], 0
    for samples, grp, depth, repeated in jobs:
        offset, before, after = done[k]
        noise, reps = None, None
        if repeated:
            reps = [done[k + 1][0], done[k + 2][0]]
            noise = 0.5 * float(np.linalg.norm(reps[0] - reps[1]))
            offset = medoid([offset] + reps)
        k += 3 if repeated else 1
        out.append(LocalFit(apply(base, samples.points_ref.mean(axis=0)), offset, before, after, grp, depth, noise,
                            reps))
    return out
