"""Portal versus hepatic veins, where the anatomy or the phases allow telling them apart.

With an arterial-phase CT (physics): in the late arterial phase the portal
vein is already enhanced (splenic and mesenteric return) while the hepatic
veins are not yet (the contrast has not passed the liver's sinusoids): a
vessel voxel whose arterial HU exceeds the liver's arterial HU by
:data:`ARTERIAL_PORTAL_ABOVE_HU` is portal, otherwise hepatic; a 3x3x3
majority vote removes isolated flips.

Without it (anatomy): the two trees have different roots. The hepatic veins
drain into the IVC near the dome (root: vessels touching the IVC in the
liver's cranial :data:`DOME_FRACTION`); the portal vein enters at the hilum,
from outside the liver (root: vessels outside the liver, below that, away
from the IVC). Each vessel voxel goes to the root it reaches at the lower
geodesic cost through the vessel mask, where a step costs 1 / r^2 (r: the
vessel's local radius in mm), so paths run along thick trunks and crossing
between the trees through a thin contact is expensive (scikit-image
``MCP_Geometric``). The split is kept only when the two trees so found meet
on few voxels (at most :data:`MAX_CONTACT_FRACTION` of the smaller one):
trees that cross or run together on the CT cannot be told apart this way;
and when each tree holds at least :data:`MIN_TREE_SHARE` of the vessels (the
two venous trees of a liver are of comparable size: one swallowing the other
means a root was cut off from its tree). Without an IVC (not enhanced, not found) or without
vessels leaving the liver, the trees cannot be told apart and the caller
labels them ``liver_vessel``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric

from .morphology import bbox, depth_mm, distance_to_mm, margin_vox

ARTERIAL_PORTAL_ABOVE_HU = 30.0
IVC_TOUCH_MM = 4.0
MIN_ROOT_VOXELS = 10
MAX_CONTACT_FRACTION = 0.05
MIN_TREE_SHARE = 0.25
DOME_FRACTION = 0.35      # hepatic veins join the IVC in the cranial third of the liver
GEODESIC_MM = 1.6         # block size of the geodesic race (vessels >= 3 mm stay >= 2 blocks wide)


@dataclass
class VesselSplit:
    portal: np.ndarray
    hepatic: np.ndarray
    undetermined: np.ndarray
    method: str          # "arterial phase", "roots: IVC and hilum", or why it was not possible


def split_by_arterial(vessels: np.ndarray, arterial_hs: np.ndarray, liver: np.ndarray) -> VesselSplit:
    """Portal = enhanced already in the arterial phase (crop arrays of one shape)."""
    parenchyma = liver & ~vessels
    liver_art = float(np.median(arterial_hs[parenchyma])) if parenchyma.any() else float(
        np.median(arterial_hs[vessels]))
    portal = vessels & (arterial_hs >= liver_art + ARTERIAL_PORTAL_ABOVE_HU)
    votes = ndimage.uniform_filter(portal.astype(np.float32), 3)
    weight = ndimage.uniform_filter(vessels.astype(np.float32), 3)
    portal = vessels & (votes >= 0.5 * weight)
    return VesselSplit(portal, vessels & ~portal, np.zeros_like(vessels), "arterial phase")


def split_by_roots(vessels: np.ndarray, liver: np.ndarray, ivc: np.ndarray, spacing) -> VesselSplit:
    """Geodesic competition between the IVC root (hepatic) and the hilum root (portal)."""
    empty = np.zeros_like(vessels)
    if not ivc.any():
        return VesselSplit(empty, empty.copy(), vessels.copy(), "no IVC found: hepatic veins have no root")
    ks = np.nonzero(liver.any(axis=(1, 2)))[0]
    if ks.size == 0:
        return VesselSplit(empty, empty.copy(), vessels.copy(), "no liver")
    cut = ks[0] + (1.0 - DOME_FRACTION) * (ks[-1] - ks[0])
    dome = np.zeros(vessels.shape, bool)
    dome[int(np.ceil(cut)):] = True
    to_ivc = distance_to_mm(ivc, spacing)                  # one distance map for both roots
    hepatic_root = vessels & (to_ivc <= IVC_TOUCH_MM) & dome
    portal_root = vessels & ~liver & ~dome & (to_ivc > 3.0 * IVC_TOUCH_MM)
    if hepatic_root.sum() < MIN_ROOT_VOXELS or portal_root.sum() < MIN_ROOT_VOXELS:
        which = "IVC" if hepatic_root.sum() < MIN_ROOT_VOXELS else "hilum"
        return VesselSplit(empty, empty.copy(), vessels.copy(), f"no vessel reaches the {which}")
    box = bbox(vessels, margin_vox(1.0, spacing))
    v = vessels[box]
    costs = _geodesic_costs(v, (portal_root[box], hepatic_root[box]), spacing)
    reached = v & (np.isfinite(costs[0]) | np.isfinite(costs[1]))
    p_box = reached & (costs[0] <= costs[1])
    h_box = reached & (costs[0] > costs[1])
    # two trees that only touch meet on a few voxels; trees that cross or run together
    # meet along their length and the geodesic split is then not trustworthy
    contact = (ndimage.binary_dilation(p_box) & h_box).sum()
    smaller = max(1, min(int(p_box.sum()), int(h_box.sum())))
    if contact > MAX_CONTACT_FRACTION * smaller:
        return VesselSplit(empty, empty.copy(), vessels.copy(),
                           f"the portal and hepatic trees touch along {100 * contact / smaller:.0f} % "
                           "of the smaller one")
    # the two venous trees of a liver are of comparable size; one swallowing the other
    # means a root was cut off from its tree (a gap at the hilum) or the trees merge
    share = float(p_box.sum()) / max(1.0, float(p_box.sum() + h_box.sum()))
    if not MIN_TREE_SHARE <= share <= 1.0 - MIN_TREE_SHARE:
        return VesselSplit(empty, empty.copy(), vessels.copy(),
                           f"the portal tree would hold {100 * share:.0f} % of the vessels")
    portal = np.zeros_like(vessels)
    hepatic = np.zeros_like(vessels)
    portal[box] = p_box
    hepatic[box] = h_box
    undetermined = vessels & ~portal & ~hepatic
    return VesselSplit(portal, hepatic, undetermined, "roots: IVC and hilum")


def _geodesic_costs(v: np.ndarray, roots, spacing) -> list:
    """Per root, the geodesic cost (1 / r^2 per mm) from it to every voxel of the vessel mask
    ``v``. Run on blocks of about :data:`GEODESIC_MM` (the vessels and roots max-pooled, so no
    vessel is lost or cut) and read back per voxel: on thin-slice CTs the race over every voxel
    took most of the vessel step's time and memory."""
    sp = np.asarray(spacing, float)                         # (i, j, k)
    f = np.maximum(1, np.floor(GEODESIC_MM / sp)).astype(int)[::-1]        # (k, j, i)
    pad = [(0, (-n) % b) for n, b in zip(v.shape, f)]

    def pool(m):
        m = np.pad(m, pad)
        return m.reshape(m.shape[0] // f[0], f[0], m.shape[1] // f[1], f[1],
                         m.shape[2] // f[2], f[2]).any(axis=(1, 3, 5))
    vp = pool(v)
    r = depth_mm(vp, sp * f[::-1])
    cost = np.where(vp, 1.0 / np.maximum(r, 0.5) ** 2, np.inf)
    out = []
    for root in roots:
        mcp = MCP_Geometric(cost, sampling=tuple((sp * f[::-1])[::-1]))
        cum, _ = mcp.find_costs([tuple(p) for p in np.argwhere(pool(root) & vp)])
        for ax, b in enumerate(f):
            cum = np.repeat(cum, b, axis=ax)
        out.append(cum[:v.shape[0], :v.shape[1], :v.shape[2]])
    return out


def split_vessels(vessels: np.ndarray, liver: np.ndarray, ivc: np.ndarray, spacing,
                  arterial_hs: Optional[np.ndarray] = None) -> VesselSplit:
    """Portal / hepatic split of the liver's vessels (crop arrays of one shape)."""
    if not vessels.any():
        e = np.zeros_like(vessels)
        return VesselSplit(e, e.copy(), e.copy(), "no vessels")
    if arterial_hs is not None:
        return split_by_arterial(vessels, arterial_hs, liver)
    return split_by_roots(vessels, liver, ivc, spacing)
