"""A tracked ultrasound sweep: frames, timestamps, per-frame transforms.

Frames are ``uint8 [n, rows, cols]`` (tracker-only sequences have
``rows = cols = 0``). Per-frame transforms are stored by PLUS name
(``"ProbeToTracker"``, ``"ImageToReference"``, ...) as ``[n, 4, 4]`` arrays
with a boolean ``[n]`` status (True = OK). Static transforms from a PLUS
device-set config (``"ImageToProbe"``) live in ``calibration``.

The Image frame follows PLUS: origin at the first pixel in memory of the
MF-oriented image, x = column towards the marked side, y = row away from the
transducer, unit = pixel, so ``image_to_probe`` carries the pixel spacing.

A Sweep is validated at construction and then treated as a value: the
Image -> Reference chain is derived once (cached), and a sweep with more
calibration or a fan mask is a new Sweep (:meth:`Sweep.with_calibration`,
:meth:`Sweep.with_fan_mask`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

import numpy as np

from .errors import InputError
from .frames import FrameGraph, no_chain_error, split_transform_name
from .transforms import as_matrix

REFERENCE = "Reference"

# The fix named when a sweep has no ImageToProbe (the probe calibration).
CALIBRATION_FIX = ("pass --calibration with the PLUS device-set config that defines "
                   "<Transform From=\"Image\" To=\"Probe\" .../> for this probe")


class ImageChain(NamedTuple):
    """Image (pixels) -> Reference (mm) for every frame, derived once per Sweep."""
    image_to_reference: np.ndarray   # [n, 4, 4], NaN where ``valid`` is False
    valid: np.ndarray                # bool [n]: every edge of the chain (and the image) is OK
    chain: List[str]                 # frames from the image frame to Reference; [] if none


@dataclass
class Sweep:
    """A tracked sweep (see the module docstring); change calibration or the fan mask
    through :meth:`with_calibration` / :meth:`with_fan_mask`, which return a new Sweep."""
    frames: np.ndarray                      # uint8 [n, rows, cols]
    timestamps: np.ndarray                  # float seconds [n]
    transforms: Dict[str, np.ndarray] = field(default_factory=dict)   # name -> [n, 4, 4]
    statuses: Dict[str, np.ndarray] = field(default_factory=dict)     # name -> bool [n]
    calibration: Dict[str, np.ndarray] = field(default_factory=dict)  # name -> 4x4 (static)
    fan_mask: Optional[np.ndarray] = None   # bool [rows, cols]; None = whole image valid
    metadata: dict = field(default_factory=dict)
    source: Optional[str] = None            # file it came from, for messages
    reference_frame: str = REFERENCE
    # bool [n]: False where the file says ImageStatus = INVALID (excluded like bad tracking).
    image_valid: Optional[np.ndarray] = None
    # Frame of the stored pixels: "Image", or "CroppedImage" when the file carries
    # ImageToCroppedImage (the pixels are a crop of the calibrated Image frame).
    image_frame: str = "Image"

    def __post_init__(self):
        self.frames = np.asarray(self.frames)
        if self.frames.ndim != 3:
            raise InputError(f"frames must be [n, rows, cols], got shape {self.frames.shape}",
                             path=self.source)
        n = self.frames.shape[0]
        self.timestamps = np.asarray(self.timestamps, dtype=float).reshape(-1)
        if self.timestamps.shape != (n,):
            raise InputError(f"{self.timestamps.size} timestamps for {n} frames", path=self.source)
        for name, m in list(self.transforms.items()):
            m = np.asarray(m, dtype=float)
            if m.shape != (n, 4, 4):
                raise InputError(f"{name} has shape {m.shape}, expected ({n}, 4, 4)", path=self.source)
            self.transforms[name] = m
            st = np.asarray(self.statuses.get(name, np.ones(n, bool)), dtype=bool).reshape(-1)
            if st.shape != (n,):
                raise InputError(f"{name} status has {st.size} values for {n} frames", path=self.source)
            # A matrix with NaN can never be OK.
            st = st & np.all(np.isfinite(m.reshape(n, -1)), axis=1)
            self.statuses[name] = st
        for name, m in list(self.calibration.items()):
            self.calibration[name] = as_matrix(m, name=name, path=self.source)
        if self.fan_mask is not None:
            self.fan_mask = np.asarray(self.fan_mask, dtype=bool)
            if self.fan_mask.shape != self.frames.shape[1:]:
                raise InputError(f"fan mask shape {self.fan_mask.shape} does not match frames "
                                 f"{self.frames.shape[1:]}", path=self.source)
        if self.image_valid is not None:
            self.image_valid = np.asarray(self.image_valid, dtype=bool).reshape(-1)
            if self.image_valid.shape != (n,):
                raise InputError(f"image status has {self.image_valid.size} values for {n} frames",
                                 path=self.source)

    # -------------------------------------------------------------- basics
    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def n_frames(self) -> int:
        return len(self)

    @property
    def image_shape(self) -> Tuple[int, int]:
        """(rows, cols)."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def has_images(self) -> bool:
        return self.frames.shape[1] > 0 and self.frames.shape[2] > 0

    # -------------------------------------------------------------- new sweeps from this one
    def _replace(self, **changes) -> "Sweep":
        """A new, validated Sweep with ``changes``; the dicts are copied so the two never share
        a container (frame arrays are shared: they are not modified in place)."""
        containers = dict(transforms=dict(self.transforms), statuses=dict(self.statuses),
                          calibration=dict(self.calibration), metadata=dict(self.metadata))
        containers.update(changes)
        return replace(self, **containers)

    def with_calibration(self, calibration: Mapping[str, np.ndarray]) -> "Sweep":
        """A new Sweep whose static ``calibration`` adds (or replaces) ``{name: 4x4}``.

        Names are ``<From>To<To>`` (e.g. ``'ImageToProbe'``), matrices From -> To in
        PLUS units (mm; pixels for Image). A name that is also per frame in the sweep
        keeps its per-frame values (a note in ``metadata['notes']`` says so). Matrices
        are validated like the constructor's (InputError naming the sweep file).
        """
        merged = dict(self.calibration)
        notes = []
        for name, m in calibration.items():
            merged[name] = m
            if name in self.transforms:
                notes.append(f"{name} is both per frame in the file and in the calibration: the "
                             "per-frame values are used")
        metadata = dict(self.metadata)
        if notes:
            metadata["notes"] = list(metadata.get("notes", [])) + notes
        return self._replace(calibration=merged, metadata=metadata)

    def with_fan_mask(self, fan_mask: Optional[np.ndarray]) -> "Sweep":
        """A new Sweep with ``fan_mask`` (bool [rows, cols]; None = every pixel valid)."""
        return self._replace(fan_mask=fan_mask)

    # -------------------------------------------------------------- frame graph
    def frame_graph(self, index: int) -> Tuple[FrameGraph, bool]:
        """Frame graph at frame ``index`` and whether every per-frame edge (and the image) is OK.

        Edges whose status is INVALID at this frame are left out of the graph.
        """
        g = FrameGraph()
        for name, m in self.calibration.items():
            a, b = split_transform_name(name)
            g.set(a, b, m)
        ok = self.image_valid is None or bool(self.image_valid[index])
        for name, mats in self.transforms.items():
            a, b = split_transform_name(name)
            if not self.statuses[name][index]:
                ok = False
                continue
            g.set(a, b, mats[index])
        return g, ok

    @cached_property
    def _image_chain(self) -> ImageChain:
        """image_to_reference for all frames, composed along one chain of frames.

        The chain is found on the union of all edges (its structure is the same in every
        frame), then composed for all frames at once; a frame is valid when every edge of
        the chain has status OK there (and its image status is OK).
        """
        n = len(self)
        out = np.full((n, 4, 4), np.nan)
        static = FrameGraph()
        for name, m in self.calibration.items():
            a, b = split_transform_name(name)
            static.set(a, b, m)
        union = FrameGraph()
        for name in set(self.transforms) | set(self.calibration):
            a, b = split_transform_name(name)
            union.set(a, b, np.eye(4))
        img, ref = self.image_frame, self.reference_frame
        if img not in union.frames or ref not in union.frames or not union.has(img, ref):
            return ImageChain(out, np.zeros(n, bool), [])
        chain = union.path(img, ref)
        acc = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        ok = np.ones(n, bool)
        for a, b in zip(chain[:-1], chain[1:]):
            step, st = self._edge(a, b, static)
            acc = np.einsum("nij,njk->nik", step, acc)
            ok &= st
        if self.image_valid is not None:
            ok &= self.image_valid
        out[ok] = acc[ok]
        return ImageChain(out, ok, chain)

    def _edge(self, a: str, b: str, static: FrameGraph) -> Tuple[np.ndarray, np.ndarray]:
        """[n, 4, 4] a -> b and its bool [n] status: per frame if the sweep has it (either
        direction, with or without the Transform suffix), else the static calibration."""
        n = len(self)
        fwd, back = f"{a}To{b}Transform", f"{b}To{a}Transform"
        for name, inverse in ((fwd, False), (a + "To" + b, False), (back, True), (b + "To" + a, True)):
            if name in self.transforms:
                m = self.transforms[name]
                st = self.statuses[name].copy()
                safe = np.where(st[:, None, None], m, np.eye(4))
                if inverse:
                    safe = np.linalg.inv(safe)
                return safe, st
        return np.broadcast_to(static.get(a, b), (n, 4, 4)).copy(), np.ones(n, bool)

    @property
    def chain(self) -> List[str]:
        """Frames from the pixels' frame to Reference (e.g. Image, Probe, Tracker, Reference); [] if none."""
        return list(self._image_chain.chain)

    def image_to_reference(self, index: int) -> Optional[np.ndarray]:
        """4x4 Image (pixels) -> Reference (mm) at frame ``index``; None if tracking is invalid."""
        m, valid, _ = self._image_chain
        return m[index].copy() if valid[index] else None

    def image_to_reference_all(self) -> Tuple[np.ndarray, np.ndarray]:
        """([n,4,4] with NaN where invalid, bool [n] valid)."""
        m, valid, _ = self._image_chain
        return m.copy(), valid.copy()

    @property
    def valid(self) -> np.ndarray:
        """bool [n]: frames with a complete, OK Image -> Reference chain (all False without one)."""
        return self._image_chain.valid.copy()

    @property
    def invalid_count(self) -> int:
        """Frames without a valid Image -> Reference transform."""
        return int(len(self) - self.valid.sum())

    def no_chain_error(self, path=None) -> InputError:
        """The InputError for "no chain from the pixels to Reference", naming what is missing.

        ``path``: the file to name (default the sweep's own; a calibration config when the
        chain is still missing after merging it, and then the sweep file is named too).
        """
        have = sorted(set(self.transforms) | set(self.calibration))
        ref = self.reference_frame
        if "ImageToProbe" not in have:
            missing, fix = "ImageToProbe", CALIBRATION_FIX
        else:
            missing = None
            fix = (f"the file needs ImageTo{ref}, or ProbeToTracker + {ref}ToTracker, or "
                   f"ProbeTo{ref}, with ImageToProbe")
        where = ""
        if path is not None and self.source and os.fspath(path) != self.source:
            where = f" in the sequence {os.path.basename(self.source)}"
        return no_chain_error(self.image_frame, ref, have, missing=missing, where=where,
                              path=self.source if path is None else path, fix=fix)

    def require_image_to_reference(self) -> Tuple[np.ndarray, np.ndarray]:
        """Like :meth:`image_to_reference_all` but raises a helpful InputError if no chain exists."""
        m, valid, chain = self._image_chain
        if not chain:
            raise self.no_chain_error()
        if not valid.any():
            raise InputError(f"all {len(self)} frames have INVALID tracking for the chain "
                             f"{' -> '.join(chain)}", path=self.source,
                             fix="record the sweep again with the tracker seeing the probe and reference")
        return m.copy(), valid.copy()

    @property
    def image_to_probe(self) -> Optional[np.ndarray]:
        """The static ImageToProbe calibration (pixels -> mm), or None."""
        return self.calibration.get("ImageToProbe")

    @property
    def pixel_spacing(self) -> Optional[Tuple[float, float]]:
        """(column, row) spacing in mm, from the Image->(first mm frame) scaling."""
        m = self.image_to_probe
        if m is None:
            mats, valid, _ = self._image_chain
            if not valid.any():
                return None
            m = mats[np.argmax(valid)]
        return float(np.linalg.norm(m[:3, 0])), float(np.linalg.norm(m[:3, 1]))

    def subset(self, indices) -> "Sweep":
        """A new Sweep of the frames ``indices`` (in that order), with the same calibration."""
        idx = np.asarray(indices)
        return Sweep(self.frames[idx], self.timestamps[idx],
                     {k: v[idx] for k, v in self.transforms.items()},
                     {k: v[idx] for k, v in self.statuses.items()},
                     dict(self.calibration), self.fan_mask, dict(self.metadata), self.source,
                     self.reference_frame,
                     None if self.image_valid is None else self.image_valid[idx], self.image_frame)

    def summary(self) -> dict:
        """Plain facts about the sweep (counts, names, chain, spacing mm, duration s) for listings."""
        _, valid, chain = self._image_chain
        return {
            "source": self.source,
            "frames": len(self),
            "image_size": [int(self.frames.shape[2]), int(self.frames.shape[1])],
            "transforms": sorted(self.transforms),
            "calibration": sorted(self.calibration),
            "chain": list(chain),
            "valid_frames": int(valid.sum()),
            "invalid_frames": int(len(self) - valid.sum()),
            "image_invalid_frames": 0 if self.image_valid is None else int((~self.image_valid).sum()),
            "image_frame": self.image_frame,
            "pixel_spacing_mm": self.pixel_spacing,
            "duration_s": float(self.timestamps[-1] - self.timestamps[0]) if len(self) else 0.0,
        }
