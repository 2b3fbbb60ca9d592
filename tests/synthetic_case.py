"""A small analytic CT and a tracked US-like sweep simulated from it (known truth), for tests.

Not the product's US simulator: a fast stand-in (echogenicity by HU class,
multiplicative Rayleigh speckle, specular edges from the CT gradient, log
compression), so the registration tests do not depend on another module.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from registration.spatial.sweep import Sweep
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import Volume

TRUE_REFERENCE_TO_CT = rigid_matrix([10.0, -6.0, 25.0, 40.0, -30.0, 15.0])


def make_ct(seed: int = 0, spacing=1.5) -> Volume:
    rng = np.random.default_rng(seed)
    n = (80, 110, 110)                         # k, j, i
    sp = float(spacing)
    origin = np.array([-82.0, -82.0, -60.0])
    k, j, i = np.meshgrid(*[np.arange(s) * sp for s in n], indexing="ij")
    x, y, z = i + origin[0], j + origin[1], k + origin[2]
    hu = np.full(n, -1000.0, np.float32)
    body = (x / 78) ** 2 + (y / 70) ** 2 < 1
    hu[body] = -90.0                                       # subcutaneous fat
    hu[(x / 72) ** 2 + (y / 64) ** 2 < 1] = 40.0           # muscle / soft tissue
    liver = ((x - 10) / 55) ** 2 + ((y + 5) / 45) ** 2 + (z / 50) ** 2 < 1
    hu[liver] = 60.0 + 8 * ndimage.gaussian_filter(rng.normal(size=n), 3)[liver].astype(np.float32) * 10
    for (cx, cy, r, tilt) in [(0, 0, 6, 0.3), (25, -15, 4, -0.2), (-20, 15, 5, 0.5), (30, 20, 3, 0.0)]:
        vx = cx + tilt * z
        hu[((x - vx) ** 2 + (y - cy) ** 2 < r * r) & liver] = 180.0   # contrast-filled vessels
    for (cx, cy, cz, r) in [(20, 0, 10, 9), (-15, -20, -15, 7)]:
        hu[((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 < r * r)] = 25.0   # hypodense lesions
    hu[((x - 0) ** 2 / 4 + (y - 66) ** 2 < 16)] = 700.0    # a spine-like bone
    return Volume(hu, (sp, sp, sp), origin)


def lesion_centroids_ct():
    return np.array([[20.0, 0.0, 10.0], [-15.0, -20.0, -15.0]])


def make_sweep(ct: Volume, reference_to_ct=TRUE_REFERENCE_TO_CT, n_frames: int = 24, seed: int = 1,
               rows: int = 100, cols: int = 110, pixel_mm: float = 1.0, invalid=()) -> Sweep:
    """A fan sweep across the liver: frames tilt through +-20 deg and slide 40 mm."""
    rng = np.random.default_rng(seed)
    ct_to_reference = np.linalg.inv(reference_to_ct)
    hu_s = ndimage.gaussian_filter(ct.array.astype(np.float32), 0.7)
    grad = np.sqrt(sum(gr ** 2 for gr in np.gradient(hu_s, *ct.spacing[::-1])))
    yy, xx = np.mgrid[0:rows, 0:cols].astype(float)
    apex = np.array([cols / 2.0, -30.0])
    r = np.hypot(xx - apex[0], yy - apex[1])
    ang = np.degrees(np.arctan2(xx - apex[0], yy - apex[1]))
    fan = (np.abs(ang) < 32) & (r > 32) & (r < 30 + rows - 2)
    frames = np.zeros((n_frames, rows, cols), np.uint8)
    mats = np.zeros((n_frames, 4, 4))
    scale = np.diag([pixel_mm, pixel_mm, pixel_mm, 1.0])
    for f in range(n_frames):
        s = f / max(n_frames - 1, 1)
        # Image plane in CT: x = lateral (L), y = depth (posterior, +y LPS), pose varies along z (S).
        pose = rigid_matrix([0.0, 0.0, 0.0, 0, 0, 0])
        pose[:3, :3] = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], float).T @ np.eye(3)
        pose[:3, :3] = np.column_stack([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
        tilt = rigid_matrix([-20 + 40 * s, 0, 8 * np.sin(3 * s), 0, 0, 0])
        image_to_ct = tilt.copy()
        base = np.eye(4)
        base[:3, 0] = [1, 0, 0]                            # columns -> +x (L)
        base[:3, 1] = [0, 1, 0]                            # rows (depth) -> +y (P)
        base[:3, 2] = [0, 0, 1]
        base[:3, 3] = [-cols * pixel_mm / 2 + 8, -72.0, -20.0 + 40.0 * s]
        image_to_ct = rigid_matrix([-15 + 30 * s, 5 * np.sin(4 * s), 0, 0, 0, 0],
                                   center=base[:3, 3] + [cols * pixel_mm / 2, 0, 0]) @ base @ scale
        pts = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size), np.ones(xx.size)])
        ijk = (ct.lps_to_ijk @ image_to_ct @ pts)[:3]
        coords = ijk[::-1]
        hu = ndimage.map_coordinates(hu_s, coords, order=1, cval=-1000).reshape(rows, cols)
        gr = ndimage.map_coordinates(grad, coords, order=1, cval=0).reshape(rows, cols)
        echo = np.select([hu < -300, hu < -20, hu < 120, hu < 300], [0.0, 0.5, 1.0, 0.05], 2.5)
        echo = np.where((hu > 15) & (hu < 35), 0.45, echo)             # hypoechoic lesions
        speckle = rng.rayleigh(1.0, size=(rows, cols))
        speckle = ndimage.gaussian_filter(speckle, (0.6, 1.2))
        env = echo * speckle + 0.02 * np.clip(gr, 0, 300)
        img = 255 * np.clip(np.log10(1e-3 + env) / 3 + 0.85, 0, 1)
        frames[f] = np.where(fan, img, 0).astype(np.uint8)
        mats[f] = ct_to_reference @ image_to_ct
    status = np.ones(n_frames, bool)
    status[list(invalid)] = False
    return Sweep(frames, np.arange(n_frames) * 0.05, {"ImageToReference": mats},
                 {"ImageToReference": status}, fan_mask=fan, source="synthetic.igs.mha")
