"""Key views of a plan as RGB pixel arrays (numpy only: no Qt, no matplotlib), for the PACS.

For one lesion (the plan's "biopsy first", or the one asked for) and its
recommended path: the **axial CT slice at the target** (radiological
convention: patient's right on the image left, anterior up), the CT plane
**along the needle** (the probe's image plane for a US path, the gantry
plane for a CT path; entry at the top, target below) and, when a registered
sweep is given and the plan measured the lesion on it, the **registered US
frame** that cuts the lesion most with the lesion's outline taken from the
CT labels (through ``reference_to_ct``) and the needle path when it lies
within 5 mm of the image plane.

CT planes are resampled (linear for HU, nearest for labels) by
:class:`registration.spatial.reslice.Reslicer` on a square grid of
``size`` pixels; grey values use a soft-tissue window (W 400, L 40 HU).
Outlines are one-pixel mask borders thickened to two; colours: target
lesion magenta, other lesions pink, liver orange, vessels red, bone white,
lung light blue, gallbladder green, bowel violet, kidney orange-red, spleen
purple, pancreas light orange, heart brick red; the
needle green (US path) or amber (CT path), its entry a dot, the target a
cross, the probe a cyan square. Nothing is written on the pixels; each view's
title and orientation travel as DICOM attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from scipy import ndimage

from planner.anatomy.structures import risk_class_of
from registration.spatial.errors import InputError
from registration.spatial.reslice import Reslicer, plane_pixel_to_lps
from registration.spatial.volume import LabelMap, Volume

_WINDOW = (40.0 - 200.0, 40.0 + 200.0)      # HU shown black .. white
_COLOURS = {"liver": (217, 164, 65), "vessel": (232, 70, 60), "bone": (255, 255, 255),
            "lung": (102, 194, 255), "gallbladder": (87, 217, 87), "bowel": (181, 126, 220),
            "kidney": (255, 120, 64), "spleen": (157, 108, 162), "pancreas": (249, 180, 111),
            "heart": (206, 110, 84), "lesion": (255, 150, 230)}
_TARGET = (255, 61, 245)
_PATH = {"us": (0, 255, 102), "ct": (255, 170, 0)}
_PROBE = (51, 204, 255)


@dataclass
class KeyView:
    """One rendered view: ``rgb`` uint8 ``[rows, cols, 3]``, pixel spacing (row, column) mm, and
    DICOM Patient Orientation letters of the +column and +row directions."""

    name: str
    title: str
    rgb: np.ndarray
    pixel_spacing_mm: Tuple[float, float]
    orientation: Tuple[str, str]


def orientation_of(v) -> str:
    """DICOM Patient Orientation letter of a direction (LPS): its main component ('L', 'P', 'H'...).

    DICOM allows up to three letters for oblique directions; highdicom's SC
    class takes one per axis, so oblique views name their main direction.
    """
    v = np.asarray(v, float)
    a = int(np.argmax(np.abs(v)))
    return ("L", "P", "H")[a] if v[a] > 0 else ("R", "A", "F")[a]


def choose_lesion(plan: dict, name: Optional[str] = None) -> dict:
    """The lesion to show: ``name``, else the plan's biopsy-first lesion, else the first with a path."""
    lesions = plan.get("lesions") or []
    if not lesions:
        raise InputError("the plan has no lesion", fix="plan again with a label map that has lesion_* labels")
    if name is not None:
        for les in lesions:
            if les["name"] == name:
                return les
        raise InputError(f"the plan has no lesion {name!r} (it has {', '.join(l['name'] for l in lesions)})",
                         fix="pass one of the listed names to --lesion")
    first = (plan.get("recommendation") or {}).get("biopsy_first")
    for les in lesions:
        if les["name"] == first:
            return les
    return next((les for les in lesions if les["trajectories"]), lesions[0])


def choose_path(lesion: dict) -> Optional[dict]:
    """The lesion's first path of its recommended guidance, else its first path (None when none)."""
    want = "ct" if lesion["recommendation"]["guidance"] == "ct" else "us"
    paths = lesion.get("trajectories") or []
    return next((t for t in paths if t["guidance"] == want), paths[0] if paths else None)


