"""The CT-guided plan drawing: axial CT at the target with the needle, the vertical and the angle.

Points are CT LPS mm; the slice is the display volume's axial slice through
the target, drawn radiologically (patient right on the left) with its pixel
spacing (mm) so that angles are true. Soft-tissue window (400/40 HU). A
double-oblique path is drawn as its axial projection with its craniocaudal
angle stated; an unsafe least-risk path in red, labelled UNSAFE.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt5.QtCore import QPointF, QRectF, Qt
from PyQt5.QtGui import QColor, QFont, QPainter, QPen
from PyQt5.QtWidgets import QWidget

from gui.views.qimage import gray_to_qimage, window_level

from .path_overlay import PATH_COLOURS

SOFT_TISSUE_WINDOW_HU, SOFT_TISSUE_LEVEL_HU = 400.0, 40.0


class CTPlanDrawing(QWidget):
    """Axial CT at the target with the needle, the vertical and the angle (radiological view)."""

    def __init__(self, window, parent=None):
        super().__init__(parent)
        self.setObjectName("ct_plan_drawing")
        self.setMinimumSize(220, 190)
        self.window = window
        self.path: Optional[dict] = None

    def set_path(self, path: Optional[dict]) -> None:
        self.path = path
        self.update()

    def paintEvent(self, event):  # noqa: N802
        """The axial slice at the target with the needle, the vertical at the entry and the numbers."""
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        disp = self.window.display
        if self.path is None or disp is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "no CT-guided path selected")
            p.end()
            return
        target = np.asarray(self.path["target_ct"], float)
        entry = np.asarray(self.path["entry_ct"], float)
        k = disp.slice_index("axial", target)
        img = gray_to_qimage(window_level(disp.slice("axial", k), SOFT_TISSUE_WINDOW_HU, SOFT_TISSUE_LEVEL_HU))
        sc, sr = disp.pixel_spacing("axial")
        scale = min(self.width() / (img.width() * sc), (self.height() - 34) / (img.height() * sr))
        r = QRectF((self.width() - img.width() * sc * scale) / 2, 0, img.width() * sc * scale,
                   img.height() * sr * scale)
        p.drawImage(r, img)

        def to_w(lps):
            col, row = disp.lps_to_pixel("axial", lps)
            return QPointF(r.left() + (col + 0.5) / img.width() * r.width(),
                           r.top() + (row + 0.5) / img.height() * r.height())
        t, e = to_w(target), to_w(entry)
        p.setRenderHint(QPainter.Antialiasing)
        p.setPen(QPen(QColor(255, 255, 255, 160), 1, Qt.DashLine))
        p.drawLine(e, QPointF(e.x(), max(r.top(), e.y() - 0.5 * abs(t.y() - e.y()) - 20)))  # vertical (anterior)
        unsafe = self.path.get("safe", True) is False
        p.setPen(QPen(PATH_COLOURS["unsafe" if unsafe else "ct"], 2.5, Qt.DashDotLine if unsafe else Qt.SolidLine))
        p.drawLine(e, t)
        p.setPen(QPen(QColor(255, 60, 60), 2))
        p.drawEllipse(t, 4, 4)
        p.setPen(QPen(QColor(60, 255, 90), 2))
        p.drawEllipse(e, 4, 4)
        f = QFont(self.font())
        f.setPointSize(8)
        p.setFont(f)
        p.setPen(QColor(255, 220, 120))
        p.drawText(4, 12, "R")
        p.drawText(self.width() - 12, 12, "L")
        ct = self.path.get("ct", {})
        if unsafe:
            p.setPen(PATH_COLOURS["unsafe"])
            p.drawText(4, 26, "UNSAFE least-risk path: not a plan")
        p.setPen(QColor(235, 235, 235))
        if ct.get("double_oblique"):
            how = (f"double oblique: gantry untilted, {abs(ct.get('craniocaudal_angle_deg', 0)):.0f} deg craniocaudal "
                   f"(axial projection)")
        else:
            how = f"tilt {ct.get('gantry_tilt_deg', 0):+.1f} deg" + (
                "  (tilted: axial projection)" if abs(ct.get("gantry_tilt_deg", 0)) > 0.05 else "")
        p.drawText(QRectF(4, self.height() - 32, self.width() - 8, 30), Qt.AlignLeft | Qt.TextWordWrap,
                   f"axial at z = {target[2]:.1f} mm, {abs(ct.get('angle_from_vertical_deg', 0)):.0f} deg from "
                   f"vertical, depth {ct.get('depth_mm', self.path.get('length_mm', 0)):.0f} mm, {how}")
        p.end()
