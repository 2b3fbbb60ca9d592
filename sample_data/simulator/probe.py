"""Convex (curvilinear) abdominal probe geometry for the ultrasound simulator.

Frames
------
**Probe** (mm): origin at the centre of the transducer face (the point of the
curved face on the central beam, which touches the skin); +y = the central
beam direction, into the patient; +x = lateral, towards the probe's marked
side; +z = x cross y (elevation, out of the image plane). The image plane is
z = 0. The arc of the face has its centre (the virtual apex) at
``(0, -radius_mm, 0)``.

**Image** (PLUS convention, unit pixel): origin at the first pixel in memory
(top-left of the MF-oriented frame), x = column towards the marked side,
y = row away from the transducer. Pixels are square with spacing
``pixel_mm``; ``image_to_probe`` maps ``(col, row, 0, 1)`` to Probe mm and so
carries the pixel spacing (its third column is scaled by ``pixel_mm`` too,
as PLUS calibrations are).

Beams are parameterised by angle ``theta`` (rad, positive towards +x) from the
central beam and depth ``d`` (mm, from the face along the beam). A sample at
``(theta, d)`` is at Probe ``(R+d) sin(theta), (R+d) cos(theta) - R``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ConvexProbe:
    """A convex probe and its scan-converted image grid.

    radius_mm: radius of curvature of the face; fov_deg: full fan angle;
    depth_mm: imaging depth from the face; cols x rows: output frame size.
    n_beams / sample_mm: the polar (beam x depth) grid the simulator works on.
    """

    radius_mm: float = 50.0
    fov_deg: float = 65.0
    depth_mm: float = 180.0
    cols: int = 640
    rows: int = 480
    frequency_mhz: float = 3.5
    n_beams: int = 192
    sample_mm: float = 0.3

    # ----------------------------------------------------------- geometry
    @property
    def half_angle_rad(self) -> float:
        return np.deg2rad(self.fov_deg) / 2.0

    @cached_property
    def pixel_mm(self) -> float:
        """Isotropic pixel spacing (mm) so that the whole fan fits the frame."""
        r, d, a = self.radius_mm, self.depth_mm, self.half_angle_rad
        width = 2.0 * (r + d) * np.sin(a)
        height = (r + d) - r * np.cos(a)
        # A 2-pixel margin keeps the fan edge inside the frame.
        return float(max(width / (self.cols - 4), height / (self.rows - 4)))

    @cached_property
    def image_to_probe(self) -> np.ndarray:
        """4x4 Image (col, row, 0 in pixels) -> Probe (mm)."""
        s = self.pixel_mm
        top_y = -self.radius_mm * (1.0 - np.cos(self.half_angle_rad))  # face edges lie above the centre
        m = np.diag([s, s, s, 1.0])
        m[0, 3] = -s * (self.cols - 1) / 2.0
        m[1, 3] = top_y - 2.0 * s
        return m

    @property
    def probe_to_image(self) -> np.ndarray:
        return np.linalg.inv(self.image_to_probe)

    @cached_property
    def beam_angles_rad(self) -> np.ndarray:
        """[n_beams] beam angles, left (-x) to right (+x)."""
        a = self.half_angle_rad
        return np.linspace(-a, a, self.n_beams)

    @cached_property
    def sample_depths_mm(self) -> np.ndarray:
        """[n_samples] depths along each beam, from the face."""
        n = int(round(self.depth_mm / self.sample_mm)) + 1
        return np.arange(n) * self.sample_mm

    @property
    def n_samples(self) -> int:
        return int(self.sample_depths_mm.size)

    def polar_to_probe(self, theta, depth_mm) -> np.ndarray:
        """(...,) angles (rad) and depths (mm) -> (..., 3) Probe mm (z = 0)."""
        theta, depth_mm = np.broadcast_arrays(np.asarray(theta, float), np.asarray(depth_mm, float))
        rr = self.radius_mm + depth_mm
        return np.stack([rr * np.sin(theta), rr * np.cos(theta) - self.radius_mm,
                         np.zeros_like(rr)], axis=-1)

    def probe_to_polar(self, points):
        """(..., 3) Probe mm -> (theta rad, depth mm) in the image plane (z ignored)."""
        p = np.asarray(points, dtype=float)
        x, y = p[..., 0], p[..., 1] + self.radius_mm
        return np.arctan2(x, y), np.hypot(x, y) - self.radius_mm

    @cached_property
    def polar_points_probe(self) -> np.ndarray:
        """[n_beams, n_samples, 3] Probe mm of every polar sample."""
        return self.polar_to_probe(self.beam_angles_rad[:, None], self.sample_depths_mm[None, :])

    @cached_property
    def pixel_polar(self):
        """(fan_mask [rows, cols] bool, beam_f [m], sample_f [m]) for the pixels in the fan.

        beam_f / sample_f are fractional indices into the polar grid of the
        pixel centres inside the fan, in row-major pixel order.
        """
        cols, rows = np.meshgrid(np.arange(self.cols), np.arange(self.rows))
        pix = np.stack([cols, rows, np.zeros_like(cols), np.ones_like(cols)], -1).astype(float)
        probe = pix @ self.image_to_probe.T
        theta, depth = self.probe_to_polar(probe[..., :3])
        mask = (np.abs(theta) <= self.half_angle_rad) & (depth >= 0) & (depth <= self.depth_mm)
        a = self.half_angle_rad
        beam_f = (theta[mask] + a) / (2 * a) * (self.n_beams - 1)
        sample_f = depth[mask] / self.sample_mm
        return mask, beam_f, sample_f

    @property
    def fan_mask(self) -> np.ndarray:
        """bool [rows, cols]: True inside the imaged fan."""
        return self.pixel_polar[0]

    def contains(self, points_probe, margin_mm: float = 0.0) -> np.ndarray:
        """(..., 3) Probe mm -> bool: inside the fan (in-plane test, z ignored)."""
        theta, depth = self.probe_to_polar(points_probe)
        margin_rad = margin_mm / (self.radius_mm + np.maximum(depth, 1.0))
        return ((np.abs(theta) <= self.half_angle_rad - margin_rad)
                & (depth >= margin_mm) & (depth <= self.depth_mm - margin_mm))
