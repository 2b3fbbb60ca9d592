"""Clinical planning on top of the spatial engine: anatomy, visibility, paths, advice, export, CLI.

No Qt or VTK. Its wings, from the bottom up: ``anatomy`` (risk structures and
lesion targets from a label map), ``paths`` and ``advice`` (independent of each
other), ``case`` (plans a whole case), ``export`` (plan files and the PDF
report), ``cli`` (the ``ctus`` command line, the only wing that may import
sample_data). See docs/architecture.md.
"""
