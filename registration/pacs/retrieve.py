"""Retrieve one series into a folder: C-GET, or C-MOVE to our own storage SCP.

Order of work, so that nothing half-written is ever left at ``out_dir``:

1. check ``out_dir`` (absent or empty, or ``force``) before touching the network;
2. C-FIND the series: its study, patient ID(s), the instances listed at
   IMAGE level and the count announced at SERIES level; a study listed under
   two patient IDs is refused here;
3. receive into a hidden temporary folder beside ``out_dir``
   (:class:`~registration.pacs.receive.Receiver`);
4. check: final status Success, no failed sub-operations, every listed
   instance received, as many as announced, one patient ID, one study, no
   instance of another series;
5. rename the temporary folder to ``out_dir`` (same file system, so atomic);
   on any error or cancel the temporary folder is deleted.

C-MOVE needs the PACS to know our AE title with this computer's address and
``move_port``: the PACS opens a second association to our storage SCP, which
listens on ``move_bind:move_port`` only while the retrieval runs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import List, Optional

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET_MODEL
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE_MODEL
from pynetdicom.status import QR_GET_SERVICE_CLASS_STATUS, QR_MOVE_SERVICE_CLASS_STATUS

from registration.spatial.errors import CancelledError, InputError

from .association import associate, status_text
from .node import Pacs, PacsError, ProgressFn, report
from .query import find_series
from .receive import ACCEPTED_SYNTAXES, COMMON_IMAGE_CLASSES, Receiver, storage_contexts

_TS = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]


@dataclass
class RetrieveResult:
    """What arrived: the folder, how many instances, by which service."""

    folder: str
    study_uid: str
    series_uid: str
    patient_id: str
    n_instances: int
    method: str                         # 'C-GET' or 'C-MOVE'
    files: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def _check_out_dir(out_dir: str, force: bool) -> None:
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise InputError("exists and is not a folder", path=out_dir, fix="give --out a new folder")
        if os.listdir(out_dir) and not force:
            raise InputError("already exists and is not empty", path=out_dir,
                             fix="choose a new --out folder or pass --force to replace it")


def _identifier(study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    return ds


def _run(responses, receiver: Receiver, assoc, pacs: Pacs, service: str, table: dict) -> dict:
    """Consume C-GET/C-MOVE responses; returns the final sub-operation counts."""
    counts = {}
    for status, identifier in responses:
        if receiver.cancelled:
            assoc.abort()
            raise CancelledError("PACS retrieval cancelled")
        if not status or "Status" not in status:
            raise PacsError(f"no {service} answer within {pacs.timeout_s:g} s or the association was aborted",
                            path=str(pacs), fix="try again; check the PACS log")
        code = int(status.Status)
        for key in ("Remaining", "Completed", "Failed", "Warning"):
            v = status.get(f"NumberOf{key}Suboperations", None)
            if v is not None:
                counts[key] = int(v)
        if code in (0xFF00, 0xFF01):
            continue
        if code == 0xFE00:
            raise PacsError(f"{service} was cancelled by the PACS", path=str(pacs), fix="try again")
        if code not in (0x0000, 0xB000):
            fix = ("check that the PACS knows our AE title '{0}' with this computer's address and --move-port"
                   .format(pacs.calling_aet) if service == "C-MOVE" else
                   f"check that the PACS allows {service} for our AE title '{pacs.calling_aet}'")
            raise PacsError(f"{service} failed ({status_text(code, table)}); "
                            f"{counts.get('Completed', 0)} instances sent, {counts.get('Failed', 0)} failed",
                            path=str(pacs), fix=fix)
        counts["final"] = code
        break
    return counts


def _get(pacs: Pacs, study_uid: str, series_uid: str, classes: List[str], receiver: Receiver) -> dict:
    contexts = [(GET_MODEL, _TS)] + storage_contexts(classes)
    roles = [build_role(uid, scp_role=True) for uid in sorted({c for c, _ in contexts[1:]})]
    with associate(pacs, contexts, roles=roles, handlers=[(evt.EVT_C_STORE, receiver.handle_store)],
                   need=[GET_MODEL]) as assoc:
        return _run(assoc.send_c_get(_identifier(study_uid, series_uid), GET_MODEL), receiver, assoc, pacs,
                    "C-GET", QR_GET_SERVICE_CLASS_STATUS)


def _move(pacs: Pacs, study_uid: str, series_uid: str, classes: List[str], receiver: Receiver,
          move_port: int, move_bind: str) -> dict:
    scp = AE(ae_title=pacs.calling_aet)
    scp.acse_timeout = scp.dimse_timeout = scp.network_timeout = pacs.timeout_s
    for uid in sorted(set(classes) | set(COMMON_IMAGE_CLASSES)):
        scp.add_supported_context(uid, ACCEPTED_SYNTAXES)
    try:
        server = scp.start_server((move_bind, int(move_port)), block=False,
                                  evt_handlers=[(evt.EVT_C_STORE, receiver.handle_store)])
    except OSError as exc:
        raise InputError(f"cannot listen on {move_bind or '*'}:{move_port} for C-MOVE ({exc.strerror or exc})",
                         fix="choose a free --move-port (the one the PACS has for our AE title)") from None
    try:
        with associate(pacs, [(MOVE_MODEL, _TS)], need=[MOVE_MODEL]) as assoc:
            counts = _run(assoc.send_c_move(_identifier(study_uid, series_uid), pacs.calling_aet, MOVE_MODEL),
                          receiver, assoc, pacs, "C-MOVE", QR_MOVE_SERVICE_CLASS_STATUS)
        deadline = time.monotonic() + pacs.timeout_s   # let the PACS's store association finish
        while server.active_associations and time.monotonic() < deadline:
            time.sleep(0.05)
        return counts
    finally:
        server.shutdown()


def _verify(pacs: Pacs, receiver: Receiver, counts: dict, listed: set, announced: Optional[int],
            series_uid: str) -> List[str]:
    got = set(receiver.files)
    problems = list(receiver.errors)
    if receiver.foreign:
        problems.append(f"{len(receiver.foreign)} instances of another series were sent")
    if counts.get("Failed"):
        problems.append(f"the PACS reports {counts['Failed']} failed sub-operations")
    missing = listed - got
    if missing:
        problems.append(f"received {len(got)} of the {len(listed)} instances the PACS lists "
                        f"({len(missing)} missing, e.g. {sorted(missing)[0]})")
    elif announced is not None and len(got) < announced:
        problems.append(f"received {len(got)} instances, the PACS announced {announced}")
    if len(receiver.patient_ids) > 1:
        problems.append(f"the instances carry {len(receiver.patient_ids)} patient IDs "
                        f"({', '.join(sorted(receiver.patient_ids))})")
    if len(receiver.study_uids) > 1:
        problems.append(f"the instances belong to {len(receiver.study_uids)} studies")
    if not got and not problems:
        problems.append("no instance arrived")
    if problems:
        raise PacsError(f"series {series_uid}: " + "; ".join(problems) + "; nothing was written",
                        path=str(pacs), fix="retrieve again; if it repeats, check the series on the PACS")
    return [f"{len(got - listed)} instances arrived that the PACS did not list"] if got - listed else []


def _place(tmp: str, out_dir: str) -> None:
    """Put the complete temporary folder at ``out_dir`` (an old folder there is replaced)."""
    old = None
    if os.path.exists(out_dir):
        old = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-", dir=os.path.dirname(out_dir))
        os.rmdir(old)
        os.rename(out_dir, old)
    os.rename(tmp, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def retrieve_series(pacs: Pacs, series_uid: str, out_dir, *, study_uid: Optional[str] = None,
                    move_port: Optional[int] = None, move_bind: str = "", force: bool = False,
                    progress: Optional[ProgressFn] = None) -> RetrieveResult:
    """Retrieve one series into ``out_dir`` (C-GET; C-MOVE to our SCP when ``move_port`` is given).

    Raises PacsError (rejected, refused, time-out, fewer instances than
    announced, two patient IDs...), InputError (``out_dir`` exists, port in
    use) or CancelledError (``progress`` returned False); in every case
    nothing is left at ``out_dir`` and the temporary folder is removed.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    _check_out_dir(out_dir, force)
    report(progress, 0.0, f"looking for series {series_uid}", "PACS retrieval")
    study, listed = find_series(pacs, series_uid, study_uid=study_uid)
    if len(study.patient_ids) > 1:
        raise PacsError(study.warnings[0] + "; nothing was retrieved", path=str(pacs),
                        fix="have the PACS administrator correct the study before using it")
    series = study.series[0] if study.series else None
    announced = series.n_instances if series is not None and series.count_source == "announced" else None
    expected = max(len(listed), announced or 0)
    report(progress, 0.05, f"retrieving {expected} instances", "PACS retrieval")
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-", dir=parent)
    try:
        receiver = Receiver(tmp, series_uid, expected=expected, progress=progress)
        classes = [i.sop_class_uid for i in listed]
        if move_port:
            counts = _move(pacs, study.study_uid, series_uid, classes, receiver, move_port, move_bind)
        else:
            counts = _get(pacs, study.study_uid, series_uid, classes, receiver)
        if receiver.cancelled:
            raise CancelledError("PACS retrieval cancelled")
        warnings = _verify(pacs, receiver, counts, {i.sop_uid for i in listed}, announced, series_uid)
        if counts.get("final") == 0xB000 or counts.get("Warning"):
            warnings.append(f"the PACS reported warnings ({counts.get('Warning', 0)} sub-operations)")
        _place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(os.path.join(out_dir, os.path.basename(p)) for p in receiver.files.values())
    report(progress, 1.0, f"{len(files)} instances retrieved", "PACS retrieval")
    return RetrieveResult(out_dir, study.study_uid, series_uid, next(iter(receiver.patient_ids), ""),
                          len(files), "C-MOVE" if move_port else "C-GET", files, warnings)
