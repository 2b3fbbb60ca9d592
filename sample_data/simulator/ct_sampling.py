"""CT and label values along the simulator's beams (nearest voxel), with breathing.

The polar grid ``[n_beams, n_samples]`` of a :class:`~sample_data.simulator.probe.ConvexProbe`
is kept in Image pixels (x = column, y = row, z = 0); a frame maps it to CT
LPS mm with one 4x4 ``image_to_ct`` (Image pixels -> CT LPS mm) and to
continuous CT indices (i, j, k) with ``lps_to_ijk @ image_to_ct``. CT arrays
are stored [k, j, i]; samples outside the CT are air (-1000 HU), label 0.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from registration.spatial.volume import LabelMap, Volume

from .probe import ConvexProbe
from .tissue_classes import CLASS, class_of_label_name

#: A deformation (``source_of``) is evaluated every this many samples along a beam (1.2 mm
#: at 0.3 mm sampling) and interpolated in between.
SOURCE_STEP = 4


class PolarSampler:
    """Nearest-voxel lookup of HU, label and LPS position for every polar sample.

    ``lesion_types`` ({label name: 'adenocarcinoma' | 'net'}) only decides which
    labels move with the liver when breathing (see :meth:`sample_polar`).
    """

    def __init__(self, ct: Volume, labels: LabelMap, probe: ConvexProbe,
                 lesion_types: Optional[Dict[str, str]] = None):
        self.ct = ct
        self.probe = probe
        self._hu = np.ascontiguousarray(ct.array)
        self._lab = np.ascontiguousarray(labels.array)
        p = self.probe
        # Polar sample positions in Image pixels (homogeneous), so a frame needs one 4x4 product.
        pts = p.polar_points_probe.reshape(-1, 3)
        polar_image = pts @ p.probe_to_image[:3, :3].T + p.probe_to_image[:3, 3]
        self._polar_px = polar_image[:, 0].astype(np.float32)
        self._polar_py = polar_image[:, 1].astype(np.float32)
        self._moving_values = np.array(sorted(
            v for n, v in labels.names.items() if class_of_label_name(n, lesion_types) in (
                CLASS["liver"], CLASS["adenocarcinoma"], CLASS["net"], CLASS["portal_blood"])
            or n.lower() in ("portal_vein", "hepatic_vein", "gallbladder")
            or "lung" in n.lower()), dtype=np.int32)

    def _lookup(self, ijk: np.ndarray):
        """[m,3] continuous (i,j,k) -> (HU int16 [m], label [m]); outside the CT = air, label 0."""
        ni, nj, nk = self.ct.shape_ijk
        i = np.rint(ijk[:, 0]).astype(np.intp)
        j = np.rint(ijk[:, 1]).astype(np.intp)
        k = np.rint(ijk[:, 2]).astype(np.intp)
        inside = (i >= 0) & (i < ni) & (j >= 0) & (j < nj) & (k >= 0) & (k < nk)
        flat = np.where(inside, (k * nj + j) * ni + i, 0)
        hu = np.where(inside, self._hu.reshape(-1)[flat], np.int16(-1000))
        lab = np.where(inside, self._lab.reshape(-1)[flat], 0)
        return hu, lab

    def _map(self, m: np.ndarray) -> np.ndarray:
        """Polar samples (Image pixels, z = 0) through 4x4 ``m``: [m, 3] float32.

        Written as multiply-adds rather than a matrix product: BLAS threads
        thrash on a busy 2-core machine for this tall-thin product.
        """
        m = np.asarray(m, dtype=np.float32)
        px, py = self._polar_px, self._polar_py
        return np.stack([px * m[r, 0] + py * m[r, 1] + m[r, 3] for r in range(3)], axis=1)

    def _deformed(self, pts: np.ndarray, source_of) -> np.ndarray:
        """``source_of`` at every ``SOURCE_STEP``-th sample of each beam (and its last),
        its displacement interpolated linearly along the beam in between: [m, 3] float32."""
        nb, ns = self.probe.n_beams, self.probe.n_samples
        grid = pts.reshape(nb, ns, 3)
        idx = np.arange(0, ns, SOURCE_STEP)
        if idx[-1] != ns - 1:
            idx = np.append(idx, ns - 1)
        coarse = grid[:, idx].reshape(-1, 3)
        disp = (np.asarray(source_of(coarse), np.float32) - coarse).reshape(nb, len(idx), 3)
        pos = np.arange(ns)
        j = np.clip(np.searchsorted(idx, pos, side="right") - 1, 0, len(idx) - 2)
        t = ((pos - idx[j]) / (idx[j + 1] - idx[j])).astype(np.float32)[None, :, None]
        return (grid + disp[:, j] * (1 - t) + disp[:, j + 1] * t).reshape(-1, 3)

    def sample_polar(self, image_to_ct: np.ndarray, liver_shift_lps=None, source_of=None):
        """HU, label and LPS position of every polar sample, each [n_beams, n_samples].

        ``liver_shift_lps`` (3,) mm: the liver and its contents are displaced by
        this vector (breathing): tissue at a point p that is liver (with its
        vessels and lesions), gallbladder or lung either before or after the
        move is the CT's tissue at p - shift (so the diaphragm and lung base
        follow the dome); everything else (abdominal wall, ribs) stays.

        ``source_of``: a deformation, as a callable mapping sample positions x [m, 3]
        (LPS mm, where the frame is) to the CT positions p [m, 3] of the tissue that is
        at x (the inverse of the tissue's motion p -> x). The samples then show the CT
        at p, and the returned positions are p (so speckle, fixed in the tissue, moves
        with it). A tissue deformation is smooth over millimetres, so it is evaluated
        every ``SOURCE_STEP`` samples along each beam and interpolated linearly between.
        Breathing, if any, applies on top.
        """
        m = np.asarray(image_to_ct, dtype=float)
        pts = self._map(m)
        if source_of is None:
            ijk_m = self.ct.lps_to_ijk @ m
            ijk = self._map(ijk_m)
        else:
            pts = self._deformed(pts, source_of)
            a = self.ct.lps_to_ijk.astype(np.float32)
            ijk = np.stack([pts[:, 0] * a[r, 0] + pts[:, 1] * a[r, 1] + pts[:, 2] * a[r, 2] + a[r, 3]
                            for r in range(3)], axis=1)
        hu, lab = self._lookup(ijk)
        if liver_shift_lps is not None and np.any(np.asarray(liver_shift_lps) != 0):
            shift = np.asarray(liver_shift_lps, dtype=float)
            d_ijk = (self.ct.lps_to_ijk[:3, :3] @ shift).astype(np.float32)
            hu_s, lab_s = self._lookup(ijk - d_ijk)
            # The liver, its contents and the lung base move together (the diaphragm
            # between them, labelled 'body', comes along where lung or liver is next to it);
            # the abdominal wall does not.
            moved = np.isin(lab_s, self._moving_values) | np.isin(lab, self._moving_values)
            hu = np.where(moved, hu_s, hu)
            lab = np.where(moved, lab_s, lab)
            pts = np.where(moved[:, None], pts - shift.astype(np.float32), pts)
        shape = (self.probe.n_beams, self.probe.n_samples)
        return hu.reshape(shape), lab.reshape(shape), pts.reshape(shape + (3,))
