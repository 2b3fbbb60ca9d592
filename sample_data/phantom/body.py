"""Body wall, thorax and skeleton of the synthetic patient (supine, LPS mm).

Skin, subcutaneous fat and the muscle wall are layers of a per-slice depth
below the skin (2D distance transform). Ribs, costal cartilage, sternum and
spine are painted into that wall; the lungs fill the thoracic cavity above a
domed diaphragm whose costophrenic recesses reach lower posteriorly and
laterally, so lung lies over the liver dome there, as in a patient.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import anatomy as A

BODY_YC = 10.0         # body cross-section centre, y (mm): the back is flatter (supine)
VERT_C = (0.0, 48.0)   # vertebral body centre (x, y) mm
VERT_R = (23.0, 19.0)  # vertebral body semi-axes (x, y) mm
CANAL_C = (0.0, 80.0)


@dataclass
class BodyFields:
    """Fields the organ painters need: depth below skin (mm, float32, grid
    shape), the angle from the posterior midline (rad, 0 = back, pi = front),
    the inner surface depth of the wall (mm) and the diaphragm height (mm)."""

    depth: np.ndarray
    alpha: np.ndarray
    wall: np.ndarray
    z_dia: np.ndarray  # [nj, ni] for each (x, y): diaphragm height z (mm)

    def cavity(self, sl=(slice(None),) * 3):
        return self.depth[sl] > self.wall[sl]


def diaphragm_height(x, y):
    """z (mm) of the diaphragm surface above (x, y): two domes (right higher),
    recesses that go lower posteriorly (y > 0) than anteriorly."""
    def dome(xc, peak):
        sy = np.where(y > 5.0, 78.0, 105.0)
        return peak - 62.0 * (((x - xc) / 82.0) ** 2 + ((y - 5.0) / sy) ** 2)
    z = np.maximum(dome(-62.0, 64.0), dome(62.0, 54.0))
    # the recesses bottom out lower laterally; joined by a soft maximum (6 mm)
    # so the diaphragm has no flat shelf or crease
    floor = np.interp(y, [-40.0, 40.0], [18.0, -28.0]) - 12.0 * (x / 150.0) ** 2
    s = 6.0
    m = np.maximum(z, floor)
    return (m + s * np.log(np.exp((z - m) / s) + np.exp((floor - m) / s))).astype(np.float32)


def build_body(grid: A.Grid, tissue: np.ndarray, noise: np.ndarray) -> BodyFields:
    """Paint skin, fat, muscle wall, visceral fat, lungs, diaphragm, heart."""
    nk, nj, ni = grid.shape
    x = grid.axis(0)[None, :]
    y = grid.axis(1)[:, None]
    z_axis = grid.axis(2)
    yy = y - BODY_YC
    depth = np.zeros(grid.shape, np.float32)
    for k in range(nk):
        z = float(z_axis[k])
        a = 162.0 + 4.0 * np.tanh(z / 60.0)
        b = 124.0 + 3.0 * np.tanh(z / 60.0)
        p = np.where(yy > 0, 3.4, 2.3)
        f = (np.abs(x) / a) ** p + (np.abs(yy) / b) ** p
        inside = f < 1.0 + 0.025 * noise[k]
        depth[k] = ndimage.distance_transform_edt(inside, sampling=(grid.spacing[1], grid.spacing[0]))
    alpha = np.arccos(np.clip(yy / np.maximum(np.hypot(x, yy), 1e-3), -1, 1)).astype(np.float32)
    alpha = np.broadcast_to(alpha, grid.shape)
    t_fat = (14.0 + 9.0 * np.sin(alpha) ** 2 + 2.5 * noise).astype(np.float32)
    wall = (t_fat + 13.0).astype(np.float32)
    body = depth > 0
    tissue[body] = A.VISCERAL_FAT
    tissue[body & (depth <= wall)] = A.MUSCLE
    tissue[body & (depth <= t_fat)] = A.FAT
    tissue[body & (depth <= 2.0)] = A.SKIN

    X, Y = np.meshgrid(grid.axis(0), grid.axis(1))
    z_dia = diaphragm_height(X, Y)
    fields = BodyFields(depth, alpha, wall, z_dia)
    cav = depth > wall
    zz = z_axis[:, None, None]
    above = zz > z_dia[None] + 4.0
    band = (zz > z_dia[None] - 3.0) & ~above
    tissue[cav & above] = A.LUNG
    tissue[cav & band] = A.DIAPHRAGM
    _heart(grid, tissue, fields)
    return fields


def _heart(grid, tissue, fields):
    c, semi = (15.0, -22.0, 112.0), (68.0, 52.0, 52.0)
    rot = A.rotation((1, 0, 0), 20)
    b = grid.box(*A.ellipsoid_box(c, semi))
    if b is None:
        return
    sl, co = b
    rho = A.ellipsoid_rho(co, c, semi, rot)
    zz = co[2]
    ok = (zz > fields.z_dia[sl[1:]][None] + 6.0) & np.isin(tissue[sl], [A.LUNG, A.VISCERAL_FAT, A.DIAPHRAGM])
    A.paint_where(tissue, sl, ok & (rho < 1.0), A.HEART_WALL)
    A.paint_where(tissue, sl, ok & (rho < 0.84), A.HEART_BLOOD)


def build_spine(grid: A.Grid, tissue: np.ndarray) -> None:
    """Vertebral bodies (cancellous core, cortical shell), discs, canal and
    cord, neural arches, spinous and transverse processes, paraspinal and
    psoas muscles."""
    sl, (X, Y, Z) = grid.box((-60, 0, -1e3), (60, 125, 1e3))
    sub = tissue[sl]
    ex = ((X - VERT_C[0]) / VERT_R[0]) ** 2 + ((Y - VERT_C[1]) / VERT_R[1]) ** 2
    ex = np.broadcast_to(ex, sub.shape)
    # discs: 8 mm every 33 mm along z
    zmod = np.broadcast_to(np.mod(Z + 95.0, 33.0), sub.shape)
    disc = zmod < 8.0
    rc = np.hypot(X - CANAL_C[0], Y - CANAL_C[1])
    rc = np.broadcast_to(rc, sub.shape)
    # paraspinal muscles first, bone over them
    for sx in (-1, 1):
        m = (((X - sx * 38.0) / 30.0) ** 2 + ((Y - 86.0) / 21.0) ** 2) < 1.0
        m = np.broadcast_to(m, sub.shape)
        sub[m & np.isin(sub, [A.VISCERAL_FAT, A.LUNG, A.DIAPHRAGM, A.MUSCLE])] = A.MUSCLE
        # psoas grows downwards from about the kidney upper pole
        r = 6.0 + 14.0 * np.clip(-(Z + 10.0) / 90.0, 0, 1)
        ps = (np.hypot(X - sx * 40.0, Y - 44.0) < r) & (Z < -10.0)
        ps = np.broadcast_to(ps, sub.shape)
        sub[ps & np.isin(sub, [A.VISCERAL_FAT])] = A.MUSCLE
    vb = ex < 1.0
    sub[vb] = A.CANCELLOUS
    shell = vb & (ex > (1 - 2.2 / VERT_R[1]) ** 2)
    sub[shell] = A.CORTICAL
    sub[vb & disc] = A.DISC
    arch = (rc >= 9.5) & (rc < 15.5) & (np.broadcast_to(Y, sub.shape) > CANAL_C[1] - 8)
    sub[arch & ~disc] = A.CORTICAL
    spinous = (np.abs(X) < 4.0) & (Y > 92.0) & (Y < 104.0)
    sub[np.broadcast_to(spinous, sub.shape) & (zmod > 6) & (zmod < 28)] = A.CORTICAL
    # transverse processes point laterally and a little backwards
    transverse = (np.abs(X) > 12.0) & (np.abs(X) < 36.0) & (np.abs(Y - 70.0 - 0.25 * (np.abs(X) - 12.0)) < 4.5)
    sub[np.broadcast_to(transverse, sub.shape) & (zmod > 14) & (zmod < 25)] = A.CORTICAL
    sub[rc < 9.0] = A.CSF
    sub[rc < 5.0] = A.CORD


# rib number: (z at the head beside the spine, alpha where bone ends,
#              alpha where the costal cartilage ends; None = floating)
RIBS = {6: (96.0, 0.80, 1.00), 7: (73.0, 0.78, 0.97), 8: (50.0, 0.74, 0.92),
        9: (27.0, 0.69, 0.86), 10: (4.0, 0.64, 0.79), 11: (-19.0, 0.55, None),
        12: (-40.0, 0.40, None)}
RIB_DROP_MM = 62.0      # how far a rib descends from its head to its anterior end
RIB_HALF_HEIGHT = 6.5   # mm (z): ribs ~12 mm tall ...
RIB_HALF_THICK = 3.8    # mm (radial): ... and ~8 mm thick
CART_RISE_MM = 38.0     # costal cartilages climb towards the sternum


def rib_z(alpha, z_head, a_bone_end):
    """Centre-line height (mm) of a rib at angle alpha (rad/pi units in the table)."""
    a = alpha / np.pi
    t = np.clip((a - 0.08) / 0.70, 0, 1)
    z_bone = z_head - RIB_DROP_MM * t ** 1.15
    t_end = np.clip((a_bone_end - 0.08) / 0.70, 0, 1)
    z_end = z_head - RIB_DROP_MM * t_end ** 1.15
    z_cart = z_end + CART_RISE_MM * np.clip(a - a_bone_end, 0, None) / 0.2
    return np.where(a <= a_bone_end, z_bone, z_cart)


def build_ribs(grid: A.Grid, tissue: np.ndarray, fields: BodyFields) -> None:
    """Ribs 6-12 both sides, costal cartilage, sternum and xiphoid, in the
    muscle wall (centre at about fat + 6.5 mm)."""
    sl, (X, Y, Z) = grid.full()
    wall_in = fields.wall
    mid = wall_in - 6.5
    near = (fields.depth > mid - RIB_HALF_THICK - 1) & (fields.depth < mid + RIB_HALF_THICK + 1)
    kk, jj, ii = np.nonzero(near)
    z = grid.axis(2)[kk]
    a = fields.alpha[kk, jj, ii]
    rd = (fields.depth[kk, jj, ii] - mid[kk, jj, ii]) / RIB_HALF_THICK
    out = np.full(kk.shape, A.MUSCLE, np.uint8)
    cur = tissue[kk, jj, ii]
    for n, (z_head, a_bone, a_cart) in RIBS.items():
        zc = rib_z(a, z_head, a_bone)
        rz = (z - zc) / RIB_HALF_HEIGHT
        rho2 = rd ** 2 + rz ** 2
        an = a / np.pi
        a_end = a_cart if a_cart is not None else a_bone
        inside = (rho2 < 1.0) & (an > 0.07) & (an < a_end)
        bone = inside & (an <= a_bone)
        cart = inside & (an > a_bone)
        # cortex ~1.5 mm: rho beyond 1 - 1.5/half-thickness
        cort = bone & (rho2 > (1 - 1.5 / RIB_HALF_THICK) ** 2)
        out[bone] = A.CANCELLOUS
        out[cort] = A.CORTICAL
        out[cart] = A.CARTILAGE
    sel = out != A.MUSCLE
    ok = sel & np.isin(cur, [A.MUSCLE, A.FAT, A.VISCERAL_FAT, A.LUNG, A.DIAPHRAGM])
    tissue[kk[ok], jj[ok], ii[ok]] = out[ok]
    # sternum body (bone) above the xiphoid (cartilage), in the anterior wall
    an_full = fields.alpha
    ant = (np.abs(X) < 14.0) & (an_full > 0.9 * np.pi) & near
    zz = np.broadcast_to(Z, tissue.shape)
    tissue[ant & (zz > 30.0)] = A.CANCELLOUS
    tissue[ant & (zz > 12.0) & (zz <= 30.0) & (np.abs(X) < 9.0)] = A.CARTILAGE
