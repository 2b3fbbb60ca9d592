"""The 3D scene's pieces: anatomy surfaces, the orientation cube, the needle path, the camera.

Pure data work and VTK objects; no Qt (the widget is :mod:`gui.views.view3d`).
Everything is in CT LPS mm. Surfaces are built off the GUI thread
(:func:`build_surfaces`: marching cubes per structure group, decimated). The
planned path is drawn twice: a solid tube with depth test (where it is seen
directly) and a translucent "ghost" copy in an overlay layer that ignores
depth, so the part behind ribs or liver still shows (as navigation systems
draw a tool that is inside the body). The orientation marker is a cube
lettered in patient directions (R/L, A/P, S/I).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from registration.spatial.errors import CancelledError

from planner.anatomy.mr_lesions import mr_only_lesions

from .qimage import LESION_COLOUR, MR_ONLY_COLOUR, STRUCTURE_COLOURS

#: The 3D group of the lesions seen on the MR only (LabelMap metadata, planner.anatomy.mr_lesions):
#: magenta, named so in the view's status line (its legend).
MR_ONLY_GROUP = "MR-only lesions"

# group -> (colour RGB, opacity). Only the liver is translucent: several translucent
# surfaces need depth peeling to sort correctly (too slow on software GL), and without it
# the spine was drawn in front of the liver seen from anterior.
GROUPS = {
    "liver": (STRUCTURE_COLOURS["liver"], 0.25),
    "vessels": ((40, 120, 230), 1.0),
    "lesions": (LESION_COLOUR, 1.0),
    MR_ONLY_GROUP: (MR_ONLY_COLOUR, 1.0),
    "bone": (STRUCTURE_COLOURS["bone"], 1.0),
}
PATH_COLOUR = (0.15, 0.95, 1.0)
PATH_RADIUS_MM = 1.6
TARGET_COLOUR, ENTRY_COLOUR = (1.0, 0.25, 0.25), (0.3, 1.0, 0.4)
_MAX_CELLS = 40000


def group_of(name: str) -> Optional[str]:
    n = name.lower()
    if n.startswith("lesion"):
        return "lesions"
    if n == "liver":
        return "liver"
    if any(s in n for s in ("vein", "artery", "aorta", "vena", "vessel", "ivc")):
        return "vessels"
    if any(s in n for s in ("bone", "rib", "vertebra", "sacrum", "sternum", "spine", "scapula", "clavicula")):
        return "bone"
    return None


def surface_grid(shape_kji, spacing_ijk, max_dim: int = 200) -> Tuple[np.ndarray, np.ndarray]:
    """(steps, upsampling) per axis (i, j, k) of the about isotropic grid surfaces are built on.

    Surfaces for orientation do not need every voxel: the grid's voxel is the longest extent /
    ``max_dim`` (or the finest spacing). Fine axes are coarsened by an integer step; an axis
    coarser than that (the 5 mm slices of a clinical CT) keeps every slice and is linearly
    interpolated up by the returned factor. One step for all axes took every third 5 mm slice
    of a 512x512x41 CT (15 mm), which broke the spine into pieces and lost the ribs; the
    smoothing that follows (``gaussian_filter``, 0.8 voxel) would also erase a structure one
    5 mm slice thick if it ran on the slices themselves.
    """
    n = np.asarray(shape_kji[::-1], float)
    sp = np.asarray(spacing_ijk, float)
    target = max(float(np.max(n * sp)) / max_dim, float(sp.min()))
    steps = np.maximum(1, np.floor(target / sp + 0.5)).astype(int)
    up = np.maximum(1, np.floor(sp / target + 0.5)).astype(int)
    return steps, np.where(steps > 1, 1, up)


def _upsample(a: np.ndarray, axis: int, factor: int) -> np.ndarray:
    """Linear interpolation along ``axis``: sample ``o`` of the result is input sample ``o / factor``."""
    if factor <= 1 or a.shape[axis] < 2:
        return a
    pos = np.arange((a.shape[axis] - 1) * factor + 1) / factor
    lo = np.minimum(np.floor(pos).astype(int), a.shape[axis] - 2)
    w = (pos - lo).reshape([-1 if d == axis else 1 for d in range(a.ndim)]).astype(np.float32)
    return np.take(a, lo, axis=axis) * (1 - w) + np.take(a, lo + 1, axis=axis) * w


def build_surfaces(labels, progress=None, max_dim: int = 200) -> Dict[str, "object"]:
    """LabelMap -> {group: pyvista.PolyData in LPS mm}. Pure data work, safe off the GUI thread.
    Lesions seen on the MR only are a group of their own (:data:`MR_ONLY_GROUP`, drawn magenta)."""
    import pyvista as pv
    groups: Dict[str, List[int]] = {}
    mr_only = mr_only_lesions(labels)
    for name, value in labels.names.items():
        g = MR_ONLY_GROUP if name in mr_only else group_of(name)
        if g is not None:
            groups.setdefault(g, []).append(int(value))
    out = {}
    step, up = surface_grid(labels.array.shape, labels.spacing, max_dim)     # (i, j, k)
    arr = labels.array[::step[2], ::step[1], ::step[0]]
    for n, (g, values) in enumerate(sorted(groups.items())):
        if progress is not None and progress(n / max(len(groups), 1), f"surface {g}") is False:
            raise CancelledError("building the 3D surfaces was cancelled")
        mask = np.isin(arr, values)
        if not mask.any():
            continue
        m = mask.astype(np.float32)
        for axis_ijk in range(3):
            m = _upsample(m, 2 - axis_ijk, int(up[axis_ijk]))
        # Closed surfaces at the volume edge (pad), and smooth ones: contouring the mask blurred by
        # about a voxel removes the terraces of thick CT slices without moving the 0.5 level.
        padded = gaussian_filter(np.pad(m, 2), sigma=0.8)
        grid = pv.ImageData(dimensions=padded.shape[::-1])       # (i, j, k)
        grid.point_data["m"] = padded.ravel(order="C")          # C order of [k, j, i] = i fastest
        surf = grid.contour([0.5], scalars="m")
        if surf.n_cells == 0:
            continue
        if surf.n_cells > _MAX_CELLS:
            surf = surf.decimate(1.0 - _MAX_CELLS / surf.n_cells)
        ijk = (np.asarray(surf.points) - 2.0) * step / up        # undo padding, back to full-res index
        surf.points = labels.index_to_lps(ijk)
        out[g] = surf
    if progress is not None:
        progress(1.0, "surfaces done")
    return out


BONE_HU = 300.0


def bone_from_ct(ct):
    """A LabelMap of the CT's bone (HU > BONE_HU, value 1), for a 3D view without a label map."""
    from registration.spatial.volume import LabelMap
    return LabelMap((ct.array > BONE_HU).astype(np.uint8), ct.spacing, ct.origin, ct.direction,
                    names={f"bone (CT > {BONE_HU:.0f} HU)": 1})