def _grey(hu: np.ndarray) -> np.ndarray:
    g = (hu - _WINDOW[0]) / (_WINDOW[1] - _WINDOW[0])
    return np.repeat((np.clip(g, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=2)


def _outline(rgb: np.ndarray, mask: np.ndarray, colour, width: int = 2) -> None:
    if mask.any():
        edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
        if width > 1:
            edge = ndimage.binary_dilation(edge, iterations=width - 1)
        rgb[edge] = colour


def _dot(rgb: np.ndarray, xy, colour, radius: int = 3, cross: bool = False) -> None:
    """A filled square (entry, probe) or a 3-pixel-wide cross (target) centred at pixel ``xy``."""
    rows, cols = rgb.shape[:2]
    x, y = int(round(xy[0])), int(round(xy[1]))
    d = np.arange(-radius, radius + 1)
    if cross:
        w = np.arange(-1, 2)
        ys = np.concatenate([np.repeat(y + w, d.size), np.tile(y + d, w.size)])
        xs = np.concatenate([np.tile(x + d, w.size), np.repeat(x + w, d.size)])
    else:
        ys, xs = (a.ravel() for a in np.meshgrid(y + d, x + d, indexing="ij"))
    ok = (xs >= 0) & (xs < cols) & (ys >= 0) & (ys < rows)
    rgb[ys[ok], xs[ok]] = colour


def _line(rgb: np.ndarray, p0, p1, colour) -> None:
    n = int(np.ceil(2 * max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])))) + 2
    t = np.linspace(0.0, 1.0, n)
    xs, ys = p0[0] + t * (p1[0] - p0[0]), p0[1] + t * (p1[1] - p0[1])
    rows, cols = rgb.shape[:2]
    for dx, dy in ((0, 0), (1, 0), (0, 1)):
        x, y = np.rint(xs).astype(int) + dx, np.rint(ys).astype(int) + dy
        ok = (x >= 0) & (x < cols) & (y >= 0) & (y < rows)
        rgb[y[ok], x[ok]] = colour


class _PlaneRenderer:
    """Reslices the CT and the labels on square planes and draws outlines and the path."""

    def __init__(self, ct: Volume, labels: LabelMap, target_label: Optional[int], size: int):
        self.ct, self.labels, self.size = ct, labels, int(size)
        self._ct = Reslicer(ct, default=-1000.0, interpolator="linear")
        self._lab = Reslicer(Volume(labels.array.astype(np.float32), labels.spacing, labels.origin,
                                    labels.direction), default=0.0, interpolator="nearest")
        self.target_label = target_label
        self.classes = {}
        for name, value in labels.names.items():
            cls = risk_class_of(name)
            if cls in _COLOURS:
                self.classes.setdefault(cls, []).append(int(value))

    def render(self, centre, u, v, half_mm: float, path: Optional[dict]) -> Tuple[np.ndarray, float]:
        n = self.size
        px = 2.0 * half_mm / (n - 1)
        m = plane_pixel_to_lps(centre, u, v, (n, n), (px, px))
        rgb = _grey(self._ct.reslice(m, (n, n)).image)
        lab = np.rint(self._lab.reslice(m, (n, n)).image).astype(np.int32)
        for cls, values in self.classes.items():
            sel = np.isin(lab, values) & ((lab != self.target_label) if cls == "lesion" else True)
            _outline(rgb, sel, _COLOURS[cls], 1 if cls in ("liver", "bone") else 2)
        if self.target_label is not None:
            _outline(rgb, lab == self.target_label, _TARGET, 2)
        if path is not None:
            to_px = np.linalg.inv(m)
            entry, target = (to_px @ np.append(np.asarray(path[k], float), 1.0) for k in ("entry_ct", "target_ct"))
            colour = _PATH.get(path["guidance"], _PATH["ct"])
            _line(rgb, entry[:2], target[:2], colour)
            _dot(rgb, entry[:2], colour, 3)
            _dot(rgb, target[:2], _TARGET, 6, cross=True)
            if path.get("probe"):
                _dot(rgb, (to_px @ np.append(np.asarray(path["probe"]["probe_ct"], float), 1.0))[:2], _PROBE, 4)
        return rgb, px


