"""Application state and plumbing the views and panels share, free of widgets.

Owns the session and registration state (session), background workers with
progress and cancel (workers), error reporting and the excepthook (errors) and
file loading off the GUI thread (loaders), the needle guidance session (needle_guidance:
set-up worker, live feed, recorded states) and its words (guidance_text). May import the engine
(``registration``, ``planner``) and PyQt5's core, no view or panel.
"""
