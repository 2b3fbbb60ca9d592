"""CT-guided needle paths: in a (tilted) gantry plane, or double oblique.

Frames: CT LPS mm (x = patient Left, y = Posterior, z = Superior), patient
supine. A gantry tilted by ``tau`` about the left-right axis images the plane
spanned by x and (0, cos tau, sin tau); a needle direction ``d`` lies in such a
plane iff ``tau = atan(d_z / d_y)``. "Vertical" in the gantry plane is anterior
(up for a supine patient): ``up = (0, -cos tau, -sin tau)``, and the needle
angle from vertical is measured in that plane, positive towards the patient's
left.

The maximum tilt is a scanner setting (``Constraints.max_gantry_tilt_deg``,
default 15 deg, up to 30 deg). A safe straight path that needs more tilt is not
rejected: it is a *double-oblique* path (docs/clinical_evidence.md 4.1), planned
with the gantry untilted and described by two angles: craniocaudal (the needle
out of the axial plane, + when the entry is cranial to the target) and in-plane
(its projection on the axial plane from vertical, + towards the patient's left);
the needle is then advanced with stepwise confirmation scans or CT fluoroscopy.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

MAX_TILT_DEG = 15.0          # default gantry tilt limit (Constraints.max_gantry_tilt_deg)


def gantry_directions(max_tilt_deg: float = MAX_TILT_DEG, tilt_step_deg: float = 2.5,
                      angle_step_deg: float = 1.0, max_from_vertical_deg: float = 120.0) -> np.ndarray:
    """(n, 3) unit needle directions (target -> skin) lying exactly in tilted gantry planes."""
    tilts = np.radians(np.arange(-max_tilt_deg, max_tilt_deg + 1e-9, tilt_step_deg))
    phis = np.radians(np.arange(-max_from_vertical_deg, max_from_vertical_deg + 1e-9, angle_step_deg))
    out = []
    for tau in tilts:
        up = np.array([0.0, -np.cos(tau), -np.sin(tau)])
        x = np.array([1.0, 0.0, 0.0])
        out.append(np.sin(phis)[:, None] * x + np.cos(phis)[:, None] * up)
    return np.concatenate(out)


def tilt_deg(d: np.ndarray) -> np.ndarray:
    """Gantry tilt (deg) whose plane contains each direction (n, 3); 0 for pure left-right."""
    d = np.atleast_2d(d)
    dy, dz = d[:, 1], d[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.degrees(np.arctan(dz / dy))
    lateral = np.hypot(dy, dz) < 1e-6
    return np.where(lateral, 0.0, np.where(np.abs(dy) < 1e-12, 90.0, t))


def angle_from_vertical_deg(d: np.ndarray) -> np.ndarray:
    """In-plane angle between the needle (target -> skin) and anterior; + = towards patient's left."""
    d = np.atleast_2d(d)
    tau = np.radians(tilt_deg(d))
    up = np.stack([np.zeros_like(tau), -np.cos(tau), -np.sin(tau)], axis=1)
    return np.degrees(np.arctan2(d[:, 0], np.sum(d * up, axis=1)))


def ct_feasible(d: np.ndarray, max_tilt_deg: float = MAX_TILT_DEG) -> np.ndarray:
    """True for each direction (n, 3) that lies in a gantry plane the scanner can tilt to."""
    return np.abs(tilt_deg(d)) <= max_tilt_deg + 1e-6


def craniocaudal_deg(d: np.ndarray) -> np.ndarray:
    """Angle (deg) of each direction (n, 3; target -> skin) out of the axial plane; + = entry cranial."""
    d = np.atleast_2d(d)
    return np.degrees(np.arcsin(np.clip(d[:, 2], -1.0, 1.0)))


def axial_angle_from_vertical_deg(d: np.ndarray) -> np.ndarray:
    """Angle (deg) of each direction's projection on the axial plane from anterior; + = towards the left."""
    d = np.atleast_2d(d)
    return np.degrees(np.arctan2(d[:, 0], -d[:, 1]))


