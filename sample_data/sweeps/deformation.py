"""Organ deformation between the CT and the scan: the displacement field, its truth, the true error.

Frames: CT LPS mm. "Scan space" is the patient at scan time expressed in CT
coordinates through the TRUE ``reference_to_ct`` (the rigid part of the truth):
a CT point ``p`` (tissue) is, at scan time, at ``p + u(p)`` in scan space, i.e.
at Reference ``inv(true_reference_to_ct) @ (p + u(p))``.

The organ field (issue 19) is

    u(p) = w(p) * sum_b v_b * exp(-|p - c_b|^2 / (2 s_b^2))

a sum of a few smooth Gaussian radial-basis displacement bumps (centre ``c_b``
in the liver, width ``s_b`` mm, displacement ``v_b`` mm at the centre) times a
liver weight ``w``: 1 in the liver and falling smoothly to 0 within ~25 mm
outside it (the liver mask blurred by a Gaussian and passed through a smooth
step), stored on a coarse axis-aligned LPS grid and interpolated trilinearly.
The truth holds every parameter (the weight grid compressed in base64), so
``u`` can be evaluated anywhere from ``truth.json`` alone. Generation keeps the
Jacobian of ``p -> p + u(p)`` positive (the map is a diffeomorphism).

Probe compression is NOT part of ``u``: it is a per-frame deformation near the
probe face (:mod:`sample_data.sweeps.compression`) that the sweep images show,
confined to the first ~35 mm below the skin, so it does not move the targets.
"""
from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage

from registration.spatial.transforms import invert

FIELD_MODEL = "liver-weighted gaussian rbf v1"


def trilinear(grid, origin, spacing, points: np.ndarray) -> np.ndarray:
    """Values of ``grid`` at ``points`` [m, 3] LPS mm: trilinear inside the grid's box, 0 outside
    (``scipy.ndimage.map_coordinates``, order 1, mode 'constant').

    ``grid``: [k, j, i] array -> [m]; or a tuple of such arrays (components) -> [m, c].
    Axis-aligned, ``origin`` / ``spacing`` mm in (i, j, k) order; float32 grids are
    interpolated in float32.
    """
    comps = grid if isinstance(grid, tuple) else (grid,)
    dt = np.float32 if comps[0].dtype == np.float32 else np.float64
    f = (np.asarray(points).reshape(-1, 3).astype(dt) - np.asarray(origin, dt)) / np.asarray(spacing, dt)
    coords = [f[:, 2], f[:, 1], f[:, 0]]
    vals = [ndimage.map_coordinates(c, coords, order=1, mode="constant", cval=0.0) for c in comps]
    return np.stack(vals, axis=1) if isinstance(grid, tuple) else vals[0]


@dataclass
class Bump:
    """One Gaussian displacement bump: ``vector_mm`` at ``center_lps``, width ``sigma_mm``."""

    center_lps: np.ndarray
    sigma_mm: float
    vector_mm: np.ndarray

    def to_dict(self) -> dict:
        return {"center_lps": np.round(self.center_lps, 4).tolist(), "sigma_mm": round(float(self.sigma_mm), 4),
                "vector_mm": np.round(self.vector_mm, 4).tolist()}


