"""B-mode ultrasound simulated from a CT and its label map (DESIGN section 7).

The simulator fires the beams of a :class:`~sample_data.simulator.probe.ConvexProbe`
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
liver matches a real in-vivo convex sweep (``python -m sample_data.case.realism``:
grey mean/SNR, speckle grain FWHM, fall-off with depth).

The label frame reports, per pixel, the label value of the structure the
pixel shows (nearest polar sample), 0 outside the fan: it is the ground truth
for tests. Only the in-plane part of interface normals is used (no
elevation), the image plane has no elevation thickness, and there is no
explicit reverberation, refraction or speed-of-sound error.

The pieces live in their own modules: tissue classes and the label/HU rules
(:mod:`sample_data.simulator.tissue_classes`), the scatterer field
(:mod:`sample_data.simulator.speckle_field`), the tuned knobs
(:mod:`sample_data.simulator.simulator_settings`), the CT lookup along the beams
(:mod:`sample_data.simulator.ct_sampling`), the acoustic model
(:mod:`sample_data.simulator.echo_envelope`) and log compression, smoothing and scan
conversion (:mod:`sample_data.simulator.bmode_frame`). This module ties them together
per frame and keeps the names other modules import from it.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

from .bmode_frame import ScanConverter, log_compress, post_log_smoothing
from .ct_sampling import PolarSampler
from .echo_envelope import beam_spacing_mm, echo_envelope, tgc_gain_db
from .probe import ConvexProbe
from .simulator_settings import SimulatorSettings
from .tissue_classes import classify_samples, label_class_table


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
        self._label_class = label_class_table(labels, lesion_types)
        p = self.probe
        self._sampler = PolarSampler(ct, labels, p, lesion_types)
        self._scan = ScanConverter(p)
        self._beam_mm = beam_spacing_mm(p)
        self._tgc_db = tgc_gain_db(p, self.frequency_mhz, self.settings.tgc_alpha)

    # ------------------------------------------------------------------ sampling
    @property
    def image_to_probe(self) -> np.ndarray:
        return self.probe.image_to_probe

    @property
    def fan_mask(self) -> np.ndarray:
        return self._scan.fan_mask.copy()

    def sample_polar(self, image_to_ct: np.ndarray, liver_shift_lps=None, source_of=None):
        """HU, label and LPS position of every polar sample, each [n_beams, n_samples].

        ``liver_shift_lps`` (3,) mm: the liver and its contents are displaced by
        this vector (breathing): tissue at a point p that is liver (with its
        vessels and lesions), gallbladder or lung either before or after the
        move is the CT's tissue at p - shift (so the diaphragm and lung base
        follow the dome); everything else (abdominal wall, ribs) stays.
        ``source_of``: a tissue deformation (see
        :meth:`sample_data.simulator.ct_sampling.PolarSampler.sample_polar`).
        """
        return self._sampler.sample_polar(image_to_ct, liver_shift_lps, source_of)

    def tissue_class(self, hu: np.ndarray, lab: np.ndarray) -> np.ndarray:
        """Class index per sample: from the label name, else from HU."""
        return classify_samples(hu, lab, self._label_class, self.probe.sample_mm)

    # ------------------------------------------------------------------ physics
    def simulate(self, image_to_ct: np.ndarray, rng: Optional[np.random.Generator] = None,
                 liver_shift_lps=None, source_of=None) -> Tuple[np.ndarray, np.ndarray]:
        """One frame at pose ``image_to_ct`` (4x4 Image pixels -> CT LPS mm).

        ``source_of``: the tissue deformation at this frame (x LPS [m, 3] -> CT
        position of the tissue at x), or None. Returns (frame uint8 [rows, cols],
        label_frame int32 [rows, cols]).
        """
        rng = self.rng if rng is None else rng
        p, st = self.probe, self.settings
        hu, lab, pts = self.sample_polar(image_to_ct, liver_shift_lps, source_of)
        cls = self.tissue_class(hu, lab)
        env = self._envelope(hu, cls, pts, rng)
        grey = self._compress(env)
        grey = post_log_smoothing(grey, p, st.smoothing_mm)
        frame = self._scan.grey_frame(grey)
        label_frame = self._scan.label_frame(lab)
        return frame, label_frame

    def _envelope(self, hu, cls, pts, rng) -> np.ndarray:
        """Echo envelope [n_beams, n_samples] after attenuation, shadowing, noise and TGC."""
        return echo_envelope(hu, cls, pts, rng, probe=self.probe, settings=self.settings,
                             frequency_mhz=self.frequency_mhz, seed=self.seed,
                             beam_mm=self._beam_mm, tgc_db=self._tgc_db)

    def _compress(self, env: np.ndarray) -> np.ndarray:
        """Log compression: liver envelope mean -> ``liver_grey``; ``dynamic_range_db`` -> 0..255."""
        return log_compress(env, self.settings)
