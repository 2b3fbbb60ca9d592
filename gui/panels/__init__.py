"""Docked panels: data, overlay, landmark registration, refinement, planning, export, needle guidance
(with the needle drawn over the views).

Each panel is handed the window's models and calls the engine; it holds
widgets and their wiring, not domain rules. May import ``gui.views``,
``gui.core`` and the engine; never the window.
"""
