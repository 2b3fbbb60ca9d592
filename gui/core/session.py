"""What the user has open and has done, as JSON (file references + edits).

A session never embeds image data: it refers to the CT, labels, sweep and
calibration files by absolute path and stores the user's state (registration
matrix and its quality, current frame, window/level, crosshair). Saving is
atomic (no half-written file); loading validates every field and raises an
InputError naming the session file and the field.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from registration.align.result_document import ResultRecord, parse_result, read_result_file
from registration.align.uncertainty import RADIUS_95_PER_RMS
from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.transforms import as_matrix

from .verdict_text import VERDICT_WORDS, mm_text

SESSION_VERSION = 1
#: How a registration's origin reads in the status bar and the data panel.
METHOD_WORDS = {"landmarks": "landmarks", "lc2": "automatic", "mi": "automatic (MI)", "file": "from file"}


@dataclass
class RegistrationState:
    """A reference_to_ct (4x4, Reference mm -> CT LPS mm) and what is known of its quality.

    ``raw`` is the RESULT document it came from or will be saved as (JSON form, with the
    per-target rows the planner reads); ``verdict`` the registration's own (good / check /
    poor, None when it has none, e.g. a landmark fit)."""
    reference_to_ct: np.ndarray
    method: str = "unknown"               # "landmarks", "lc2", "file", ...
    tre_mm: Optional[float] = None        # estimated target registration error (rms), None = unknown
    fre_mm: Optional[float] = None
    source: Optional[str] = None          # file it came from
    raw: Optional[dict] = None            # the whole RESULT dict (per-target TREs for the planner)
    verdict: Optional[str] = None

    def __post_init__(self):
        self.reference_to_ct = as_matrix(self.reference_to_ct, name="reference_to_ct", path=self.source)

    @property
    def target_name(self) -> Optional[str]:
        """The target its ``tre_mm`` is about: the GUI's chosen lesion, else (a RESULT.json read
        back) the row whose estimate it is; None when not known."""
        raw = self.raw or {}
        if raw.get("tre_target"):
            return str(raw["tre_target"])
        rows = raw.get("targets") if isinstance(raw.get("targets"), list) else []
        return next((str(r["name"]) for r in rows if isinstance(r, dict) and r.get("name") is not None
                     and r.get("tre_registration_mm") == self.tre_mm and self.tre_mm is not None), None)

    def quality_text(self) -> str:
        """One short line in plain words: where it came from, the verdict, and how far the overlay
        may be off at its target (95 % radius of the RMS ``tre_mm``, rounded up to 0.5 mm), e.g.
        "automatic (good), within ~2 mm at lesion_1", "landmarks, within ~1.5 mm at lesion_1
        (estimate)", "from file, error not estimated"."""
        source = METHOD_WORDS.get(self.method, self.method)
        head = source if not self.verdict else f"{source} ({VERDICT_WORDS.get(self.verdict, self.verdict)})"
        if self.tre_mm is None:
            return f"{head}, error not estimated"
        where = f" at {self.target_name}" if self.target_name else ""
        text = f"{head}, within {mm_text(RADIUS_95_PER_RMS * self.tre_mm)}{where}"
        return text + (" (estimate)" if self.method == "landmarks" else "")

    def to_dict(self) -> dict:
        d = dict(self.raw or {})
        d.update({"reference_to_ct": self.reference_to_ct.tolist(), "method": self.method,
                  "tre_mm": self.tre_mm, "fre_mm": self.fre_mm, "source": self.source})
        if self.verdict is not None:
            d["verdict"] = self.verdict
        return d

    @classmethod
    def from_dict(cls, d: dict, path=None) -> "RegistrationState":
        """A RESULT.json / INIT.json or a saved state (:func:`registration.align.result_document.parse_result`;
        InputError naming ``path`` and the field). Its TRE is the file's global one, else the
        largest estimate near the sweep (``ResultRecord.overall_tre_mm``)."""
        return cls.from_record(parse_result(d, path), path)

    @classmethod
    def from_record(cls, rec: ResultRecord, path=None) -> "RegistrationState":
        return cls(rec.reference_to_ct, rec.method or "file", rec.overall_tre_mm(), rec.fre_mm,
                   str(path) if path is not None else rec.source, dict(rec.document), rec.verdict)


def load_registration_file(path) -> RegistrationState:
    """RESULT.json / INIT.json -> RegistrationState (InputError on anything unusable)."""
    return RegistrationState.from_record(read_result_file(path), path)


@dataclass
class Session:
    ct_path: Optional[str] = None
    ct_series_uid: Optional[str] = None
    labels_path: Optional[str] = None
    label_names_path: Optional[str] = None
    sweep_path: Optional[str] = None
    calibration_path: Optional[str] = None
    registration: Optional[dict] = None       # RegistrationState.to_dict()
    frame_index: int = 0
    window: float = 400.0
    level: float = 40.0
    cursor_lps: Optional[list] = None
    notes: dict = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["version"] = SESSION_VERSION
        return json.dumps(d, indent=2)

    def save(self, path) -> None:
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path) -> "Session":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except OSError as exc:
            raise InputError(f"cannot read ({exc.strerror})", path=path, fix="choose a .ctus.json session file") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError("not a JSON session file", path=path, fix="choose a .ctus.json session file") from None
        if not isinstance(d, dict) or d.get("version") != SESSION_VERSION:
            raise InputError(f"not a ctus session (version {d.get('version') if isinstance(d, dict) else None!r}, "
                             f"expected {SESSION_VERSION})", path=path, fix="choose a session saved by ctus-gui")
        d.pop("version")
        known = set(cls.__dataclass_fields__)
        s = cls(**{k: v for k, v in d.items() if k in known})
        for key in ("ct_path", "labels_path", "label_names_path", "sweep_path", "calibration_path"):
            p = getattr(s, key)
            if p is not None and not Path(p).exists():
                raise InputError(f"{key} refers to a missing file {p}", path=path,
                                 fix="move the data back or open the files again and re-save the session")
        if s.registration is not None:
            RegistrationState.from_dict(s.registration, path)   # validates the matrix
        if s.cursor_lps is not None:
            c = np.asarray(s.cursor_lps, float)
            if c.shape != (3,) or not np.all(np.isfinite(c)):
                raise InputError("cursor_lps must be 3 numbers", path=path, fix="remove the field")
        return s
