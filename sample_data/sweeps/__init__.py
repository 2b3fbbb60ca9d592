"""Tracked sweeps of the demo patient: probe placement, motion, PLUS files, landmarks.

Owns acoustic windows and probe poses (probe_placement), sweep motion with
tremor, breathing and tracking noise (sweep_motion), writing the sweeps and
their PLUS config (tracked_sweeps) and simulated landmark clicks
(demo_landmarks). May import ``sample_data.simulator``,
``sample_data.phantom`` and ``registration``.
"""
