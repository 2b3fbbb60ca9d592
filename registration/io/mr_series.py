"""The MR series of a DICOM folder, from headers only: sequence, timing, weighting, phase, 4D check.

An MR study holds many series (localisers, T2, diffusion, T1 before and after
contrast at several phases): :func:`list_mr_series` lists them with what a
person chooses by, and :func:`pick_mr_series` returns the one to load. The
listing itself (files found under any name, grouped by SeriesInstanceUID,
sorted along the slice normal) is :func:`registration.io.dicom_series.list_dicom_series`;
this module adds, from the first header of each series, the MR fields:

* ``sequence_name`` (SequenceName, else ScanningSequence/SequenceVariant),
  ``echo_time_ms``, ``repetition_time_ms``, ``inversion_time_ms``,
  ``flip_angle_deg``, ``field_strength_t``;
* ``weighting``: 'T1', 'T2', 'PD', 'FLAIR', 'DWI', 'ADC' or 'unknown', from the
  description, ImageType, b-values, then TR/TE/TI (a heuristic, labelled as such:
  T1 when TR < 800 ms and TE < 30 ms; T2 when TR > 1500 ms and TE > 60 ms;
  PD when TR > 1500 ms and TE < 40 ms; FLAIR when also TI > 1500 ms);
* ``mr_phase``: 'pre-contrast', 'arterial', 'portal venous', 'transitional',
  'hepatobiliary', 'contrast, phase unknown' or 'unknown', from description
  keywords, then the time after the injection (gadoxetate, a hepatobiliary agent,
  reaches the hepatobiliary phase about 20 min after injection, with 10 min the
  earliest accepted; docs/mri.md);
* ``images_per_position``: more than one image at a slice position means a 4D
  series (diffusion b-values or directions, dynamic time points, several echoes):
  it is listed but cannot be loaded as one volume (``unusable`` says why).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from registration.spatial.errors import InputError

from .contrast_phase import _phase_from_injection
from .dicom_header import _read_header, _text
from .dicom_series import list_dicom_series, pick_series
from .series_info import SeriesInfo

#: Slices closer than this (mm) along the normal are at the same position (several images there).
SAME_POSITION_MM = 0.01
#: Hepatobiliary phase of a hepatobiliary agent: at least this long after injection (s); 20 min usual.
HEPATOBILIARY_AFTER_S = 600.0
#: Agents taken up by hepatocytes (hepatobiliary phase), lower-case substrings of ContrastBolusAgent.
HEPATOBILIARY_AGENTS = ("gadoxet", "primovist", "eovist", "gd-eob", "eob", "multihance", "gadobenate")
_NO_AGENT = {"none", "no", "nil", "n/a", "na", "0"}

_WEIGHT_KEYWORDS = (  # on the lower-case SeriesDescription, in this order
    ("ADC", (r"\badc\b", r"apparent diff")),
    ("DWI", (r"\bdwi\b", r"diff", r"\btrace\b", r"\bep2d_diff", r"\bb\d{2,4}\b")),
    ("FLAIR", (r"flair",)),
    ("T2", (r"\bt2", r"haste", r"\bssfse\b", r"\bfse\b", r"\btse\b")),
    ("T1", (r"\bt1", r"vibe", r"lava", r"thrive", r"\bdixon\b", r"\bfl3d\b", r"mprage", r"\bspgr\b")),
    ("PD", (r"\bpd\b", r"proton density")),
)
_PHASE_KEYWORDS = (
    ("hepatobiliary", (r"\bhbp\b", r"hepatobil", r"\b1[05] ?min", r"\b20 ?min", r"\bhb\b")),
    ("pre-contrast", (r"\bpre\b", r"precontrast", r"pre[- ]contrast", r"\bnative?\b", r"unenhanced",
                      r"\bplain\b", r"\bnon[- ]?con")),
    ("arterial", (r"arter", r"\bart\b", r"\bhat\b")),
    ("portal venous", (r"portal", r"\bpv\b", r"venous", r"\bpvp\b")),
    ("transitional", (r"transit", r"\b[2-5] ?min", r"\bequilib", r"\bdelay", r"\blate\b")),
)
_DWI_SEQUENCE = re.compile(r"ep_b\d+|\*ep_b|diff", re.IGNORECASE)


@dataclass
class MRSeriesInfo:
    """One DICOM series with its MR fields (times in ms, angles in degrees, field in tesla).

    ``series`` is the generic listing entry (files sorted along the slice normal,
    size and spacing ``(i, j, k)`` mm). ``unusable`` is empty for a series that loads
    as one 3D volume, else why it does not (a 4D series: DWI, dynamic, multi-echo)."""
    series: SeriesInfo
    sequence_name: str = ""
    echo_time_ms: Optional[float] = None
    repetition_time_ms: Optional[float] = None
    inversion_time_ms: Optional[float] = None
    flip_angle_deg: Optional[float] = None
    field_strength_t: Optional[float] = None
    image_type: List[str] = field(default_factory=list)
    b_value: Optional[float] = None
    weighting: str = "unknown"
    weighting_reason: str = ""
    mr_phase: str = "unknown"
    mr_phase_reason: str = ""
    images_per_position: int = 1
    n_positions: int = 0
    unusable: str = ""

    @property
    def series_uid(self) -> str:
        return self.series.series_uid

    def as_dict(self) -> dict:
        """Plain JSON-ready fields for listings (no files)."""
        d = self.series.as_dict()
        d.update(sequence_name=self.sequence_name, echo_time_ms=self.echo_time_ms,
                 repetition_time_ms=self.repetition_time_ms, inversion_time_ms=self.inversion_time_ms,
                 flip_angle_deg=self.flip_angle_deg, field_strength_t=self.field_strength_t,
                 image_type=list(self.image_type), b_value=self.b_value, weighting=self.weighting,
                 weighting_reason=self.weighting_reason, mr_phase=self.mr_phase,
                 mr_phase_reason=self.mr_phase_reason, images_per_position=self.images_per_position,
                 n_positions=self.n_positions, unusable=self.unusable)
        return d

    def summary(self) -> str:
        """One line for listings and error messages."""
        s = self.series
        te = "" if self.echo_time_ms is None else f" TE {self.echo_time_ms:g}"
        tr = "" if self.repetition_time_ms is None else f" TR {self.repetition_time_ms:g}"
        bad = f" [not loadable: {self.unusable}]" if self.unusable else ""
        return (f"{s.series_uid} '{s.series_description}' {s.modality} {s.size[0]}x{s.size[1]}x"
                f"{self.n_positions or s.size[2]} {self.sequence_name or '-'}{tr}{te} ms, "
                f"{self.weighting}, phase: {self.mr_phase}{bad}")


def list_mr_series(folder, *, progress=None) -> List[MRSeriesInfo]:
    """Every image series of a DICOM folder with its MR fields (headers only), earliest first.

    Non-MR series are listed too (their MR fields stay empty): the caller decides.
    InputError for a missing or empty folder, or one without DICOM images."""
    series = list_dicom_series(folder, progress=progress)
    out = [_mr_info(s) for s in series]
    _assign_mr_phases(out)
    return out


def pick_mr_series(series: List[MRSeriesInfo], folder: str, series_uid: Optional[str]) -> MRSeriesInfo:
    """The series to load: ``series_uid``, else the only loadable MR series. InputError listing
    the series (with their sequences and phases) when the choice is missing or not loadable."""
    if series_uid is None:
        mr = [s for s in series if s.series.modality in ("MR", "") and not s.unusable]
        if len(mr) == 1:
            return mr[0]
        if not mr and series:
            bad = [s for s in series if s.unusable]
            if bad and len(bad) == len(series):
                raise InputError("no series loads as one 3D MR volume: " + "; ".join(s.summary() for s in series),
                                 path=folder, fix="export an anatomical 3D series (e.g. the T1 hepatobiliary phase)")
    chosen = pick_series([s.series for s in series], folder, series_uid,
                         several_fix="choose one by its series UID (--mr-series UID); for liver metastases "
                                     "the T1 hepatobiliary phase is usually the one",
                         what=" (the MR)")
    info = next(s for s in series if s.series is chosen)
    if info.unusable:
        raise InputError(f"series {info.series_uid} is {info.unusable}", path=folder,
                         fix="choose an anatomical 3D series (T1 or T2), not a diffusion, dynamic or "
                             "multi-echo series")
    return info


# ----------------------------------------------------------------------------- one series
def _number(ds, keyword: str) -> Optional[float]:
    try:
        v = ds.get(keyword, None)
        if v is None or str(v).strip() == "":
            return None
        if hasattr(v, "__len__") and not isinstance(v, (str, bytes)):
            v = v[0]
        x = float(v)
        return x if np.isfinite(x) else None
    except (TypeError, ValueError, IndexError):
        return None


def _mr_info(s: SeriesInfo) -> MRSeriesInfo:
    info = MRSeriesInfo(s)
    normal = np.cross(np.asarray(s.orientation[:3], float), np.asarray(s.orientation[3:], float))
    normal /= np.linalg.norm(normal) or 1.0
    along = np.sort(np.asarray(s.positions, float) @ normal)
    distinct = 1 + int(np.sum(np.diff(along) > SAME_POSITION_MM)) if along.size else 0
    info.n_positions = distinct
    info.images_per_position = int(round(len(along) / max(distinct, 1)))
    ds = _read_header(s.files[0])
    if ds is not None:
        try:
            _read_mr_fields(info, ds)
        except Exception:  # an odd optional MR field must not hide the series from the listing
            pass
    _guess_weighting(info)
    if len(along) > distinct:
        kind = "diffusion (DWI)" if info.weighting in ("DWI", "ADC") else "4D (dynamic or multi-echo)"
        info.unusable = (f"a {kind} series: {len(along)} images at {distinct} slice positions "
                         f"({len(along) / max(distinct, 1):.1f} per position)")
    return info


def _read_mr_fields(info: MRSeriesInfo, ds) -> None:
    info.sequence_name = _text(ds, "SequenceName") or "/".join(
        x for x in (_text(ds, "ScanningSequence"), _text(ds, "SequenceVariant")) if x)
    info.echo_time_ms = _number(ds, "EchoTime")
    info.repetition_time_ms = _number(ds, "RepetitionTime")
    info.inversion_time_ms = _number(ds, "InversionTime")
    info.flip_angle_deg = _number(ds, "FlipAngle")
    info.field_strength_t = _number(ds, "MagneticFieldStrength")
    it = ds.get("ImageType", None)
    info.image_type = [] if it is None else [str(v) for v in (it if not isinstance(it, str) else it.split("\\"))]
    info.b_value = _number(ds, "DiffusionBValue")


def _guess_weighting(info: MRSeriesInfo) -> None:
    desc = info.series.series_description.lower()
    types = " ".join(info.image_type).upper()
    if "ADC" in types.split():
        info.weighting, info.weighting_reason = "ADC", "ImageType ADC"
        return
    if "DIFFUSION" in types or info.b_value is not None or _DWI_SEQUENCE.search(info.sequence_name or ""):
        info.weighting, info.weighting_reason = "DWI", "diffusion b-value / ImageType / sequence name"
        return
    for weighting, patterns in _WEIGHT_KEYWORDS:
        if any(re.search(p, desc) for p in patterns):
            info.weighting, info.weighting_reason = weighting, f"series description '{info.series.series_description}'"
            return
    tr, te, ti = info.repetition_time_ms, info.echo_time_ms, info.inversion_time_ms
    if tr is None or te is None:
        return
    reason = f"TR {tr:g} ms, TE {te:g} ms (heuristic)"
    if tr < 800 and te < 30:
        info.weighting = "T1"
    elif tr > 1500 and te > 60:
        info.weighting = "FLAIR" if ti is not None and ti > 1500 else "T2"
    elif tr > 1500 and te < 40:
        info.weighting = "PD"
    if info.weighting != "unknown":
        info.weighting_reason = reason


def _assign_mr_phases(series: List[MRSeriesInfo]) -> None:
    """MR contrast phase: description keywords, then the time after injection (agent-aware)."""
    for info in series:
        s = info.series
        desc = s.series_description.lower()
        for phase, patterns in _PHASE_KEYWORDS:
            if any(re.search(p, desc) for p in patterns):
                info.mr_phase, info.mr_phase_reason = phase, f"series description '{s.series_description}'"
                break
        else:
            _phase_from_agent(info)


def _phase_from_agent(info: MRSeriesInfo) -> None:
    s = info.series
    agent = (s.contrast_agent or "").strip().lower()
    if s.contrast_agent is not None and agent in _NO_AGENT:
        info.mr_phase, info.mr_phase_reason = "pre-contrast", f"ContrastBolusAgent '{s.contrast_agent}'"
        return
    if not agent and s.time_from_injection_s is None:
        return
    t = s.time_from_injection_s
    hepatobiliary = any(a in agent for a in HEPATOBILIARY_AGENTS)
    info.mr_phase = "contrast, phase unknown"
    info.mr_phase_reason = f"ContrastBolusAgent '{s.contrast_agent}'" if agent else "ContrastBolusStartTime"
    if t is None:
        return
    if hepatobiliary and t >= HEPATOBILIARY_AFTER_S:
        info.mr_phase = "hepatobiliary"
    else:
        phase = _phase_from_injection(t)
        if phase == "delayed":
            phase = "transitional" if hepatobiliary else "delayed"
        info.mr_phase = phase or info.mr_phase
    info.mr_phase_reason += f"; {t:.0f} s after the injection (ContrastBolusStartTime)"
