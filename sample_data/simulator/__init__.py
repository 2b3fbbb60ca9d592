"""B-mode ultrasound simulated from a CT and its labels.

Owns the convex probe geometry (probe), tissue classes and backscatter
(tissue_classes), speckle (speckle_field), CT sampling along the beams
(ct_sampling), the acoustic model (echo_envelope), log compression and scan
conversion (bmode_frame) and the simulator (us_simulator), with its tuned
settings (simulator_settings). May import ``registration.spatial`` only.
"""
