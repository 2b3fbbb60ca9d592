"""A plan folder -> the DICOM objects ``ctus pacs send`` files into the CT's study, all built first.

Inputs: ``PLAN_DIR`` (plan.json, plan.pdf, reference_to_ct.tfm when
registered), the CT's DICOM folder (plan.json does not keep paths: it is
de-identified; it keeps the CT's Series Instance UID, which picks and checks
the series), the label map the plan used, and optionally the registered
sweep (for the US key view). Output, in sending order:

=====  ===========================  ==========================================
series SOP class                    content
=====  ===========================  ==========================================
901    Encapsulated PDF Storage     plan.pdf, bytes unchanged
902    Secondary Capture Image      key views (axial at target, along needle,
                                    registered US frame)
903    Segmentation Storage         the label map (binary SEG, one segment per label)
904    Spatial Registration         reference_to_ct (only when registered)
=====  ===========================  ==========================================

Every object is built and checked (pydicom writes it with validation
raising on bad values and reads it back) before anything is sent. UIDs
(series, instances, the tracker's Frame of Reference) are derived from a
hash of the inputs, so sending the same plan again stores the same
instances: a PACS keeps one copy, and an interrupted send is completed by
sending again.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import pydicom
from pydicom import config as dicom_config
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import validate_value

from registration.io.ct_io import load_ct
from registration.io.labelmap_io import load_labels
from registration.pacs.node import ProgressFn, report
from registration.spatial.errors import InputError
from registration.spatial.transforms import as_matrix, read_tfm

from .dicom_objects import SeriesIds, encapsulated_pdf, key_view_images, spatial_registration
from .dicom_segmentation import segmentation
from .dicom_source import check_on_slices, load_ct_source
from .key_views import render_key_views

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
SERIES = {"report": (901, "ctus plan report"), "views": (902, "ctus key views"),
          "seg": (903, "ctus segmentation"), "reg": (904, "ctus registration tracker to CT")}


@dataclass
class PlanResults:
    """The objects to send (in order) and one line per series saying what it is."""

    datasets: List[Dataset]
    study_uid: str
    patient_id: str
    series: List[str] = field(default_factory=list)     # "901 Encapsulated PDF Storage: ctus plan report (1)"
    notes: List[str] = field(default_factory=list)      # what is not sent, and why


def _read(path: str, what: str, fix: str) -> bytes:
    if not os.path.isfile(path):
        raise InputError(f"{what} not found", path=path, fix=fix)
    with open(path, "rb") as f:
        return f.read()


def _plan(plan_dir: str) -> tuple:
    raw = _read(os.path.join(plan_dir, "plan.json"), "plan.json", "give the folder written by ctus plan")
    try:
        plan = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"not readable JSON ({exc})", path=os.path.join(plan_dir, "plan.json"),
                         fix="plan again with ctus plan") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("lesions"), list):
        raise InputError("is not a ctus plan (no lesions)", path=os.path.join(plan_dir, "plan.json"),
                         fix="give the folder written by ctus plan")
    pdf = _read(os.path.join(plan_dir, "plan.pdf"), "plan.pdf",
                "plan again without --no-pdf: the report is what the PACS files")
    return plan, raw, pdf


def _registration(plan_dir: str, plan: dict) -> Optional[np.ndarray]:
    """reference_to_ct from the .tfm (full precision), checked against plan.json's (6 decimals)."""
    tfm = os.path.join(plan_dir, "reference_to_ct.tfm")
    in_json = (plan.get("registration") or {}).get("reference_to_ct")
    if not os.path.isfile(tfm):
        return None if in_json is None else as_matrix(in_json, "reference_to_ct", os.path.join(plan_dir, "plan.json"))
    m = read_tfm(tfm)
    if in_json is not None and not np.allclose(m, np.asarray(in_json, float), atol=1e-3):
        raise InputError("differs from plan.json's registration", path=tfm,
                         fix="the plan folder mixes two plans: plan again")
    return m


def check_dataset(ds: Dataset) -> bytes:
    """The object as a DICOM file, every element's value checked against its VR (pydicom's
    validation raising: lengths, characters, UID form), written and read back once."""
    for elem in ds.iterall():
        if elem.VR not in ("SQ", "OB", "OW", "UN") and elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            for value in values:
                text = elem.VR in _TEXT_VRS and value is not None
                validate_value(elem.VR, str(value) if text else value, dicom_config.RAISE)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    back = pydicom.dcmread(io.BytesIO(buf.getvalue()))
    if back.SOPInstanceUID != ds.SOPInstanceUID:
        raise ValueError("object does not read back")
    return buf.getvalue()


