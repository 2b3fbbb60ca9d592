"""Clinical judgement: B-mode visibility, fusion error, the recommended guidance.

Owns predicted and measured lesion conspicuity and acoustic windows
(visibility), probe poses for in-plane US paths (probe_poses), the total
targeting error and hit probability with a registration (fusion_error), the
per-lesion and per-case recommendation with its advisories (recommendation)
and the codes of its reasons (reasons). May import ``planner.paths``,
``planner.anatomy`` and ``registration``.
"""
