"""Probe compression: the tissue under the probe face pushed along the beam, per frame.

A sonographer presses the probe in: the skin under the face and the tissue
just below it move along the beam axis by ``amplitude_mm`` (3-4.5 mm), less
and less with depth, and nothing below ``depth_mm`` (35 mm). Relative to the
un-pressed face centre ``face_lps`` (on the skin, beam axis ``beam``) a point q
at depth ``d = (q - face) . beam``, lateral offset ``x`` and elevation offset
``z`` moves by

    c(q) = amplitude * f(d) * exp(-x^2 / (2 lateral_sigma^2) - z^2 / (2 elevation_sigma^2)) * beam
    f(d) = 1 (d <= 0), (1 - d / depth)^2 (0 < d < depth), 0 (d >= depth)

so the skin under the face moves by the full amplitude and the probe face sits
that much deeper than the un-pressed skin (the tracked pose is the pressed
one). The map q -> q + c(q) is a diffeomorphism: along the beam its derivative
is at least 1 - 2 amplitude / depth (0.74 at 4.5 mm), across it the Gaussian
fall-off (30 mm lateral, 15 mm elevation, the face's footprint) shears gently.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEPTH_MM = 35.0
LATERAL_SIGMA_MM = 30.0
ELEVATION_SIGMA_MM = 15.0


@dataclass(frozen=True)
class ProbeCompression:
    """Compression under one frame's probe face (LPS mm; axes unit vectors)."""

    face_lps: np.ndarray
    beam: np.ndarray
    lateral: np.ndarray
    amplitude_mm: float
    depth_mm: float = DEPTH_MM
    lateral_sigma_mm: float = LATERAL_SIGMA_MM
    elevation_sigma_mm: float = ELEVATION_SIGMA_MM

    @classmethod
    def under(cls, nominal_probe_to_ct: np.ndarray, amplitude_mm: float) -> "ProbeCompression":
        """Compression under a probe at its un-pressed pose (Probe +y = beam, +x = lateral)."""
        m = np.asarray(nominal_probe_to_ct, float)
        return cls(m[:3, 3].copy(), m[:3, 1].copy(), m[:3, 0].copy(), float(amplitude_mm))

    def pressed_pose(self, nominal_probe_to_ct: np.ndarray) -> np.ndarray:
        """The probe pose with the face pushed ``amplitude_mm`` along its beam."""
        out = np.array(nominal_probe_to_ct, float)
        out[:3, 3] += self.amplitude_mm * self.beam
        return out

    def _frame(self, points):
        """(depth d, lateral weight a * g) of points [m, 3] relative to the un-pressed face."""
        q = np.asarray(points, float).reshape(-1, 3) - self.face_lps
        x = q @ self.lateral
        z = q @ np.cross(self.lateral, self.beam)
        g = np.exp(-0.5 * (x / self.lateral_sigma_mm) ** 2 - 0.5 * (z / self.elevation_sigma_mm) ** 2)
        return q @ self.beam, self.amplitude_mm * g

    def _profile(self, d):
        t = np.clip(1.0 - d / self.depth_mm, 0.0, 1.0)
        return np.where(d <= 0, 1.0, t * t)

    def displacement(self, points) -> np.ndarray:
        """c(q) [m, 3] mm for points q [m, 3] LPS."""
        d, ag = self._frame(points)
        return (ag * self._profile(d))[:, None] * self.beam

    def inverse(self, x, iterations: int = 12) -> np.ndarray:
        """q with q + c(q) = x. The push is along the beam, so q = x - s * beam with the same
        lateral and elevation offsets; s = a g f(d_x - s) is solved by fixed point (contraction
        factor <= 2 amplitude / depth). Points deeper than ``depth_mm + amplitude`` do not move."""
        x = np.asarray(x, float).reshape(-1, 3)
        d, ag = self._frame(x)
        s = np.zeros(len(x))
        act = np.nonzero((d < self.depth_mm + self.amplitude_mm) & (ag > 1e-6))[0]
        da, aga = d[act], ag[act]
        sa = aga * self._profile(da)
        for _ in range(iterations):
            sa = aga * self._profile(da - sa)
        s[act] = sa
        return x - s[:, None] * self.beam

    def to_dict(self) -> dict:
        return {"face_lps": np.round(self.face_lps, 4).tolist(), "beam": np.round(self.beam, 6).tolist(),
                "lateral": np.round(self.lateral, 6).tolist(), "amplitude_mm": round(self.amplitude_mm, 4)}


def pressure_profile(rng, n: int, fps: float, peak_mm: float) -> np.ndarray:
    """[n] compression amplitude (mm) per frame: the hand's pressure varies slowly around
    ~85 % of ``peak_mm`` (one slow swing over the sweep plus a 0.5-1 Hz wobble), max = peak."""
    t = np.arange(n) / fps
    slow = np.sin(np.pi * t / max(t[-1], 1e-6) + rng.uniform(0, 2 * np.pi))
    wobble = np.sin(2 * np.pi * rng.uniform(0.5, 1.0) * t + rng.uniform(0, 2 * np.pi))
    a = 0.8 + 0.12 * slow + 0.05 * wobble
    return peak_mm * a / a.max()
