"""The spatial engine: images, sweeps, file formats, streaming, reconstruction, registration.

No Qt, VTK or pyvista here; nothing in this package imports planner, gui or
sample_data. Its wings, from the bottom up (each may import only the ones
below it; ``align`` and ``live`` are independent of each other): ``spatial``
(data models and geometry), ``io`` (readers and writers), ``ultrasound``
(reconstruction and replay), then ``align`` (registration) and ``live``
(OpenIGTLink). See docs/architecture.md.
"""
