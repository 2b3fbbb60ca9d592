"""A tracked needle: its calibration (tip and shaft in the marker frame) and its poses.

Frames (PLUS names, ``docs/needle_guidance.md``): **Needle** is the tracked
marker on the needle hub (mm); **NeedleTip** has its origin at the needle tip;
``NeedleTipToNeedle`` (from a PLUS device-set config or a pivot calibration)
holds the tip position in Needle as its translation. The shaft direction
``axis`` is a unit vector in Needle pointing from the hub towards the tip (the
insertion direction). By default it is the line from the marker origin
through the tip, which is what PLUS's pivot calibration assumes: its
``StylusTip`` frame has that line as its x axis (PLUS 2.x) or z axis (IGSIO);
a needle whose marker sits off the shaft needs the axis given explicitly (a
column of ``NeedleTipToNeedle``).

Poses: ``<Tool>ToReference`` per frame of a recorded sequence, straight from
the file or composed as ``inv(ReferenceToTracker) @ <Tool>ToTracker``; frames
where any part is INVALID are invalid.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from registration.io.plus_config import read_plus_config
from registration.spatial.errors import InputError
from registration.spatial.sweep import Sweep, split_transform_name
from registration.spatial.transforms import as_matrix, invert

_AXES = {"x": (0, 1.0), "-x": (0, -1.0), "y": (1, 1.0), "-y": (1, -1.0), "z": (2, 1.0), "-z": (2, -1.0)}
_NOT_TOOLS = {"Image", "CroppedImage", "Probe", "Reference", "Tracker", "Transducer"}


@dataclass(frozen=True)
class NeedleCalibration:
    """Tip position and shaft direction of a tracked needle in its marker frame (mm)."""
    tip_mm: np.ndarray          # (3,) tip in the marker (Needle) frame
    axis: np.ndarray            # (3,) unit, marker frame, hub -> tip
    tool: str = "Needle"
    source: str = ""            # config file, pivot recording, or 'stream'
    error_mm: Optional[float] = None  # calibration error (RMS) when known

    def __post_init__(self):
        tip = np.asarray(self.tip_mm, float).reshape(3)
        axis = np.asarray(self.axis, float).reshape(3)
        n = float(np.linalg.norm(axis))
        if not np.all(np.isfinite(tip)) or not np.isfinite(n) or n < 1e-9:
            raise InputError(f"{self.tool} calibration has no usable tip or axis (tip {tip}, axis {axis})",
                             path=self.source or None, fix="calibrate the needle again")
        object.__setattr__(self, "tip_mm", tip)
        object.__setattr__(self, "axis", axis / n)

    @classmethod
    def from_tip_to_tool(cls, tip_to_tool, *, axis: str = "auto", tool: str = "Needle", source: str = "",
                         error_mm: Optional[float] = None) -> "NeedleCalibration":
        """From a 4x4 ``<Tool>TipTo<Tool>``; ``axis`` 'auto' (marker origin -> tip) or a column ('z', '-x', ...)."""
        m = as_matrix(tip_to_tool, name=f"{tool}TipTo{tool}", path=source or None)
        tip = m[:3, 3]
        if axis == "auto":
            n = float(np.linalg.norm(tip))
            if n < 1.0:
                raise InputError(f"{tool}TipTo{tool} puts the tip {n:.2f} mm from the marker origin: the shaft "
                                 "direction cannot be taken from it", path=source or None,
                                 fix="give the shaft axis explicitly (--needle-axis x|y|z|-x|-y|-z)")
            direction = tip / n
        elif axis in _AXES:
            col, sign = _AXES[axis]
            direction = sign * m[:3, col]
        else:
            raise InputError(f"needle axis {axis!r} is not one of auto, {', '.join(_AXES)}",
                             fix="use --needle-axis auto (marker origin -> tip) or a column of NeedleTipToNeedle")
        return cls(tip, direction, tool, source, error_mm)

    def tip_to_tool(self) -> np.ndarray:
        """4x4 ``<Tool>TipTo<Tool>``: translation = tip, z axis = shaft (hub -> tip), as IGSIO writes it."""
        z = self.axis
        helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.94 else np.array([0.0, 1.0, 0.0])
        y = np.cross(z, helper)
        y /= np.linalg.norm(y)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = np.cross(y, z), y, z, self.tip_mm
        return m

    def tip_and_axis(self, tool_to_frame: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Tip point and unit shaft direction in the frame ``tool_to_frame`` maps to ((3,), (3,))."""
        m = np.asarray(tool_to_frame, float)
        tip = m[:3, :3] @ self.tip_mm + m[:3, 3]
        d = m[:3, :3] @ self.axis
        return tip, d / np.linalg.norm(d)

    def summary(self) -> dict:
        return {"tool": self.tool, "tip_mm": [round(float(v), 3) for v in self.tip_mm],
                "axis": [round(float(v), 5) for v in self.axis], "source": self.source,
                "error_mm": None if self.error_mm is None else round(float(self.error_mm), 3)}


