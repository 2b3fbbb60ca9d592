"""View state of the main window: the cursor shared by the slice views, window/level,
overlay mode and outlines, interpolation, the shown sweep frame, the probe on the CT
views and the slice views following it, and the hold-to-compare key.

A mixin of :class:`gui.window.main_window.MainWindow`. The cursor is a point in CT LPS
(mm); the HU readout samples the display grid at voxel index (x, y, z) of a
(z, y, x) array. Window/level are in HU and shared by every CT display (slice
views, the fused CT view, the CT on the US). Frame indices are 0-based; the US
plane in CT is ``reference_to_ct @ image_to_reference`` of the shown frame.

Following the probe (fusion workstations' "CT follows the probe"): with a
registration, valid tracking and "CT follows probe" ticked, every shown frame
moves the crosshair (so all three slices) to the US plane's point under the
mouse on the US or fused view, else the last clicked point of the frame, else
the sector centre. It pauses while landmarks are being picked (the user is
navigating the CT by hand then).
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np
from PyQt5.QtCore import QEvent, QObject, Qt, QTimer
from PyQt5.QtWidgets import QAbstractSpinBox, QApplication, QLineEdit, QPlainTextEdit, QTextEdit, QWidget

from gui.views.probe_geometry import FOLLOW_INTERVAL_MS, FanShape, ProbeGeometry
from gui.views.qimage import WL_PRESETS
from gui.views.structure_style import US_ALPHA
from gui.views.us_graphics import COMPARE_KEY

_ORGAN_ALPHA_ON = 150    # "other organs" ticked on the US: drawn, but fainter than targets and vessels


class _CompareKey(QObject):
    """Application event filter: while the compare key is held in this window, plain US."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.key = getattr(Qt, f"Key_{COMPARE_KEY}")

    def eventFilter(self, obj, ev):  # noqa: N802
        t = ev.type()
        if t in (QEvent.KeyPress, QEvent.KeyRelease) and ev.key() == self.key and not ev.isAutoRepeat() \
                and isinstance(obj, QWidget) and QWidget.window(obj) is self.window \
                and not isinstance(QApplication.focusWidget(), (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)):
            self.window.us_view.set_compare(t == QEvent.KeyPress)
            return True
        if t == QEvent.WindowDeactivate and obj is self.window:
            self.window.us_view.set_compare(False)      # a release we will never see
        return False


