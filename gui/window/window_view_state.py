"""View state of the main window: the cursor shared by the slice views, window/level,
overlay mode, label outlines, the shown sweep frame, and the signals that keep
views and panels in step.

A mixin of :class:`gui.window.main_window.MainWindow`. The cursor is a point in CT LPS
(mm); the HU readout samples the display grid at voxel index (x, y, z) of a
(z, y, x) array. Window/level are in HU. Frame indices are 0-based; the US
plane in 3D is ``reference_to_ct @ image_to_reference`` of the shown frame.
"""
from __future__ import annotations

import numpy as np

from gui.views.qimage import WL_PRESETS


class ViewStateMixin:
    """Cursor, W/L, overlay mode, labels, frame; mixed into MainWindow (needs its views)."""

    def _connect(self) -> None:
        for view in self.views.values():
            view.cursor_moved.connect(self.set_cursor)
            view.window_level_changed.connect(self._on_window_level)
        self.player.frame_changed.connect(self.show_frame)
        self.player.playing_changed.connect(self._on_playing_changed)
        self.overlay_panel.mode_changed.connect(self.set_overlay_mode)
        self.overlay_panel.opacity_changed.connect(self.us_view.set_opacity)
        self.overlay_panel.contours_toggled.connect(self._set_us_contours)
        self.overlay_panel.preset_chosen.connect(self.apply_preset)

    # ------------------------------------------------------------ view state
    def set_cursor(self, lps) -> None:
        lps = np.asarray(lps, float)
        for view in self.views.values():
            view.set_cursor(lps)
        self.session.cursor_lps = lps.tolist()
        if self.display is not None:
            xyz = self.display.grid.clamp_index(self.display.grid.lps_to_index(lps))
            hu = self.display.array[xyz[2], xyz[1], xyz[0]]
            structure = ""
            if self.display.labels_array is not None:
                value = int(self.display.labels_array[xyz[2], xyz[1], xyz[0]])
                if value:
                    names = {v: n for n, v in self.display.label_names.items()}
                    structure = "   " + names.get(value, f"label {value}")
            self.cursor_label.setText(f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm   {hu:.0f} HU"
                                      + structure)

    def apply_preset(self, name: str) -> None:
        """W/L preset for the slice views and for the CT overlaid on the US view."""
        w, l = WL_PRESETS[name]
        self._on_window_level(w, l)
        self.us_view.set_ct_window(w, l)

    def _on_window_level(self, window: float, level: float) -> None:
        for view in self.views.values():
            view.set_window_level(window, level)
        self.session.window, self.session.level = float(window), float(level)

    def set_overlay_mode(self, mode: str) -> None:
        self.us_view.set_mode(mode)
        self.mode_actions[mode].setChecked(True)
        if self.overlay_panel.mode_box.currentText() != mode:
            self.overlay_panel.set_mode(mode)
        self._update_status()

    def toggle_labels(self) -> None:
        on = self.act_labels.isChecked()
        for view in self.views.values():
            view.set_show_labels(on)

    def _set_us_contours(self, on: bool) -> None:
        self.us_view.show_contours = on
        self.us_view._build_overlay_images()
        self.us_view.update()

    def show_frame(self, index: int) -> None:
        if self.sweep is None or index >= len(self.sweep):
            return
        i2r = self._i2r[index] if self._valid[index] else None
        self.us_view.set_frame(self.sweep.frames[index], index, len(self.sweep),
                               self.sweep.timestamps[index] - self.sweep.timestamps[0], i2r)
        self.session.frame_index = int(index)
        if self.view3d is not None and i2r is not None and self.registration is not None:
            self.view3d.set_us_plane(self.registration.reference_to_ct @ i2r, self.sweep.image_shape)
        self._update_status()

    def _on_playing_changed(self, playing: bool) -> None:
        # The 3D plane follows slowly while playing (renders are expensive), at once when paused.
        if self.view3d is not None:
            self.view3d.plane_interval_ms = 2000 if playing else 150
            if not playing:
                self.view3d.flush_plane()
