"""Clinical judgement: B-mode visibility, fusion error, the recommended guidance.

Owns acoustic windows, lesion type and measured lesion conspicuity
(visibility), probe poses for in-plane US paths (probe_poses), the
evidence-based B-mode visibility model (bmode_visibility), fatty liver from
the CT (fatty_liver), the registration accuracy that fusion would need and
what it reaches in patients (fusion_need), the total targeting error and hit
probability with a registration (fusion_error), the per-lesion recommendation
(recommendation), the case ranking and advice (case_advice), the evidence
quoted by advisories (evidence) and the codes of reasons (reasons). May
import ``planner.paths``, ``planner.anatomy`` and ``registration``.
"""
