"""Clinical judgement: B-mode visibility, fusion error, the recommended guidance.

Owns predicted and measured lesion conspicuity (visibility), the total
targeting error and hit probability with a registration (fusion_error) and the
per-lesion and per-case recommendation with its advisories (recommendation).
May import ``planner.anatomy`` and ``registration``; independent of
``planner.paths``.
"""
