"""Vessels of the synthetic patient: aorta and its branches, IVC, portal
system, and the portal-vein and hepatic-vein trees branching inside the liver.

Trees grow from named trunks (radius ~7 mm) by recursive asymmetric
bifurcation (children 0.85 r and 0.65 r, so r^3 is roughly conserved as in
Murray's law) down to ~1.5 mm. Each child picks, among random directions in a
cone, the one that stays deepest in the liver and enters the emptiest region
(a coarse occupancy grid shared by both trees), so the trees fill the liver
without overlapping. Segments are rasterised as tapered tubes inside their
own bounding boxes. All coordinates are LPS mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import numpy as np
from scipy import ndimage

from . import anatomy as A

BONE = [A.CORTICAL, A.CANCELLOUS, A.CARTILAGE, A.DISC, A.CSF, A.CORD]
SOFT = [A.VISCERAL_FAT, A.LIVER, A.PANCREAS, A.PANC_MASS, A.MUSCLE, A.DIAPHRAGM,
        A.LUNG, A.HEART_WALL, A.HEART_BLOOD, A.GUT_WALL, A.KIDNEY_CORTEX, A.SPLEEN]

# named points (LPS mm) the trees are built on; they become truth landmarks
PORTAL_CONFLUENCE = (-3.0, -4.0, -44.0)
PORTAL_BIFURCATION = (-38.0, 4.0, -10.0)
RIGHT_PORTAL_SPLIT = (-62.0, 10.0, -6.0)
LEFT_PORTAL_UMBILICAL = (-8.0, -6.0, 2.0)
IVC_HV_CONFLUENCE = (-22.0, 12.0, 47.0)
RHV_OSTIUM, MHV_OSTIUM, LHV_OSTIUM = (-33.0, 13.0, 46.0), (-20.0, 1.0, 50.0), (-12.0, 4.0, 52.0)
CELIAC_ORIGIN = (14.0, 8.0, -22.0)


@dataclass
class VesselTree:
    """Segments (p0, p1, r0, r1) per kind ('portal', 'hepatic', 'artery'), LPS mm."""

    segments: Dict[str, List[tuple]] = field(default_factory=lambda: {
        "portal": [], "hepatic": [], "artery": []})
    landmarks: Dict[str, list] = field(default_factory=dict)

    def all_segments(self):
        for kind, segs in self.segments.items():
            for s in segs:
                yield kind, s


class _Liver:
    """Coarse liver depth map (mm inside the surface) and occupancy grid."""

    def __init__(self, grid: A.Grid, tissue: np.ndarray):
        self.step = (2, 3, 3)  # (k, j, i): 3.0 x 2.4 x 2.4 mm cells
        sub = tissue[::2, ::3, ::3] == A.LIVER
        self.sp = np.array([grid.spacing[0] * 3, grid.spacing[1] * 3, grid.spacing[2] * 2])
        self.depth = ndimage.distance_transform_edt(sub, sampling=self.sp[::-1]).astype(np.float32)
        self.origin = np.asarray(grid.origin)
        self.occ = np.zeros_like(sub, dtype=np.float32)

    def _idx(self, p):
        ijk = np.rint((np.asarray(p, float) - self.origin) / self.sp).astype(int)
        n = np.array(self.depth.shape[::-1])
        if np.any(ijk < 0) or np.any(ijk >= n):
            return None
        return ijk[2], ijk[1], ijk[0]

    def depth_at(self, p) -> float:
        idx = self._idx(p)
        return 0.0 if idx is None else float(self.depth[idx])

    def occupancy(self, p) -> float:
        idx = self._idx(p)
        if idx is None:
            return 1e3
        k, j, i = idx
        return float(self.occ[max(k - 2, 0):k + 3, max(j - 2, 0):j + 3, max(i - 2, 0):i + 3].sum())

    def mark(self, p0, p1) -> None:
        for t in np.linspace(0, 1, 4):
            idx = self._idx(np.asarray(p0) + t * (np.asarray(p1) - np.asarray(p0)))
            if idx is not None:
                self.occ[idx] += 1.0


def _cone_dirs(d, rng, n, min_deg, max_deg):
    d = d / np.linalg.norm(d)
    a = np.array([1.0, 0, 0]) if abs(d[0]) < 0.9 else np.array([0, 1.0, 0])
    u = np.cross(d, a)
    u /= np.linalg.norm(u)
    v = np.cross(d, u)
    th = np.radians(rng.uniform(min_deg, max_deg, n))
    ph = rng.uniform(0, 2 * np.pi, n)
    return (np.cos(th)[:, None] * d + np.sin(th)[:, None] * (np.cos(ph)[:, None] * u
                                                             + np.sin(ph)[:, None] * v))


def _grow(liver: _Liver, rng, out: List[tuple], p, d, r, r_min=1.5, max_gen=4):
    """Grow one branch from p along roughly d with radius r, then bifurcate,
    (four generations: trunk ~7 mm down to ~1.6 mm radius, about 5 % of the liver
    volume, like the CT-visible portal and hepatic veins; six generations filled
    the liver evenly and left no vessel-free corridor for a needle),
    depth-first, until branches reach r_min and the generation limit or leave
    the liver (stay >= r + 3 mm inside its surface)."""
    stack = [(np.asarray(p, float), np.asarray(d, float), float(r), 0)]
    while stack and len(out) < 6000:
        p, d, r, gen = stack.pop()
        length = float(np.clip(rng.uniform(3.0, 5.0) * r + 5.0, 8.0, 40.0))
        cur, dd, ok = p, d / np.linalg.norm(d), True
        for _ in range(3):
            cand = _cone_dirs(dd, rng, 8, 0, 15)
            ends = cur + cand * (length / 3)
            score = [min(liver.depth_at(e), 12.0) - 0.5 * liver.occupancy(e) for e in ends]
            b = int(np.argmax(score))
            if liver.depth_at(ends[b]) < r + 3.0:
                ok = False
                break
            r_next = max(r * 0.97, r_min)
            out.append((cur.copy(), ends[b].copy(), r, r_next))
            liver.mark(cur, ends[b])
            cur, dd, r = ends[b], cand[b], r_next
        if not ok or gen >= max_gen:
            continue
        cands = _cone_dirs(dd, rng, 16, 25, 70)
        probe = cur + cands * max(10.0, 5 * r)
        score = np.array([min(liver.depth_at(e), 12.0) - 0.7 * liver.occupancy(e) for e in probe])
        score += rng.normal(0, 0.5, len(score))
        first = int(np.argmax(score))
        cos = cands @ cands[first]
        score2 = np.where(cos < np.cos(np.radians(50)), score, -np.inf)
        second = int(np.argmax(score2))
        stack.append((cur, cands[first], max(r * 0.82, r_min), gen + 1))
        if np.isfinite(score2[second]):
            stack.append((cur, cands[second], max(r * 0.68, r_min), gen + 1))


def _trunk(points, r0, r1):
    pts = A.smooth_polyline(points, 6)
    rad = np.linspace(r0, r1, len(pts))
    return [(pts[a], pts[a + 1], rad[a], rad[a + 1]) for a in range(len(pts) - 1)]


def build_vessels(grid: A.Grid, tissue: np.ndarray, rng: np.random.Generator) -> VesselTree:
    """Paint aorta, arteries, IVC, portal system and both hepatic trees; return segments
    and landmarks. Needs the liver already painted (trees grow inside it)."""
    tree = VesselTree()
    liver = _Liver(grid, tissue)
    # --- portal system --------------------------------------------------
    portal = tree.segments["portal"]
    extra_portal = (_trunk([(0, -10, -100), (-2, -9, -70), PORTAL_CONFLUENCE], 5.5, 6.0)
                    + _trunk([(85, 42, -5), (60, 20, -20), (25, 4, -36), PORTAL_CONFLUENCE], 4.0, 4.8)
                    + _trunk([PORTAL_CONFLUENCE, (-20, 0, -28), PORTAL_BIFURCATION], 7.5, 7.0))
    intra = (_trunk([PORTAL_BIFURCATION, RIGHT_PORTAL_SPLIT], 6.5, 6.2)
             + _trunk([PORTAL_BIFURCATION, (-22, 0, -4), LEFT_PORTAL_UMBILICAL], 5.5, 5.0)
             + _trunk([LEFT_PORTAL_UMBILICAL, (2, -22, 4), (8, -38, 6)], 5.0, 4.2))
    for s in intra:
        liver.mark(s[0], s[1])
    portal.extend(extra_portal + intra)
    seeds = [(RIGHT_PORTAL_SPLIT, (-0.3, -0.8, 0.6), 5.0),     # right anterior (V/VIII)
             (RIGHT_PORTAL_SPLIT, (-0.6, 0.6, -0.2), 5.0),     # right posterior (VI/VII)
             (RIGHT_PORTAL_SPLIT, (-0.5, 0.3, 0.8), 4.0),      # VII/VIII superior
             ((2, -22, 4), (0.5, 0.1, 0.8), 4.0),              # II
             ((8, -38, 6), (0.6, -0.3, -0.4), 3.8),            # III
             ((2, -22, 4), (-0.5, -0.6, 0.3), 3.6),            # IV
             (PORTAL_BIFURCATION, (0.2, 0.7, 0.6), 3.0)]       # caudate
    # --- hepatic veins: trunks to the IVC, tributaries along them -------------
    hep = tree.segments["hepatic"]
    trunks = [([RHV_OSTIUM, (-75, 18, 28), (-112, 22, -28)], 6.5, 3.0),
              ([MHV_OSTIUM, (-38, -22, 22), (-48, -55, -22)], 5.5, 2.8),
              ([LHV_OSTIUM, (6, -18, 42), (38, -42, 30)], 4.8, 2.5)]
    hv_seeds = []
    for pts, r0, r1 in trunks:
        segs = _trunk(pts, r0, r1)
        hep.extend(segs)
        for a, s in enumerate(segs):
            liver.mark(s[0], s[1])
            if a % 3 == 1:
                hv_seeds.append((s[1], None, 0.6 * s[3]))
    for p, d, r in seeds:
        _grow(liver, rng, portal, p, d, r)
    for p, d, r in hv_seeds:
        axis = np.asarray(p) - np.asarray(IVC_HV_CONFLUENCE)
        d = _cone_dirs(axis, rng, 1, 50, 80)[0]
        _grow(liver, rng, hep, p, d, max(r, 1.6))
    # --- arteries ---------------------------------------------------------
    art = tree.segments["artery"]
    art.extend(_trunk([(14, 18, -100), (14, 20, 40), (18, 25, 100)], 12.5, 12.0))  # aorta
    aorta_n = len(art)
    art.extend(_trunk([CELIAC_ORIGIN, (14, -8, -20)], 3.5, 3.2)
               + _trunk([(14, -8, -20), (-10, -10, -24), (-30, -6, -20), (-36, -1, -13)], 3.0, 2.6)
               + _trunk([(14, -8, -20), (45, 5, -15), (62, 22, -8), (82, 38, -2)], 3.0, 2.6)
               + _trunk([(14, 6, -38), (10, -12, -55), (8, -14, -100)], 4.2, 3.5))
    # hepatic artery branches run beside the larger portal branches
    for p0, p1, r0, r1 in list(portal[len(extra_portal):]):
        if r0 < 3.0:
            continue
        d = np.asarray(p1) - np.asarray(p0)
        off = np.cross(d, (0, 0, 1.0))
        if np.linalg.norm(off) < 1e-6:
            off = np.cross(d, (1.0, 0, 0))
        off = off / np.linalg.norm(off) * (r0 + 3.0)
        art.append((np.asarray(p0) + off, np.asarray(p1) + off, max(0.3 * r0, 1.2),
                    max(0.3 * r1, 1.2)))
    # --- paint: IVC, aorta, portal, hepatic, arteries ------------------------------
    ivc = _trunk([(-24, 16, -100), (-25, 14, -10), IVC_HV_CONFLUENCE, (-12, 0, 70), (-5, -10, 90)],
                 11.0, 11.0)
    for s in ivc:
        A.paint_tube(grid, tissue, A.IVC, *s, not_codes=BONE + [A.KIDNEY_CORTEX])
    for s in art[:aorta_n]:
        A.paint_tube(grid, tissue, A.AORTA, *s, not_codes=BONE)
    for s in extra_portal:
        A.paint_tube(grid, tissue, A.PORTAL, *s, only=SOFT)
    for s in portal[len(extra_portal):]:
        A.paint_tube(grid, tissue, A.PORTAL, *s, only=[A.LIVER, A.VISCERAL_FAT])
    for s in hep:
        A.paint_tube(grid, tissue, A.HEPATIC_VEIN, *s, only=[A.LIVER, A.VISCERAL_FAT, A.IVC])
    for s in art[aorta_n:]:
        A.paint_tube(grid, tissue, A.ARTERY, *s, only=SOFT)
    tree.landmarks = {
        "portal_confluence": PORTAL_CONFLUENCE, "portal_bifurcation": PORTAL_BIFURCATION,
        "right_portal_split": RIGHT_PORTAL_SPLIT, "left_portal_umbilical": LEFT_PORTAL_UMBILICAL,
        "hepatic_vein_confluence": IVC_HV_CONFLUENCE, "right_hepatic_vein_ostium": RHV_OSTIUM,
        "middle_hepatic_vein_ostium": MHV_OSTIUM, "left_hepatic_vein_ostium": LHV_OSTIUM,
        "celiac_origin": CELIAC_ORIGIN,
    }
    tree.landmarks = {k: [float(v) for v in p] for k, p in tree.landmarks.items()}
    return tree
