"""Portal versus hepatic veins, where the anatomy or the phases allow telling them apart.

With an arterial-phase CT (physics): in the late arterial phase the portal
vein is already enhanced (splenic and mesenteric return) while the hepatic
veins are not yet (the contrast has not passed the liver's sinusoids): a
vessel voxel whose arterial HU exceeds the liver's arterial HU by
:data:`ARTERIAL_PORTAL_ABOVE_HU` is portal, otherwise hepatic; a 3x3x3
majority vote removes isolated flips.

Without it (anatomy): the two trees have different roots. The hepatic veins
drain into the IVC near the dome; the portal vein enters at the hilum, from
outside the liver. Each vessel voxel goes to the root it reaches at the lower
geodesic cost through the vessel mask, where a step costs 1 / r^2 (r: the
vessel's local radius in mm), so paths run along thick trunks and crossing
between the trees through a thin contact is expensive (scikit-image
``MCP_Geometric``). Without an IVC (not enhanced, not found) or without
vessels leaving the liver, the trees cannot be told apart and the caller
labels them ``liver_vessel``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric

from .morphology import bbox, depth_mm, dilate_mm, margin_vox

ARTERIAL_PORTAL_ABOVE_HU = 30.0
IVC_TOUCH_MM = 4.0
MIN_ROOT_VOXELS = 10


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
    near_ivc = dilate_mm(ivc, spacing, IVC_TOUCH_MM)
    hepatic_root = vessels & near_ivc
    portal_root = vessels & ~liver & ~dilate_mm(ivc, spacing, 3.0 * IVC_TOUCH_MM)
    if hepatic_root.sum() < MIN_ROOT_VOXELS or portal_root.sum() < MIN_ROOT_VOXELS:
        which = "IVC" if hepatic_root.sum() < MIN_ROOT_VOXELS else "hilum"
        return VesselSplit(empty, empty.copy(), vessels.copy(), f"no vessel reaches the {which}")
    box = bbox(vessels, margin_vox(1.0, spacing))
    v = vessels[box]
    r = depth_mm(v, spacing)
    cost = np.where(v, 1.0 / np.maximum(r, 0.5) ** 2, np.inf)
    costs = []
    for root in (portal_root[box], hepatic_root[box]):
        mcp = MCP_Geometric(cost, sampling=tuple(np.asarray(spacing, float)[::-1]))
        cum, _ = mcp.find_costs([tuple(p) for p in np.argwhere(root)])
        costs.append(cum)
    reached = v & (np.isfinite(costs[0]) | np.isfinite(costs[1]))
    portal = np.zeros_like(vessels)
    hepatic = np.zeros_like(vessels)
    portal[box] = reached & (costs[0] <= costs[1])
    hepatic[box] = reached & (costs[0] > costs[1])
    undetermined = vessels & ~portal & ~hepatic
    return VesselSplit(portal, hepatic, undetermined, "roots: IVC and hilum")


def split_vessels(vessels: np.ndarray, liver: np.ndarray, ivc: np.ndarray, spacing,
                  arterial_hs: Optional[np.ndarray] = None) -> VesselSplit:
    """Portal / hepatic split of the liver's vessels (crop arrays of one shape)."""
    if not vessels.any():
        e = np.zeros_like(vessels)
        return VesselSplit(e, e.copy(), e.copy(), "no vessels")
    if arterial_hs is not None:
        return split_by_arterial(vessels, arterial_hs, liver)
    return split_by_roots(vessels, liver, ivc, spacing)