@dataclass
class OrganDeformation:
    """The organ field ``u`` (see the module docstring). ``weight`` [k, j, i] in 0..1 on the
    axis-aligned LPS grid ``weight_origin`` / ``weight_spacing`` (mm, (i, j, k) order)."""

    bumps: List[Bump]
    weight: np.ndarray
    weight_origin: np.ndarray
    weight_spacing: np.ndarray
    info: dict = field(default_factory=dict)
    _inverse: Optional[tuple] = field(default=None, repr=False, compare=False)

    # ---------------------------------------------------------------- evaluation
    def bump_sum(self, points) -> np.ndarray:
        pts = np.asarray(points, float).reshape(-1, 3)
        out = np.zeros_like(pts)
        for b in self.bumps:
            d2 = np.sum((pts - b.center_lps) ** 2, axis=1)
            out += np.exp(-d2 / (2.0 * b.sigma_mm ** 2))[:, None] * b.vector_mm
        return out

    def weight_at(self, points) -> np.ndarray:
        return trilinear(self.weight, self.weight_origin, self.weight_spacing, points)

    def displacement(self, points) -> np.ndarray:
        """u(p) [m, 3] mm for CT points [m, 3] (or (3,) -> (3,))."""
        p = np.asarray(points, float)
        u = self.weight_at(p)[:, None] * self.bump_sum(p)
        return u.reshape(p.shape)

    def deformed(self, points) -> np.ndarray:
        """Scan-space position p + u(p) of CT points."""
        p = np.asarray(points, float)
        return p + self.displacement(p)

    def inverse(self, x, iterations: int = 40, tol_mm: float = 1e-4) -> np.ndarray:
        """CT point p with p + u(p) = x (fixed point p <- x - u(p), iterated per point until it
        moves less than ``tol_mm``; converges because |grad u| < 1)."""
        x = np.asarray(x, float)
        flat = x.reshape(-1, 3)
        p = flat - self.displacement(flat)
        todo = np.arange(len(flat))
        for _ in range(iterations):
            if not len(todo):
                break
            nxt = flat[todo] - self.displacement(p[todo])
            moved = np.max(np.abs(nxt - p[todo]), axis=1)
            p[todo] = nxt
            todo = todo[moved >= tol_mm]
        return p.reshape(x.shape)

    def source_lookup(self, spacing_mm: float = 2.5):
        """Callable x [m, 3] -> p [m, 3] float32: the CT tissue shown at scan-space x.

        The inverse displacement ``p - x`` is solved once on a grid (``spacing_mm``) over the
        weight grid's box (where the weight, dilated by the largest displacement, is not 0) and
        interpolated trilinearly per call; elsewhere the field is 0. The simulator calls it for
        every polar sample of every frame.
        """
        if self._inverse is None or self._inverse[0] != spacing_mm:
            lo = self.weight_origin
            hi = lo + (np.array(self.weight.shape[::-1]) - 1) * self.weight_spacing
            axes = [np.arange(lo[a], hi[a] + 1e-6, spacing_mm) for a in range(3)]
            kk, jj, ii = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
            x = np.stack([ii, jj, kk], -1).reshape(-1, 3)
            reach = sum(float(np.linalg.norm(b.vector_mm)) for b in self.bumps)
            near = ndimage.binary_dilation((self.weight_at(x) > 0).reshape(kk.shape),
                                           iterations=int(np.ceil(reach / spacing_mm)) + 1).reshape(-1)
            inv = np.zeros_like(x)
            inv[near] = self.inverse(x[near]) - x[near]
            inv = inv.reshape(kk.shape + (3,)).astype(np.float32)
            # the box where the inverse field is not 0 (grid points), to skip the rest per call
            kji = np.argwhere(np.any(inv != 0, axis=-1))
            box = (np.stack([lo, lo]) if not len(kji) else
                   lo + np.stack([kji.min(axis=0), kji.max(axis=0)])[:, ::-1] * spacing_mm)
            self._inverse = (spacing_mm, lo.copy(), np.full(3, spacing_mm),
                             tuple(np.ascontiguousarray(inv[..., c]) for c in range(3)),
                             box.astype(np.float32))
        _, origin, spacing, inv, box = self._inverse

        def source_of(x: np.ndarray) -> np.ndarray:
            x = np.array(x, np.float32).reshape(-1, 3)
            sel = np.nonzero(np.all((x >= box[0]) & (x <= box[1]), axis=1))[0]
            x[sel] += trilinear(inv, origin, spacing, x[sel])
            return x
        return source_of

    def jacobian_determinant(self, lo, hi, step_mm: float = 2.0) -> np.ndarray:
        """det(I + grad u) on a grid over the box [lo, hi] (LPS mm), central differences."""
        axes = [np.arange(lo[a], hi[a] + 1e-6, step_mm) for a in range(3)]
        kk, jj, ii = np.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
        pts = np.stack([ii, jj, kk], -1)
        u = self.displacement(pts.reshape(-1, 3)).reshape(pts.shape)
        # grad[..., c, a] = d u_c / d x_a; array axes (k, j, i) hold x_a for a = (2, 1, 0)
        grad = np.stack([np.stack(np.gradient(u[..., c], step_mm, axis=(2, 1, 0)), axis=-1)
                         for c in range(3)], axis=-2)
        return np.linalg.det(np.eye(3) + grad)

    # ---------------------------------------------------------------- truth.json
    def to_dict(self) -> dict:
        q = np.round(np.clip(self.weight, 0, 1) * 255).astype(np.uint8)
        return {"model": FIELD_MODEL,
                "formula": "u(p) = w(p) * sum_b vector_mm_b * exp(-|p - center_lps_b|^2 / (2 sigma_mm_b^2)); "
                           "w: trilinear on the weight grid (uint8 / 255, array [k,j,i], zlib + base64)",
                "bumps": [b.to_dict() for b in self.bumps],
                "weight_grid": {"origin_lps": np.round(self.weight_origin, 4).tolist(),
                                "spacing_mm": np.round(self.weight_spacing, 4).tolist(),
                                "size_ijk": list(q.shape[::-1]), "dtype": "uint8/255",
                                "data_zlib_base64": base64.b64encode(zlib.compress(q.tobytes(), 9)).decode()},
                **self.info}

    @classmethod
    def from_dict(cls, d: dict) -> "OrganDeformation":
        if d.get("model") != FIELD_MODEL:
            raise ValueError(f"unknown deformation model {d.get('model')!r}; expected {FIELD_MODEL!r}")
        g = d["weight_grid"]
        ni, nj, nk = g["size_ijk"]
        q = np.frombuffer(zlib.decompress(base64.b64decode(g["data_zlib_base64"])), np.uint8)
        bumps = [Bump(np.asarray(b["center_lps"], float), float(b["sigma_mm"]), np.asarray(b["vector_mm"], float))
                 for b in d["bumps"]]
        info = {k: v for k, v in d.items() if k not in ("model", "formula", "bumps", "weight_grid")}
        return cls(bumps, q.reshape(nk, nj, ni).astype(np.float64) / 255.0,
                   np.asarray(g["origin_lps"], float), np.asarray(g["spacing_mm"], float), info)

    @classmethod
    def zero(cls) -> "OrganDeformation":
        return cls([], np.zeros((2, 2, 2)), np.zeros(3), np.ones(3))


