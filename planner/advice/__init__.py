"""Clinical judgement: B-mode visibility, fusion error, the recommended guidance.

Owns acoustic windows and measured lesion conspicuity (visibility), the
evidence-based B-mode visibility model (bmode_visibility), the registration
accuracy that fusion would need (fusion_need), the total targeting error and
hit probability with a registration (fusion_error) and the per-lesion and
per-case recommendation with its advisories (recommendation).
May import ``planner.anatomy`` and ``registration``; independent of
``planner.paths``.
"""
