"""The planner's torso phantom and an independent path check, shared by the planning tests.

``make_phantom``: a supine torso on a 2 mm grid with ribs, lung base, vessels
and three lesions (subcapsular, deep, behind the ribs); ``planned_phantom``:
it planned once per session; ``independent_violations``: a straight path
re-checked against the label map itself (nearest voxel every 0.5 mm, KD-tree
distances to vessel voxel centres), not with the planner's distance maps.
"""
from __future__ import annotations

import functools

import numpy as np
from scipy.spatial import cKDTree

from planner.case.case_plan import plan_case
from registration.spatial.volume import LabelMap, Volume

NAMES = {"liver": 1, "bone": 2, "lung": 3, "gallbladder": 4, "kidney": 5, "portal_vein": 6,
         "hepatic_vein": 7, "lesion_sub": 10, "lesion_deep": 11, "lesion_rib": 12}
FORBIDDEN = ("bone", "lung", "gallbladder", "kidney", "bowel", "heart", "spleen", "pancreas")
HU = {0: 40, 1: 60, 2: 700, 3: -850, 4: 10, 5: 35, 6: 180, 7: 170, 10: 20, 11: 25, 12: 20}


def make_phantom(spacing=2.0):
    """Supine torso phantom in LPS mm (x = left, y = posterior, z = superior), arrays [k, j, i].

    Liver on the patient's right (-x); rib bands cage the right side (x < -20)
    and hide lesion_rib; lesion_sub is subcapsular in the left lobe, anterior;
    lesion_deep sits deep in the liver; vessels are >= 8 mm tubes.
    """
    x = np.arange(-170, 170 + 1e-9, spacing)
    y = np.arange(-130, 130 + 1e-9, spacing)
    z = np.arange(-60, 70 + 1e-9, spacing)
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    lab = np.zeros(Z.shape, np.int16)
    body = (X / 150) ** 2 + (Y / 110) ** 2 <= 1
    r_body = np.sqrt((X / 150) ** 2 + (Y / 110) ** 2)

    def ell(c, s):
        return ((X - c[0]) / s[0]) ** 2 + ((Y - c[1]) / s[1]) ** 2 + ((Z - c[2]) / s[2]) ** 2 <= 1
    lab[ell((-60, 0, 0), (75, 70, 55))] = 1
    lab[ell((-60, 10, 80), (80, 75, 30)) & body] = 3                         # lung base
    lab[ell((-45, -55, -38), (14, 12, 18))] = 4                              # gallbladder
    lab[ell((-75, 70, -35), (25, 20, 35))] = 5                               # right kidney
    lab[((X - -40) ** 2 + (Y - 15) ** 2 <= 6 ** 2)] = 7                      # IVC / hepatic vein
    lab[(((Y - 0) ** 2 + (Z - -12) ** 2) <= 4 ** 2) & (X > -100) & (X < -40)] = 6  # portal branch
    lab[((X - 0) ** 2 + (Y - 80) ** 2 <= 20 ** 2)] = 2                       # spine
    # rib bands (3 mm gaps: too narrow for a needle) cage the whole right side
    # (x < -20 mm); the left lobe is reachable from the front
    cover = (X < -20) & (Z <= 62) & (Z >= -50)
    ribs = (r_body > 0.86) & (r_body < 0.95) & cover & (np.mod(Z + 60, 14) < 11)
    lab[ribs] = 2
    lab[ell((-10, -35, -10), (6, 6, 6))] = 10
    lab[ell((-65, 30, -2), (6, 6, 6))] = 11
    lab[ell((-90, 40, 30), (7, 7, 7))] = 12
    hu = np.full(Z.shape, -1000.0)
    hu[body] = 40
    for v, h in HU.items():
        if v:
            hu[lab == v] = h
    rng = np.random.default_rng(7)
    hu[body] += rng.normal(0, 5, size=int(body.sum()))
    origin = (x[0], y[0], z[0])
    ct = Volume(hu.astype(np.int16), (spacing,) * 3, origin)
    return ct, LabelMap(lab.astype(np.int16), (spacing,) * 3, origin, names=NAMES)


@functools.lru_cache(maxsize=1)
def planned_phantom():
    """(ct, labels, PlanResult) built once per test session (shared with test_export)."""
    ct, lm = make_phantom()
    return ct, lm, plan_case(ct, lm, n_directions=2000)


def independent_violations(labels: LabelMap, entry, target, *, max_length_mm=150.0, vessel_margin_mm=5.0,
                           vessel_names=("portal_vein", "hepatic_vein", "artery"), step=0.5,
                           lesion_value=None):
    """Violations of one straight path by resampling the truth label map every 0.5 mm.

    Forbidden labels at any sample; vessel voxels closer than the margin to any
    sample outside the target lesion (``lesion_value``), no vessel label at
    samples inside it; length; >= 10 mm of liver label along the path.
    """
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    L = np.linalg.norm(entry - target)
    out = []
    if L > max_length_mm + 1e-6:
        out.append(f"length {L:.1f} mm > {max_length_mm}")
    s = np.arange(0, L + 1e-9, step)
    pts = target + s[:, None] * (entry - target) / L
    ijk = np.rint(labels.lps_to_index(pts)).astype(int)
    ijk = np.clip(ijk, 0, np.array(labels.shape_ijk) - 1)
    vals = labels.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]]
    for name in FORBIDDEN:
        if name in labels.names and np.any(vals == labels.names[name]):
            out.append(f"crosses {name}")
    vessel_values = [labels.names[n] for n in vessel_names if n in labels.names]
    if np.any(np.isin(vals, vessel_values)):
        out.append("crosses a vessel")
    vessel = np.isin(labels.array, vessel_values)
    outside = vals != lesion_value if lesion_value is not None else np.ones(len(vals), bool)
    if vessel.any() and outside.any():
        kji = np.argwhere(vessel)
        tree = cKDTree(labels.index_to_lps(kji[:, ::-1].astype(float)))
        dmin = tree.query(pts[outside])[0].min()
        if dmin < vessel_margin_mm:
            out.append(f"{dmin:.2f} mm from a vessel")
    liver_mm = np.count_nonzero(vals == labels.names["liver"]) * step
    if liver_mm < 10.0 - 1.0:  # one sample of tolerance at the capsule
        out.append(f"only {liver_mm:.1f} mm of liver")
    return out
