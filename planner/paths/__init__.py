"""Needle trajectories: candidates, constraints, clearance, CT gantry geometry.

Owns the planning grid (planning_grid), candidate directions, the hard
constraints and the clearance rule of DESIGN section 7 (trajectories) and the
CT-guided path description (ct_guidance). May import ``planner.anatomy`` and
``registration``; independent of ``planner.advice``.
"""
