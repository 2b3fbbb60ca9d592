"""From echo envelope to the displayed B-mode frame.

Log compression of the envelope ([n_beams, n_samples], linear, 1 = liver
speckle at the face) over ``dynamic_range_db`` to grey 0..255, a light
post-log smoothing (the scanner's speckle reduction, sizes in mm along the
beam and across beams) and scan conversion of the polar grid into the
``rows x cols`` Image frame of the :class:`~sample_data.simulator.probe.ConvexProbe`
(row = depth direction, column = lateral): grey by bilinear interpolation
(uint8, 0 outside the fan), the label frame by the nearest polar sample
(int32, 0 outside the fan).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .probe import ConvexProbe
from .simulator_settings import SimulatorSettings


def log_compress(env: np.ndarray, settings: SimulatorSettings) -> np.ndarray:
    """Log compression: liver envelope mean -> ``liver_grey``; ``dynamic_range_db`` -> 0..255."""
    st = settings
    dr = st.dynamic_range_db
    # Mean Rayleigh envelope of unit-power speckle is sqrt(pi)/2; in dB its log-mean is lower.
    ref_db = 20.0 * np.log10(np.sqrt(np.pi) / 2.0) - 1.05
    db = 20.0 * np.log10(np.maximum(env, 1e-6)) - ref_db
    return np.clip(st.liver_grey + db * (255.0 / dr), 0.0, 255.0).astype(np.float32)


def post_log_smoothing(grey: np.ndarray, probe: ConvexProbe,
                       smoothing_mm: Tuple[float, float]) -> np.ndarray:
    """Gaussian blur of the polar grey [n_beams, n_samples]: sigma (axial, lateral) mm;
    the lateral sigma is converted at mid-depth. A sigma <= 0 skips that axis."""
    p = probe
    sm_ax, sm_lat = smoothing_mm
    if sm_ax > 0:
        grey = gaussian_filter1d(grey, sm_ax / p.sample_mm, axis=1, truncate=3.0)
    if sm_lat > 0:
        beam_mm = (p.radius_mm + p.depth_mm / 2) * (2 * p.half_angle_rad / (p.n_beams - 1))
        grey = gaussian_filter1d(grey, sm_lat / beam_mm, axis=0, truncate=3.0)
    return grey


class ScanConverter:
    """Polar grid [n_beams, n_samples] -> Image frame [rows, cols] of ``probe``.

    The pixel -> (beam, sample) weights are computed once; ``fan_mask`` (bool
    [rows, cols]) marks the pixels inside the fan.
    """

    def __init__(self, probe: ConvexProbe):
        p = self.probe = probe
        mask, beam_f, sample_f = p.pixel_polar
        self.fan_mask = mask
        b0 = np.clip(np.floor(beam_f).astype(np.intp), 0, p.n_beams - 2)
        s0 = np.clip(np.floor(sample_f).astype(np.intp), 0, p.n_samples - 2)
        self._sc_idx = (b0 * p.n_samples + s0)
        self._sc_wb = (beam_f - b0).astype(np.float32)
        self._sc_ws = (sample_f - s0).astype(np.float32)
        self._sc_nearest = (np.clip(np.rint(beam_f), 0, p.n_beams - 1).astype(np.intp) * p.n_samples
                            + np.clip(np.rint(sample_f), 0, p.n_samples - 1).astype(np.intp))

    def grey_frame(self, grey: np.ndarray) -> np.ndarray:
        """Polar grey (float, 0..255) -> uint8 [rows, cols], bilinear, 0 outside the fan."""
        p = self.probe
        frame = np.zeros((p.rows, p.cols), np.uint8)
        g = grey.reshape(-1)
        i, wb, ws = self._sc_idx, self._sc_wb, self._sc_ws
        ns = p.n_samples
        val = ((1 - wb) * ((1 - ws) * g[i] + ws * g[i + 1])
               + wb * ((1 - ws) * g[i + ns] + ws * g[i + ns + 1]))
        frame[self.fan_mask] = np.clip(np.rint(val), 0, 255).astype(np.uint8)
        return frame

    def label_frame(self, lab: np.ndarray) -> np.ndarray:
        """Polar labels -> int32 [rows, cols] from the nearest polar sample, 0 outside the fan."""
        p = self.probe
        label_frame = np.zeros((p.rows, p.cols), np.int32)
        label_frame[self.fan_mask] = lab.reshape(-1)[self._sc_nearest]
        return label_frame
