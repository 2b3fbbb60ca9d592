"""What the label map means for planning: risk structures and lesion targets.

Owns the mapping of structure names to risk classes, distance maps, derived
structures (body outline from the CT, gas split, large vessels) (structures)
and the lesions to plan with their targets (lesion_targets). May import
``registration`` only.
"""
