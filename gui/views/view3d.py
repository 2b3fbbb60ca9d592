"""3D view: anatomy surfaces, the current US plane and the planned needle path, docked in the window.

VTK renders off-screen (a pyvista ``Plotter(off_screen=True)``) and the
widget draws the rendered picture as a QImage. There is no OpenGL widget in
the main window: a QOpenGLWidget there makes Qt composite the WHOLE window
through (software) OpenGL on every update, which dropped the US view from
~50 to ~2 frames/s; an off-screen render costs the same 100-270 ms but only
when the 3D scene changes. Mouse: left-drag rotates, right-drag or wheel
zooms, middle-drag pans, double-click goes back to the planned-path view.

US-plane updates are deferred and coalesced (at most one per
``plane_interval_ms``), other renders limited to one per
``min_render_interval_ms``. Scene pieces: :mod:`gui.views.view3d_scene`.
Everything is in CT LPS mm.
"""
from __future__ import annotations

import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from PyQt5.QtCore import QRectF, Qt, QTimer
from PyQt5.QtGui import QColor, QPainter
from PyQt5.QtWidgets import QLabel, QSizePolicy, QWidget

from gui.core.workers import Worker

from .qimage import rgb_to_qimage
from .view3d_scene import (ENTRY_COLOUR, GROUPS, MR_ONLY_GROUP, PATH_COLOUR, TARGET_COLOUR,  # noqa: F401
                           bone_from_ct, build_surfaces, drag_camera, group_of, orientation_cube, path_camera,
                           path_meshes, plane_corners)

_INTERACTIVE_MS = 60      # render interval while the user drags the camera
FRONT_VIEW = (-0.25, -1.0, 0.4)   # camera direction (LPS) of the default view: anterior, a little right and above


def button_role(button) -> str:
    """'rotate' (left), 'zoom' (right), 'pan' (middle), '' otherwise."""
    return {Qt.LeftButton: "rotate", Qt.RightButton: "zoom", Qt.MiddleButton: "pan"}.get(button, "")


