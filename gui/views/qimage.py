"""numpy -> QImage helpers for the 2D views (CT slices, US frames).

All arrays are ``[rows, cols]`` (or ``[rows, cols, 4]`` RGBA); row 0 is the
top of the image on screen. The returned QImages own a copy of their pixels,
so the numpy buffer may be freed or reused afterwards.
"""
from __future__ import annotations

import hashlib
from typing import Dict, Mapping, Tuple

import numpy as np
from PyQt5.QtGui import QImage

# Window/level presets (HU): name -> (window, level).
WL_PRESETS: Dict[str, Tuple[float, float]] = {
    "abdomen": (400.0, 40.0),
    "liver": (150.0, 60.0),
    "bone": (1500.0, 400.0),
}

# Structure colours (RGB); lesions are drawn in warm colours so they stand out
# from the anatomy, vessels blue/red as in textbooks.
STRUCTURE_COLOURS: Dict[str, Tuple[int, int, int]] = {
    "body": (180, 180, 180),
    "liver": (221, 130, 101),
    "portal_vein": (0, 151, 206),
    "hepatic_vein": (0, 200, 230),
    "artery": (216, 40, 40),
    "aorta": (216, 40, 40),
    "ivc": (40, 110, 235),
    "inferior_vena_cava": (40, 110, 235),
    "bone": (241, 214, 145),
    "lung": (197, 165, 145),
    "gallbladder": (139, 150, 98),
    "bowel": (255, 176, 138),
    "kidney": (185, 102, 83),
    "spleen": (157, 108, 162),
    "pancreas": (249, 180, 111),
    "pancreatic_mass": (255, 0, 255),
    "heart": (206, 110, 84),
}
LESION_COLOUR = (255, 230, 0)
#: Lesions seen on the MR only (issue 18): magenta, drawn with a dotted outline, in every view.
MR_ONLY_COLOUR = (255, 0, 255)


def structure_colour(name: str) -> Tuple[int, int, int]:
    """Fixed colour for a standard name; lesions yellow; unknown names a stable hashed colour."""
    if name.startswith("lesion"):
        return LESION_COLOUR
    for key, rgb in STRUCTURE_COLOURS.items():
        if name == key or name.startswith(key + "_") or name.startswith(key):
            return rgb
    h = hashlib.md5(name.encode()).digest()
    return (64 + h[0] % 192, 64 + h[1] % 192, 64 + h[2] % 192)


def label_lut(names: Mapping[str, int], max_value: int, alpha: int = 255) -> np.ndarray:
    """uint8 [max_value + 1, 4] RGBA per label value; value 0 and unnamed values transparent
    except unnamed non-zero values, which get a hashed colour so nothing is silently hidden."""
    lut = np.zeros((max(int(max_value), 0) + 1, 4), np.uint8)
    named = {int(v): n for n, v in names.items()}
    for v in range(1, lut.shape[0]):
        rgb = structure_colour(named.get(v, f"label_{v}"))
        lut[v, :3] = rgb
        lut[v, 3] = alpha
    return lut


def window_level(arr: np.ndarray, window: float, level: float) -> np.ndarray:
    """Map intensities to uint8: level - window/2 -> 0, level + window/2 -> 255."""
    window = max(float(window), 1e-6)
    lo = float(level) - window / 2.0
    out = (np.asarray(arr, dtype=np.float32) - lo) * (255.0 / window)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def gray_to_qimage(u8: np.ndarray) -> QImage:
    """uint8 [rows, cols] -> QImage Grayscale8 (copied)."""
    a = np.ascontiguousarray(u8, dtype=np.uint8)
    rows, cols = a.shape
    return QImage(a.data, cols, rows, a.strides[0], QImage.Format_Grayscale8).copy()


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """uint8 [rows, cols, 4] -> QImage RGBA8888 (copied)."""
    a = np.ascontiguousarray(rgba, dtype=np.uint8)
    rows, cols, ch = a.shape
    if ch != 4:
        raise ValueError(f"expected 4 channels, got {ch}")
    return QImage(a.data, cols, rows, a.strides[0], QImage.Format_RGBA8888).copy()


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """uint8 [rows, cols, 3] -> QImage RGB888 (copied)."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    rows, cols, _ = a.shape
    return QImage(a.data, cols, rows, a.strides[0], QImage.Format_RGB888).copy()


def boundary_mask(labels: np.ndarray, close_at_border: bool = False) -> np.ndarray:
    """bool [rows, cols]: non-zero pixels whose 4-neighbour has a different label.

    With ``close_at_border`` pixels on the image border count as boundary (a
    structure cut by the image edge is drawn closed); off by default so an
    organ filling the image does not draw a misleading frame around it.
    """
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    if lab.size == 0:
        return edge
    edge[1:, :] |= lab[1:, :] != lab[:-1, :]
    edge[:-1, :] |= lab[:-1, :] != lab[1:, :]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    if close_at_border:
        edge[0, :] = edge[-1, :] = True
        edge[:, 0] = edge[:, -1] = True
    return edge & (lab != 0)


def outline_rgba(labels: np.ndarray, lut: np.ndarray, dotted=()) -> np.ndarray:
    """uint8 [rows, cols, 4]: coloured outlines of every label (transparent elsewhere); the label
    values in ``dotted`` get a dotted outline (lesions seen on the MR only)."""
    lab = np.asarray(labels)
    idx = np.clip(lab.astype(np.int64), 0, lut.shape[0] - 1)
    out = np.zeros(lab.shape + (4,), np.uint8)
    edge = boundary_mask(lab)
    if dotted:
        # Dotted: in 2-pixel blocks, three on and one off along the diagonals, so the outline reads
        # differently from a solid one even where the colours are hard to tell apart (colour-blind
        # users, print) and a small lesion's few outline pixels still show (half off hid them).
        rr, cc = np.indices(lab.shape)
        off = ((rr // 2 + cc // 2) % 4 == 3) & np.isin(lab, list(dotted))
        edge &= ~off
    out[edge] = lut[idx[edge]]
    return out
