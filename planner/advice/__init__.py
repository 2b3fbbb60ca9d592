"""Clinical judgement: B-mode visibility, fusion error, the recommended guidance.

Owns acoustic windows and measured lesion conspicuity (visibility), probe
poses for in-plane US paths (probe_poses), the evidence-based B-mode
visibility model (bmode_visibility), the registration accuracy that fusion
would need (fusion_need), the total targeting error and hit probability with a
registration (fusion_error), the per-lesion and per-case recommendation with
its advisories (recommendation) and the codes of its reasons (reasons). May
import ``planner.paths``, ``planner.anatomy`` and ``registration``.
"""
