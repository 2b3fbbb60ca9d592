"""C-STORE: send DICOM files or datasets to a PACS, every status checked.

Before the association opens, every item is checked to carry a SOP Class
UID, a SOP Instance UID, a Study and a Series Instance UID: a PACS files
instances by these UIDs, and anonymised files whose UIDs were emptied (the
shared ``abdomen-20slice`` CT) cannot be stored. They still open from a
folder. The presentation contexts are each item's own (SOP class, transfer
syntax), plus the other uncompressed syntax for uncompressed items, so
nothing is transcoded on our side.

A failure status stops the sending and raises PacsError saying how many
instances were stored before it: DICOM has no "undo", so callers build and
check everything first (see ``ctus pacs send``) and send deterministic UIDs,
so that sending again completes a partial send instead of duplicating it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID
from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

from registration.spatial.errors import InputError

from .association import associate, status_text
from .node import Pacs, PacsError, ProgressFn, report

Item = Union[str, "os.PathLike[str]", Dataset]
_UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian)
_KEYS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass
class StoreResult:
    stored: List[str] = field(default_factory=list)        # SOP Instance UIDs, in sending order
    warnings: List[str] = field(default_factory=list)


def _describe(item: Item) -> Tuple[str, str, str]:
    """(label for messages, SOP class UID, transfer syntax UID); InputError when a UID is missing."""
    if isinstance(item, Dataset):
        ds, label = item, f"{item.get('Modality', '?')} {item.get('SOPInstanceUID', '(no UID)')}"
        ts = str(getattr(getattr(item, "file_meta", None), "TransferSyntaxUID", "") or ExplicitVRLittleEndian)
    else:
        label = os.fspath(item)
        try:
            ds = pydicom.dcmread(label, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types on foreign bytes
            raise InputError(f"not a readable DICOM file ({type(exc).__name__})", path=label,
                             fix="give DICOM files only") from None
        ts = str(ds.file_meta.get("TransferSyntaxUID", "") or ImplicitVRLittleEndian)
    empty = [k for k in _KEYS if not str(ds.get(k, "") or "").strip()]
    if empty:
        raise InputError(f"has no {', '.join(empty)} (emptied by anonymisation?); a PACS files every "
                         "instance by its Study, Series and SOP Instance UIDs, so it cannot be stored",
                         path=label, fix="give files with their UIDs (the file still opens from a folder "
                                         "in ctus and ctus-gui)")
    return label, str(ds.SOPClassUID), ts


def _contexts(described) -> List[Tuple[str, List[str]]]:
    pairs = {}
    for _, cls, ts in described:
        syntaxes = pairs.setdefault(cls, [])
        for t in ([ts] + [u for u in _UNCOMPRESSED if u != ts] if ts in _UNCOMPRESSED else [ts]):
            if t not in syntaxes:
                syntaxes.append(t)
    flat = [(cls, [ts]) for cls, tss in pairs.items() for ts in tss]
    return flat if len(flat) <= 128 else [(cls, tss) for cls, tss in pairs.items()][:128]


def store(pacs: Pacs, items: Sequence[Item], *, progress: Optional[ProgressFn] = None) -> StoreResult:
    """C-STORE every item (file path or pydicom Dataset) in one association, in order.

    Raises InputError before connecting when an item lacks a UID, PacsError on
    a refused association or a failure status (saying how many were stored),
    CancelledError when ``progress`` returns False.
    """
    described = [_describe(it) for it in items]
    if not described:
        raise InputError("nothing to send", fix="give at least one DICOM file or object")
    result = StoreResult()
    with associate(pacs, _contexts(described)) as assoc:
        accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
        refused = sorted({cls for _, cls, _ in described} - accepted)
        if refused:
            raise PacsError("does not accept " + ", ".join(UID(c).name for c in refused) + "; nothing was sent",
                            path=str(pacs), fix="ask the PACS administrator to accept these SOP classes")
        for n, (item, (label, cls, _)) in enumerate(zip(items, described)):
            report(progress, n / len(items), f"sending {n + 1}/{len(items)}", "PACS store")
            status = assoc.send_c_store(item if isinstance(item, Dataset) else os.fspath(item))
            if not status or "Status" not in status:
                raise PacsError(f"no C-STORE answer for {label} within {pacs.timeout_s:g} s or the association "
                                f"was aborted; {len(result.stored)} of {len(items)} stored before",
                                path=str(pacs), fix="send again (already stored instances are the same)")
            code = int(status.Status)
            if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:
                raise PacsError(f"refused {label} ({status_text(code, STORAGE_SERVICE_CLASS_STATUS)}); "
                                f"{len(result.stored)} of {len(items)} stored before", path=str(pacs),
                                fix="check the PACS log, then send again")
            if code != 0x0000:
                result.warnings.append(f"{label}: {status_text(code, STORAGE_SERVICE_CLASS_STATUS)}")
            result.stored.append(item.SOPInstanceUID if isinstance(item, Dataset) else label)
    report(progress, 1.0, f"{len(result.stored)} instances stored", "PACS store")
    return result


__all__ = ["store", "StoreResult"]