# -------------------------------------------------------------------- rigid fit, true error
def best_rigid_fit(points, targets) -> np.ndarray:
    """4x4 rigid ``m`` minimising sum |m @ points - targets|^2 (Kabsch, no scaling)."""
    p = np.asarray(points, float)
    q = np.asarray(targets, float)
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, _, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = qc - r @ pc
    return m


def ultrasound_truth(truth: dict) -> dict:
    """The ``ultrasound`` part of a case's truth.json (or the dict ``make_sweeps`` returns)."""
    return truth["ultrasound"] if "ultrasound" in truth else truth


def sweep_truth(truth: dict, sweep_name: str) -> dict:
    """Truth entry of a sweep by file name (``sweep_survey_deformed.igs.mha``) or stem."""
    us = ultrasound_truth(truth)
    for s in list(us.get("sweeps", [])) + list(us.get("deformed_sweeps", [])):
        if sweep_name in (s["file"], s["file"].split(".")[0]) or str(sweep_name).endswith("/" + s["file"]):
            return s
    raise KeyError(f"no sweep {sweep_name!r} in the truth")


def organ_deformation(truth: dict, sweep_name: Optional[str] = None) -> OrganDeformation:
    """The organ field of the case (zero for a sweep recorded without deformation)."""
    us = ultrasound_truth(truth)
    if sweep_name is not None and not sweep_truth(truth, sweep_name).get("deformed"):
        return OrganDeformation.zero()
    d = us.get("deformation")
    return OrganDeformation.zero() if not d else OrganDeformation.from_dict(d["organ_field"])


def true_target_error_mm(truth: dict, sweep_name: str, reference_to_ct, target_ct, *,
                         field: Optional[OrganDeformation] = None):
    """True error (mm, in Reference) of a registration result at CT target point(s).

    At scan time the tissue at CT point ``p`` is at Reference
    ``inv(true_reference_to_ct) @ (p + u(p))`` (``u`` the organ field; zero for a
    sweep without deformation); the registered overlay shows it at
    ``inv(reference_to_ct) @ p``. The error is the distance between the two.
    ``target_ct`` (3,) -> float, or [m, 3] -> [m]. ``field``: pass it to avoid decoding
    the truth's field on every call.
    """
    entry = sweep_truth(truth, sweep_name)
    if field is None:
        field = organ_deformation(truth, sweep_name)
    elif not entry.get("deformed"):
        field = OrganDeformation.zero()
    p = np.asarray(target_ct, float)
    flat = p.reshape(-1, 3)
    true_m = invert(np.asarray(entry["reference_to_ct"], float))
    reg_m = invert(np.asarray(reference_to_ct, float))
    scan = field.deformed(flat)
    a = scan @ true_m[:3, :3].T + true_m[:3, 3]
    b = flat @ reg_m[:3, :3].T + reg_m[:3, 3]
    e = np.linalg.norm(a - b, axis=1)
    return float(e[0]) if p.ndim == 1 else e


def best_rigid_reference_to_ct(true_reference_to_ct, ct_to_scan_rigid) -> np.ndarray:
    """The ``reference_to_ct`` a perfect rigid registration reaches when ``ct_to_scan_rigid`` is
    the best rigid fit of p -> p + u(p): inv(fit) @ true (its overlay puts p at the fit's p)."""
    return invert(np.asarray(ct_to_scan_rigid, float)) @ np.asarray(true_reference_to_ct, float)


def rigid_residual_mm(field: OrganDeformation, ct_to_scan_rigid, points) -> np.ndarray:
    """|fit @ p - (p + u(p))| [m] mm: what the rigid fit leaves at the points."""
    p = np.asarray(points, float).reshape(-1, 3)
    m = np.asarray(ct_to_scan_rigid, float)
    return np.linalg.norm(p @ m[:3, :3].T + m[:3, 3] - field.deformed(p), axis=1)


def sample_points(mask_points: np.ndarray, n: int, rng) -> np.ndarray:
    """Up to ``n`` rows of ``mask_points`` picked by ``rng`` without replacement."""
    if len(mask_points) <= n:
        return mask_points
    return mask_points[np.sort(rng.choice(len(mask_points), n, replace=False))]


def points_of(labels, values: Sequence[int], stride: int = 3) -> np.ndarray:
    """LPS mm of the label voxels with one of ``values``, every ``stride``-th along each axis."""
    sub = np.asarray(labels.array)[::stride, ::stride, ::stride]
    k, j, i = np.nonzero(np.isin(sub, list(values)))
    return labels.index_to_lps(np.stack([i, j, k], -1) * stride)
