"""The planner's torso phantom and an independent path check, shared by the planning tests.

``make_phantom``: a supine torso on a 2 mm grid with ribs, lung base, vessels
and three lesions (subcapsular, deep, behind the ribs); ``planned_phantom``:
it planned once per session; ``independent_violations``: a straight path
re-checked against the label map itself by the clearance rule of DESIGN
section 7 implemented here (scipy distance transforms sampled trilinearly),
not with the planner's distance maps or trees; ``make_lesion_phantom``: a
torso with one hand-made lesion (size, depth, type, ribs).
"""
from __future__ import annotations

import functools

import numpy as np

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


_EDT_CACHE: dict = {}


def _edt(labels: LabelMap, key: str, mask_fn) -> np.ndarray:
    """Distance transform (mm, scipy, voxel spacing) of a structure of ``labels``, cached per map."""
    from scipy import ndimage
    k = (id(labels.array), key)
    if k not in _EDT_CACHE:
        m = mask_fn()
        _EDT_CACHE[k] = (ndimage.distance_transform_edt(~m, sampling=np.asarray(labels.spacing, float)[::-1])
                         if m.any() else None)
    return _EDT_CACHE[k]


def _large_vessel_mask(labels: LabelMap, values) -> np.ndarray:
    """Which vessel voxels the rule applies to (>= 3 mm): the planner's own definition of the
    *structure* (planner.anatomy.derived.large_vessels); the distances below are computed here."""
    from planner.anatomy.derived import large_vessels
    return large_vessels(np.isin(labels.array, values), labels.spacing)


def independent_violations(labels: LabelMap, entry, target, *, max_length_mm=150.0, needle_radius_mm=0.635,
                           vessel_floor_mm=2.0, vessel_margin_mm=5.0,
                           vessel_names=("portal_vein", "hepatic_vein", "artery"), step=0.5,
                           lesion_value=None, clearance=None, cautions=None, tolerance_mm=0.0):
    """Violations of one straight path, by DESIGN section 7 computed here with scipy.

    Each structure's Euclidean distance transform (``distance_transform_edt`` with the voxel
    spacing) is sampled trilinearly (``map_coordinates`` order 1) every ``step`` mm along the
    segment, from the target and from the entry. A path is safe when every hard structure
    (FORBIDDEN) stays above the needle radius + half the voxel diagonal, and large vessels above
    that + ``vessel_floor_mm`` outside the target lesion (``lesion_value``; inside it: above
    the radius + half diagonal, i.e. not crossed); and the length is within the needle. With
    ``clearance`` (the plan's ``clearance_mm``) every reported value must not exceed the one
    measured here; with ``cautions`` (the plan's list) a path without a ``vessel_margin``
    caution must keep ``vessel_margin_mm`` too. ``tolerance_mm`` lowers every threshold (for
    comparing with a check sampled at other points). Returns the violations in words.
    """
    from scipy import ndimage
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    L = np.linalg.norm(entry - target)
    out = []
    if L > max_length_mm + 1e-6:
        out.append(f"length {L:.1f} mm > {max_length_mm}")
    s = np.arange(0, L + 1e-9, step)
    s = np.r_[s, L - s]
    pts = target + s[:, None] * (entry - target) / L
    kji = labels.lps_to_index(pts)[:, ::-1].T
    near = np.clip(np.rint(kji).astype(int), 0, np.array(labels.array.shape)[:, None] - 1)
    vals = labels.array[near[0], near[1], near[2]]
    in_lesion = vals == lesion_value if lesion_value is not None else np.zeros(len(vals), bool)
    thr = needle_radius_mm + 0.5 * float(np.linalg.norm(labels.spacing)) - tolerance_mm
    measured = {}

    def sample(edt):
        return ndimage.map_coordinates(edt, kji, order=1, mode="nearest")
    for name in FORBIDDEN:
        values = [v for n, v in labels.names.items() if n == name or (name == "pancreas" and n == "pancreatic_mass")]
        edt = _edt(labels, name, lambda: np.isin(labels.array, values)) if values else None
        if edt is None:
            continue
        d = sample(edt)
        measured[name] = float(d.min())
        if d.min() <= thr:
            out.append(f"{d.min():.2f} mm from {name} (needs > {thr:.2f})")
    vessel_values = [labels.names[n] for n in vessel_names if n in labels.names]
    if vessel_values:
        edt = _edt(labels, "vessel_large", lambda: _large_vessel_mask(labels, vessel_values))
        if edt is not None:
            d = sample(edt)
            measured["vessel_large"] = float(d.min())
            if (~in_lesion).any() and d[~in_lesion].min() <= thr + vessel_floor_mm:
                out.append(f"{d[~in_lesion].min():.2f} mm from a vessel >= 3 mm (needs > {thr + vessel_floor_mm:.2f})")
            if in_lesion.any() and d[in_lesion].min() <= thr:
                out.append(f"crosses a vessel >= 3 mm inside the lesion ({d[in_lesion].min():.2f} mm)")
            margin_kept = not (~in_lesion).any() or d[~in_lesion].min() >= thr + vessel_margin_mm - 1e-6
            if cautions is not None and not margin_kept and "vessel_margin" not in [c["rule"] for c in cautions]:
                out.append(f"closer than the {vessel_margin_mm} mm vessel margin without a caution")
    for cls, claimed in (clearance or {}).items():
        if cls in measured and claimed > measured[cls] + 1e-6:
            out.append(f"claimed {cls} clearance {claimed} mm > measured {measured[cls]:.4f} mm")
    return out