def plane_corners(image_to_ct: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """(4, 3) LPS corners of a frame [rows, cols] (pixel centres of the corner pixels)."""
    rows, cols = shape
    px = np.array([[0, 0, 0, 1], [cols - 1, 0, 0, 1], [cols - 1, rows - 1, 0, 1], [0, rows - 1, 0, 1]], float)
    return (px @ np.asarray(image_to_ct).T)[:, :3]


def orientation_cube():
    """A cube lettered with patient directions in LPS: +x L, -x R, +y P, -y A, +z S, -z I."""
    from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
    cube = vtkAnnotatedCubeActor()
    for face, text in (("XPlus", "L"), ("XMinus", "R"), ("YPlus", "P"), ("YMinus", "A"),
                       ("ZPlus", "S"), ("ZMinus", "I")):
        getattr(cube, f"Set{face}FaceText")(text)
    cube.SetFaceTextScale(0.65)
    cube.GetCubeProperty().SetColor(0.25, 0.3, 0.4)
    cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
    for axis, rgb in (("X", (1.0, 0.55, 0.55)), ("Y", (0.55, 1.0, 0.55)), ("Z", (0.6, 0.75, 1.0))):
        for side in ("Plus", "Minus"):
            getattr(cube, f"Get{axis}{side}FaceProperty")().SetColor(*rgb)
    return cube


def path_meshes(entry, target) -> Dict[str, "object"]:
    """{'tube', 'target', 'entry'} pyvista meshes of one needle path (LPS mm)."""
    import pyvista as pv
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    tube = pv.Line(entry, target, resolution=1).tube(radius=PATH_RADIUS_MM, n_sides=16, capping=True)
    meshes = {"tube": tube,
              "target": pv.Sphere(radius=2.6, center=target, theta_resolution=16, phi_resolution=16),
              "entry": pv.Sphere(radius=2.2, center=entry, theta_resolution=12, phi_resolution=12)}
    for m in meshes.values():
        m.clear_data()          # plain colour: no scalars for a mapper to colour-map
    return meshes


def path_camera(entry, target, view_angle_deg: float = 30.0) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, focal point, view up) showing a path whole, side-on, from the patient's front.

    The camera looks at a point on the path near the target, from the direction of the
    patient's anterior made perpendicular to the path (so the path is seen at full length),
    head up, far enough to see the path and half its length again around it."""
    entry, target = np.asarray(entry, float), np.asarray(target, float)
    axis = entry - target
    length = float(np.linalg.norm(axis))
    u = axis / length if length > 0 else np.array([0.0, -1.0, 0.0])
    view_from = np.array([0.0, -1.0, 0.0])            # anterior
    d = view_from - (view_from @ u) * u
    if np.linalg.norm(d) < 0.2:                        # path runs antero-posterior: look from the right
        d = np.array([-1.0, 0.0, 0.0]) - (-u[0]) * u
    d /= np.linalg.norm(d)
    focal = target + 0.4 * axis
    extent = max(1.5 * length, 70.0)
    dist = 0.5 * extent / np.tan(np.radians(view_angle_deg) / 2.0)
    up = np.array([0.0, 0.0, 1.0]) - (np.array([0.0, 0.0, 1.0]) @ d) * d
    if np.linalg.norm(up) < 1e-3:
        up = np.array([0.0, -1.0, 0.0])
    return focal + d * dist, focal, up / np.linalg.norm(up)


def drag_camera(cam, role: str, dx: float, dy: float, view_height_px: int) -> None:
    """Move a VTK camera for a mouse drag of (dx, dy) px: 'rotate' about the focal point
    (0.4 deg per px), 'zoom' (1 % per px, drag up = closer), 'pan' (the scene follows the mouse)."""
    if role == "rotate":
        cam.Azimuth(-0.4 * dx)
        cam.Elevation(0.4 * dy)
        cam.OrthogonalizeViewUp()
    elif role == "zoom":
        cam.Zoom(1.0 - 0.01 * dy)
    elif role == "pan":
        pos, focal = np.array(cam.GetPosition()), np.array(cam.GetFocalPoint())
        fwd = focal - pos
        dist = np.linalg.norm(fwd)
        up = np.array(cam.GetViewUp())
        right = np.cross(fwd / dist, up)
        mm_per_px = 2 * dist * np.tan(np.radians(cam.GetViewAngle()) / 2) / max(view_height_px, 1)
        shift = (-dx * right + dy * up) * mm_per_px
        cam.SetPosition(*(pos + shift))
        cam.SetFocalPoint(*(focal + shift))
