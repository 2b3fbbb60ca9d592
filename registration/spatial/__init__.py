"""Data models and geometry every other wing uses.

Owns the error hierarchy (errors), atomic file writes (atomic_io), 4x4
transforms and ITK ``.tfm`` conversion (transforms), the frame graph (frames),
``Volume``/``LabelMap`` (volume), the tracked ``Sweep`` model and the
ultrasound fan mask it carries (sweep, fan_mask), oblique reslicing (reslice),
label-region measurements such as lesion size (lesions), progress reporting in
named stages (progress), the exact distance transform of masks (distance_map, a C
kernel) and the build and cache of the project's C kernels (native_build). All patient
coordinates are LPS mm. May import only numpy, scipy and SimpleITK: it is the
bottom layer.
"""
