"""The tracked needle in the 3D view: shaft, tip and projected path, coloured by the warning.

A helper of :class:`gui.views.view3d.View3D` (CT LPS mm). An off-screen 3D
render costs 100-270 ms on software OpenGL, so needle updates are coalesced
like the US plane's: at most one per ``interval_ms`` while the needle moves,
and a change of validity or warning level within ``urgent_ms``. A hidden
needle (missing, INVALID, stale) is removed from the scene.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PyQt5.QtCore import QObject, QTimer

NEEDLE_RGB = (1.0, 0.24, 0.78)      # as on the 2D views (gui.panels.needle_overlay)
AHEAD_RGB = {"breach": (1.0, 0.15, 0.15), "caution": (1.0, 0.65, 0.0), None: (1.0, 0.6, 0.88)}
SHAFT_MM = 150.0
NAMES = ("needle_shaft", "needle_tip", "needle_ahead")


def needle_meshes(tip, direction, projected_end, shaft_mm: float = SHAFT_MM) -> dict:
    """{'needle_shaft', 'needle_tip', 'needle_ahead'} pyvista meshes (the last only when the
    projected path is longer than 1 mm)."""
    import pyvista as pv
    tip, d = np.asarray(tip, float), np.asarray(direction, float)
    out = {"needle_shaft": pv.Line(tip - shaft_mm * d, tip, resolution=1).tube(radius=0.9, n_sides=12, capping=True),
           "needle_tip": pv.Sphere(radius=1.8, center=tip, theta_resolution=12, phi_resolution=12)}
    end = np.asarray(projected_end, float)
    if np.linalg.norm(end - tip) > 1.0:
        out["needle_ahead"] = pv.Line(tip, end, resolution=1).tube(radius=0.45, n_sides=10, capping=True)
    for m in out.values():
        m.clear_data()
    return out


class Needle3D(QObject):
    """Keeps the needle actors of one View3D up to date with the shown guidance state."""

    def __init__(self, view3d, interval_ms: int = 1000, urgent_ms: int = 100):
        super().__init__(view3d)
        self.view3d = view3d
        self.interval_ms, self.urgent_ms = int(interval_ms), int(urgent_ms)
        self.shown: Optional[tuple] = None       # (valid, level) of what the scene shows
        self.actors = {}
        self._pending = None
        self._has_pending = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    def set_state(self, state, level: Optional[str]) -> None:
        self._pending, self._has_pending = (state, level), True
        key = (state is not None and state.valid, level)
        # while the window slows the US plane's 3D updates (playing, live) the needle follows suit
        wait = self.urgent_ms if key != self.shown else max(self.interval_ms, self.view3d.plane_interval_ms)
        if not self._timer.isActive() or self._timer.remainingTime() > wait:
            self._timer.start(wait)

    def flush(self) -> None:
        """Apply the pending state now."""
        self._timer.stop()
        if not self._has_pending:
            return
        (state, level), self._has_pending = self._pending, False
        plotter = self.view3d.plotter
        valid = state is not None and state.valid
        meshes = needle_meshes(state.tip_ct, state.direction_ct, state.projected_end_ct) if valid else {}
        for name in NAMES:
            if name not in meshes and name in self.actors:
                plotter.remove_actor(self.actors.pop(name), render=False)
        for name, mesh in meshes.items():
            colour = AHEAD_RGB[level] if name == "needle_ahead" else NEEDLE_RGB
            self.actors[name] = plotter.add_mesh(mesh, color=colour, name=name, smooth_shading=True, render=False)
        self.shown = (valid, level)
        self.view3d.request_render()
