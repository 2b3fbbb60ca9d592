"""Needle trajectories: candidates, constraints, clearance, CT gantry geometry.

Owns the planning grid (planning_grid), the hard constraints of DESIGN
section 7 and the codes of their violations (constraints), the per-target
lookup maps (planning_maps), candidate directions, the clearance rule and the
soft cost (trajectories), the re-check of a path a person edited (path_check)
and the CT-guided path description (ct_guidance). May import
``planner.anatomy`` and ``registration``; independent of ``planner.advice``.
"""
