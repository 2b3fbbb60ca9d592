"""Tracked sweeps of the demo patient: probe placement, motion, PLUS files, landmarks.

Owns acoustic windows and probe poses (probe_placement), sweep motion with
tremor, breathing and tracking noise (sweep_motion), recording one sweep
(sweep_recording), writing the sweeps and their PLUS config (tracked_sweeps),
simulated landmark clicks (demo_landmarks), and the sweeps of a liver deformed
between CT and scan (deformed_sweeps): the organ field (organ_field), probe
compression (compression), their truth and the true registration error
(deformation), and distances to the imaged region (imaged_region). May import
``sample_data.simulator``, ``sample_data.phantom`` and ``registration``.
"""
