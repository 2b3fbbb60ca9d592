"""``ctus pacs``: query a PACS, retrieve a CT series from it, send a plan's results back.

    ctus pacs find --server AET@HOST:PORT [--calling-aet AET] [--patient ID] [--accession N]
                   [--modality CT] [--study UID] [--json]
    ctus pacs get  --server AET@HOST:PORT --series UID [--study UID] --out DIR
                   [--move-port PORT [--move-bind ADDR]] [--force]
    ctus pacs send --server AET@HOST:PORT PLAN_DIR --ct CT_DIR --labels LABELS
                   [--label-names NAMES] [--series UID] [--sweep SWEEP] [--lesion NAME]
                   [--dicom-out DIR]

``get`` uses C-GET, or C-MOVE to our own storage SCP on ``--move-port`` for
PACS without C-GET (the PACS must know our AE title at this computer's
address and that port). Progress goes to stderr; network and PACS failures
exit 2 with one line saying what to fix. See docs/pacs.md.
"""
from __future__ import annotations

import json
import logging
import os
import sys

from registration.pacs.node import DEFAULT_CALLING_AET, Pacs
from registration.spatial.errors import InputError


def _common(p) -> None:
    p.add_argument("--server", required=True, metavar="AET@HOST:PORT", help="the PACS: AE title, host, DICOM port")
    p.add_argument("--calling-aet", default=DEFAULT_CALLING_AET, metavar="AET",
                   help=f"our AE title, as registered at the PACS (default {DEFAULT_CALLING_AET})")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for the PACS at each step (default 30)")


def add_parser(sub):
    p = sub.add_parser("pacs", help="find, retrieve (C-FIND, C-GET/C-MOVE) and send results to a PACS",
                       description=__doc__.split("\n\n")[0])
    ps = p.add_subparsers(dest="pacs_command", metavar="find|get|send")
    ps.required = True
    f = ps.add_parser("find", help="list studies and their series (C-FIND)")
    _common(f)
    f.add_argument("--patient", metavar="ID", help="patient ID (wildcards * and ? allowed)")
    f.add_argument("--accession", metavar="N", help="accession number")
    f.add_argument("--modality", metavar="CT", help="only studies and series of this modality")
    f.add_argument("--study", metavar="UID", help="one study by its Study Instance UID")
    f.add_argument("--json", action="store_true", help="print JSON instead of a table")
    g = ps.add_parser("get", help="retrieve one series into a new folder (C-GET or C-MOVE)")
    _common(g)
    g.add_argument("--series", required=True, metavar="UID", help="Series Instance UID (from ctus pacs find)")
    g.add_argument("--study", metavar="UID", help="its Study Instance UID (for PACS that need it)")
    g.add_argument("--out", required=True, metavar="DIR", help="folder to create with the series' files")
    g.add_argument("--move-port", type=int, metavar="PORT",
                   help="use C-MOVE to our storage SCP on this port (for PACS without C-GET)")
    g.add_argument("--move-bind", default="", metavar="ADDR",
                   help="address our storage SCP listens on (default: all)")
    g.add_argument("--force", action="store_true", help="replace --out if it exists")
    s = ps.add_parser("send", help="store a plan's report, key views, segmentation, registration in the CT's study")
    _common(s)
    s.add_argument("plan_dir", metavar="PLAN_DIR", help="folder written by ctus plan")
    s.add_argument("--ct", required=True, metavar="CT_DIR", help="the plan's CT as a DICOM folder")
    s.add_argument("--series", metavar="UID", help="the CT's series when the folder holds several "
                                                   "(default: the one recorded in plan.json)")
    s.add_argument("--labels", help="the label map the plan used, sent as DICOM SEG "
                                    "(default: PLAN_DIR/labels.nrrd, written by ctus plan)")
    s.add_argument("--label-names", metavar="NAMES", help="names JSON {name: value}")
    s.add_argument("--sweep", help="the registered sweep (adds the US key view)")
    s.add_argument("--lesion", metavar="NAME", help="key views of this lesion (default: biopsy first)")
    s.add_argument("--dicom-out", metavar="DIR", help="also write the objects as DICOM files here")
    return p


