"""CT overlay on an ultrasound frame: what to draw and the words that go with it.

Pure numpy (no Qt): given the CT, labels, a registration and a frame's
``image_to_reference``, decide whether an overlay may be shown (and if not,
why), reslice CT and labels on the frame plane (nearest: the fast per-frame path; the
fused CT view asks :meth:`OverlayEngine.ct_plane` for a linear reslice), and describe lesions that are
not in the plane ("lesion_3: 8 mm out of plane, tilt towards the head").

Frames: Image = US pixels (x = column towards the marked side, y = row away
from the transducer); ``image_to_ct = reference_to_ct @ image_to_reference``.
Arrays are ``[rows, cols]``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from registration.spatial.lesions import measure_lesion
from registration.spatial.volume import LabelMap, Volume

from .plane_sampler import OUTSIDE_HU, PlaneSampler

# Patient direction names for the dominant LPS component of a vector.
_DIRECTION_WORDS = {(0, 1): "the patient's left", (0, -1): "the patient's right",
                    (1, 1): "posterior", (1, -1): "anterior",
                    (2, 1): "the head", (2, -1): "the feet"}


def direction_word(v_lps) -> str:
    """Patient direction ('the head', 'posterior', ...) of the dominant LPS component of ``v_lps``."""
    v = np.asarray(v_lps, float)
    a = int(np.argmax(np.abs(v)))
    return _DIRECTION_WORDS[(a, 1 if v[a] >= 0 else -1)]


@dataclass
class Lesion:
    """A lesion as the overlay guides to it: its centroid (LPS mm) and equivalent-sphere radius (mm)."""
    name: str
    value: int
    centroid_lps: np.ndarray
    radius_mm: float        # equivalent-sphere radius: "in plane" means within it of the centroid


def lesions_of(labels: Optional[LabelMap]) -> List[Lesion]:
    """Every named lesion present in ``labels``, measured by
    :func:`registration.spatial.lesions.measure_lesion`."""
    if labels is None:
        return []
    out = []
    for name in labels.lesion_names():
        v = labels.names[name]
        mask = labels.array == v
        if not mask.any():
            continue
        m = measure_lesion(mask, labels)
        out.append(Lesion(name, int(v), np.asarray(m.centroid_lps), m.equivalent_radius_mm))
    return out


def lesion_guidance(lesion: Lesion, image_to_ct: np.ndarray, shape: Tuple[int, int]) -> Tuple[bool, str]:
    """(in plane and in the image, message) for one lesion on a frame ``shape`` = (rows, cols)."""
    x, y = image_to_ct[:3, 0], image_to_ct[:3, 1]
    sx, sy = np.linalg.norm(x), np.linalg.norm(y)
    n = np.cross(x / sx, y / sy)
    d = lesion.centroid_lps - image_to_ct[:3, 3]
    off_mm = float(d @ n)
    col, row = float(d @ x) / sx ** 2, float(d @ y) / sy ** 2
    rows, cols = shape
    inside = -0.5 <= col <= cols - 0.5 and -0.5 <= row <= rows - 0.5
    if abs(off_mm) <= lesion.radius_mm:
        if inside:
            return True, f"{lesion.name}: in plane ({abs(off_mm):.0f} mm from its centre)"
        side = "towards the marker" if col > cols / 2 else "away from the marker"
        return False, f"{lesion.name}: in plane but outside the image, slide {side}"
    word = direction_word(np.sign(off_mm) * n)
    return False, f"{lesion.name}: {abs(off_mm):.0f} mm out of plane, tilt/slide towards {word}"


def guidance_messages(lesions: List[Lesion], image_to_ct: np.ndarray, shape: Tuple[int, int]) -> List[str]:
    """One line per lesion: those in the image first, then the others nearest first."""
    n = np.cross(image_to_ct[:3, 0], image_to_ct[:3, 1])
    n = n / np.linalg.norm(n)
    rows = []
    for les in lesions:
        inside, msg = lesion_guidance(les, image_to_ct, shape)
        dist = abs(float((les.centroid_lps - image_to_ct[:3, 3]) @ n))
        rows.append((not inside, dist, msg))
    return [msg for _, _, msg in sorted(rows)]


@dataclass
class FrameOverlay:
    """Everything the US view needs for one frame."""
    visible: bool
    reason: str                                 # why there is no overlay ('' when visible)
    ct: Optional[np.ndarray] = None             # float32 [r, c] at reduced resolution
    labels: Optional[np.ndarray] = None         # int32 [r, c] at the same resolution
    step: int = 1                               # reduction factor (frame px per overlay px)
    messages: List[str] = field(default_factory=list)
    quality: str = ""
    image_to_ct: Optional[np.ndarray] = None    # frame pixels -> CT LPS mm (None: no registration/tracking)
    grid_to_ct: Optional[np.ndarray] = None     # overlay pixels (ct/labels arrays) -> CT LPS mm
    interpolation: str = "nearest"              # of ``ct``


class OverlayEngine:
    """Holds the CT+labels plane sampler and the lesions; computes a :class:`FrameOverlay` per frame."""

    def __init__(self, max_overlay_px: int = 400, interpolation: str = "linear"):
        self.max_overlay_px = int(max_overlay_px)
        self.interpolation = interpolation
        self.ct: Optional[Volume] = None
        self.labels: Optional[LabelMap] = None
        self._sampler: Optional[PlaneSampler] = None
        self.lesions: List[Lesion] = []

    @staticmethod
    def prepare(ct: Optional[Volume], labels: Optional[LabelMap]):
        """(sampler, lesions) for :meth:`set_data`; slow for big CTs, safe in a worker thread."""
        if ct is None:
            return None, []
        return PlaneSampler(ct, labels), lesions_of(labels)

    def set_data(self, ct: Optional[Volume], labels: Optional[LabelMap], prepared=None) -> None:
        """Use this CT and label map (``prepared`` = :meth:`prepare`'s result, else built here)."""
        sampler, lesions = prepared if prepared is not None else self.prepare(ct, labels)
        self.ct, self.labels = ct, labels
        self._sampler, self.lesions = sampler, lesions

    def set_interpolation(self, interpolation: str) -> None:
        """'linear' (default) or 'nearest' for :meth:`ct_plane` (the fused CT view)."""
        self.interpolation = interpolation

    def ct_plane(self, grid_to_ct: np.ndarray, shape: Tuple[int, int]) -> Optional[np.ndarray]:
        """The CT (HU float32, OUTSIDE_HU outside) on ``grid_to_ct``'s pixels with
        :attr:`interpolation`, or None without a CT."""
        if self._sampler is None:
            return None
        return self._sampler.sample_ct(grid_to_ct, shape, self.interpolation)

    def overlay_step(self, image_to_ct: np.ndarray, shape: Tuple[int, int]) -> int:
        """Frame pixels per overlay pixel: no finer than the CT voxel (sampling finer adds no
        CT detail, only cost) and at most ``max_overlay_px`` overlay pixels across."""
        px_mm = min(np.linalg.norm(image_to_ct[:3, 0]), np.linalg.norm(image_to_ct[:3, 1]))
        by_ct = int(np.floor(float(np.min(self.ct.spacing)) / max(px_mm, 1e-6)))
        by_size = int(np.ceil(max(shape) / self.max_overlay_px))
        return max(1, by_ct, by_size)

    def compute(self, shape: Tuple[int, int], image_to_reference: Optional[np.ndarray],
                registration, interpolation: str = "nearest") -> FrameOverlay:
        """``registration`` has ``reference_to_ct`` and ``quality_text()`` (or is None).
        ``interpolation`` of the CT plane: 'nearest' (fast) or 'linear' (when the fused CT
        view shows it too: one reslice serves both)."""
        if self.ct is None:
            return FrameOverlay(False, "no CT loaded: overlay off")
        if registration is None:
            return FrameOverlay(False, "no registration yet: overlay off")
        if image_to_reference is None:
            return FrameOverlay(False, "tracking INVALID on this frame: overlay off",
                                quality=registration.quality_text())
        if self._sampler is None:
            return FrameOverlay(False, "CT still loading: overlay off")
        image_to_ct = registration.reference_to_ct @ image_to_reference
        rows, cols = shape
        step = self.overlay_step(image_to_ct, shape)
        # Coarser grid over the same plane: overlay pixel (c, r) covers frame pixels
        # [c*step, c*step + step) and is sampled at their centre, so drawing it over that
        # block puts every value exactly where it belongs.
        coarse = image_to_ct.copy()
        coarse[:3, 3] += image_to_ct[:3, :2] @ np.full(2, (step - 1) / 2.0)
        coarse[:3, :2] *= step
        small = ((rows + step - 1) // step, (cols + step - 1) // step)
        ct = self._sampler.sample_ct(coarse, small, interpolation)
        lab = self._sampler.sample_labels(coarse, small)
        if not (ct > OUTSIDE_HU).any():
            # Nothing to overlay; saying so points at a wrong registration or the wrong CT.
            return FrameOverlay(False, "this frame lies outside the CT: overlay off (check the registration)",
                                quality=registration.quality_text(), image_to_ct=image_to_ct, grid_to_ct=coarse)
        msgs = guidance_messages(self.lesions, image_to_ct, shape)
        return FrameOverlay(True, "", ct, lab, step, msgs, registration.quality_text(), image_to_ct, coarse,
                            interpolation)
