"""Abdominal organs of the synthetic patient (supine, LPS mm: the liver is on
the patient's right, i.e. at negative x).

Organs are deformed ellipsoids / tubes with smooth noise on their outline,
painted only over visceral fat (or the structures named per organ) so that
contact surfaces look like organs pressing on each other.
"""
from __future__ import annotations

import numpy as np

from . import anatomy as A
from .body import BodyFields

# liver parts: (centre, semi-axes, rotation axis, angle deg)
LIVER_PARTS = [
    ((-68.0, 12.0, 8.0), (92.0, 88.0, 88.0), (0, 0, 1), 0.0),     # right lobe
    ((-15.0, -25.0, 28.0), (62.0, 62.0, 52.0), (0, 0, 1), 0.0),   # segment IV / caudate
    ((25.0, -45.0, 32.0), (72.0, 38.0, 36.0), (0, 0, 1), -18.0),  # left lateral lobe
]


def liver_inferior_z(x, y, noise=0.0):
    """z (mm) of the liver's inferior edge: low laterally on the right (segment VI
    tip, bulging down), rising towards the left lobe, a little higher anteriorly
    (the anterior edge is sharp), undulating by a few mm."""
    z = (-82.0 + 0.36 * (x + 150.0) - 12.0 * np.exp(-((x + 105.0) / 32.0) ** 2)
         + 0.12 * np.clip(-y, 0, None) + 6.0 * noise)
    return z.astype(np.float32)


def build_liver(grid: A.Grid, tissue: np.ndarray, fields: BodyFields, noise: np.ndarray) -> None:
    b = grid.box((-170, -110, -100), (110, 120, 100))
    sl, co = b
    rho = np.full(tissue[sl].shape, np.inf, np.float32)
    for c, semi, ax, ang in LIVER_PARTS:
        r = A.ellipsoid_rho(co, c, semi, A.rotation(ax, ang))
        np.minimum(rho, r, out=rho)
    rho -= 0.06 * noise[sl]
    X, Y, Z = co
    zd = fields.z_dia[sl[1:]][None]
    m = (rho < 1.0) & (Z < zd - 3.0) & (Z > liver_inferior_z(X, Y, noise[sl]))
    m &= fields.depth[sl] > fields.wall[sl] + 0.5
    A.paint_where(tissue, sl, m, A.LIVER, only=[A.VISCERAL_FAT])


def _ellipsoid(grid, tissue, code, c, semi, rot=None, only=(A.VISCERAL_FAT,), noise=None,
               amp=0.0, rho_max=1.0):
    b = grid.box(*A.ellipsoid_box(c, semi))
    if b is None:
        return None
    sl, co = b
    rho = A.ellipsoid_rho(co, c, semi, rot)
    if noise is not None:
        rho = rho - amp * noise[sl]
    A.paint_where(tissue, sl, rho < rho_max, code, only=list(only) if only else None)
    return sl, rho


def build_spleen(grid, tissue, fields, noise):
    c, semi = (100.0, 52.0, 20.0), (26.0, 58.0, 52.0)
    b = grid.box(*A.ellipsoid_box(c, semi))
    sl, co = b
    rho = A.ellipsoid_rho(co, c, semi, A.rotation((0, 0, 1), -35)) - 0.05 * noise[sl]
    m = (rho < 1) & (co[2] < fields.z_dia[sl[1:]][None] - 3.0)
    A.paint_where(tissue, sl, m, A.SPLEEN, only=[A.VISCERAL_FAT])


def build_kidneys(grid, tissue, noise):
    for c, tilt in (((-66.0, 64.0, -62.0), 12.0), ((68.0, 62.0, -48.0), -12.0)):
        semi = (27.0, 24.0, 54.0)
        rot = A.rotation((0, 1, 0), tilt)
        b = grid.box(*A.ellipsoid_box(c, semi))
        sl, co = b
        rho = A.ellipsoid_rho(co, c, semi, rot) - 0.02 * noise[sl]
        over = [A.VISCERAL_FAT, A.LIVER, A.MUSCLE, A.DIAPHRAGM, A.SPLEEN]
        A.paint_where(tissue, sl, rho < 1.0, A.KIDNEY_CORTEX, only=over)
        A.paint_where(tissue, sl, rho < 0.72, A.KIDNEY_MEDULLA, only=[A.KIDNEY_CORTEX])
        # renal sinus fat opens medially (towards the spine)
        hil = (c[0] - np.sign(c[0]) * 14.0, c[1] - 4.0, c[2])
        rs = A.ellipsoid_rho(co, hil, (11.0, 9.0, 26.0), rot)
        A.paint_where(tissue, sl, rs < 1.0, A.SINUS_FAT, only=[A.KIDNEY_MEDULLA, A.KIDNEY_CORTEX])


