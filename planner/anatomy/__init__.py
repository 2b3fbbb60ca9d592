"""What the label map means for planning: risk structures and lesion targets.

Owns the mapping of structure names to risk classes and the distance maps
(structures), the structures derived from the CT when the labels lack them
(body outline, bone, gas split into lung and bowel) and large vessels
(derived), and the lesions to plan with their targets (lesion_targets). May
import ``registration`` only.
"""
