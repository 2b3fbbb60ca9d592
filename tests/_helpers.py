"""Test data builders shared by several test modules (tests import these, never each other).

- :func:`make_sweep`, :func:`assert_same`: a small random tracked sweep with one INVALID
  frame and its equality check (sequence readers/writers).
- :func:`small_phantom` and its lesion table: a small axial-LPS abdomen CT + labels for the
  ultrasound simulator.
"""
from __future__ import annotations

import numpy as np

from registration.spatial.sweep import Sweep
from registration.spatial.transforms import rigid_matrix
from registration.spatial.volume import LabelMap, Volume


def make_sweep(n=6, rows=20, cols=30, seed=0, **kw) -> Sweep:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, rows, cols), dtype=np.uint8)
    probe = np.stack([rigid_matrix(rng.normal(0, [10, 10, 10, 20, 20, 20])) for _ in range(n)])
    ref = np.stack([rigid_matrix(rng.normal(0, [5, 5, 5, 50, 50, 50])) for _ in range(n)])
    st = np.ones(n, bool)
    st[2] = False
    cal = np.diag([0.2, 0.25, 1.0, 1.0])
    cal[:3, 3] = [-30.0, 5.0, 1.5]
    return Sweep(frames, 100.0 + np.arange(n) / 3.0,
                 {"ProbeToTracker": probe, "ReferenceToTracker": ref},
                 {"ProbeToTracker": st, "ReferenceToTracker": np.ones(n, bool)},
                 {"ImageToProbe": cal}, **kw)


def assert_same(a: Sweep, b: Sweep):
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert set(a.transforms) == set(b.transforms)
    for name in a.transforms:
        np.testing.assert_array_equal(a.statuses[name], b.statuses[name])
        ok = a.statuses[name]
        np.testing.assert_array_equal(a.transforms[name][ok], b.transforms[name][ok])
    ia = a.image_valid if a.image_valid is not None else np.ones(len(a), bool)
    ib = b.image_valid if b.image_valid is not None else np.ones(len(b), bool)
    np.testing.assert_array_equal(ia, ib)


NAMES = {"body": 1, "liver": 2, "portal_vein": 3, "bone": 4, "lesion_1": 5, "lesion_2": 6, "lung": 7}
# name -> (type, centroid LPS mm, diameter mm)
LESIONS = {"lesion_1": ("adenocarcinoma", (-35.0, 0.0, 40.0), 16.0),
           "lesion_2": ("net", (-5.0, 5.0, 40.0), 16.0)}
LESION_TYPES = {n: v[0] for n, v in LESIONS.items()}


def small_phantom(spacing: float = 1.0):
    """A small axial-LPS abdomen: elliptic body with fat and muscle, right-sided liver
    with a portal vein along S, an adenocarcinoma and a NET lesion, two ribs, lung on top.

    160 x 120 x 100 mm (x: R->L, y: A->P, z: I->S), identity direction.
    """
    s = spacing
    x = np.arange(-80, 80, s)
    y = np.arange(-60, 60, s)
    z = np.arange(0, 100, s)
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    hu = np.full(xx.shape, -1000, np.int16)
    lab = np.zeros(xx.shape, np.int32)
    body = (xx / 75.0) ** 2 + (yy / 55.0) ** 2 <= 1
    hu[body], lab[body] = -100, 1
    inner = (xx / 62.0) ** 2 + (yy / 42.0) ** 2 <= 1
    hu[inner] = 40
    liver = inner & (((xx + 20) / 50.0) ** 2 + (yy / 35.0) ** 2 + ((zz - 45) / 45.0) ** 2 <= 1)
    hu[liver], lab[liver] = 60, 2
    vessel = liver & ((xx + 15) ** 2 + (yy - 15) ** 2 <= 25.0)
    hu[vessel], lab[vessel] = 170, 3
    for name, (kind, c, d) in LESIONS.items():
        m = (xx - c[0]) ** 2 + (yy - c[1]) ** 2 + (zz - c[2]) ** 2 <= (d / 2) ** 2
        hu[m], lab[m] = (30 if kind == "adenocarcinoma" else 110), NAMES[name]
    ring = np.abs(np.sqrt((xx / 66.0) ** 2 + (yy / 46.0) ** 2) - 1.0) * 55 <= 4.0
    for zc in (70.0, 85.0):
        rib = ring & (np.abs(zz - zc) <= 5.0) & (xx < 0)
        hu[rib], lab[rib] = 700, 4
    lung = (zz > 92) & inner & ~liver
    hu[lung], lab[lung] = -850, 7
    geo = dict(spacing=(s, s, s), origin=(x[0], y[0], z[0]))
    return Volume(hu, **geo), LabelMap(lab, names=NAMES, **geo)