class _StderrProgress:
    """progress(fraction, message) printing a line on stderr every 10 % (and the last one)."""

    def __init__(self, what: str):
        self.what, self.shown = what, -1

    def __call__(self, fraction: float, message: str):
        step = int(fraction * 10)
        if step != self.shown or fraction >= 1.0:
            self.shown = step
            print(f"ctus pacs {self.what}: {100 * fraction:3.0f} % {message}", file=sys.stderr, flush=True)
        return True


def _pacs(args) -> Pacs:
    return Pacs.parse(args.server, calling_aet=args.calling_aet, timeout_s=args.timeout)


def run(args) -> int:
    if not getattr(args, "verbose", False):     # our one-line errors say it; pynetdicom's logs repeat it
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    return {"find": _find, "get": _get, "send": _send}[args.pacs_command](args)


def _find(args) -> int:
    from registration.pacs.query import find_studies
    pacs = _pacs(args)
    studies = find_studies(pacs, patient_id=args.patient, accession=args.accession, modality=args.modality,
                           study_uid=args.study)
    if args.json:
        print(json.dumps({"server": str(pacs), "studies": [s.as_dict() for s in studies]}, indent=1))
        return 0
    if not studies:
        print(f"no study on {pacs} matches")
    for st in studies:
        print(f"study {st.study_uid}  {st.date} {st.time}  patient {'/'.join(st.patient_ids)} ({st.patient_name})"
              f"  accession {st.accession or '-'}  '{st.description}'  {','.join(st.modalities)}")
        for w in st.warnings:
            print(f"  WARNING: {w}")
        for se in st.series:
            n = "?" if se.n_instances is None else str(se.n_instances)
            print(f"  series {se.series_number if se.series_number is not None else '-':>4}  {se.modality:<3} "
                  f"{se.series_uid}  {n} images  {se.date} {se.time}  '{se.description}'")
    return 0


def _get(args) -> int:
    from registration.pacs.retrieve import retrieve_series
    pacs = _pacs(args)
    if args.move_port is not None and not 1 <= args.move_port <= 65535:
        raise InputError(f"--move-port {args.move_port} is not a TCP port", fix="give 1..65535")
    result = retrieve_series(pacs, args.series, args.out, study_uid=args.study, move_port=args.move_port,
                             move_bind=args.move_bind, force=args.force, progress=_StderrProgress("get"))
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"retrieved {result.n_instances} instances of series {result.series_uid} by {result.method} "
          f"into {result.folder}")
    return 0


def _send(args) -> int:
    from planner.export.pacs_results import build_plan_results, check_dataset, send_results
    from registration.spatial.atomic_io import atomic_write_bytes
    pacs = _pacs(args)
    if args.dicom_out and os.path.isdir(args.dicom_out) and os.listdir(args.dicom_out):
        raise InputError("already exists and is not empty", path=args.dicom_out, fix="give a new --dicom-out folder")
    from planner.export.plan_files import plan_labels_path
    results = build_plan_results(args.plan_dir, args.ct, plan_labels_path(args.plan_dir, args.labels),
                                 label_names=args.label_names,
                                 series_uid=args.series, sweep_path=args.sweep, lesion=args.lesion,
                                 progress=_StderrProgress("send"))
    print(f"study {results.study_uid}: {len(results.datasets)} objects to send")
    for line in results.series:
        print(f"  series {line}")
    for note in results.notes:
        print(f"  note: {note}")
    if args.dicom_out:
        os.makedirs(args.dicom_out, exist_ok=True)
        for ds in results.datasets:
            atomic_write_bytes(os.path.join(args.dicom_out, f"{int(ds.SeriesNumber)}_{int(ds.InstanceNumber):03d}.dcm"),
                               check_dataset(ds))
        print(f"wrote {len(results.datasets)} DICOM files into {args.dicom_out}")
    report = send_results(pacs, results, progress=_StderrProgress("send"))
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"stored {report.stored} instances on {pacs} in study {results.study_uid}")
    for number, (sent, listed) in sorted(report.listed.items()):
        print(f"  series {number}: sent {sent}, PACS lists {'?' if listed is None else listed}")
    return 0
