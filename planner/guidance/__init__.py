"""Tracked-needle guidance: the numbers a view shows for each tracked frame.

Owns the planned path read back from ``plan.json``, per-structure distance
maps around it (the clearance rule of DESIGN section 7), the per-frame
``GuidanceState`` (tip in CT, projected path, distance and miss to the target,
angle to the plan, clearances, breach, offset from the ultrasound plane,
staleness) and the simulated needle insertion that lets the whole chain run
without hardware. No Qt: a view asks ``NeedleGuide`` for the state.

May import ``planner.case``, ``planner.advice``, ``planner.paths``,
``planner.anatomy`` and ``registration``; sibling of ``planner.export``
(neither imports the other); only ``planner.cli`` imports it.
"""
