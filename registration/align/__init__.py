"""CT-to-tracked-ultrasound registration and its uncertainty.

Owns paired-landmark registration with FRE/TRE prediction (landmarks), the
LC2 similarity and its frame-based cost (lc2, lc2_cost), the multi-start
bounded optimiser (multistart), the staged LC2 pipeline and the Mattes-MI
baseline (intensity_registration, mi_registration), breathing detection
(motion), typed results (registration_result) and the error model, verdicts
and hit probability (uncertainty). May import ``registration.ultrasound``,
``registration.io`` and ``registration.spatial``; independent of
``registration.live``.
"""
