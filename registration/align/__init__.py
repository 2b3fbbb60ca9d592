"""CT-to-tracked-ultrasound registration and its uncertainty.

Owns paired-landmark registration with FRE/TRE prediction (landmarks), the
LC2 similarity and its frame-based cost (lc2, lc2_cost), the multi-start
bounded optimiser (multistart), the staged LC2 pipeline (intensity_registration:
the public entry; lc2_stages: options and stages; lc2_pipeline: one pass) and the
Mattes-MI baseline (mi_registration), breathing detection (motion), typed results
(registration_result, assessment), the error model, verdicts and hit probability
(pose_uncertainty, uncertainty), the lesion targets of a label map (targets) and
the RESULT.json document, written and read back (result_document). May import
``registration.ultrasound``, ``registration.io`` and ``registration.spatial``;
independent of ``registration.live``.
"""