def calibration_from_config(path, *, tool: str = "Needle", axis: str = "auto") -> NeedleCalibration:
    """``<Transform From="<Tool>Tip" To="<Tool>" Matrix=.../>`` of a PLUS config as a NeedleCalibration."""
    cfg = read_plus_config(path)
    name, inverse = f"{tool}TipTo{tool}", f"{tool}To{tool}Tip"
    if name in cfg["transforms"]:
        m = cfg["transforms"][name]
    elif inverse in cfg["transforms"]:
        m = invert(cfg["transforms"][inverse])
        name = inverse
    else:
        have = ", ".join(sorted(cfg["transforms"])) or "none"
        others = sorted(b for a, b in map(_split_or_none, cfg["transforms"]) if b and a == b + "Tip")
        hint = f", or --tool {others[0]} to track that tool instead" if others else ""
        raise InputError(f"no {tool}TipTo{tool} transform (the needle calibration) in the config "
                         f"(found: {have})", path=cfg["path"],
                         fix=f"pass --calibration with a PLUS config holding <Transform From=\"{tool}Tip\" "
                             f"To=\"{tool}\" Matrix=\"...\"/>, or --pivot-recording SEQ to compute it{hint}")
    err = cfg["transform_info"].get(name, {}).get("Error")
    return NeedleCalibration.from_tip_to_tool(m, axis=axis, tool=tool, source=str(cfg["path"]),
                                              error_mm=float(err) if isinstance(err, (int, float)) else None)


def calibration_in_sweep(sweep: Sweep, *, tool: str = "Needle", axis: str = "auto",
                         name_of_file: str = "") -> Optional[NeedleCalibration]:
    """The ``<Tool>TipTo<Tool>`` a recorded sequence carries (its calibration fields, or the first
    OK frame of a recorded transform: ``ctus replay --needle-path`` streams it and the recorder
    keeps it) as a NeedleCalibration; None when it has none."""
    name = f"{tool}TipTo{tool}"
    where = name_of_file or sweep.source or "the sequence"
    if name in sweep.calibration:
        return NeedleCalibration.from_tip_to_tool(sweep.calibration[name], axis=axis, tool=tool,
                                                  source=f"{name} in {where}")
    if name in sweep.transforms and sweep.statuses[name].any():
        m = sweep.transforms[name][int(sweep.statuses[name].argmax())]
        return NeedleCalibration.from_tip_to_tool(m, axis=axis, tool=tool, source=f"{name} recorded in {where}")
    return None


def _split_or_none(name: str) -> Tuple[Optional[str], Optional[str]]:
    try:
        return split_transform_name(name)
    except InputError:
        return None, None


def _find(sweep: Sweep, a: str, b: str) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Per-frame a->b (mats, ok) from the sweep's transforms (inverting b->a), or None."""
    for name, inverse in ((f"{a}To{b}", False), (f"{a}To{b}Transform", False),
                          (f"{b}To{a}", True), (f"{b}To{a}Transform", True)):
        if name in sweep.transforms:
            ok = sweep.statuses[name].copy()
            mats = np.where(ok[:, None, None], sweep.transforms[name], np.eye(4))
            return (np.linalg.inv(mats) if inverse else mats.copy()), ok
    return None


def tool_to_reference(sweep: Sweep, tool: str = "Needle") -> Tuple[np.ndarray, np.ndarray]:
    """``<tool>ToReference`` per frame: ([n,4,4], NaN where invalid; bool [n] valid).

    Direct (``<tool>ToReference``) or ``inv(ReferenceToTracker) @ <tool>ToTracker``.
    Raises InputError naming the transforms present when neither chain exists.
    """
    ref = sweep.reference_frame
    direct = _find(sweep, tool, ref)
    if direct is not None:
        mats, ok = direct
    else:
        t2t, r2t = _find(sweep, tool, "Tracker"), _find(sweep, ref, "Tracker")
        if t2t is None or r2t is None:
            have = ", ".join(sorted(sweep.transforms)) or "none"
            raise InputError(f"no {tool}To{ref} (nor {tool}ToTracker with {ref}ToTracker) per frame; "
                             f"transforms present: {have}", path=sweep.source,
                             fix=f"record the sequence with the {tool} tracked, or choose the tracked tool "
                                 f"with --tool ({', '.join(tracked_tools(sweep)) or 'none in this file'})")
        mats = np.einsum("nij,njk->nik", np.linalg.inv(r2t[0]), t2t[0])
        ok = t2t[1] & r2t[1]
    out = np.full_like(mats, np.nan)
    out[ok] = mats[ok]
    return out, ok


def tracked_tools(sweep: Sweep) -> List[str]:
    """Tools (other than probe and image) with a pose in Reference in every frame's transforms."""
    tools = set()
    for name in sweep.transforms:
        try:
            a, b = split_transform_name(name)
        except InputError:
            continue
        for f in (a, b):
            if f not in _NOT_TOOLS and f != sweep.reference_frame:
                tools.add(f)
    out = []
    for t in sorted(tools):
        try:
            tool_to_reference(sweep, t)
        except InputError:
            continue
        out.append(t)
    return out


def calibration_from_pivot_recording(path, *, tool: str = "Needle", max_rms_mm: Optional[float] = None) -> Tuple[NeedleCalibration, object]:
    """Pivot-calibrate ``tool`` from a recorded sequence; returns (NeedleCalibration, PivotResult).

    Raises InputError when the recording does not pivot or the RMS error
    exceeds ``max_rms_mm`` (default :data:`pivot_calibration.MAX_RMS_MM`).
    """
    from registration.io.sequence_io import load_sweep

    from .pivot_calibration import MAX_RMS_MM, pivot_calibrate_recording
    sweep = load_sweep(path)
    mats, ok = tool_to_reference(sweep, tool)
    result = pivot_calibrate_recording(np.where(ok[:, None, None], mats, np.eye(4)), ok, source=str(path))
    limit = MAX_RMS_MM if max_rms_mm is None else max_rms_mm
    if result.rms_mm > limit:
        raise InputError(f"pivot calibration RMS error {result.rms_mm:.2f} mm is above {limit:g} mm",
                         path=path, fix="record the pivoting again, keeping the tip still in the divot")
    cal = NeedleCalibration.from_tip_to_tool(result.tip_to_marker(), tool=tool, source=str(path),
                                             error_mm=result.rms_mm)
    return cal, result