def build_plan_results(plan_dir, ct_dir, labels_path, *, label_names=None, series_uid: Optional[str] = None,
                       sweep_path=None, lesion: Optional[str] = None,
                       progress: Optional[ProgressFn] = None) -> PlanResults:
    """Build and check every object; raises InputError naming the file when something does not fit.

    ``progress(fraction, message)`` returning False cancels (CancelledError); nothing is sent here.
    """
    def step(f, msg):
        report(progress, f, msg, "building the PACS objects")
    plan_dir = os.fspath(plan_dir)
    plan, raw, pdf = _plan(plan_dir)
    planned_on = (plan.get("case") or {}).get("series_uid")
    if series_uid and planned_on and series_uid != planned_on:
        raise InputError(f"--series {series_uid} is not the plan's CT ({planned_on})",
                         path=os.path.join(plan_dir, "plan.json"), fix="leave out --series or give the plan's")
    step(0.05, "reading the CT headers")
    source = load_ct_source(ct_dir, series_uid or planned_on)
    ct = load_ct(ct_dir, source.series.series_uid)
    check_on_slices(source, ct)
    src_spacing = (plan.get("ct") or {}).get("source_spacing_mm")
    if src_spacing is not None and not np.allclose(src_spacing, ct.spacing, atol=1e-3):
        raise InputError(f"the plan was made on a CT with spacing {src_spacing} mm, this one has "
                         f"{np.round(ct.spacing, 4).tolist()}", path=ct_dir,
                         fix="give --ct the CT the plan was made on")
    labels = load_labels(labels_path, label_names, reference=ct)
    reference_to_ct = _registration(plan_dir, plan)
    sweep = None
    if sweep_path is not None:
        if reference_to_ct is None:
            raise InputError("the plan has no registration, so the sweep cannot be placed on the CT",
                             path=sweep_path, fix="leave out --sweep")
        from registration.io.sequence_io import load_sweep
        sweep = load_sweep(sweep_path)
    step(0.3, "rendering key views")
    views = render_key_views(ct, labels, plan, lesion=lesion, sweep=sweep, reference_to_ct=reference_to_ct)
    h = hashlib.sha256()
    for part in (raw, pdf, source.series_uid.encode(), labels.array.tobytes(), str(lesion).encode(),
                 b"" if reference_to_ct is None else np.round(reference_to_ct, 9).tobytes(),
                 b"" if sweep is None else sweep.frames[:1].tobytes()):
        h.update(hashlib.sha256(part).digest())
    seed = h.hexdigest()

    def ids(kind: str, n: int) -> SeriesIds:
        number, desc = SERIES[kind]
        return SeriesIds(generate_uid(entropy_srcs=[seed, kind, "series"]), number,
                         [generate_uid(entropy_srcs=[seed, kind, str(k)]) for k in range(n)], desc)
    headers = source.headers
    out = PlanResults([], source.study_uid, str(headers[0].get("PatientID", "")))
    with warnings.catch_warnings():     # the CT's own patient name, copied as it is, is not ours to judge
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        _build(out, headers, pdf, views, labels, reference_to_ct, plan, ids, seed, step)
    if reference_to_ct is not None and sweep is None:
        out.notes.append("no --sweep: the registered US frame is not among the key views")
    step(0.8, "checking the objects")
    for ds in out.datasets:
        check_dataset(ds)
    for kind in ("report", "views", "seg", "reg"):
        n = sum(1 for ds in out.datasets if int(ds.SeriesNumber) == SERIES[kind][0])
        if n:
            sop = next(ds for ds in out.datasets if int(ds.SeriesNumber) == SERIES[kind][0]).SOPClassUID
            out.series.append(f"{SERIES[kind][0]} {sop.name}: {SERIES[kind][1]} ({n} instance{'s' * (n > 1)})")
    step(1.0, "objects ready")
    return out


def _build(out: PlanResults, headers, pdf, views, labels, reference_to_ct, plan, ids, seed, step) -> None:
    """The objects in sending order (report, key views, segmentation, registration)."""
    deid = bool((plan.get("case") or {}).get("deidentified", True))
    out.datasets.append(encapsulated_pdf(headers, pdf, ids("report", 1), title="CT-US liver biopsy plan",
                                         identifies_patient=not deid))
    out.datasets += key_view_images(headers, views, ids("views", len(views)))
    step(0.5, "building the segmentation")
    out.datasets.append(segmentation(headers, labels, ids("seg", 1)))
    if reference_to_ct is not None:
        metrics = (plan.get("registration") or {}).get("metrics") or {}
        out.datasets.append(spatial_registration(
            headers, reference_to_ct, ids("reg", 1), reference_frame_uid=generate_uid(entropy_srcs=[seed, "tracker"]),
            method=metrics.get("method"), comment=f"verdict {metrics['verdict']}" if metrics.get("verdict") else ""))
    else:
        out.notes.append("no registration in the plan: no Spatial Registration object")


@dataclass
class SendReport:
    """What the PACS holds afterwards: per series sent, (instances sent, instances it lists)."""

    stored: int
    listed: dict                    # series number -> (sent, listed or None when the PACS did not answer)
    warnings: List[str] = field(default_factory=list)


def send_results(pacs, results: PlanResults, *, progress=None) -> SendReport:
    """C-STORE the objects in order, then C-FIND the study to see every new series listed in full.

    ``progress(fraction, message)`` returning False cancels (CancelledError;
    what was stored stays stored: sending again completes it, same UIDs).
    """
    from registration.pacs.query import find_studies
    from registration.pacs.store import store
    done = store(pacs, results.datasets, progress=progress)
    by_series = {}
    for ds in results.datasets:
        by_series.setdefault(str(ds.SeriesInstanceUID), [int(ds.SeriesNumber), 0])[1] += 1
    report = SendReport(len(done.stored), {}, list(done.warnings))
    try:
        studies = find_studies(pacs, study_uid=results.study_uid)
        listed = {s.series_uid: s.n_instances for st in studies for s in st.series}
    except InputError as exc:       # storing worked; a PACS may refuse C-FIND to a sender
        listed = {}
        report.warnings.append(f"could not list the study afterwards ({exc})")
    for uid, (number, sent) in by_series.items():
        report.listed[number] = (sent, listed.get(uid))
        if listed and listed.get(uid) != sent:
            report.warnings.append(f"series {number}: sent {sent}, the PACS lists {listed.get(uid)}")
    return report
