"""What the user looks at: slice views, the ultrasound view, the fused CT view, the 3D view, the player.

Owns display volumes, slice display resampling and QImage conversion (display,
slice_resample, qimage), oblique plane sampling and the CT-on-US overlay
(plane_sampler, overlay), which outlines are drawn and how (structure_style),
the probe's plane on the CT (probe_geometry), the needle relative to a shown plane
(needle_geometry) and in 3D (view3d_needle), text on images (view_text), and
the widgets with their painting (slice_view + slice_graphics + slice_mouse, us_view +
us_graphics, fused_view, view3d + view3d_scene, player_widget). May import
``gui.core`` and the engine; never a panel or the window.
"""
