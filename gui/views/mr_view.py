"""The MR as a second image layer: one MR slice view with its own window/level and lesion marks.

:class:`MRSliceView` is a :class:`~gui.views.slice_view.SliceView` on an MR
:class:`~gui.views.display.DisplayVolume` (any Volume: the slicing, mouse and
crosshair code is the CT's). What differs: MR intensities have no unit, so the
initial window/level comes from the MR's own foreground percentiles
(:func:`mr_window_level`), never the CT's HU presets; and MR lesions are drawn as
rings, magenta for a lesion only the MR shows (the one the CT cannot guide to
without fusion), green for one seen on both, so an MR-only lesion is never
mistaken for a CT lesion.

:func:`mr_on_ct_grid` puts the MR on the CT's grid through ``mr_to_ct`` with its
normalised intensity mapped onto a CT window, so the ultrasound view's CT overlay
code shows the MR instead of the CT without knowing about MR.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import SimpleITK as sitk
from PyQt5.QtCore import QPointF
from PyQt5.QtGui import QColor, QPainter, QPen

from registration.spatial.transforms import invert
from registration.spatial.volume import Volume

from .qimage import MR_ONLY_COLOUR  # noqa: F401 (re-exported for the MR panel)
from .slice_view import SliceView

#: Ring colours (RGB): a lesion only the MR shows (MR_ONLY_COLOUR, the same in every view); one the CT
#: shows too.
BOTH_COLOUR = (0, 220, 0)


def mr_window_level(mr: Volume) -> Tuple[float, float]:
    """(window, level) spanning the MR foreground's 1-99.5 % percentiles (raw MR units)."""
    from registration.io.mr_intensity import robust_range
    lo, hi = robust_range(mr)
    return max(hi - lo, 1e-3), (lo + hi) / 2.0


def mr_on_ct_grid(mr: Volume, ct: Volume, mr_to_ct, window: float, level: float) -> Volume:
    """The MR resampled onto ``ct``'s grid (linear, through ``mr_to_ct``: MR LPS mm -> CT LPS
    mm), its normalised 0..1 range mapped onto ``level -/+ window/2`` (HU-like units), so a
    view that windows a CT at (window, level) shows the MR's own 1-99.5 % range. Outside the
    MR: the bottom of the window (black)."""
    from registration.io.mr_intensity import normalise
    norm = normalise(mr)
    ct_to_mr = invert(np.asarray(mr_to_ct, float))
    t = sitk.AffineTransform(3)
    t.SetMatrix(ct_to_mr[:3, :3].ravel().tolist())
    t.SetTranslation(ct_to_mr[:3, 3].tolist())
    ref = ct.to_sitk()
    img = sitk.Resample(norm.to_sitk(), ref, t, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    arr = (level - window / 2.0) + arr * float(window)
    return Volume(arr, ct.spacing, ct.origin, ct.direction,
                  metadata=dict(ct.metadata, modality="MR", source=mr.metadata.get("source")))


class MRSliceView(SliceView):
    """A slice view of the MR with MR-lesion rings (``set_lesions``)."""

    def __init__(self, view: str = "axial", parent=None):
        super().__init__(view, parent)
        self.setObjectName(f"mr_slice_{view}")
        self.lesions: List[Tuple[np.ndarray, str, float, bool]] = []   # (MR LPS, name, diameter mm, MR only)

    def set_lesions(self, lesions) -> None:
        """``lesions``: (MR LPS point, name, diameter mm, mr_only) per lesion."""
        self.lesions = [(np.asarray(p, float), str(n), float(d), bool(only)) for p, n, d, only in lesions]
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if self.display is None or not self.lesions:
            return
        p = QPainter(self)
        self._draw_lesions(p)
        p.end()

    def _draw_lesions(self, p: QPainter) -> None:
        """A ring of the lesion's size on the slices that cut it, the name and 'MR only'."""
        ax = {"axial": 2, "coronal": 1, "sagittal": 0}[self.view]
        r = self.image_rect()
        rows, cols = self.display.slice(self.view, 0).shape
        sc, _ = self.display.pixel_spacing(self.view)
        px_per_mm = r.width() / (cols * sc)
        for lps, name, diameter, only in self.lesions:
            half = diameter / 2.0
            dz = abs(lps[ax] - self.cursor_lps[ax])
            if dz > half + 1.0:
                continue
            radius_px = max(4.0, np.sqrt(max(half ** 2 - dz ** 2, 1.0)) * px_per_mm + 3.0)
            colour = QColor(*(MR_ONLY_COLOUR if only else BOTH_COLOUR))
            p.setPen(QPen(colour, 2))
            c = self.lps_to_widget(lps)
            p.drawEllipse(c, radius_px, radius_px)
            p.drawText(QPointF(c.x() + radius_px + 3, c.y() - 3), f"{name} ({'MR only' if only else 'CT + MR'})")