def _along_axes(path: dict):
    """(u, v) of the plane along the needle: v from entry to target (down the image)."""
    t, e = np.asarray(path["target_ct"], float), np.asarray(path["entry_ct"], float)
    d = (t - e) / np.linalg.norm(t - e)
    if path["guidance"] == "us" and path.get("probe"):
        u = np.cross(d, np.asarray(path["probe"]["plane_normal_ct"], float))
    else:                                   # gantry plane: L-R across, the tilted vertical down
        tau = np.radians(path.get("ct", {}).get("gantry_tilt_deg", 0.0))
        u, d = np.array([1.0, 0.0, 0.0]), np.array([0.0, np.cos(tau), np.sin(tau)])   # as the report
    u = u - d * (u @ d)
    return u / np.linalg.norm(u), d


def _us_frame(sweep, reference_to_ct, labels: LabelMap, value: Optional[int], frame: int,
              path: Optional[dict]) -> KeyView:
    img = np.asarray(sweep.frames[frame])
    image_to_ct = np.asarray(reference_to_ct, float) @ sweep.image_to_reference(frame)
    rgb = np.repeat(img.astype(np.uint8)[..., None], 3, axis=2)
    rows, cols = img.shape
    if value is not None:
        jj, ii = np.mgrid[0:rows, 0:cols]
        pix = np.stack([ii.ravel(), jj.ravel(), np.zeros(ii.size), np.ones(ii.size)])
        kji = np.rint((labels.lps_to_ijk @ image_to_ct @ pix)[:3][::-1]).astype(int)
        ok = np.all((kji >= 0) & (kji < np.array(labels.array.shape)[:, None]), axis=0)
        inside = np.zeros(ii.size, bool)
        inside[ok] = labels.array[kji[0, ok], kji[1, ok], kji[2, ok]] == value
        _outline(rgb, inside.reshape(rows, cols), _TARGET, 2)
    if path is not None:
        to_img = np.linalg.inv(image_to_ct)
        z_mm = float(np.linalg.norm(image_to_ct[:3, 2])) or 1.0
        pts = [to_img @ np.append(np.asarray(path[k], float), 1.0) for k in ("entry_ct", "target_ct")]
        if all(abs(p[2]) * z_mm < 5.0 for p in pts):
            _line(rgb, pts[0][:2], pts[1][:2], _PATH["us"])
    sx, sy = (float(np.linalg.norm(image_to_ct[:3, a])) for a in (0, 1))
    return KeyView("us_frame", f"registered US frame {frame}, lesion outline from CT", rgb, (sy, sx),
                   (orientation_of(image_to_ct[:3, 0]), orientation_of(image_to_ct[:3, 1])))


def render_key_views(ct: Volume, labels: LabelMap, plan: dict, *, lesion: Optional[str] = None,
                     sweep=None, reference_to_ct=None, size: int = 512) -> List[KeyView]:
    """Axial at target, along the needle (when the lesion has a path), registered US frame (when
    ``sweep`` and ``reference_to_ct`` are given and the plan measured the lesion on the sweep)."""
    les = choose_lesion(plan, lesion)
    path = choose_path(les)
    value = labels.names.get(les["name"]) if not les.get("point_target") else None
    r = _PlaneRenderer(ct, labels, value, size)
    t = np.asarray(les["target_ct"], float)
    views = []
    if path is not None:
        e = np.asarray(path["entry_ct"], float)
        half = max(60.0, 0.5 * float(np.linalg.norm(t - e)) + 25.0)
        centre = np.array([0.5 * (t[0] + e[0]), 0.5 * (t[1] + e[1]), t[2]])
    else:
        half, centre = 60.0, t
    what = f"{les['name']}" + (f", {path['guidance'].upper()} path {path['length_mm']} mm" if path else ", no safe path")
    rgb, px = r.render(centre, np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), half, path)
    views.append(KeyView("axial_at_target", f"axial CT at target z = {t[2]:.1f} mm, {what}", rgb, (px, px),
                         ("L", "P")))
    if path is not None:
        u, v = _along_axes(path)
        rgb, px = r.render(0.5 * (t + np.asarray(path["entry_ct"], float)), u, v, half, path)
        plane = "US image plane" if path["guidance"] == "us" else "CT gantry plane"
        views.append(KeyView("along_needle", f"CT along the needle ({plane}), {what}", rgb, (px, px),
                             (orientation_of(u), orientation_of(v))))
    best = ((les.get("visibility") or {}).get("measured") or {}).get("best_frame")
    if sweep is not None and reference_to_ct is not None and best is not None:
        us_path = path if path is not None and path["guidance"] == "us" else None
        views.append(_us_frame(sweep, reference_to_ct, labels, value, int(best), us_path))
    return views
