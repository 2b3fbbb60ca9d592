"""Tracked tools: where a needle's (or stylus's) tip and shaft are, from its marker pose.

Owns tool calibration (pivot calibration of the tip offset in the marker
frame, reading ``<Tool>TipTo<Tool>`` from a PLUS device-set config), the
``NeedleCalibration`` that turns a ``NeedleToReference`` pose into a tip point
and a shaft direction, and the per-frame ``<Tool>ToReference`` poses of a
recorded sequence (direct, or composed from ``<Tool>ToTracker`` and
``ReferenceToTracker``).

Why a wing of its own: tool calibration is tracking geometry, not CT-to-patient
registration (``registration.align``) nor ultrasound (``registration.ultrasound``);
the live link (``registration.live``) and the planner's needle guidance both
use it. May import ``registration.io`` and ``registration.spatial`` (and
numpy); sibling of ``registration.ultrasound``, below ``align`` and ``live``.
"""
