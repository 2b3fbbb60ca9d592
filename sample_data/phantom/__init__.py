"""The two-phase CT phantom of a pancreatic-cancer patient with liver metastases.

Owns the voxel painting toolkit (anatomy), body wall, spine and ribs (body),
organs (organs), vessel trees (vessels), metastases with their placement checks
(lesions) and the assembly into CT volumes, labels and truth (build). May
import ``registration.spatial`` only.
"""
