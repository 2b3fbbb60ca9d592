"""A small graph of named coordinate frames (PLUS's TransformRepository idea).

Add ``a_to_b`` once; ask for any chain; inverses are automatic.

>>> g = FrameGraph()
>>> g.set("Image", "Probe", image_to_probe)          # doctest: +SKIP
>>> g.set("Probe", "Reference", probe_to_reference)  # doctest: +SKIP
>>> g.get("Image", "Reference")                      # doctest: +SKIP
"""
from __future__ import annotations

from collections import deque
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from .errors import InputError
from .transforms import as_matrix, invert

_FIX_MISSING_EDGE = "supply the missing transform (e.g. a calibration file)"


def split_transform_name(name: str) -> Tuple[str, str]:
    """'ProbeToTracker' -> ('Probe', 'Tracker'); names may contain 'To' inside words."""
    base = name[:-len("Transform")] if name.endswith("Transform") else name
    # PLUS frame names are CamelCase words; split at a 'To' followed by an upper-case letter
    # (pos starts at 1: the From frame is never empty).
    for pos in range(1, len(base) - 2):
        if base[pos:pos + 2] == "To" and base[pos + 2].isupper():
            return base[:pos], base[pos + 2:]
    raise InputError(f"'{name}' is not a transform name of the form <From>To<To>Transform")


def is_transform_name(name: str) -> bool:
    """True for ``<From>To<To>`` or ``<From>To<To>Transform`` (see :func:`split_transform_name`)."""
    try:
        split_transform_name(name)
        return True
    except InputError:
        return False


def no_chain_error(from_frame: str, to_frame: str, known: Iterable[str], *,
                   missing: Optional[str] = None, where: str = "", path=None,
                   fix: str = _FIX_MISSING_EDGE) -> InputError:
    """The one "no chain of transforms" error (frame graph, sweep, calibration merge).

    ``known``: the transform names there are; ``missing``: the transform that would
    complete the chain, when known (e.g. ``'ImageToProbe'``); ``where``: text after the
    frames (e.g. " in the sequence x.mha"). Returned, not raised, so callers ``raise`` it.
    """
    lead = f"no {missing} transform to link" if missing else "no chain of transforms links"
    return InputError(f"{lead} {from_frame} to {to_frame}{where} "
                      f"(transforms known: {', '.join(known) or 'none'})", path=path, fix=fix)


class FrameGraph:
    """Named frames joined by 4x4 transforms; any chain between two frames, inverses automatic."""

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
        """Forget the transform between the two frames (either direction), if any."""
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
        """Frames of the shortest chain from ``from_frame`` to ``to_frame`` (both included);
        InputError for an unknown frame or when no chain exists."""
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
            raise no_chain_error(from_frame, to_frame, (a + "To" + b for a, b in self._edges))
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
        """True when a chain links the two frames."""
        try:
            self.path(from_frame, to_frame)
            return True
        except InputError:
            return False

    def copy(self) -> "FrameGraph":
        g = FrameGraph()
        g._edges = {k: v.copy() for k, v in self._edges.items()}
        return g
