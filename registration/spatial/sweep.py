"""A tracked ultrasound sweep: frames, timestamps, per-frame transforms.

Frames are ``uint8 [n, rows, cols]`` (tracker-only sequences have
``rows = cols = 0``). Per-frame transforms are stored by PLUS name
(``"ProbeToTracker"``, ``"ImageToReference"``, ...) as ``[n, 4, 4]`` arrays
with a boolean ``[n]`` status (True = OK). Static transforms from a PLUS
device-set config (``"ImageToProbe"``) live in ``calibration``.

The Image frame follows PLUS: origin at the first pixel in memory of the
MF-oriented image, x = column towards the marked side, y = row away from the
transducer, unit = pixel, so ``image_to_probe`` carries the pixel spacing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import InputError
from .frames import FrameGraph
from .transforms import as_matrix

REFERENCE = "Reference"


def split_transform_name(name: str) -> Tuple[str, str]:
    """'ProbeToTracker' -> ('Probe', 'Tracker'); names may contain 'To' inside words."""
    base = name[:-len("Transform")] if name.endswith("Transform") else name
    # PLUS frame names are CamelCase words; split at a 'To' followed by an upper-case letter.
    for pos in range(1, len(base) - 2):
        if base[pos:pos + 2] == "To" and base[pos + 2].isupper() and base[pos - 1] != "":
            return base[:pos], base[pos + 2:]
    raise InputError(f"'{name}' is not a transform name of the form <From>To<To>Transform")


@dataclass
class Sweep:
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
        self._i2r_cache: Optional[Tuple[np.ndarray, np.ndarray, List[str]]] = None

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

    def invalidate_cache(self) -> None:
        self._i2r_cache = None

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

    def _derive(self) -> Tuple[np.ndarray, np.ndarray, List[str]]:
        """image_to_reference [n,4,4] (NaN where invalid), valid [n], chain used."""
        if self._i2r_cache is not None:
            return self._i2r_cache
        n = len(self)
        out = np.full((n, 4, 4), np.nan)
        valid = np.zeros(n, bool)
        chain: List[str] = []
        ref = self.reference_frame
        # Which per-frame names exist at all, and which static ones.
        names = set(self.transforms) | set(self.calibration)
        static = FrameGraph()
        for name, m in self.calibration.items():
            a, b = split_transform_name(name)
            static.set(a, b, m)
        # Find a chain using the union of all edges (structure is the same in every frame).
        union = FrameGraph()
        for name in names:
            a, b = split_transform_name(name)
            union.set(a, b, np.eye(4))
        img = self.image_frame
        if img not in union.frames or ref not in union.frames or not union.has(img, ref):
            self._i2r_cache = (out, valid, chain)
            return self._i2r_cache
        chain = union.path(img, ref)
        # Vectorised composition along the chain.
        acc = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
        ok = np.ones(n, bool)
        for a, b in zip(chain[:-1], chain[1:]):
            step, st = self._edge(a, b, static)
            acc = np.einsum("nij,njk->nik", step, acc)
            ok &= st
        if self.image_valid is not None:
            ok &= self.image_valid
        out[ok] = acc[ok]
        valid = ok
        self._i2r_cache = (out, valid, chain)
        return self._i2r_cache

    def _edge(self, a: str, b: str, static: FrameGraph) -> Tuple[np.ndarray, np.ndarray]:
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

    def image_to_reference(self, index: int) -> Optional[np.ndarray]:
        """4x4 Image (pixels) -> Reference (mm) at frame ``index``; None if tracking is invalid."""
        m, valid, _ = self._derive()
        return m[index].copy() if valid[index] else None

    def image_to_reference_all(self) -> Tuple[np.ndarray, np.ndarray]:
        """([n,4,4] with NaN where invalid, bool [n] valid)."""
        m, valid, _ = self._derive()
        return m.copy(), valid.copy()

    @property
    def valid(self) -> np.ndarray:
        return self._derive()[1].copy()

    @property
    def invalid_count(self) -> int:
        return int(len(self) - self.valid.sum())

    def require_image_to_reference(self) -> Tuple[np.ndarray, np.ndarray]:
        """Like :meth:`image_to_reference_all` but raises a helpful InputError if no chain exists."""
        m, valid, chain = self._derive()
        if not chain:
            have = sorted(set(self.transforms) | set(self.calibration))
            if "ImageToProbe" not in self.calibration and not any(n.startswith("ImageTo") for n in have):
                missing = "ImageToProbe (the probe calibration)"
                fix = "pass --calibration with the PLUS device-set config that defines Image->Probe"
            else:
                missing = f"a chain from Image to {self.reference_frame}"
                fix = (f"the file needs ImageTo{self.reference_frame}, or ProbeToTracker + "
                       f"{self.reference_frame}ToTracker, or ProbeTo{self.reference_frame}, with ImageToProbe")
            raise InputError(f"no {missing}; transforms present: {', '.join(have) or 'none'}",
                             path=self.source, fix=fix)
        if not valid.any():
            raise InputError(f"all {len(self)} frames have INVALID tracking for the chain "
                             f"{' -> '.join(chain)}", path=self.source,
                             fix="record the sweep again with the tracker seeing the probe and reference")
        return m.copy(), valid.copy()

    @property
    def image_to_probe(self) -> Optional[np.ndarray]:
        return self.calibration.get("ImageToProbe")

    @property
    def pixel_spacing(self) -> Optional[Tuple[float, float]]:
        """(column, row) spacing in mm, from the Image->(first mm frame) scaling."""
        m = self.image_to_probe
        if m is None:
            mats, valid, _ = self._derive()
            if not valid.any():
                return None
            m = mats[np.argmax(valid)]
        return float(np.linalg.norm(m[:3, 0])), float(np.linalg.norm(m[:3, 1]))

    def subset(self, indices) -> "Sweep":
        idx = np.asarray(indices)
        return Sweep(self.frames[idx], self.timestamps[idx],
                     {k: v[idx] for k, v in self.transforms.items()},
                     {k: v[idx] for k, v in self.statuses.items()},
                     dict(self.calibration), self.fan_mask, dict(self.metadata), self.source,
                     self.reference_frame,
                     None if self.image_valid is None else self.image_valid[idx], self.image_frame)

    def summary(self) -> dict:
        _, valid, chain = self._derive()
        return {
            "source": self.source,
            "frames": len(self),
            "image_size": [int(self.frames.shape[2]), int(self.frames.shape[1])],
            "transforms": sorted(self.transforms),
            "calibration": sorted(self.calibration),
            "chain": chain,
            "valid_frames": int(valid.sum()),
            "invalid_frames": int(len(self) - valid.sum()),
            "image_invalid_frames": 0 if self.image_valid is None else int((~self.image_valid).sum()),
            "image_frame": self.image_frame,
            "pixel_spacing_mm": self.pixel_spacing,
            "duration_s": float(self.timestamps[-1] - self.timestamps[0]) if len(self) else 0.0,
        }
