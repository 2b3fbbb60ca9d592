"""One image series of a DICOM folder as found from its headers: :class:`SeriesInfo`.

Its own module so that the listing (:mod:`registration.io.dicom_series`) and the
contrast-phase hints (:mod:`registration.io.contrast_phase`) both use it without
importing each other.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np


@dataclass
class SeriesInfo:
    """One image series found in a DICOM folder (from headers, no pixels read).

    ``size`` and ``spacing`` are ``(i, j, k)`` (mm); the k spacing is the
    median distance between neighbouring slices along the slice normal.
    ``files`` are sorted by position along the normal (ascending).
    ``time_from_first_s``: acquisition time minus that of the earliest series
    in the folder (None when times are missing); ``time_from_injection_s``:
    acquisition time minus ContrastBolusStartTime. ``phase_hint`` is one of
    'non-contrast', 'arterial', 'portal venous', 'delayed',
    'contrast, phase unknown', 'unknown'; ``phase_reason`` says why.
    """

    series_uid: str
    series_description: str
    modality: str
    n_files: int
    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    contrast_agent: Optional[str]
    acquisition_time: str
    time_from_first_s: Optional[float]
    phase_hint: str
    files: List[str]
    phase_reason: str = ""
    series_number: Optional[int] = None
    time_from_injection_s: Optional[float] = None   # AcquisitionTime - ContrastBolusStartTime
    positions: np.ndarray = field(default=None, repr=False)       # (n, 3) LPS mm, sorted
    orientation: np.ndarray = field(default=None, repr=False)     # (6,) row dir, column dir
    _when: Optional[_dt.datetime] = field(default=None, repr=False)

    def as_dict(self) -> dict:
        """Plain JSON-ready fields for listings (no file list, positions or private fields)."""
        return dict(series_uid=self.series_uid, series_description=self.series_description,
                    modality=self.modality, n_files=self.n_files, size=list(self.size),
                    spacing=[float(s) for s in self.spacing], contrast_agent=self.contrast_agent,
                    acquisition_time=self.acquisition_time,
                    time_from_first_s=self.time_from_first_s, phase_hint=self.phase_hint,
                    phase_reason=self.phase_reason, series_number=self.series_number,
                    time_from_injection_s=self.time_from_injection_s)

    def summary(self) -> str:
        """One line for listings and error messages: UID, description, size, phase hint."""
        t = "" if self.time_from_first_s is None else f", t={self.time_from_first_s:+.0f} s"
        return (f"{self.series_uid} '{self.series_description}' {self.modality} "
                f"{self.size[0]}x{self.size[1]}x{self.size[2]}, phase: {self.phase_hint}{t}")
