"""Planning a whole case: every lesion's paths, visibility and recommendation.

Owns the per-lesion pipeline (lesion_plan), the choice of a lesion's US, CT
and least-risk paths (lesion_paths) and the case plan with ranking and
progress (case_plan). May import ``planner.paths``, ``planner.advice``,
``planner.anatomy`` and ``registration``.
"""
