"""The demo case folder: generation, per-user cache, pictures and realism checks.

Owns writing the case atomically and caching it (demo_case), lesion and
overview pictures (pictures) and the comparison of simulated with real liver
frames (realism). The top sample_data layer: may import every other sample_data
wing and registration.
"""
