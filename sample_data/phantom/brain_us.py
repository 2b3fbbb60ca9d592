"""A head MR and an intra-operative 3D ultrasound volume of it, not liver (issue 18): a test case for
MR -> US registration on content the demo does not have, in the form public MR/iUS datasets take
(RESECT: a T1/FLAIR MR and a reconstructed iUS volume through a craniotomy, zero outside the cone).

:func:`brain_pair` returns the MR (``Volume``, T1-like arbitrary units), the US volume (``Volume``,
0 outside the imaged cone, its grid in the Reference frame), the true ``reference_to_mr`` and
landmarks (Reference mm and MR mm) inside the cone. What is simulated (synthetic, for software
tests, not a validated ultrasound model):

* MR: head ellipsoid with scalp, skull (dark), CSF rim, grey/white matter with a smooth random
  texture (sulci-like variation), two lateral ventricles (dark), a tumour with a bright rim;
* US: echoes where the MR changes (its blurred gradient magnitude: tissue boundaries), tumour and
  choroid brighter (hyperechoic), CSF anechoic, multiplicative Rayleigh speckle, attenuation with
  depth, a cone from the craniotomy at the top of the head; the brain shifted against the MR by a
  small rigid motion (``reference_to_mr``), no brain shift deformation; boundary reflectivity
  varying 0.3-1.7x, hyperechoic blobs the MR does not show, correlated speckle, a noise floor.
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from scipy import ndimage

from registration.spatial.transforms import apply, invert, rigid_matrix
from registration.spatial.volume import Volume


def _texture(shape, rng, sigma: float) -> np.ndarray:
    t = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return t / (t.std() + 1e-9)


def head_mr(spacing: float = 1.0, seed: int = 0) -> Tuple[Volume, Dict[str, np.ndarray]]:
    """A T1-like head MR (180 x 200 x 150 mm, LPS, centre at the origin) and its landmarks (MR mm)."""
    rng = np.random.default_rng(seed)
    ext = np.array([180.0, 200.0, 150.0])                       # L-R, A-P, S-I (mm)
    n = np.round(ext / spacing).astype(int)
    origin = -ext / 2 + spacing / 2
    k, j, i = np.meshgrid(*[origin[a] + spacing * np.arange(n[a]) for a in (2, 1, 0)], indexing="ij")
    x, y, z = i, j, k
    r = np.sqrt((x / 80) ** 2 + (y / 92) ** 2 + (z / 68) ** 2)  # 1 at the scalp
    a = np.zeros(r.shape, np.float32)
    a[r < 1.0] = 0.85                                           # scalp (fat: bright on T1)
    a[r < 0.94] = 0.08                                          # skull
    a[r < 0.88] = 0.18                                          # CSF rim
    brain = r < 0.85
    wm = r < 0.70
    tex = _texture(r.shape, rng, 3.0 / spacing)
    a[brain] = (0.55 + 0.06 * tex)[brain]                       # grey matter
    a[wm] = (0.72 + 0.04 * tex)[wm]                             # white matter
    sulci = brain & ~wm & (_texture(r.shape, rng, 1.5 / spacing) > 1.3)
    a[sulci] = 0.2                                              # CSF in sulci
    for sx in (-1, 1):                                          # lateral ventricles
        v = ((x - sx * 14) / 7) ** 2 + ((y + 5) / 28) ** 2 + ((z - 8) / 9) ** 2 < 1
        a[v] = 0.15
    c = np.array([25.0, 18.0, 30.0])                            # tumour (right... LPS x>0 = left)
    d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2)
    a[d < 13] = 0.95                                            # enhancing rim
    a[d < 10] = 0.42 + 0.03 * tex[d < 10]
    a = ndimage.gaussian_filter(a, 0.6 / spacing) + rng.normal(0, 0.015, a.shape)
    mr = Volume(np.clip(a, 0, None).astype(np.float32) * 1000.0, (spacing,) * 3, origin,
                metadata={"modality": "MR", "source": "synthetic head (sample_data.phantom.brain_us)"})
    marks = {"tumour_centre": c, "tumour_rim_medial": c + [-13.0, 0, 0], "ventricle_left_tip": [14.0, -33.0, 8.0],
             "ventricle_right_top": [-14.0, -5.0, 17.0], "tumour_rim_deep": c + [0, 0, -13.0]}
    return mr, {k_: np.asarray(v_, float) for k_, v_ in marks.items()}


def brain_pair(seed: int = 0, us_spacing: float = 0.8, motion=(2.0, -1.5, 1.0, 1.5, -1.0, 2.0),
               mr_spacing: float = 1.0):
    """(mr, us_volume, reference_to_mr, {name: (point_reference, point_mr)}) of the head phantom.

    ``motion``: the rigid (tx, ty, tz mm, rx, ry, rz deg) mapping Reference -> MR besides the
    Reference frame's own placement (the US grid is centred over the tumour, tilted)."""
    mr, marks = head_mr(spacing=mr_spacing, seed=seed)
    rng = np.random.default_rng(seed + 1)
    apex_mr = np.array([25.0, 15.0, 70.0])                       # the craniotomy, top of the head
    # Reference frame: the US volume's grid axes, rotated 20 deg about L and -10 about P, about the apex.
    grid_to_mr = rigid_matrix([0, 0, 0, 20.0, -10.0, 0.0])
    grid_to_mr[:3, 3] = apex_mr - grid_to_mr[:3, :3] @ apex_mr
    reference_to_mr = rigid_matrix(list(motion)) @ grid_to_mr
    # US grid: 80 x 80 x 75 mm box below the apex (in Reference mm; the apex at the top centre).
    ext = np.array([80.0, 80.0, 75.0])
    n = np.round(ext / us_spacing).astype(int)
    origin = apex_mr - [ext[0] / 2, ext[1] / 2, ext[2]] + us_spacing / 2
    kk, jj, ii = np.meshgrid(*[origin[a] + us_spacing * np.arange(n[a]) for a in (2, 1, 0)], indexing="ij")
    p_ref = np.stack([ii, jj, kk], -1).reshape(-1, 3)
    # Cone: 30 deg half-angle about -S from the apex, depth 5-72 mm.
    v = p_ref - apex_mr
    depth = np.linalg.norm(v, axis=1)
    cos = -v[:, 2] / np.maximum(depth, 1e-6)
    cone = (cos > np.cos(np.radians(30))) & (depth > 5) & (depth < 72)
    # MR features at the points under the truth.
    p_mr = apply(reference_to_mr, p_ref)
    ijk = mr.lps_to_index(p_mr)
    smooth = ndimage.gaussian_filter(mr.array, 1.0)
    grad = np.sqrt(sum(g ** 2 for g in np.gradient(smooth)))
    coords = [ijk[:, 2], ijk[:, 1], ijk[:, 0]]
    val = ndimage.map_coordinates(smooth, coords, order=1, mode="nearest") / 1000.0
    gm = ndimage.map_coordinates(grad, coords, order=1, mode="nearest") / 1000.0
    shape = kk.shape
    # Not every MR boundary echoes alike (angle of incidence, what the MR shows but US does not):
    # reflectivity varies smoothly between 0.3x and 1.7x; structures only the US shows (vessels,
    # calcifications, blood products: hyperechoic blobs) and a noise floor are added.
    refl = np.clip(1.0 + 0.7 * _texture(shape, rng, 6.0 / us_spacing), 0.3, 1.7).ravel()
    echo = 4.0 * gm * refl + 0.25 * np.clip(val - 0.2, 0, None)  # boundaries, tissue
    echo[val < 0.2] *= 0.15                                     # CSF anechoic
    echo[(val > 0.85)] += 0.4                                   # rim / choroid hyperechoic
    blobs = np.zeros(shape, np.float32)
    for _ in range(25):
        c = [rng.integers(0, m) for m in shape]
        blobs[tuple(c)] = 1.0
    blobs = ndimage.gaussian_filter(blobs, 2.0 / us_spacing)
    echo += 0.6 * (blobs / max(float(blobs.max()), 1e-9)).ravel()
    speckle = ndimage.gaussian_filter(rng.rayleigh(1.0, shape), 0.7).ravel() / 1.25
    echo += 0.05 * rng.random(echo.shape)
    att = np.exp(-0.018 * depth)
    us = np.where(cone, echo * speckle * att, 0.0).reshape(kk.shape)
    us = ndimage.gaussian_filter(us, 0.5)
    us *= 220.0 / max(float(np.percentile(us[us > 0], 99.5)), 1e-6)
    us = np.clip(us, 0, 255)
    us[cone.reshape(kk.shape) & (us < 1)] = 1                  # imaged stays nonzero
    us[~cone.reshape(kk.shape)] = 0
    us_vol = Volume(us.astype(np.float32), (us_spacing,) * 3, origin,
                    metadata={"source": "synthetic iUS volume (sample_data.phantom.brain_us)"})
    mr_to_ref = invert(reference_to_mr)
    lm = {name: (apply(mr_to_ref, p), p) for name, p in marks.items()}
    return mr, us_vol, reference_to_mr, lm
