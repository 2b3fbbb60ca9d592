"""Local rigid fits: where each part of the sweep wants the CT, relative to the registered pose.

A rigid registration is a compromise when the liver has deformed between the CT
and the scan: every part of the sweep would move the CT somewhat differently.
:func:`local_offsets` measures that. The sweep's valid frames are cut into
``N_GROUPS`` contiguous groups (along the sweep), each group's fan into a near and
a far half (depth: the near half holds the body wall and the tissue the probe
presses, the far half the deeper liver); for each of these patches an in-plane
translation LC2 fit starts at the registered pose and finds the shift (mm, CT axes,
in the plane of the group's middle frame) that patch prefers. On a rigid patient
these shifts are LC2's noise on a patch (RMS ~1.8 mm on the demo's static survey);
under deformation they sample the error field of the rigid result inside the
imaged region. In-plane only: the frames of a group are a few mm apart, and
tissue that is uniform along the sweep (body-wall layers) lets a fit drift freely
out of plane; a 6-parameter fit on a few frames is not conditioned at all. For
the same reason only the shift along in-plane directions the patch's cost
determines counts (:func:`constrained_part`: layers parallel to the skin fix the
beam direction, not the lateral one).
Measurements: docs/registration_tuning.md#residual-deformation.

The fits run at one LC2 level (its CT features are those of the registration
level passed in), ``FRAMES_PER_GROUP`` frames each, in parallel on ``run``.
Units: mm; points CT LPS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np
from scipy import optimize

from registration.spatial.sweep import Sweep
from registration.spatial.transforms import apply

from .lc2_cost import FeatureLevel, FrameLC2Cost, FrameSamples, frame_samples

#: Contiguous frame groups along the sweep, and frames used per group.
N_GROUPS = 3
FRAMES_PER_GROUP = 8
#: LC2 patch (pixels a side) of the local fits, and their evaluation budget.
PATCH_PX = 7
MAX_EVALS = 60
#: A local fit is bounded to this shift (mm) per axis: beyond it the patch has lost its match.
MAX_SHIFT_MM = 12.0
#: A patch needs this many fan samples to be fitted (fewer: the fit is noise).
MIN_SAMPLES = 400
#: Curvature of a patch's cost: finite-difference step (mm), and the share of the largest
#: curvature a direction needs for its shift to count. Measurements: docs/registration_tuning.md.
CURVATURE_STEP_MM = 1.5
MIN_RELATIVE_CURVATURE = 0.3


@dataclass
class LocalFit:
    """One patch's translation-only fit: its centre under the registered pose (CT mm), the shift
    (mm, CT axes) its LC2 prefers, LC2 before / after, frames and depth half."""
    center_ct: np.ndarray
    offset_mm: np.ndarray
    lc2_before: float
    lc2_after: float
    frames: List[int]
    depth: str

    def to_dict(self) -> dict:
        return {"center_ct": [round(float(v), 2) for v in self.center_ct],
                "offset_mm": [round(float(v), 2) for v in self.offset_mm],
                "lc2_before": round(float(self.lc2_before), 4), "lc2_after": round(float(self.lc2_after), 4),
                "frames": [int(f) for f in self.frames], "depth": self.depth}


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


def patches(sweep: Sweep, frames: Sequence[int], pixel_mm: float, reference_to_ct: np.ndarray, *,
            n_groups: int = N_GROUPS, near: Optional[np.ndarray] = None,
            radius_mm: Optional[float] = None, per_group: int = FRAMES_PER_GROUP) -> List[tuple]:
    """(samples, frames, depth) per patch: frame groups x depth halves. ``near``/``radius_mm``
    (CT mm): keep only fan samples within that radius of ``near`` under ``reference_to_ct``."""
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
        for depth, sel in (("near", rows <= mid), ("far", rows > mid)):
            keep = keep_all & sel
            if keep.sum() >= MIN_SAMPLES:
                out.append((subset_samples(s, keep), [int(f) for f in grp], depth))
    return out


def local_offsets(sweep: Sweep, level: FeatureLevel, reference_to_ct: np.ndarray, frames: Sequence[int], *,
                  run: Optional[Callable[[list], list]] = None, near: Optional[np.ndarray] = None,
                  radius_mm: Optional[float] = None, n_groups: int = N_GROUPS,
                  per_group: int = FRAMES_PER_GROUP) -> List[LocalFit]:
    """The translation-only LC2 fit of every patch (see the module docstring), about
    ``reference_to_ct``; ``run(tasks)`` may run them in parallel."""
    base = np.asarray(reference_to_ct, float)
    todo = patches(sweep, frames, level.spacing_mm, base, n_groups=n_groups, near=near, radius_mm=radius_mm,
                   per_group=per_group)

    mats, _ = sweep.require_image_to_reference()

    def fit(item) -> LocalFit:
        samples, grp, depth = item
        cost = FrameLC2Cost(level, samples, PATCH_PX)
        axes = in_plane_axes(base @ mats[grp[len(grp) // 2]])
        k = axes.shape[1]      # 2: lateral and beam

        def f(t):
            m = base.copy()
            m[:3, 3] += axes @ t
            return -cost.metric(m)[0]
        f0 = f(np.zeros(k))
        res = optimize.minimize(f, np.zeros(k), method="Nelder-Mead", bounds=[(-MAX_SHIFT_MM, MAX_SHIFT_MM)] * k,
                                options={"initial_simplex": np.vstack([np.zeros(k), 1.5 * np.eye(k)]),
                                         "xatol": 0.1, "fatol": 1e-5, "maxfev": MAX_EVALS})
        t = res.x if res.fun <= f0 else np.zeros(k)
        center = apply(base, samples.points_ref.mean(axis=0))
        return LocalFit(center, axes @ constrained_part(f, np.asarray(t, float), min(res.fun, f0)), -f0,
                        -min(res.fun, f0), grp, depth)
    tasks = [lambda it=it: fit(it) for it in todo]
    return run(tasks) if run is not None else [t() for t in tasks]
