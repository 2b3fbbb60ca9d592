"""The main window and the ``ctus-gui`` entry point, assembled from views and panels.

Owns the window (main_window and its mixins: layout, menus, status, view
state, workers), file actions and sessions, live-stream wiring and the app
entry point. The top gui layer: may import everything else.
"""
