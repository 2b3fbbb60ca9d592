"""A small graph of named coordinate frames (PLUS's TransformRepository idea).

Add ``a_to_b`` once; ask for any chain; inverses are automatic.

>>> g = FrameGraph()
>>> g.set("Image", "Probe", image_to_probe)          # doctest: +SKIP
>>> g.set("Probe", "Reference", probe_to_reference)  # doctest: +SKIP
>>> g.get("Image", "Reference")                      # doctest: +SKIP
"""
from __future__ import annotations

from collections import deque
from typing import Dict, List, Tuple

import numpy as np

from .errors import InputError
from .transforms import as_matrix, invert


class FrameGraph:
    def __init__(self):
        self._edges: Dict[Tuple[str, str], np.ndarray] = {}

    def set(self, from_frame: str, to_frame: str, from_to_to: np.ndarray) -> None:
        """Store ``from_to_to`` (replacing an existing edge between the two frames)."""
        if from_frame == to_frame:
            raise InputError(f"a transform from {from_frame} to itself is not allowed")
        m = as_matrix(from_to_to, name=f"{from_frame}To{to_frame}Transform")
        self._edges.pop((to_frame, from_frame), None)
        self._edges[(from_frame, to_frame)] = m

    def remove(self, from_frame: str, to_frame: str) -> None:
        self._edges.pop((from_frame, to_frame), None)
        self._edges.pop((to_frame, from_frame), None)

    @property
    def frames(self) -> List[str]:
        return sorted({f for e in self._edges for f in e})

    def _neighbours(self, frame: str):
        for (a, b), m in self._edges.items():
            if a == frame:
                yield b, m
            elif b == frame:
                yield a, None  # inverse computed lazily

    def path(self, from_frame: str, to_frame: str) -> List[str]:
        if from_frame == to_frame:
            return [from_frame]
        known = set(self.frames)
        for f in (from_frame, to_frame):
            if f not in known:
                raise InputError(f"unknown frame '{f}' (known: {', '.join(self.frames) or 'none'})",
                                 fix=f"add a transform that involves {f}")
        prev = {from_frame: None}
        queue = deque([from_frame])
        while queue:
            cur = queue.popleft()
            if cur == to_frame:
                break
            for nxt, _ in self._neighbours(cur):
                if nxt not in prev:
                    prev[nxt] = cur
                    queue.append(nxt)
        if to_frame not in prev:
            raise InputError(f"no chain of transforms links {from_frame} to {to_frame} "
                             f"(known edges: {', '.join(a + 'To' + b for a, b in self._edges)})",
                             fix="supply the missing transform (e.g. a calibration file)")
        out = [to_frame]
        while out[-1] != from_frame:
            out.append(prev[out[-1]])
        return out[::-1]

    def get(self, from_frame: str, to_frame: str) -> np.ndarray:
        """The 4x4 ``from_to_to`` along the shortest chain."""
        chain = self.path(from_frame, to_frame)
        m = np.eye(4)
        for a, b in zip(chain[:-1], chain[1:]):
            if (a, b) in self._edges:
                step = self._edges[(a, b)]
            else:
                step = invert(self._edges[(b, a)])
            m = step @ m
        return m

    def has(self, from_frame: str, to_frame: str) -> bool:
        try:
            self.path(from_frame, to_frame)
            return True
        except InputError:
            return False

    def copy(self) -> "FrameGraph":
        g = FrameGraph()
        g._edges = {k: v.copy() for k, v in self._edges.items()}
        return g