# --------------------------------------------------------------------------- hand-made lesions
LESION_NAMES = {"liver": 1, "bone": 2, "portal_vein": 6, "hepatic_vein": 7, "lesion_x": 10}
LIVER_HU, ADENO_HU, NET_HU = 110, 55, 175    # portal venous phase: hypo- vs hyper-attenuating lesion


def make_lesion_phantom(diameter_mm: float, depth_mm: float, kind: str = "adenocarcinoma", *,
                        rib_cage: bool = False):
    """A supine torso with one lesion straight below the anterior skin at ``depth_mm``.

    Body: elliptic cylinder, 175 mm to the sides and 135 mm front/back from the lesion's
    axis, so that the anterior window is the shortest (the back is the table side). Liver:
    a large ellipsoid around the lesion; a portal branch and a hepatic vein run behind it,
    the spine further back. ``kind``: 'adenocarcinoma' (hypo-attenuating on the portal
    phase) or 'net' (hyper-attenuating). ``rib_cage``: ribs all round (11 mm bands, 6 mm
    gaps, on a 1 mm grid in z), the lesion level with the middle of a gap: a needle fits
    between two ribs, a 6 mm-wide beam does not (no acoustic window). 2 mm voxels
    (1 mm in z with the rib cage). LPS mm (x left, y posterior, z superior), arrays [k, j, i].
    """
    spacing = (2.0, 2.0, 1.0 if rib_cage else 2.0)
    x = np.arange(-180, 180 + 1e-9, spacing[0])
    y = np.arange(-140, 140 + 1e-9, spacing[1])
    z = np.arange(-96, 96 + 1e-9, spacing[2])
    Z, Y, X = np.meshgrid(z, y, x, indexing="ij")
    r_body = np.sqrt((X / 175) ** 2 + (Y / 135) ** 2)
    body = r_body <= 1
    lab = np.zeros(Z.shape, np.int16)
    lab[((X / 140) ** 2 + ((Y + 20) / 95) ** 2 + (Z / 80) ** 2 <= 1)] = 1                 # liver
    lab[((Y - 45) ** 2 + (Z + 30) ** 2 <= 5 ** 2) & (np.abs(X) < 110)] = 6                # portal branch
    lab[((X - 30) ** 2 + (Y - 45) ** 2 <= 5 ** 2) & (np.abs(Z) < 70)] = 7                  # hepatic vein
    lab[(X ** 2 + (Y - 112) ** 2 <= 18 ** 2)] = 2                                          # spine
    if rib_cage:
        lab[(r_body > 0.87) & (r_body < 0.95) & (np.mod(Z + 96, 17) < 11)] = 2
    centre = np.array([0.0, -135.0 + depth_mm, 2.5 if rib_cage else 0.0])   # z 2.5: mid-gap
    r = 0.5 * diameter_mm
    lab[((X - centre[0]) ** 2 + (Y - centre[1]) ** 2 + (Z - centre[2]) ** 2 <= r ** 2)] = 10
    hu = np.full(Z.shape, -1000.0)
    hu[body] = 40
    for value, h in ((1, LIVER_HU), (2, 700), (6, 180), (7, 170),
                     (10, ADENO_HU if kind == "adenocarcinoma" else NET_HU)):
        hu[lab == value] = h
    rng = np.random.default_rng(11)
    hu[body] += rng.normal(0, 5, size=int(body.sum()))
    origin = (x[0], y[0], z[0])
    ct = Volume(hu.astype(np.int16), spacing, origin)
    return ct, LabelMap(lab, spacing, origin, names=dict(LESION_NAMES)), centre
