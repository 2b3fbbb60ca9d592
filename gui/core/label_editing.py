"""The label map being segmented and corrected in the window: edits in mm, undo, names, review.

:class:`EditableLabels` holds a label array on the CT grid (``[k, j, i]``, the
CT's own geometry) with its ``{name: value}`` table and turns the user's
corrections into array edits: a brush (a disc of a radius in mm in the plane
of the slice view, optionally limited to a HU range) that paints or erases one
structure, grow / shrink of a structure by a distance in mm, lesions added
from a click, renames. Every edit stores the box it changed so that
:meth:`undo` puts it back (``MAX_UNDO`` steps). An erased voxel goes back to the
structure that contains the erased one (:func:`container_of`: a lesion or a
liver vessel to the liver, other organs to the body), so a correction never
punches background holes into the body. Growing a structure takes only
background and its container, never another structure.

``reviewed`` says whether a person has looked at the anatomy; any edit after
that keeps it (the person is correcting) but a new automatic segmentation
resets it. No Qt here: the panels call it and redraw.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from planner.anatomy.provenance import AUTOMATIC, anatomy_origin, mark_origin
from planner.segmentation.morphology import dilate_mm, erode_mm
from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

MAX_UNDO = 30
#: structures whose erased voxels return to the liver (they lie inside it)
INSIDE_LIVER = ("portal_vein", "hepatic_vein", "liver_vessel")
LESION_FIRST_VALUE = 21
Box = Tuple[slice, slice, slice]


def container_of(name: str, names: Dict[str, int]) -> int:
    """Label value an erased voxel of ``name`` returns to: the liver for lesions and liver vessels,
    the body for any other structure but the body, else background (0)."""
    if (name.startswith("lesion") or name in INSIDE_LIVER) and "liver" in names:
        return names["liver"]
    if name != "body" and "body" in names:
        return names["body"]
    return 0


@dataclass
class _Step:
    """One undo step: what the box held before (or, for a brush stroke, the flat indices of the
    voxels it changed and their old values), and the names table before."""
    what: str
    box: Optional[Box]
    before: Optional[np.ndarray]
    names: Dict[str, int]
    flat: Optional[List[np.ndarray]] = None
    old: Optional[List[np.ndarray]] = None
    rows: Optional[Dict[str, dict]] = None


class EditableLabels:
    """A label map under correction (see the module docstring). ``ct`` gives the grid and the HU
    for the threshold range; ``labels`` the starting label map (same grid)."""

    def __init__(self, ct: Volume, labels: LabelMap):
        if labels.array.shape != ct.array.shape:
            raise InputError("the label map to edit is not on the CT grid", fix="open the labels of this CT")
        self.ct = ct
        top = max(list(labels.names.values()) + [int(labels.array.max()) if labels.array.size else 0, 255])
        self.array = labels.array.astype(np.uint8 if top < 256 else np.uint16, copy=True)
        self.names: Dict[str, int] = dict(labels.names)
        origin = anatomy_origin(labels)
        self.source: str = origin["source"]
        self.reviewed: Optional[bool] = origin.get("reviewed")
        src = labels.metadata.get("source")
        self.file: Optional[str] = str(src) if src and os.path.exists(str(src)) else None   # its file, if any
        self.label_path: Optional[str] = origin.get("path")     # a label map's file, for the words
        self.lesion_rows: Dict[str, dict] = {}     # name -> measures of a lesion grown from a click
        self.undo_steps: List[_Step] = []
        self.version = 0                           # +1 per change (saving and redraws compare it)
        self.last_reach_mm = 0.0                   # distance the last grow/shrink used (mm)

    # ------------------------------------------------------------ reading
    def to_labelmap(self) -> LabelMap:
        """A new LabelMap of the current state (a copy: later edits do not change it), its origin
        and review state in its metadata (``editor``: this object's id, so the panel knows a label
        map it made from one opened meanwhile)."""
        lm = LabelMap(self.array.copy(), self.ct.spacing, self.ct.origin, self.ct.direction, self.names,
                      {"source": self.file, "edit_version": self.version, "editor": id(self)})
        mark_origin(lm, self.source, self.reviewed)
        return lm

    def mask(self, name: str) -> np.ndarray:
        return self.array == self.value(name)

    def value(self, name: str) -> int:
        if name not in self.names:
            raise InputError(f"no structure '{name}' in the label map",
                             fix=f"choose one of {', '.join(sorted(self.names)) or '(none yet: Segment first)'}")
        return self.names[name]

    def lesion_names(self) -> List[str]:
        return [n for n, v in sorted(self.names.items(), key=lambda kv: kv[1]) if n.startswith("lesion")]

    def next_lesion_name(self) -> str:
        n = 1
        while f"lesion_{n}" in self.names:
            n += 1
        return f"lesion_{n}"

    def liver_region(self) -> np.ndarray:
        """The liver with the vessels and lesions inside it (what a lesion grows in)."""
        values = [v for n, v in self.names.items() if n == "liver" or n in INSIDE_LIVER or n.startswith("lesion")]
        return np.isin(self.array, values) if values else np.zeros(self.array.shape, bool)

    # ------------------------------------------------------------ undo
    def _push(self, what: str, box: Optional[Box]) -> None:
        before = None if box is None else self.array[box].copy()
        self.undo_steps.append(_Step(what, box, before, dict(self.names), rows=dict(self.lesion_rows)))
        del self.undo_steps[:-MAX_UNDO]

    def _changed(self) -> None:
        self.version += 1

    def undo(self) -> Optional[str]:
        """Undo the last edit; its description, or None when there is nothing to undo."""
        if not self.undo_steps:
            return None
        step = self.undo_steps.pop()
        if step.box is not None:
            self.array[step.box] = step.before
        if step.flat:
            flat = self.array.reshape(-1)
            for idx, old in zip(reversed(step.flat), reversed(step.old)):
                flat[idx] = old
        self.names = dict(step.names)
        if step.rows is not None:
            self.lesion_rows = dict(step.rows)
        self._changed()
        return step.what

    def begin_stroke(self, what: str) -> None:
        """Start a brush stroke: its dabs (:meth:`brush`) undo as one step, and it keeps only the
        voxels it changed."""
        self.undo_steps.append(_Step(what, None, None, dict(self.names), [], []))
        del self.undo_steps[:-MAX_UNDO]

    def end_stroke(self) -> bool:
        """End a stroke; a stroke that changed nothing is no undo step. True if it changed voxels."""
        step = self.undo_steps[-1] if self.undo_steps else None
        if step is not None and step.flat is not None and not step.flat:
            self.undo_steps.pop()
            return False
        return step is not None and bool(step.flat)

    # ------------------------------------------------------------ brush
    def brush(self, centre_lps, radius_mm: float, normal_axis_lps: int, half_thickness_mm: float, *,
              name: str, erase: bool = False, hu_range: Optional[Tuple[float, float]] = None) -> int:
        """Paint (or erase) ``name`` in the disc of ``radius_mm`` around ``centre_lps`` lying within
        ``half_thickness_mm`` of the view plane (normal along LPS axis ``normal_axis_lps``: 0 = L
        sagittal, 1 = P coronal, 2 = S axial); with ``hu_range`` only voxels whose CT value is in
        it. Erasing changes only voxels of ``name``. Between :meth:`begin_stroke` and
        :meth:`end_stroke` the dabs form one undo step; a dab outside a stroke is not undoable.
        Returns the number of voxels changed."""
        value = self.value(name)
        box, lps = self._box_around(centre_lps, radius_mm)
        if box is None:
            return 0
        d = lps - np.asarray(centre_lps, float)
        in_plane = [a for a in range(3) if a != normal_axis_lps]
        sel = (np.sqrt(d[..., in_plane[0]] ** 2 + d[..., in_plane[1]] ** 2) <= radius_mm) & \
              (np.abs(d[..., normal_axis_lps]) <= half_thickness_mm)
        if hu_range is not None:
            hu = self.ct.array[box]
            sel &= (hu >= min(hu_range)) & (hu <= max(hu_range))
        region = self.array[box]
        sel &= (region == value) if erase else (region != value)
        n = int(sel.sum())
        if n == 0:
            return 0
        step = self.undo_steps[-1] if self.undo_steps else None
        if step is not None and step.flat is not None:          # inside a stroke: keep the old values
            k, j, i = np.nonzero(sel)
            flat = np.ravel_multi_index((k + box[0].start, j + box[1].start, i + box[2].start), self.array.shape)
            step.flat.append(flat)
            step.old.append(region[sel].copy())
        region[sel] = container_of(name, self.names) if erase else value
        self._changed()
        return n

    def _box_around(self, centre_lps, radius_mm: float):
        """(index box, LPS of its voxel centres [k, j, i, 3]) of the voxels within ``radius_mm`` in
        every direction of ``centre_lps``; (None, None) when it lies outside the CT."""
        ct = self.ct
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
        pts = np.asarray(centre_lps, float) + radius_mm * corners
        ijk = np.array([ct.lps_to_index(p) for p in pts])
        lo = np.maximum(np.floor(ijk.min(axis=0)).astype(int), 0)
        hi = np.minimum(np.ceil(ijk.max(axis=0)).astype(int) + 1, np.array(ct.shape_ijk))
        if np.any(hi <= lo):
            return None, None
        kk, jj, ii = np.meshgrid(np.arange(lo[2], hi[2]), np.arange(lo[1], hi[1]), np.arange(lo[0], hi[0]),
                                 indexing="ij")
        idx = np.stack([ii, jj, kk], axis=-1).reshape(-1, 3).astype(float)
        lps = ct.index_to_lps(idx).reshape(ii.shape + (3,))
        return (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0])), lps

    # ------------------------------------------------------------ grow / shrink
    def grow(self, name: str, distance_mm: float) -> int:
        """Grow ``name`` by ``distance_mm`` (> 0) or shrink it (< 0), at least by the smallest voxel
        spacing (``last_reach_mm`` says by how much); an undo step. Growing takes background and
        the structure's container only; shrinking returns voxels to the container. Returns the
        number of voxels changed."""
        value = self.value(name)
        mask = self.array == value
        if not mask.any():
            raise InputError(f"'{name}' has no voxels to grow or shrink", fix="paint it first")
        # at least one voxel: 1 mm on 1.5 mm voxels would change nothing (Slicer's margin rounds too)
        reach = max(abs(distance_mm), float(min(self.ct.spacing))) * 1.0001
        self.last_reach_mm = reach
        margin = int(np.ceil(reach / float(min(self.ct.spacing)))) + 1
        idx = np.argwhere(mask)
        box = tuple(slice(max(int(lo) - margin, 0), min(int(hi) + margin + 1, n))
                    for lo, hi, n in zip(idx.min(axis=0), idx.max(axis=0), self.array.shape))
        sub = self.array[box]
        m = sub == value
        spacing = self.ct.spacing
        self._push(f"{'grow' if distance_mm > 0 else 'shrink'} {name} by {abs(distance_mm):g} mm", box)
        container = container_of(name, self.names)
        if distance_mm > 0:
            free = (sub == 0) | (sub == container)
            change = dilate_mm(m, spacing, reach) & ~m & free
            sub[change] = value
        else:
            change = m & ~erode_mm(m, spacing, reach)
            sub[change] = container
        n = int(change.sum())
        if n == 0:
            self.undo_steps.pop()
        else:
            self._changed()
        return n

    # ------------------------------------------------------------ lesions and names
    def add_lesion(self, lesion) -> int:
        """Add a grown lesion (:class:`planner.segmentation.lesion_grow.LesionSegmentation`: ``name``
        and a bool ``mask`` on the CT grid) under a new value (21 up); an undo step. Its measures
        go in :attr:`lesion_rows`. Returns the value."""
        if lesion.name in self.names:
            raise InputError(f"there is already a structure named '{lesion.name}'", fix="choose another name")
        used = set(self.names.values())
        value = LESION_FIRST_VALUE
        while value in used:
            value += 1
        if value > np.iinfo(self.array.dtype).max:
            self.array = self.array.astype(np.uint16)
        idx = np.argwhere(lesion.mask)
        box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(idx.min(axis=0), idx.max(axis=0)))
        self._push(f"add {lesion.name}", box)
        self.array[lesion.mask] = value
        self.names[lesion.name] = value
        self.lesion_rows[lesion.name] = lesion.summary()
        self._changed()
        return value

    def rename(self, old: str, new: str) -> None:
        """Rename a structure (an undo step); InputError for an empty or taken name. A lesion keeps a
        name starting with ``lesion`` (the planner finds lesions by it)."""
        new = new.strip()
        self.value(old)
        if not new or new == old:
            if not new:
                raise InputError("a structure needs a name", fix="type a name such as lesion_1")
            return
        if new in self.names:
            raise InputError(f"the name '{new}' is taken", fix="choose another name")
        if old.startswith("lesion") and not new.startswith("lesion"):
            raise InputError(f"'{new}': a lesion's name must start with 'lesion' (the planner plans "
                             "lesion_* labels)", fix=f"e.g. lesion_{new}")
        self._push(f"rename {old} to {new}", None)
        self.names = {(new if n == old else n): v for n, v in self.names.items()}
        if old in self.lesion_rows:
            self.lesion_rows[new] = dict(self.lesion_rows.pop(old), name=new)
        self._changed()

    def set_reviewed(self, reviewed: bool) -> None:
        self.reviewed = bool(reviewed)
        self._changed()


def new_automatic(ct: Volume, labels: LabelMap) -> EditableLabels:
    """An editable automatic segmentation, not reviewed."""
    mark_origin(labels, AUTOMATIC, False)
    return EditableLabels(ct, labels)
