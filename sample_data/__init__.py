"""The synthetic demo case: a CT phantom, an ultrasound simulator and tracked sweeps.

Not a real patient. Wings from the bottom up: ``phantom`` and ``simulator``
(independent of each other), ``sweeps`` (probe placement and motion, written
as PLUS sequences), ``case`` (the case folder, its cache and checks). May
import ``registration`` only.
"""
