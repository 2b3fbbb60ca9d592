"""``ctus plan --mr MR --mr-to-ct MR_TO_CT.json --mr-lesions SEEDS.json|MR_LABELS``: MR lesions in the CT plan.

Options and the two calls :mod:`planner.cli.cmd_plan` makes: :func:`add_options`
(parser), :func:`prepare` (before planning: the label map with the MR lesions
added and the registration RESULT with their MR -> CT error) and :func:`finish`
(after: the plan marks them "seen on MR"). The work is
:mod:`planner.anatomy.mr_lesions`.
"""
from __future__ import annotations

import os


def add_options(p) -> None:
    """The MR options of ``ctus plan``."""
    p.add_argument("--mr", help="MR (DICOM folder or 3D image) showing lesions the CT may miss (docs/mri.md)")
    p.add_argument("--mr-series", metavar="UID", help="the MR series of a DICOM folder")
    p.add_argument("--mr-to-ct", metavar="MR_TO_CT.json", help="'ctus align' result for --mr")
    p.add_argument("--mr-lesions", metavar="SEEDS.json|LABELS",
                   help='clicks on the MR {"lesions": [{"name", "point": MR LPS mm}]} or an MR label map')
    p.add_argument("--mr-label-names", metavar="N", help="names JSON for an MR label map given as --mr-lesions")


def prepare(args, ct, labels, registration):
    """(labels, registration, import or None): the MR lesions added when --mr-lesions is given."""
    from registration.spatial.errors import InputError

    given = [a for a in ("mr", "mr_to_ct", "mr_lesions") if getattr(args, a, None)]
    if not given:
        return labels, registration, None
    if len(given) < 3:
        raise InputError("--mr, --mr-to-ct and --mr-lesions go together",
                         fix="give the MR, its 'ctus align' result and the MR lesions (clicks or labels)")
    from planner.anatomy.mr_lesions import import_mr_lesions, read_mr_to_ct_doc, read_seeds, with_mr_error
    from registration.io.labelmap_io import load_labels
    from registration.io.mr_io import load_mr

    doc = read_mr_to_ct_doc(args.mr_to_ct)
    mr = load_mr(args.mr, args.mr_series)
    seeds = polarity = mr_labels = None
    if os.fspath(args.mr_lesions).lower().endswith(".json") and not args.mr_label_names:
        seeds, polarity = read_seeds(args.mr_lesions)
    else:
        mr_labels = load_labels(args.mr_lesions, args.mr_label_names, reference=mr)
    imp = import_mr_lesions(mr, doc["mr_to_ct"], ct, labels, seeds=seeds, polarity=polarity, mr_labels=mr_labels,
                            mr_to_ct_doc=doc)
    return imp.labels, with_mr_error(registration, imp), imp


def finish(result, imp) -> None:
    """Mark the MR lesions in the plan and print one line each."""
    if imp is None:
        return
    from planner.anatomy.mr_lesions import annotate_plan

    annotate_plan(result.plan, imp)
    for les in imp.lesions:
        err = "unknown" if les.mr_ct_error_mm is None else f"{les.mr_ct_error_mm:.1f} mm"
        print(f"{les.name}: seen on {' and '.join(les.seen_on)}, {les.diameter_mm:.0f} mm, MR -> CT error {err}"
              + (f" (same as {les.same_as_ct})" if les.same_as_ct else ""))