class View3D(QWidget):
    def __init__(self, parent=None, min_render_interval_ms: int = 250, plane_interval_ms: int = 1000):
        super().__init__(parent)
        import pyvista as pv
        self.setObjectName("view3d")
        self.setMinimumSize(160, 140)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setFocusPolicy(Qt.ClickFocus)
        self.plotter = pv.Plotter(off_screen=True, window_size=(400, 300))
        self.plotter.set_background("black")
        # VTK's frustum-coverage culler dropped the thin path actors from some camera positions;
        # a scene of a dozen actors needs no culling.
        self.plotter.renderer.GetCullers().RemoveAllItems()
        self.marker = self.plotter.add_orientation_widget(orientation_cube(), interactive=False,
                                                          viewport=(0.0, 0.0, 0.2, 0.26))
        self._ghost = self._make_ghost_layer()
        self.plotter.view_vector(FRONT_VIEW, viewup=(0, 0, 1))    # from the front, head up, until data
        self.status = QLabel("3D: no label map", self)
        self.status.setObjectName("view3d_status")
        self.status.setStyleSheet("QLabel { background: rgba(0,0,0,165); color: #e6e6e6; padding: 1px 4px; }")
        self.status.move(2, 2)
        self.surfaces: Dict[str, object] = {}
        self._actors: Dict[str, object] = {}
        self._plane = None
        self._traj_actors = []
        self._ghost_actors = []
        self._path_view = None            # (position, focal, up) of the planned path view
        self._image = None
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
        self._drag = None

    def _make_ghost_layer(self):
        """A second renderer on top (layer 1) sharing the camera, with its own depth buffer:
        what is added there is drawn over the anatomy."""
        from vtkmodules.vtkRenderingCore import vtkRenderer
        win = self.plotter.ren_win
        layer = win.GetNumberOfLayers()          # above the orientation marker's layer
        win.SetNumberOfLayers(layer + 1)
        ghost = vtkRenderer()
        ghost.SetLayer(layer)
        ghost.InteractiveOff()
        ghost.SetActiveCamera(self.plotter.renderer.GetActiveCamera())
        ghost.GetCullers().RemoveAllItems()
        win.AddRenderer(ghost)
        return ghost

    # ------------------------------------------------------------ surfaces
    def set_labels(self, labels, ct=None) -> None:
        """Surfaces of ``labels``; without a label map, the bone of ``ct`` (HU > BONE_HU) so the
        scene still shows where the probe and the path are in the body."""
        for name in list(self._actors):
            self.plotter.remove_actor(self._actors.pop(name), render=False)
        self.surfaces = {}
        self._from_ct = False
        if (labels is None or not labels.names) and ct is not None:
            labels = bone_from_ct(ct)
            self._from_ct = True
        if labels is None or not labels.names:
            self._set_status("3D: no named structures to show")
            self.request_render()
            return
        if self._worker is not None:
            self._worker.cancel()
        self._set_status("3D: building surfaces...")
        w = Worker("3D surfaces", build_surfaces, labels)
        w.succeeded.connect(self._add_surfaces)
        w.failed.connect(lambda exc, tb: self._set_status(f"3D: surfaces failed: {exc}"))
        self._worker = w
        w.start()

    def _set_status(self, text: str) -> None:
        """The status line on its dark box, wrapped at word boundaries when the view is narrow
        (never cut off: the docked view is about 230 px wide at 1366x768)."""
        lab = self.status
        lab.setText(text)
        room = max(60, self.width() - 4)
        lab.setWordWrap(False)
        one_line = lab.sizeHint().width()                 # text + the style sheet's padding
        lab.setWordWrap(one_line > room)
        lab.setFixedWidth(min(one_line, room))
        lab.setFixedHeight(lab.heightForWidth(lab.width()) if lab.wordWrap() else lab.sizeHint().height())

    def _add_surfaces(self, surfaces: Dict[str, object]) -> None:
        if self.sender() is not self._worker:   # an older, superseded build
            return
        self.surfaces = surfaces
        for g, surf in surfaces.items():
            colour, opacity = GROUPS[g]
            self._actors[g] = self.plotter.add_mesh(surf, color=[c / 255 for c in colour], opacity=opacity,
                                                    name=g, smooth_shading=True, render=False)
        if getattr(self, "_from_ct", False):
            text = "3D: bone from the CT (no label map)" if surfaces else "3D: no bone found in the CT"
        else:
            names = [f"{g} (magenta)" if g == MR_ONLY_GROUP else g for g in sorted(surfaces)]
            text = "3D: " + (", ".join(names) if surfaces else "no liver/vessels/lesions/bone labels")
        self._set_status(text)
        if self._path_view is None:
            self._set_anterior_view()
        else:
            self._apply_camera(self._path_view)
        self.request_render()

    def _set_anterior_view(self) -> None:
        # Camera in front of the patient (anterior = -y in LPS), a little from the right and from
        # above so axial planes (a transverse probe) are not seen edge-on; head up (+S): screen
        # right is then about +L, patient right on screen left, as in the coronal slice view.
        self.plotter.view_vector(FRONT_VIEW, viewup=(0, 0, 1))
        # Fit the liver (and lesions), not the whole rib cage: that is where the work is.
        parts = [self.surfaces[g] for g in ("liver", "lesions", MR_ONLY_GROUP) if g in self.surfaces]
        if parts:
            b = np.array([s.bounds for s in parts])
            self.plotter.reset_camera(bounds=(b[:, 0].min(), b[:, 1].max(), b[:, 2].min(), b[:, 3].max(),
                                              b[:, 4].min(), b[:, 5].max()))
        else:
            self.plotter.reset_camera()

    def wait_for_surfaces(self, timeout_ms: int = 60000) -> None:
        if self._worker is not None:
            self._worker.wait(timeout_ms)

    # ------------------------------------------------------------ plane + trajectories
    def set_us_plane(self, image_to_ct: np.ndarray, shape: Tuple[int, int]) -> None:
        """Show the frame plane (Image pixels -> CT LPS). Deferred and coalesced: during
        playback at most one 3D update per ``plane_interval_ms``."""
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
        import pyvista as pv
        corners = plane_corners(image_to_ct, shape)
        if self._plane is None:
            self._plane = pv.PolyData(corners, faces=np.array([4, 0, 1, 2, 3]))
            self.plotter.add_mesh(self._plane, color=(0.3, 1.0, 0.3), opacity=0.45, name="us_plane", render=False)
        else:
            self._plane.points = corners
        if self.isVisible():
            self._render_now()

    def set_trajectories(self, paths: Sequence[Tuple[Sequence[float], Sequence[float]]]) -> None:
        """Needle paths as (entry_lps, target_lps) pairs: thick tubes with target (red) and entry
        (green) balls, a ghost copy drawn over the anatomy, and the camera fitted to the first."""
        from vtkmodules.vtkRenderingCore import vtkActor, vtkPolyDataMapper
        for a in self._traj_actors:
            self.plotter.remove_actor(a, render=False)
        for a in self._ghost_actors:
            self._ghost.RemoveActor(a)
        self._traj_actors, self._ghost_actors = [], []
        for n, (entry, target) in enumerate(paths):
            for part, mesh in path_meshes(entry, target).items():
                colour = {"tube": PATH_COLOUR, "target": TARGET_COLOUR, "entry": ENTRY_COLOUR}[part]
                self._traj_actors.append(self.plotter.add_mesh(mesh, color=colour, name=f"traj_{n}_{part}",
                                                               smooth_shading=True, render=False))
                mapper = vtkPolyDataMapper()
                mapper.SetInputData(mesh)
                mapper.ScalarVisibilityOff()
                ghost = vtkActor()
                ghost.SetMapper(mapper)
                ghost.GetProperty().SetColor(*colour)
                ghost.GetProperty().SetOpacity(0.45)
                self._ghost.AddActor(ghost)
                self._ghost_actors.append(ghost)
        self._path_view = path_camera(*paths[0]) if len(paths) else None
        if self._path_view is not None:
            self._apply_camera(self._path_view)
        self.request_render()

    def _apply_camera(self, view) -> None:
        position, focal, up = view
        cam = self.plotter.camera
        cam.position, cam.focal_point, cam.up = tuple(position), tuple(focal), tuple(up)
        self.plotter.renderer.ResetCameraClippingRange()

    # ------------------------------------------------------------ rendering
    def request_render(self, interval_s: Optional[float] = None) -> None:
        if not self.isVisible():
            return
        min_dt = self._min_dt if interval_s is None else interval_s
        dt = time.perf_counter() - self._last_render
        if dt >= min_dt:
            self._render_now()
        elif not self._render_timer.isActive():
            self._render_timer.start(int((min_dt - dt) * 1000) + 1)

    def _render_now(self) -> None:
        self._last_render = time.perf_counter()
        w, h = max(self.width(), 16), max(self.height(), 16)
        if tuple(self.plotter.window_size) != (w, h):
            self.plotter.window_size = (w, h)
        self.plotter.renderer.ResetCameraClippingRange()
        self.rendered = self._grab_render()
        self._image = rgb_to_qimage(self.rendered)
        self.update()

    def _grab_render(self) -> np.ndarray:
        """Render the off-screen window and read it back: uint8 [h, w, 3], row 0 at the top."""
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter
        win = self.plotter.ren_win
        win.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(win)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.ShouldRerenderOff()
        grab.Update()
        img = grab.GetOutput()
        w, h, _ = img.GetDimensions()
        arr = vtk_to_numpy(img.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
        return np.ascontiguousarray(arr)

    def paintEvent(self, event):  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), Qt.black)
        if self._image is not None:
            p.setRenderHint(QPainter.SmoothPixmapTransform, True)
            p.drawImage(QRectF(self.rect()), self._image)
        else:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "3D")
        p.end()

    def resizeEvent(self, event):  # noqa: N802
        self._set_status(self.status.text())
        self.request_render()

    def showEvent(self, event):  # noqa: N802
        self.request_render()

    # ------------------------------------------------------------ mouse: rotate, zoom, pan
    def mousePressEvent(self, event):  # noqa: N802
        self._drag = (event.button(), event.pos())

    def mouseMoveEvent(self, event):  # noqa: N802
        if self._drag is None:
            return
        button, last = self._drag
        d = event.pos() - last
        self._drag = (button, event.pos())
        drag_camera(self.plotter.camera, button_role(button), d.x(), d.y(), self.height())
        self.request_render(_INTERACTIVE_MS / 1000.0)

    def mouseReleaseEvent(self, event):  # noqa: N802
        self._drag = None
        self.request_render(0.0)

    def wheelEvent(self, event):  # noqa: N802
        self.plotter.camera.Zoom(1.1 ** (event.angleDelta().y() / 120.0))
        self.request_render(_INTERACTIVE_MS / 1000.0)

    def mouseDoubleClickEvent(self, event):  # noqa: N802
        if self._path_view is not None:
            self._apply_camera(self._path_view)
        else:
            self._set_anterior_view()
        self.request_render(0.0)

    def close_renderer(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker.wait(5000)
        self._render_timer.stop()
        self._plane_timer.stop()
        self.plotter.close()