class ViewStateMixin:
    """Cursor, W/L, overlay, labels, frame, probe following; mixed into MainWindow (needs its views)."""

    def _connect(self) -> None:
        for view in self.views.values():
            view.cursor_moved.connect(self.set_cursor)
            view.window_level_changed.connect(self._on_window_level)
        self.player.frame_changed.connect(self.show_frame)
        self.player.playing_changed.connect(self._on_playing_changed)
        op = self.overlay_panel
        op.mode_changed.connect(self.set_overlay_mode)
        op.opacity_changed.connect(self.us_view.set_opacity)
        op.contours_toggled.connect(self._set_us_contours)
        op.outline_kinds_changed.connect(self.set_outline_kinds)
        op.preset_chosen.connect(self.apply_preset)
        op.window_level_edited.connect(self._on_window_level)
        op.interpolation_changed.connect(self.set_interpolation)
        self.us_view.frame_updated.connect(self._on_us_frame)
        for v in (self.us_view, self.fused_view):
            v.pixel_clicked.connect(self._on_us_click)
            v.hover_pixel.connect(self._on_us_hover)
        self.follow_probe = True
        self.probe: Optional[ProbeGeometry] = None
        self._follow_px = None          # (frame index, (col, row)) of the last click on the US
        self._hover_px = None
        self._fan_shape: Optional[FanShape] = None
        self._last_follow = 0.0
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.timeout.connect(self._probe_to_views)
        self._compare_filter = _CompareKey(self)
        QApplication.instance().installEventFilter(self._compare_filter)

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
        """W/L preset for every CT display (slice views, fused CT, CT overlaid on the US)."""
        self._on_window_level(*WL_PRESETS[name])

    def _on_window_level(self, window: float, level: float) -> None:
        for view in self.views.values():
            view.set_window_level(window, level)
        self.fused_view.set_window_level(window, level)
        self.us_view.set_ct_window(window, level)
        self.overlay_panel.set_window_level(window, level)
        self.session.window, self.session.level = float(window), float(level)

    def set_overlay_mode(self, mode: str) -> None:
        self.us_view.set_mode(mode)
        self.mode_actions[mode].setChecked(True)
        if self.overlay_panel.mode_box.currentText() != mode:
            self.overlay_panel.set_mode(mode)
        self._update_status()

    def set_outline_kinds(self, kinds: dict) -> None:
        """Which outlines the US and fused CT views draw: {'target', 'vessel', 'organ': bool}."""
        alpha = {k: (_ORGAN_ALPHA_ON if k == "organ" else US_ALPHA[k]) if on else 0 for k, on in kinds.items()}
        self.us_view.set_outline_alpha(alpha)
        self.fused_view.refresh()

    def set_interpolation(self, interpolation: str) -> None:
        """'linear' or 'nearest' for the slice views and the CT resliced in the US plane."""
        for view in self.views.values():
            view.set_interpolation(interpolation)
        self.us_view.engine.set_interpolation(interpolation)
        self._sync_overlay_interpolation()
        self.us_view._recompute()

    def toggle_labels(self) -> None:
        on = self.act_labels.isChecked()
        for view in self.views.values():
            view.set_show_labels(on)

    def _set_us_contours(self, on: bool) -> None:
        self.us_view.set_contours(on)
        self.fused_view.refresh()

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

    # ------------------------------------------------------------ probe on the CT views
    def _picking(self) -> bool:
        """True while the registration panel is in landmark-picking mode."""
        dock = getattr(self, "panel_docks", {}).get("registration")
        button = getattr(dock.widget(), "pick_button", None) if dock is not None else None
        return bool(button is not None and button.isChecked())

    def set_follow_probe(self, on: bool) -> None:
        """Link (True) or unlink the slice views from the probe; linking starts from the sector centre."""
        self.follow_probe = bool(on)
        if self.follow_box.isChecked() != self.follow_probe:
            self.follow_box.setChecked(self.follow_probe)
        self._follow_px = None
        self._follow()

    def following(self) -> bool:
        """The slice views follow the probe: ticked, a probe on the CT, no landmark picking, and
        not following a tracked needle tip instead (the guidance panel sets ``needle_follow``)."""
        return self.follow_probe and self.probe is not None and not self._picking() \
            and not getattr(self, "needle_follow", False)

    def _frame_fan(self, shape) -> FanShape:
        mask = self.us_view.fan_mask
        usable = mask if mask is not None and mask.shape == tuple(shape) else None
        fs = self._fan_shape
        if fs is None or fs.shape != tuple(shape) or fs.mask is not usable:
            self._fan_shape = fs = FanShape.from_mask(shape, usable)
        return fs

    def _on_us_frame(self) -> None:
        """A new frame: the probe geometry on the slice views, then follow it. The slice views
        are updated at once, then at most every ``FOLLOW_INTERVAL_MS`` while frames keep coming
        (playing, scrubbing): the US view and the fused CT keep the full frame rate, three slice
        repaints per frame would halve it. The last frame always reaches the slice views."""
        us = self.us_view
        i2r, shape = us.image_to_reference, us.frame_shape
        if self.registration is None or i2r is None or shape is None:
            self.probe = None
        else:
            self.probe = ProbeGeometry(self.registration.reference_to_ct @ i2r, self._frame_fan(shape))
        wait = FOLLOW_INTERVAL_MS - (time.perf_counter() - self._last_follow) * 1000
        if wait <= 0:
            self._probe_to_views()
        elif not self._follow_timer.isActive():
            self._follow_timer.start(int(wait) + 1)

    def _probe_to_views(self) -> None:
        self._follow_timer.stop()
        self._last_follow = time.perf_counter()
        for view in self.views.values():
            view.set_probe(self.probe)
        self._follow()

    def follow_pixel(self):
        """(col, row) the slice views follow: under the mouse, else the last click on this
        frame's sweep, else the sector centre."""
        if self._hover_px is not None:
            return self._hover_px
        if self._follow_px is not None:
            return self._follow_px
        return None if self.probe is None else self.probe.fan.centre

    def _follow(self) -> None:
        marks = []
        if self.following():
            px = self.follow_pixel()
            lps = self.probe.point_ct(*px)
            self.set_cursor(lps)
            for view in self.views.values():
                view.ensure_visible(lps)
            marks = [(px, "")]
        self.us_view.set_marks(marks)
        self.fused_view.set_marks(marks)

    def _on_us_click(self, col: float, row: float) -> None:
        if self._picking() or self.probe is None:
            return
        self._follow_px = (float(col), float(row))
        self._follow()

    def _on_us_hover(self, px) -> None:
        self._hover_px = None if px is None else (float(px[0]), float(px[1]))
        if self.following():
            self._follow()