def _body_landmarks(anatomy, entry: np.ndarray):
    """(midline point, midline anterior skin mark) on the entry's axial slice (LPS mm)."""
    ct = anatomy.ct
    body = anatomy.masks["body"]
    k = int(np.clip(np.rint(ct.lps_to_index(entry)[2]), 0, body.shape[0] - 1))
    jj, ii = np.nonzero(body[k])
    centre_ijk = np.array([ii.mean(), jj.mean(), k], float)
    mid = ct.index_to_lps(centre_ijk)
    i_mid = int(np.rint(centre_ijk[0]))
    col = np.nonzero(body[k, :, i_mid])[0]
    mark = ct.index_to_lps(np.array([i_mid, col.min() if col.size else centre_ijk[1], k], float))
    return mid, mark


def describe(anatomy, path: dict, max_tilt_deg: float = MAX_TILT_DEG) -> Dict[str, object]:
    """Table position, tilt (or the two double-oblique angles), angle from vertical, skin entry vs
    midline and skin mark, depth; ``text`` says it for the technologist."""
    ct = anatomy.ct
    entry = np.asarray(path["entry_ct"], float)
    target = np.asarray(path["target_ct"], float)
    d = (entry - target) / max(np.linalg.norm(entry - target), 1e-9)
    tilt = float(tilt_deg(d)[0])
    oblique = abs(tilt) > max_tilt_deg + 1e-6
    mid, mark = _body_landmarks(anatomy, entry)
    k_target = int(np.rint(float(ct.lps_to_index(target)[2])))    # slice the technologist dials in
    side = "left" if entry[0] - mid[0] > 0 else "right"
    depth = float(np.linalg.norm(entry - target))
    out = {
        "table_position_mm": round(float(target[2]), 1),
        "target_slice_index": k_target,                 # 0-based, as in the arrays
        "target_slice_number": k_target + 1,            # 1-based, as viewers and scanners count
        "gantry_tilt_deg": 0.0 if oblique else round(tilt, 1),
        "max_gantry_tilt_deg": float(max_tilt_deg),
        "double_oblique": bool(oblique),
        "skin_entry_ct": [round(float(x), 1) for x in entry],
        "entry_from_midline_mm": round(float(entry[0] - mid[0]), 1),
        "entry_side": side,
        "skin_mark_ct": [round(float(x), 1) for x in mark],
        "entry_from_skin_mark_mm": round(float(np.linalg.norm(entry - mark)), 1),
        "depth_mm": round(depth, 1),
    }
    where = (f"skin entry {abs(entry[0] - mid[0]):.0f} mm {side} of the midline ({np.linalg.norm(entry - mark):.0f} "
             f"mm from the midline skin mark), depth {depth:.0f} mm")
    if not oblique:
        ang = float(angle_from_vertical_deg(d)[0])
        out["angle_from_vertical_deg"] = round(ang, 1)
        out["text"] = (f"table at z = {target[2]:.1f} mm (slice {k_target + 1} of {ct.array.shape[0]}), gantry tilt "
                       f"{tilt:+.1f} deg, needle {abs(ang):.0f} deg from vertical towards the patient's "
                       f"{'left' if ang > 0 else 'right'}, {where}")
        return out
    cc = float(craniocaudal_deg(d)[0])
    ip = float(axial_angle_from_vertical_deg(d)[0])
    out.update({"angle_from_vertical_deg": round(ip, 1), "craniocaudal_angle_deg": round(cc, 1),
                "in_plane_angle_deg": round(ip, 1), "entry_table_position_mm": round(float(entry[2]), 1),
                "required_tilt_deg": round(tilt, 1)})
    out["text"] = (f"DOUBLE OBLIQUE (needs {abs(tilt):.0f} deg of tilt, scanner limit {max_tilt_deg:g} deg): gantry "
                   f"untilted, target at table z = {target[2]:.1f} mm (slice {k_target + 1} of {ct.array.shape[0]}), "
                   f"skin entry at z = {entry[2]:.1f} mm; needle {abs(cc):.0f} deg craniocaudal "
                   f"({'entry cranial' if cc > 0 else 'entry caudal'} to the target) and {abs(ip):.0f} deg from "
                   f"vertical towards the patient's {'left' if ip > 0 else 'right'} in the axial plane; {where}. "
                   "Advance in steps with confirmation scans (or CT fluoroscopy).")
    return out
