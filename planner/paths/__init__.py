"""Needle trajectories: candidates, constraints, clearance, CT gantry geometry.

Owns the planning grid (planning_grid), the hard and soft constraints and the
codes of their violations (constraints), the per-target lookup maps
(planning_maps), candidate directions and the soft cost (trajectories), the
clearance rule of DESIGN section 7 at full label resolution (clearance), the
plan records of checked paths with their cautions or violations
(path_records), the least-risk path when nothing is safe (least_risk), the
re-check of a path a person edited (path_check) and the CT-guided path
description, double oblique included (ct_guidance). May import
``planner.anatomy`` and ``registration``; independent of ``planner.advice``.
"""
