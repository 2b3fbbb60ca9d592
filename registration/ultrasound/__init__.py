"""Tracked-ultrasound processing that is neither file format nor registration.

Owns freehand volume reconstruction as PLUS does it (output grid, clip and fan
masks, pixel insertion and compounding, hole filling, a plain-loop reference) and the replay clock
that plays a recorded sweep like a live one (player). May import
``registration.io`` and ``registration.spatial``.
"""