def _hollow(grid, tissue, centreline, radius, wall_mm, rng, gas_y=None, feces=False,
            only=(A.VISCERAL_FAT,)):
    """A gut segment: wall, then contents (fluid, or faeces for colon), gas in the
    non-dependent (anterior, small y: the patient is supine) part above ``gas_y``."""
    pts = A.smooth_polyline(centreline, 6)
    rad = np.broadcast_to(np.asarray(radius, float), (len(centreline),))
    rad = np.interp(np.linspace(0, 1, len(pts)), np.linspace(0, 1, len(rad)), rad)
    A.paint_polyline(grid, tissue, A.GUT_WALL, pts, rad, only=list(only))
    A.paint_polyline(grid, tissue, A.FECES if feces else A.GUT_FLUID, pts, rad - wall_mm,
                     only=[A.GUT_WALL])
    if gas_y is not None:
        lo, hi = pts.min(0) - rad.max(), pts.max(0) + rad.max()
        sl, (X, Y, Z) = grid.box(lo, hi)
        m = np.broadcast_to(Y < gas_y, tissue[sl].shape)
        A.paint_where(tissue, sl, m, A.GUT_GAS, only=[A.GUT_FLUID, A.FECES])
    if feces:
        # mottled stool: gas bubbles of a few mm inside the faeces
        lo, hi = pts.min(0) - rad.max(), pts.max(0) + rad.max()
        sl, _ = grid.box(lo, hi)
        sub = tissue[sl]
        bub = rng.random(sub.shape) < 0.02
        from scipy import ndimage
        bub = ndimage.binary_dilation(bub, iterations=1)
        sub[bub & (sub == A.FECES)] = A.GUT_GAS


def build_gut(grid, tissue, rng):
    # stomach: fundus under the left dome (dependent, fluid), body and antrum
    # sweeping anteriorly and to the right (non-dependent: gas)
    _hollow(grid, tissue, [(62, 22, 42), (62, 0, 28), (50, -35, 5), (25, -58, -12), (0, -60, -22)],
            [36, 36, 32, 22, 14], 5.0, rng, gas_y=-38.0)
    # duodenum: C-loop around the pancreatic head
    _hollow(grid, tissue, [(-2, -58, -24), (-30, -40, -32), (-52, -15, -50), (-50, -2, -75),
                           (-20, 5, -90), (15, 5, -88)], 11.0, 3.0, rng, gas_y=-45.0)
    # colon: ascending (right), hepatic flexure, transverse (anterior), splenic flexure, descending
    _hollow(grid, tissue, [(-108, 25, -105), (-110, 0, -72), (-90, -55, -65), (-30, -80, -82),
                           (30, -78, -80), (95, -40, -45), (110, 20, -30), (118, 38, -70),
                           (118, 40, -105)], 21.0, 3.0, rng, gas_y=-68.0, feces=True)
    # small-bowel loops: lower left, and mid/right below the liver
    centres = [(35, -30, -88), (53, -20, -82), (71, -10, -76), (-62, -42, -88),
               (-30, -52, -96), (-78, -20, -96), (-45, -30, -72)]
    for a, c in enumerate(centres):
        t = np.linspace(0, 2 * np.pi, 7) + 0.7 * a
        loop = np.asarray(c, float) + np.stack([20 * np.cos(t), 15 * np.sin(t),
                                                 8 * np.sin(2 * t + a)], 1)
        _hollow(grid, tissue, loop, 11.0, 2.5, rng, gas_y=-75.0)


PANCREAS_LINE = [(-34.0, -8.0, -64.0), (-28.0, -16.0, -50.0), (-5.0, -24.0, -42.0),
                 (25.0, -16.0, -33.0), (55.0, 5.0, -24.0), (78.0, 30.0, -16.0)]
PANCREAS_R = [15.0, 15.0, 10.0, 11.0, 10.0, 8.5]
MASS_CENTRE = (-32.0, -10.0, -58.0)
MASS_SEMI = (15.0, 13.0, 14.0)


def build_pancreas(grid, tissue, noise):
    pts = A.smooth_polyline(PANCREAS_LINE, 8)
    rad = np.interp(np.linspace(0, 1, len(pts)), np.linspace(0, 1, len(PANCREAS_R)), PANCREAS_R)
    A.paint_polyline(grid, tissue, A.PANCREAS, pts, rad, only=[A.VISCERAL_FAT])
    _ellipsoid(grid, tissue, A.PANC_MASS, MASS_CENTRE, MASS_SEMI, A.rotation((1, 1, 0), 25),
               only=(A.PANCREAS, A.VISCERAL_FAT), noise=noise, amp=0.08)


GB_NECK, GB_FUNDUS = (-34.0, -30.0, -14.0), (-50.0, -70.0, -58.0)


def build_gallbladder(grid, tissue):
    over = [A.LIVER, A.VISCERAL_FAT]
    A.paint_tube(grid, tissue, A.GB_WALL, GB_NECK, GB_FUNDUS, 9.0, 16.0, only=over)
    A.paint_tube(grid, tissue, A.GB_BILE, GB_NECK, GB_FUNDUS, 7.0, 14.0, only=[A.GB_WALL])
