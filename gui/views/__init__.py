"""What the user looks at: slice views, the ultrasound view, the 3D view, the player.

Owns display volumes and image conversion (display, qimage), oblique plane
sampling and the CT-on-US overlay (plane_sampler, overlay), and the widgets
(slice_view, us_view, view3d, player_widget). May import ``gui.core`` and the
engine; never a panel or the window.
"""
