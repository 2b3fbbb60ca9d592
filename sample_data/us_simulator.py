"""B-mode ultrasound simulated from a CT and its label map (DESIGN section 7).

The simulator fires the beams of a :class:`~sample_data.probe.ConvexProbe`
through the CT: every beam is sampled every ``probe.sample_mm`` along depth on
a polar grid ``[n_beams, n_samples]`` (precomputed in Probe mm), mapped to CT
LPS mm with ``image_to_ct @ image_to_probe^-1`` and looked up (nearest voxel)
in the CT (HU) and the label map. Per sample:

* tissue class from the label name (liver, blood, lesion type, fat, ...) or,
  for unnamed / ``body`` voxels, from HU (gas < -400, fat < -30, bone > 300);
* impedance Z (MRayl) per class; for unnamed soft tissue Z follows HU;
* interface reflection R = ((Z2-Z1)/(Z2+Z1))^2 along the beam, weighted by
  the incidence cos^2 (angle between the in-plane Z gradient and the beam);
* transmission: cumulative product of (1 - R), and a FULL shadow after the
  first bone (HU > 300 or a bone label) or gas (HU < -400) sample;
* attenuation exp(-2 alpha f z / 8.686) with alpha (dB/cm/MHz) per class;
* Rayleigh speckle: a complex Gaussian scatterer field that is fixed in CT
  space (a hash of the 0.3 mm cell containing the sample, so a sweep's nearby
  frames share their speckle), scaled by sqrt(backscatter) per class, plus
  the coherent specular echoes, blurred by a Gaussian PSF (sigma axial
  0.4 mm, lateral 0.9 mm at 3.5 MHz, scaled by 3.5/f);
* a haze of -9 dB of the local (10 mm) mean echo standing in for side lobes
  and reverberation, electronic noise before the TGC and a noise floor after
  it, TGC that compensates ``tgc_alpha`` dB/cm/MHz, log compression over
  ``dynamic_range_db`` (70 dB), a light post-log smoothing (the scanner's
  speckle reduction) and bilinear scan conversion into the ``rows x cols``
  uint8 frame (0 outside the fan).

The defaults of :class:`SimulatorSettings` were tuned so that homogeneous
liver matches a real in-vivo convex sweep (``python -m sample_data.realism``:
grey mean/SNR, speckle grain FWHM, fall-off with depth).

The label frame reports, per pixel, the label value of the structure the
pixel shows (nearest polar sample), 0 outside the fan: it is the ground truth
for tests. Only the in-plane part of interface normals is used (no
elevation), the image plane has no elevation thickness, and there is no
explicit reverberation, refraction or speed-of-sound error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d, uniform_filter1d

from registration.errors import InputError
from registration.volume import LabelMap, Volume

from .probe import ConvexProbe

# Tissue classes: (backscatter intensity rel. to liver, alpha dB/cm/MHz, Z MRayl).
TISSUES: Dict[str, Tuple[float, float, float]] = {
    "gel": (0.0, 0.0, 1.52),            # air between the face and the skin = coupling gel
    "gas": (0.0, 0.0, 0.0004),
    "bone": (3.0, 10.0, 7.8),
    "cartilage": (0.15, 3.0, 1.75),     # costal cartilage: dark, attenuating, no full shadow
    "fat": (0.3, 0.63, 1.38),
    "soft": (0.45, 0.9, 1.66),          # unnamed soft tissue (muscle, connective)
    "muscle": (0.5, 1.0, 1.70),
    "liver": (1.0, 0.5, 1.65),
    "blood": (0.02, 0.15, 1.61),
    # Portal veins run in a fibrous (Glisson) sheath that makes their walls echogenic;
    # a lower lumen Z stands in for that wall reflection (hepatic veins have none).
    "portal_blood": (0.02, 0.15, 1.35),
    "bile": (0.01, 0.05, 1.52),
    "kidney": (0.7, 0.8, 1.64),
    "spleen": (1.1, 0.5, 1.65),
    "pancreas": (1.4, 0.6, 1.66),
    "pancreatic_mass": (0.35, 0.6, 1.64),
    "bowel": (0.9, 0.7, 1.62),
    "adenocarcinoma": (0.4, 0.6, 1.63),
    "net": (4.0, 0.5, 1.67),
}
CLASS_NAMES = list(TISSUES)
CLASS = {n: i for i, n in enumerate(CLASS_NAMES)}
_BS = np.array([TISSUES[n][0] for n in CLASS_NAMES], np.float32)
_ALPHA = np.array([TISSUES[n][1] for n in CLASS_NAMES], np.float32)
_Z = np.array([TISSUES[n][2] for n in CLASS_NAMES], np.float32)
_AMP = np.sqrt(_BS).astype(np.float32)
_UNNAMED = -1  # label -> class table marker: decide from HU

# Substrings of label names -> class; first match wins (order matters).
_NAME_RULES = (
    ("pancreatic_mass", "pancreatic_mass"), ("portal", "portal_blood"), ("hepatic_vein", "blood"),
    ("vein", "blood"), ("artery", "blood"), ("aorta", "blood"), ("ivc", "blood"),
    ("vena", "blood"), ("heart", "blood"), ("liver", "liver"), ("gallbladder", "bile"),
    ("bladder", "bile"), ("cyst", "bile"), ("kidney", "kidney"), ("spleen", "spleen"),
    ("pancrea", "pancreas"), ("lung", "gas"), ("trachea", "gas"), ("bowel", "bowel"),
    ("colon", "bowel"), ("duodenum", "bowel"), ("stomach", "bowel"), ("esophagus", "bowel"),
    ("cartilage", "soft"), ("bone", "bone"), ("rib", "bone"), ("vertebra", "bone"),
    ("sacrum", "bone"), ("sternum", "bone"), ("spine", "bone"), ("muscle", "muscle"),
    ("fat", "fat"),
)


def class_of_label_name(name: str, lesion_types: Optional[Dict[str, str]] = None) -> int:
    """Tissue class index for a label name; _UNNAMED (-1) for body/unknown (HU decides)."""
    low = name.lower()
    if low.startswith("lesion") or "metasta" in low:
        kind = (lesion_types or {}).get(name, "adenocarcinoma").lower()
        return CLASS["net" if kind == "net" else "adenocarcinoma"]
    for key, cls in _NAME_RULES:
        if key in low:
            return CLASS[cls]
    return _UNNAMED


def _hash_complex(cells: np.ndarray, seed: int) -> np.ndarray:
    """[m, 3] int64 cell indices -> [m] complex64 unit-variance Gaussian, fixed per cell."""
    c = cells.astype(np.uint64)
    h = (c[:, 0] * np.uint64(0x9E3779B97F4A7C15)) ^ (c[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F)) \
        ^ (c[:, 2] * np.uint64(0x165667B19E3779F9)) ^ np.uint64(seed * 0x27D4EB2F165667C5 & (2**64 - 1))
    # splitmix64 finaliser: decorrelates neighbouring cells.
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return _GAUSS_TABLE[(h & np.uint64(_TABLE_MASK)).astype(np.intp)]


_TABLE_MASK = (1 << 20) - 1
_RE_IM = np.random.default_rng(20240611).standard_normal((2, _TABLE_MASK + 1)) / np.sqrt(2.0)
_GAUSS_TABLE = (_RE_IM[0] + 1j * _RE_IM[1]).astype(np.complex64)
del _RE_IM


@dataclass
class SimulatorSettings:
    """Knobs of the image formation (tuned against the real liver sweep, see realism.py)."""

    speckle_cell_mm: float = 0.3
    psf_axial_mm: float = 0.4          # at 3.5 MHz; scales with 3.5 / f (0.3 -> grain too fine vs real)
    psf_lateral_mm: float = 0.9
    specular_gain: float = 30.0        # specular amplitude per unit |r| relative to liver speckle
    incidence_power: float = 2.0
    tgc_alpha: float = 0.38            # dB/cm/MHz the TGC compensates
    dynamic_range_db: float = 70.0
    liver_grey: float = 64.0           # grey of liver speckle at the face (before attenuation)
    noise_db: float = -62.0            # electronic noise floor re liver echo at the face
    floor_db: float = -23.0            # noise after the TGC, re liver echo at the face
    clutter_db: float = -9.0           # side-lobe/reverberation haze re the local mean echo
    clutter_mm: float = 10.0           # size of the neighbourhood the haze comes from
    smoothing_mm: Tuple[float, float] = (0.2, 0.45)  # post-log speckle reduction (axial, lateral)
    extra: dict = field(default_factory=dict)


class UltrasoundSimulator:
    """Simulate convex-probe B-mode frames from a CT (HU) and its label map.

    Parameters
    ----------
    ct : Volume of HU (any orientation, LPS mm)
    labels : LabelMap on the same grid as ``ct`` (names decide the tissue class)
    frequency_mhz : centre frequency (attenuation and PSF scale with it)
    probe : ConvexProbe (geometry of the output frame and of ``image_to_probe``)
    seed : fixes the scatterer field and the noise sequence
    lesion_types : {label name: 'adenocarcinoma' | 'net'}; unknown lesions are adenocarcinoma
    """

    def __init__(self, ct: Volume, labels: LabelMap, *, frequency_mhz: float = 3.5,
                 probe: Optional[ConvexProbe] = None, seed: int = 0,
                 lesion_types: Optional[Dict[str, str]] = None,
                 settings: Optional[SimulatorSettings] = None):
        if not ct.same_grid(labels):
            raise InputError("the label map is not on the CT grid; resample it onto the CT first")
        self.ct = ct
        self.labels = labels
        self.frequency_mhz = float(frequency_mhz)
        self.probe = probe or ConvexProbe(frequency_mhz=frequency_mhz)
        self.seed = int(seed)
        self.settings = settings or SimulatorSettings()
        self.rng = np.random.default_rng(seed)
        self._hu = np.ascontiguousarray(ct.array)
        self._lab = np.ascontiguousarray(labels.array)
        lut = np.full(max(int(self._lab.max()), max(labels.names.values(), default=0)) + 1,
                      _UNNAMED, np.int16)
        for name, value in labels.names.items():
            lut[value] = class_of_label_name(name, lesion_types)
        self._label_class = lut
        p = self.probe
        # Polar sample positions in Image pixels (homogeneous), so a frame needs one 4x4 product.
        pts = p.polar_points_probe.reshape(-1, 3)
        polar_image = pts @ p.probe_to_image[:3, :3].T + p.probe_to_image[:3, 3]
        self._polar_px = polar_image[:, 0].astype(np.float32)
        self._polar_py = polar_image[:, 1].astype(np.float32)
        mask, beam_f, sample_f = p.pixel_polar
        self._fan_mask = mask
        b0 = np.clip(np.floor(beam_f).astype(np.intp), 0, p.n_beams - 2)
        s0 = np.clip(np.floor(sample_f).astype(np.intp), 0, p.n_samples - 2)
        self._sc_idx = (b0 * p.n_samples + s0)
        self._sc_wb = (beam_f - b0).astype(np.float32)
        self._sc_ws = (sample_f - s0).astype(np.float32)
        self._sc_nearest = (np.clip(np.rint(beam_f), 0, p.n_beams - 1).astype(np.intp) * p.n_samples
                            + np.clip(np.rint(sample_f), 0, p.n_samples - 1).astype(np.intp))
        self._beam_mm = ((p.radius_mm + p.sample_depths_mm)
                         * (2 * p.half_angle_rad / (p.n_beams - 1))).astype(np.float32)
        self._tgc_db = (2.0 * self.frequency_mhz * self.settings.tgc_alpha
                        * p.sample_depths_mm / 10.0).astype(np.float32)
        self._moving_values = np.array(sorted(
            v for n, v in labels.names.items() if class_of_label_name(n, lesion_types) in (
                CLASS["liver"], CLASS["adenocarcinoma"], CLASS["net"], CLASS["portal_blood"])
            or n.lower() in ("portal_vein", "hepatic_vein", "gallbladder")
            or "lung" in n.lower()), dtype=np.int32)

    # ------------------------------------------------------------------ sampling
    @property
    def image_to_probe(self) -> np.ndarray:
        return self.probe.image_to_probe

    @property
    def fan_mask(self) -> np.ndarray:
        return self._fan_mask.copy()

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

    def sample_polar(self, image_to_ct: np.ndarray, liver_shift_lps=None):
        """HU, label and LPS position of every polar sample, each [n_beams, n_samples].

        ``liver_shift_lps`` (3,) mm: the liver and its contents are displaced by
        this vector (breathing): tissue at a point p that is liver (with its
        vessels and lesions), gallbladder or lung either before or after the
        move is the CT's tissue at p - shift (so the diaphragm and lung base
        follow the dome); everything else (abdominal wall, ribs) stays.
        """
        m = np.asarray(image_to_ct, dtype=float)
        pts = self._map(m)
        ijk_m = self.ct.lps_to_ijk @ m
        ijk = self._map(ijk_m)
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

    def tissue_class(self, hu: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """Class index per sample: from the label name, else from HU."""
        cls = self._label_class[np.clip(lab, 0, self._label_class.size - 1)].astype(np.int16)
        by_hu = np.where(hu < -400, CLASS["gas"], np.where(hu < -30, CLASS["fat"], CLASS["soft"]))
        by_hu = np.where(hu > 300, CLASS["bone"], by_hu)
        # Unnamed voxels (incl. 'body': ribs, fat, muscle) by HU; gas wins over any label
        # (bowel gas, lung). Bone by HU does not override a named structure: an arterial-phase
        # aorta or a contrast-filled kidney can exceed 300 HU and must not cast a shadow.
        cls = np.where(cls == _UNNAMED, by_hu, cls)
        cls = np.where(hu < -400, CLASS["gas"], cls)
        # A bone label below 250 HU is cartilage (or marrow inside a cortex that shadows anyway).
        cls = np.where((cls == CLASS["bone"]) & (hu < 250), CLASS["cartilage"], cls)
        # Air before the first tissue sample of a beam is the gap under the curved face,
        # filled with gel in practice: it must not shadow the whole beam.
        # Tissue starts at the first 2 mm run without gas (a voxel staircase at the skin
        # must not count as gas behind tissue).
        gas = cls == CLASS["gas"]
        run = max(2, int(round(2.0 / self.probe.sample_mm)))
        c = np.cumsum(~gas, axis=-1, dtype=np.int32)
        full = np.zeros_like(gas)
        full[..., run - 1:] = (c[..., run - 1:] - np.concatenate(
            [np.zeros_like(c[..., :1]), c[..., :-run]], axis=-1)) == run
        before_skin = ~np.maximum.accumulate(full, axis=-1)
        cls = np.where(before_skin & gas, CLASS["gel"], cls)
        return cls.astype(np.intp)

    # ------------------------------------------------------------------ physics
    def simulate(self, image_to_ct: np.ndarray, rng: Optional[np.random.Generator] = None,
                 liver_shift_lps=None) -> Tuple[np.ndarray, np.ndarray]:
        """One frame at pose ``image_to_ct`` (4x4 Image pixels -> CT LPS mm).

        Returns (frame uint8 [rows, cols], label_frame int32 [rows, cols]).
        """
        rng = self.rng if rng is None else rng
        p, st = self.probe, self.settings
        hu, lab, pts = self.sample_polar(image_to_ct, liver_shift_lps)
        cls = self.tissue_class(hu, lab)
        env = self._envelope(hu, cls, pts, rng)
        grey = self._compress(env)
        sm_ax, sm_lat = st.smoothing_mm
        if sm_ax > 0:
            grey = gaussian_filter1d(grey, sm_ax / p.sample_mm, axis=1, truncate=3.0)
        if sm_lat > 0:
            beam_mm = (p.radius_mm + p.depth_mm / 2) * (2 * p.half_angle_rad / (p.n_beams - 1))
            grey = gaussian_filter1d(grey, sm_lat / beam_mm, axis=0, truncate=3.0)
        frame = np.zeros((p.rows, p.cols), np.uint8)
        g = grey.reshape(-1)
        i, wb, ws = self._sc_idx, self._sc_wb, self._sc_ws
        ns = p.n_samples
        val = ((1 - wb) * ((1 - ws) * g[i] + ws * g[i + 1])
               + wb * ((1 - ws) * g[i + ns] + ws * g[i + ns + 1]))
        frame[self._fan_mask] = np.clip(np.rint(val), 0, 255).astype(np.uint8)
        label_frame = np.zeros((p.rows, p.cols), np.int32)
        label_frame[self._fan_mask] = lab.reshape(-1)[self._sc_nearest]
        return frame, label_frame

    def _envelope(self, hu, cls, pts, rng) -> np.ndarray:
        """Echo envelope [n_beams, n_samples] after attenuation, shadowing, noise and TGC."""
        p, st = self.probe, self.settings
        f = self.frequency_mhz
        ds = p.sample_mm
        beam_mm = self._beam_mm
        z = _Z[cls]
        # Unnamed soft tissue: Z follows HU (density proxy), so muscle/fascia planes reflect.
        z = np.where(cls == CLASS["soft"],
                     np.float32(1.60) + np.float32(0.0012) * np.clip(hu, -30, 100).astype(np.float32), z)
        # Interface reflection along the beam (sample s-1 -> s).
        refl = np.zeros_like(z)
        refl[:, 1:] = ((z[:, 1:] - z[:, :-1]) / (z[:, 1:] + z[:, :-1])) ** 2
        # Incidence weight cos^n, from the in-plane gradient of a smoothed Z, only where
        # there is an interface (a few % of the samples).
        bi, si = np.nonzero(refl > 1e-7)
        spec = np.zeros_like(z)
        if bi.size:
            zs = uniform_filter1d(uniform_filter1d(z, 5, axis=1), 3, axis=0)
            nb, ns = z.shape
            s0, s1 = np.maximum(si - 1, 0), np.minimum(si + 1, ns - 1)
            b0, b1 = np.maximum(bi - 1, 0), np.minimum(bi + 1, nb - 1)
            g_ax = (zs[bi, s1] - zs[bi, s0]) / ((s1 - s0) * ds)
            g_lat = (zs[b1, si] - zs[b0, si]) / ((b1 - b0) * beam_mm[si])
            cos2 = g_ax ** 2 / (g_ax ** 2 + g_lat ** 2 + 1e-12)
            spec[bi, si] = st.specular_gain * np.sqrt(refl[bi, si] * cos2 ** (st.incidence_power / 2.0))
        # Transmission: energy lost at earlier interfaces, then a full shadow after bone or gas
        # (starting 1 mm below it: the blocking surface itself still echoes).
        trans = np.ones_like(z)
        trans[:, 1:] = np.cumprod(1.0 - np.minimum(refl[:, :-1], 0.999), axis=1)
        blocked = np.maximum.accumulate((cls == CLASS["bone"]) | (cls == CLASS["gas"]), axis=1)
        lag = max(1, int(round(1.0 / ds)))
        trans[:, lag:][blocked[:, :-lag]] = 0.0
        # Two-way attenuation (dB, cumulative along the beam) minus the TGC, as one factor.
        att_db = np.cumsum(_ALPHA[cls], axis=1) * np.float32(2.0 * f * ds / 10.0)
        loss = np.exp((self._tgc_db[None, :] - att_db) * np.float32(np.log(10.0) / 20.0))
        # Complex echo: diffuse scatter (fixed field in the patient) + coherent specular echo.
        cells = np.floor(pts.reshape(-1, 3) * np.float32(1.0 / st.speckle_cell_mm)).astype(np.int64)
        scat = _hash_complex(cells, self.seed).reshape(z.shape)
        echo = scat * _AMP[cls] + spec
        scale = 3.5 / f
        sa = st.psf_axial_mm * scale / ds
        beam_mid = float(np.median(beam_mm))
        sl = st.psf_lateral_mm * scale / beam_mid
        re = gaussian_filter1d(gaussian_filter1d(echo.real, sa, axis=1, truncate=3.0), sl, axis=0, truncate=3.0)
        im = gaussian_filter1d(gaussian_filter1d(echo.imag, sa, axis=1, truncate=3.0), sl, axis=0, truncate=3.0)
        # Blurring a unit-variance field lowers its variance; restore liver speckle level 1.
        norm = np.float32(1.0 / np.sqrt(_psf_energy(sa) * _psf_energy(sl)))
        rx = np.hypot(re, im) * norm * trans
        if st.clutter_db > -90:
            # Side lobes and reverberation fill anechoic lumens with a haze of their surroundings.
            w_ax = max(1, int(round(st.clutter_mm / ds)))
            w_lat = max(1, int(round(st.clutter_mm / beam_mid)))
            haze = uniform_filter1d(uniform_filter1d(rx, w_ax, axis=1), w_lat, axis=0)
            rx += np.float32(10.0 ** (st.clutter_db / 20.0)) * haze
        # Electronic noise: Rayleigh amplitude (unit power) at the receiver, before the TGC.
        # Electronic noise before the TGC (grows with depth) plus a floor after it (what
        # fills real lumens and shadows with a few grey levels), Rayleigh distributed.
        u = rng.random(rx.shape, dtype=np.float32)
        level = (np.float32(10.0 ** (st.noise_db / 20.0))
                 * np.exp(self._tgc_db * np.float32(np.log(10.0) / 20.0))
                 + np.float32(10.0 ** (st.floor_db / 20.0)))
        return (rx * loss) + np.sqrt(-np.log1p(-u)) * level[None, :]

    def _compress(self, env: np.ndarray) -> np.ndarray:
        """Log compression: liver envelope mean -> ``liver_grey``; ``dynamic_range_db`` -> 0..255."""
        st = self.settings
        dr = st.dynamic_range_db
        # Mean Rayleigh envelope of unit-power speckle is sqrt(pi)/2; in dB its log-mean is lower.
        ref_db = 20.0 * np.log10(np.sqrt(np.pi) / 2.0) - 1.05
        db = 20.0 * np.log10(np.maximum(env, 1e-6)) - ref_db
        return np.clip(st.liver_grey + db * (255.0 / dr), 0.0, 255.0).astype(np.float32)


def _psf_energy(sigma: float) -> float:
    """Sum of squared weights of a sampled unit-sum Gaussian (variance kept by the blur)."""
    if sigma <= 0:
        return 1.0
    x = np.arange(-int(3 * sigma + 0.5), int(3 * sigma + 0.5) + 1)   # as gaussian_filter1d, truncate=3
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sum(w ** 2))
