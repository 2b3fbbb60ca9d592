"""The receiving end of a retrieval: C-STORE requests written into a temporary folder.

:class:`Receiver` is the ``EVT_C_STORE`` handler of both retrieval ways (the
C-GET association itself, or our storage SCP during a C-MOVE). Each instance
is written exactly as it arrived (``event.encoded_dataset()``: file meta plus
the dataset bytes, no re-encoding) as ``<SOP Instance UID>.dcm``. Instances
of another series are refused (status 0xC000) and remembered so the
retrieval fails with their count. It runs on pynetdicom's network thread:
``progress`` is called from there, and its False answer only sets
``cancelled`` (the caller aborts the association).

:func:`storage_contexts` lists the (SOP class, transfer syntax) pairs we
accept: uncompressed, deflated, JPEG, JPEG-LS, JPEG 2000 and RLE, all of
which the CT reader (GDCM) decodes.
"""
from __future__ import annotations

import os
import threading
from typing import Dict, List, Optional, Sequence, Set, Tuple

from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless,
                         JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless)

from .node import ProgressFn

ACCEPTED_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                     JPEGLosslessSV1, JPEGLossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSLossless,
                     JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless]
# Used when the PACS does not say which SOP classes a series holds (image-level SOPClassUID left out).
COMMON_IMAGE_CLASSES = ["1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1",     # CT, enhanced CT
                        "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.4.1",     # MR, enhanced MR
                        "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.1",     # SC, US
                        "1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.128",   # US multi-frame, PET
                        "1.2.840.10008.5.1.4.1.1.66.4"]                                 # SEG
_MAX_CONTEXTS = 127            # 128 per association, one kept for the retrieve model


def storage_contexts(sop_classes: Sequence[str]) -> List[Tuple[str, List[str]]]:
    """Presentation contexts to receive ``sop_classes``: one per (class, syntax) when they fit in
    one association (so the PACS can send each instance as stored), else one per class."""
    classes = sorted({c for c in sop_classes if c}) or list(COMMON_IMAGE_CLASSES)
    if len(classes) * len(ACCEPTED_SYNTAXES) <= _MAX_CONTEXTS:
        return [(c, [ts]) for c in classes for ts in ACCEPTED_SYNTAXES]
    return [(c, list(ACCEPTED_SYNTAXES)) for c in classes[:_MAX_CONTEXTS]]


class Receiver:
    """Writes instances of one series into ``folder``; counts, checks, and reports progress."""

    def __init__(self, folder: str, series_uid: str, *, expected: int,
                 progress: Optional[ProgressFn] = None, span: Tuple[float, float] = (0.05, 0.95)):
        self.folder = folder
        self.series_uid = series_uid
        self.expected = max(1, int(expected))
        self.progress = progress
        self.span = span
        self.files: Dict[str, str] = {}                 # SOP Instance UID -> path
        self.patient_ids: Set[str] = set()
        self.study_uids: Set[str] = set()
        self.foreign: List[str] = []                    # SOP UIDs of other series (refused)
        self.errors: List[str] = []
        self.cancelled = False
        self._lock = threading.Lock()

    def handle_store(self, event) -> int:
        """pynetdicom EVT_C_STORE handler: 0x0000 stored, 0xC000 refused (other series, unreadable),
        0xA700 (out of resources) on write errors and once the retrieval is cancelled."""
        if self.cancelled:
            return 0xA700
        try:
            ds = event.dataset
            sop_uid = str(ds.get("SOPInstanceUID", "")).strip()
            series = str(ds.get("SeriesInstanceUID", "")).strip()
            if series != self.series_uid or not sop_uid:
                with self._lock:
                    self.foreign.append(sop_uid or "(no SOP Instance UID)")
                return 0xC000
            path = os.path.join(self.folder, f"{sop_uid}.dcm")
            with open(path, "wb") as f:
                f.write(event.encoded_dataset(include_meta=True))
            with self._lock:
                self.files[sop_uid] = path
                self.patient_ids.add(str(ds.get("PatientID", "")).strip())
                self.study_uids.add(str(ds.get("StudyInstanceUID", "")).strip())
                n = len(self.files)
        except OSError as exc:
            with self._lock:
                self.errors.append(f"cannot write a received instance ({exc.strerror})")
            return 0xA700
        except Exception as exc:  # a malformed dataset must not kill the network thread
            with self._lock:
                self.errors.append(f"unreadable instance received ({type(exc).__name__}: {str(exc)[:80]})")
            return 0xC000
        if self.progress is not None:
            lo, hi = self.span
            try:
                if self.progress(lo + (hi - lo) * min(1.0, n / self.expected),
                                 f"received {n}/{self.expected} instances") is False:
                    self.cancelled = True
            except Exception as exc:  # the caller's callback failed: stop, report it afterwards
                self.errors.append(f"progress callback failed ({type(exc).__name__}: {exc})")
                self.cancelled = True
        return 0x0000
