"""C-FIND (Study Root): studies, their series, and the instances of one series.

:func:`find_studies` asks at STUDY level (patient ID, accession number,
modality in study), then for each study at SERIES level; a series' slice
count is the PACS's NumberOfSeriesRelatedInstances, or, when the PACS leaves
it out, the number of matches at IMAGE level (``count_source`` says which).
A Study Instance UID that comes back under two patient IDs (the PACS holds
instances of two patients in one study) is kept once with a warning naming
both IDs: retrieving or filing into it is refused elsewhere.

Identifiers are plain strings as the PACS sent them; dates DICOM DA
(``YYYYMMDD``), times TM.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from pydicom.dataset import Dataset
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND_MODEL
from pynetdicom.status import QR_FIND_SERVICE_CLASS_STATUS

from .association import associate, status_text
from .node import Pacs, PacsError, ProgressFn, report

_TS = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]     # explicit, implicit VR little endian


@dataclass
class SeriesEntry:
    """One series as the PACS lists it; ``n_instances`` None when it could not say."""

    series_uid: str
    study_uid: str
    modality: str
    series_number: Optional[int]
    description: str
    date: str
    time: str
    n_instances: Optional[int]
    count_source: str            # 'announced' (NumberOfSeriesRelatedInstances) or 'counted' (IMAGE level)


@dataclass
class StudyEntry:
    """One study with its series; ``patient_ids`` has more than one entry only for a broken study."""

    study_uid: str
    patient_ids: List[str]
    patient_name: str
    birth_date: str
    accession: str
    date: str
    time: str
    description: str
    modalities: List[str]
    series: List[SeriesEntry] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class InstanceEntry:
    sop_uid: str
    sop_class_uid: str
    instance_number: Optional[int]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, None)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str) -> Optional[int]:
    try:
        text = _text(ds, keyword)
        return int(float(text)) if text else None
    except ValueError:
        return None


def c_find(assoc, query: Dataset, pacs: Pacs) -> List[Dataset]:
    """All matches of one C-FIND (Study Root); PacsError on a failure status or a lost association."""
    out: List[Dataset] = []
    for status, identifier in assoc.send_c_find(query, FIND_MODEL):
        if not status or "Status" not in status:
            raise PacsError(f"no C-FIND answer within {pacs.timeout_s:g} s or the association was aborted",
                            path=str(pacs), fix="try again; check the PACS log")
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            if identifier is not None:
                out.append(identifier)
        elif code == 0x0000:
            break
        else:
            raise PacsError(f"C-FIND {query.QueryRetrieveLevel} failed ({status_text(code, QR_FIND_SERVICE_CLASS_STATUS)})",
                            path=str(pacs), fix="check that the PACS allows C-FIND for our AE title "
                                                f"'{pacs.calling_aet}'")
    return out


def _query(level: str, **keys) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, "" if value is None else value)
    return ds


def series_of_study(assoc, pacs: Pacs, study_uid: str, *, series_uid: Optional[str] = None,
                    modality: Optional[str] = None) -> List[SeriesEntry]:
    """SERIES-level matches in one study (optionally one series or one modality)."""
    rows = c_find(assoc, _query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                                Modality=modality, SeriesNumber=None, SeriesDescription=None,
                                SeriesDate=None, SeriesTime=None, NumberOfSeriesRelatedInstances=None), pacs)
    out, seen = [], set()
    for ds in rows:
        uid = _text(ds, "SeriesInstanceUID")
        if not uid or uid in seen:        # one series listed per patient ID of a broken study
            continue
        seen.add(uid)
        n, source = _int(ds, "NumberOfSeriesRelatedInstances"), "announced"
        if n is None:
            n, source = len(instances_of_series(assoc, pacs, study_uid, uid)), "counted"
        out.append(SeriesEntry(uid, study_uid, _text(ds, "Modality"), _int(ds, "SeriesNumber"),
                               _text(ds, "SeriesDescription"), _text(ds, "SeriesDate"),
                               _text(ds, "SeriesTime"), n, source))
    out.sort(key=lambda s: (s.series_number is None, s.series_number or 0, s.series_uid))
    return out


def instances_of_series(assoc, pacs: Pacs, study_uid: str, series_uid: str) -> List[InstanceEntry]:
    """IMAGE-level matches of one series (SOP Instance UID, SOP Class UID, Instance Number)."""
    rows = c_find(assoc, _query("IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid,
                                SOPInstanceUID=None, SOPClassUID=None, InstanceNumber=None), pacs)
    found: Dict[str, InstanceEntry] = {}
    for ds in rows:
        uid = _text(ds, "SOPInstanceUID")
        if uid:
            found[uid] = InstanceEntry(uid, _text(ds, "SOPClassUID"), _int(ds, "InstanceNumber"))
    return list(found.values())


def _merge_studies(rows: List[Dataset]) -> List[StudyEntry]:
    studies: Dict[str, StudyEntry] = {}
    for ds in rows:
        uid = _text(ds, "StudyInstanceUID")
        if not uid:
            continue
        pid = _text(ds, "PatientID")
        mods = [m for m in _text(ds, "ModalitiesInStudy").split("\\") if m]
        if uid not in studies:
            studies[uid] = StudyEntry(uid, [pid], _text(ds, "PatientName"), _text(ds, "PatientBirthDate"),
                                      _text(ds, "AccessionNumber"), _text(ds, "StudyDate"),
                                      _text(ds, "StudyTime"), _text(ds, "StudyDescription"), mods)
            continue
        st = studies[uid]
        if pid not in st.patient_ids:
            st.patient_ids.append(pid)
        st.modalities = sorted(set(st.modalities) | set(mods))
    for st in studies.values():
        if len(st.patient_ids) > 1:
            st.warnings.append(f"study {st.study_uid} is listed under {len(st.patient_ids)} patient IDs "
                               f"({', '.join(st.patient_ids)}): its instances belong to different patients")
    return sorted(studies.values(), key=lambda s: (s.date, s.time, s.study_uid), reverse=True)


def find_studies(pacs: Pacs, *, patient_id: Optional[str] = None, accession: Optional[str] = None,
                 modality: Optional[str] = None, study_uid: Optional[str] = None,
                 progress: Optional[ProgressFn] = None) -> List[StudyEntry]:
    """Studies matching the keys (DICOM wildcards ``*``/``?`` allowed), newest first, with their series.

    ``modality`` filters studies (ModalitiesInStudy) and their series (Modality).
    ``progress(fraction, message)`` returning False cancels (CancelledError).
    """
    with associate(pacs, [(FIND_MODEL, _TS)], need=[FIND_MODEL]) as assoc:
        report(progress, 0.0, "querying studies", "PACS query")
        rows = c_find(assoc, _query("STUDY", StudyInstanceUID=study_uid, PatientID=patient_id,
                                    PatientName=None, PatientBirthDate=None, AccessionNumber=accession,
                                    StudyDate=None, StudyTime=None, StudyDescription=None,
                                    ModalitiesInStudy=modality), pacs)
        studies = _merge_studies(rows)
        for n, st in enumerate(studies):
            report(progress, (n + 0.5) / max(1, len(studies)), f"querying series of study {n + 1}/{len(studies)}",
                   "PACS query")
            st.series = series_of_study(assoc, pacs, st.study_uid, modality=modality)
    report(progress, 1.0, f"{len(studies)} studies found", "PACS query")
    return studies


def find_series(pacs: Pacs, series_uid: str, *, study_uid: Optional[str] = None):
    """(StudyEntry with this one series, its IMAGE-level instances); PacsError when the PACS has no such series."""
    with associate(pacs, [(FIND_MODEL, _TS)], need=[FIND_MODEL]) as assoc:
        rows = c_find(assoc, _query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid), pacs)
        study_uids = sorted({_text(ds, "StudyInstanceUID") for ds in rows} - {""})
        if not study_uids:
            raise PacsError(f"has no series {series_uid}", path=str(pacs),
                            fix="list the series with 'ctus pacs find' and copy its Series Instance UID")
        if len(study_uids) > 1:
            raise PacsError(f"series {series_uid} is listed in {len(study_uids)} studies "
                            f"({', '.join(study_uids)})", path=str(pacs),
                            fix="give --study with the Study Instance UID to retrieve from")
        studies = _merge_studies(c_find(assoc, _query(
            "STUDY", StudyInstanceUID=study_uids[0], PatientID=None, PatientName=None, PatientBirthDate=None,
            AccessionNumber=None, StudyDate=None, StudyTime=None, StudyDescription=None,
            ModalitiesInStudy=None), pacs))
        if not studies:
            raise PacsError(f"lists series {series_uid} but not its study {study_uids[0]}", path=str(pacs),
                            fix="check the PACS database")
        study = studies[0]
        study.series = series_of_study(assoc, pacs, study.study_uid, series_uid=series_uid)
        instances = instances_of_series(assoc, pacs, study.study_uid, series_uid)
    return study, instances
