"""3D view (pyvistaqt): anatomy surfaces from the label map, the current US plane, trajectories.

Surfaces are built off the GUI thread (:func:`build_surfaces`: marching
cubes on each structure group, decimated) and added on the GUI thread.
Everything is in CT LPS mm. Rendering under software OpenGL costs
100-270 ms, so US-plane updates are deferred and coalesced (at most one per
``plane_interval_ms``) and other renders are limited to one per
``min_render_interval_ms``.
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import QLabel, QVBoxLayout, QWidget

from gui.core.workers import Worker
from registration.spatial.errors import CancelledError

from .qimage import LESION_COLOUR, STRUCTURE_COLOURS

# group -> (colour RGB, opacity). Only the liver is translucent: several translucent
# surfaces need depth peeling to sort correctly (too slow on software GL), and without it
# the spine was drawn in front of the liver seen from anterior.
GROUPS = {
    "liver": (STRUCTURE_COLOURS["liver"], 0.25),
    "vessels": ((40, 120, 230), 1.0),
    "lesions": (LESION_COLOUR, 1.0),
    "bone": (STRUCTURE_COLOURS["bone"], 1.0),
}
_MAX_CELLS = 40000


def group_of(name: str) -> Optional[str]:
    n = name.lower()
    if n.startswith("lesion"):
        return "lesions"
    if n == "liver":
        return "liver"
    if any(s in n for s in ("vein", "artery", "aorta", "vena", "vessel")):
        return "vessels"
    if any(s in n for s in ("bone", "rib", "vertebra", "sacrum", "sternum", "spine", "scapula", "clavicula")):
        return "bone"
    return None


def build_surfaces(labels, progress=None, max_dim: int = 200) -> Dict[str, "object"]:
    """LabelMap -> {group: pyvista.PolyData in LPS mm}. Pure data work, safe off the GUI thread."""
    import pyvista as pv
    groups: Dict[str, List[int]] = {}
    for name, value in labels.names.items():
        g = group_of(name)
        if g is not None:
            groups.setdefault(g, []).append(int(value))
    out = {}
    # Coarsen big volumes: surfaces for orientation do not need every voxel.
    step = max(1, int(np.ceil(max(labels.array.shape) / max_dim)))
    arr = labels.array[::step, ::step, ::step]
    spacing = labels.spacing * step
    for n, (g, values) in enumerate(sorted(groups.items())):
        if progress is not None and progress(n / max(len(groups), 1), f"surface {g}") is False:
            raise CancelledError("building the 3D surfaces was cancelled")
        mask = np.isin(arr, values)
        if not mask.any():
            continue
        padded = np.pad(mask.astype(np.float32), 1)            # closed surfaces at the volume edge
        grid = pv.ImageData(dimensions=padded.shape[::-1])       # (i, j, k)
        grid.point_data["m"] = padded.ravel(order="C")          # C order of [k, j, i] = i fastest
        surf = grid.contour([0.5], scalars="m")
        if surf.n_cells == 0:
            continue
        if surf.n_cells > _MAX_CELLS:
            surf = surf.decimate(1.0 - _MAX_CELLS / surf.n_cells)
        ijk = (np.asarray(surf.points) - 1.0) * step             # undo padding, back to full-res index
        surf.points = labels.index_to_lps(ijk)
        out[g] = surf
    if progress is not None:
        progress(1.0, "surfaces done")
    return out


def plane_corners(image_to_ct: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """(4, 3) LPS corners of a frame [rows, cols] (pixel centres of the corner pixels)."""
    rows, cols = shape
    px = np.array([[0, 0, 0, 1], [cols - 1, 0, 0, 1], [cols - 1, rows - 1, 0, 1], [0, rows - 1, 0, 1]], float)
    return (px @ np.asarray(image_to_ct).T)[:, :3]


class View3D(QWidget):
    def __init__(self, parent=None, min_render_interval_ms: int = 250, plane_interval_ms: int = 1000):
        super().__init__(parent)
        self.setObjectName("view3d")
        from pyvistaqt import QtInteractor
        # auto_update=False: pyvistaqt otherwise re-renders 5 times a second whether anything
        # changed or not (with software GL ~250 ms each: the GUI thread would be busy all the time).
        self.plotter = QtInteractor(self, auto_update=False)
        self.plotter.set_background("black")
        self.status = QLabel("3D: no label map")
        self.status.setObjectName("view3d_status")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plotter.interactor, 1)
        lay.addWidget(self.status)
        self.surfaces: Dict[str, object] = {}
        self._actors: Dict[str, object] = {}
        self._plane = None
        self._traj_actors = []
        self._worker: Optional[Worker] = None
        self._min_dt = min_render_interval_ms / 1000.0
        self._last_render = 0.0
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.timeout.connect(self._render_now)
        self.plane_interval_ms = int(plane_interval_ms)
        self._pending_plane = None
        self._plane_timer = QTimer(self)
        self._plane_timer.setSingleShot(True)
        self._plane_timer.timeout.connect(self.flush_plane)

    # ------------------------------------------------------------ surfaces
    def set_labels(self, labels) -> None:
        for name in list(self._actors):
            self.plotter.remove_actor(self._actors.pop(name), render=False)
        self.surfaces = {}
        if labels is None or not labels.names:
            self.status.setText("3D: no named structures to show")
            self.request_render()
            return
        if self._worker is not None:
            self._worker.cancel()
        self.status.setText("3D: building surfaces...")
        w = Worker("3D surfaces", build_surfaces, labels)
        w.succeeded.connect(self._add_surfaces)
        w.failed.connect(lambda exc, tb: self.status.setText(f"3D: surfaces failed: {exc}"))
        self._worker = w
        w.start()

    def _add_surfaces(self, surfaces: Dict[str, object]) -> None:
        if self.sender() is not self._worker:   # an older, superseded build
            return
        self.surfaces = surfaces
        for g, surf in surfaces.items():
            colour, opacity = GROUPS[g]
            self._actors[g] = self.plotter.add_mesh(surf, color=[c / 255 for c in colour], opacity=opacity,
                                                    name=g, smooth_shading=True, render=False)
        self.status.setText("3D: " + (", ".join(sorted(surfaces)) if surfaces else "no liver/vessels/lesions/bone labels"))
        self._set_anterior_view()
        self.request_render()

    def _set_anterior_view(self) -> None:
        # Camera in front of the patient (anterior = -y in LPS), head up (+S): screen right is
        # then +L, i.e. patient right on screen left, as in the coronal slice view.
        self.plotter.view_vector((0, -1, 0), viewup=(0, 0, 1))
        self.plotter.reset_camera()

    def wait_for_surfaces(self, timeout_ms: int = 60000) -> None:
        if self._worker is not None:
            self._worker.wait(timeout_ms)

    # ------------------------------------------------------------ plane + trajectories
    def set_us_plane(self, image_to_ct: np.ndarray, shape: Tuple[int, int]) -> None:
        """Show the frame plane (Image pixels -> CT LPS). Deferred and coalesced: during
        playback at most one 3D update per ``plane_interval_ms`` (a software-GL render costs
        100-270 ms, which would otherwise stall the US view on every frame)."""
        self._pending_plane = (np.array(image_to_ct, float), tuple(shape))
        if not self._plane_timer.isActive():
            self._plane_timer.start(self.plane_interval_ms)

    def flush_plane(self) -> None:
        """Apply a pending plane now (and render if visible)."""
        self._plane_timer.stop()
        if self._pending_plane is None:
            return
        image_to_ct, shape = self._pending_plane
        self._pending_plane = None
        self._apply_plane(image_to_ct, shape)
        if self.isVisible():
            self._render_now()

    def _apply_plane(self, image_to_ct: np.ndarray, shape: Tuple[int, int]) -> None:
        import pyvista as pv
        corners = plane_corners(image_to_ct, shape)
        if self._plane is None:
            self._plane = pv.PolyData(corners, faces=np.array([4, 0, 1, 2, 3]))
            self.plotter.add_mesh(self._plane, color=(0.3, 1.0, 0.3), opacity=0.45, name="us_plane", render=False)
        else:
            self._plane.points = corners

    def set_trajectories(self, paths: Sequence[Tuple[Sequence[float], Sequence[float]]]) -> None:
        """Needle paths as (entry_lps, target_lps) pairs, drawn as tubes (lines)."""
        import pyvista as pv
        for a in self._traj_actors:
            self.plotter.remove_actor(a, render=False)
        self._traj_actors = []
        for n, (entry, target) in enumerate(paths):
            line = pv.Line(np.asarray(entry, float), np.asarray(target, float))
            self._traj_actors.append(self.plotter.add_mesh(line, color=(0.2, 0.9, 1.0), line_width=4,
                                                           name=f"traj_{n}", render=False))
        self.request_render()

    # ------------------------------------------------------------ rendering
    def request_render(self) -> None:
        if not self.isVisible():
            return
        dt = time.perf_counter() - self._last_render
        if dt >= self._min_dt:
            self._render_now()
        elif not self._render_timer.isActive():
            self._render_timer.start(int((self._min_dt - dt) * 1000) + 1)

    def _render_now(self) -> None:
        self._last_render = time.perf_counter()
        self.plotter.render()

    def close_renderer(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(5000)
        self._render_timer.stop()
        self._plane_timer.stop()
        self.plotter.close()
