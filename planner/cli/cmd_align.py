"""``ctus align``: register an MR to the CT (Mattes MI, rigid then affine; docs/mri.md).

    ctus align --fixed CT --moving MR --out MR_TO_CT.json [--tfm [PATH]]
               [--fixed-labels LABELS [--label-names N]] [--targets T.json]
               [--init header|centres] [--init-matrix M.json] [--rigid] [--n4]
               [--ct-series UID] [--mr-series UID] [--json-progress] [--force]

MR_TO_CT.json holds ``mr_to_ct`` (4x4 row-major, MR LPS mm -> CT LPS mm) and
``ct_to_mr``, the stages, the error estimate per target (the CT's lesions from
--fixed-labels, --targets points in CT LPS mm, or points of the focus region)
with its verdict, and ``tre_mm``; ``--tfm`` also writes the ITK transform
(``ct_to_mr``, the resampling direction: Slicer lays the MR on the CT with it)
beside it, or at PATH. --fixed-labels with a ``liver`` label focuses the fit on
the liver (what the lesions move with). Bad input exits 2 (a CT given as the MR
or the reverse, a 2D/4D/diffusion MR, volumes that do not overlap under the
header start) and writes nothing.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError

RESULT_VERSION = 1


def add_parser(sub):
    p = sub.add_parser("align", help="register an MR to the CT (mutual information, rigid then affine)",
                       description=__doc__)
    p.add_argument("--fixed", required=True, metavar="CT", help="the CT: DICOM folder or image file")
    p.add_argument("--moving", required=True, metavar="MR", help="the MR: DICOM folder or 3D image file")
    p.add_argument("--out", required=True, metavar="MR_TO_CT.json", help="result (written atomically)")
    p.add_argument("--tfm", nargs="?", const=True, metavar="PATH",
                   help="also write the ITK .tfm (ct_to_mr: resampling direction) beside --out, or at PATH")
    p.add_argument("--fixed-labels", metavar="LABELS", help="the CT's label map: its liver focuses the fit, "
                                                           "its lesions are the error targets")
    p.add_argument("--label-names", metavar="N", help="names JSON for --fixed-labels")
    p.add_argument("--targets", metavar="T.json", help='{"targets": [{"name", "point": CT LPS mm}]}')
    p.add_argument("--init", choices=["header", "centres"], default="header",
                   help="start: the files' own coordinates (default) or the bodies' centres + a search "
                        "along the table (two scanners' frames)")
    p.add_argument("--init-matrix", metavar="M.json", help='start from {"mr_to_ct": 4x4}')
    p.add_argument("--rigid", action="store_true", help="stop after the rigid stages (no affine)")
    p.add_argument("--n4", action="store_true", help="N4 bias-field correction of the MR first")
    p.add_argument("--ct-series", metavar="UID", help="the CT series of a DICOM folder")
    p.add_argument("--mr-series", metavar="UID", help="the MR series of a DICOM folder")
    p.add_argument("--json-progress", action="store_true", help="progress as JSON lines on stderr")
    p.add_argument("--force", action="store_true", help="overwrite --out")
    return p


def _tfm_path(args, out: str):
    if not args.tfm:
        return None
    if args.tfm is True:
        stem = out[:-5] if out.lower().endswith(".json") else out
        return stem + ".tfm"
    return os.fspath(args.tfm)


def _progress(json_lines: bool):
    last = [-1.0]

    def report(fraction, message):
        if json_lines:
            print(json.dumps({"progress": round(float(fraction), 4), "message": message}), file=sys.stderr, flush=True)
        elif fraction - last[0] >= 0.05 or fraction >= 1.0:
            print(f"align: {100 * fraction:3.0f} % {message}", file=sys.stderr, flush=True)
            last[0] = fraction
        return True
    return report


def run(args) -> int:
    from registration.align.mr_ct import register_mr_to_ct, stage_table
    from registration.align.mr_ct_error import assess_mr_ct
    from registration.align.targets import targets_from_labels
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    from registration.io.mr_intensity import n4_bias_correct
    from registration.io.mr_io import load_mr
    from registration.spatial.transforms import as_matrix, write_tfm

    from .cmd_register import read_targets
    from .register_mr import read_json_input, refuse_mr_as_ct

    out = os.fspath(args.out)
    if os.path.exists(out) and not args.force:
        raise InputError("exists already", path=out, fix="pass --force to overwrite it or choose another --out")
    if os.path.isdir(out):
        raise InputError("is a folder", path=out, fix="give a file name such as mr_to_ct.json")
    if args.label_names and not args.fixed_labels:
        raise InputError("--label-names needs --fixed-labels", fix="pass the CT's label map with --fixed-labels")
    tfm = _tfm_path(args, out)
    init = args.init
    if args.init_matrix:
        data = read_json_input(args.init_matrix, "--init-matrix")
        if not isinstance(data, dict) or "mr_to_ct" not in data:
            raise InputError('no "mr_to_ct"', path=args.init_matrix, fix='write {"mr_to_ct": [[4 numbers] x 4]}')
        init = as_matrix(data["mr_to_ct"], name='"mr_to_ct"', path=args.init_matrix)
    targets = read_targets(args.targets) if args.targets else {}
    report = _progress(args.json_progress)
    report(0.0, "loading CT")
    ct = load_ct(args.fixed, args.ct_series)
    refuse_mr_as_ct(ct, args.fixed)
    labels = None
    if args.fixed_labels:
        labels = load_labels(args.fixed_labels, args.label_names, reference=ct)
        targets = {**targets_from_labels(labels), **targets}
    report(0.0, "loading MR")
    mr = load_mr(args.moving, args.mr_series)
    if args.n4:
        mr, _ = n4_bias_correct(mr)
    res = register_mr_to_ct(ct, mr, ct_labels=labels, init=init, affine=not args.rigid, progress=report,
                            source=args.moving)
    report(0.92, "estimating the error at the targets")
    err = assess_mr_ct(res, targets)
    doc = {"version": RESULT_VERSION, "fixed": os.fspath(args.fixed), "moving": os.fspath(args.moving),
           "frames": "mr_to_ct: MR LPS mm -> CT LPS mm; ct_to_mr its inverse (the .tfm's resampling direction)",
           "mr_to_ct": np.asarray(res.mr_to_ct).tolist(), "ct_to_mr": np.asarray(res.ct_to_mr).tolist(),
           "model": "rigid" if args.rigid else "affine", "rigid_mr_to_ct": np.asarray(res.rigid_mr_to_ct).tolist(),
           "method": "Mattes mutual information: rigid (body) -> rigid (focus) -> affine (focus)",
           "focus": res.focus, "init": res.init, "metric_initial": res.metric_initial,
           "metric_final": res.metric_final, "stages": stage_table(res), "wall_time_s": round(res.wall_time_s, 2),
           "tre_mm": err.tre_mm, "verdict": err.verdict, "reasons": err.reasons,
           "targets": [t.to_dict() for t in err.targets], "tfm": tfm}
    if tfm:
        write_tfm(tfm, res.ct_to_mr, center=np.zeros(3))
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    report(1.0, "done")
    print(f"MR -> CT ({doc['model']}, focus {res.focus}) in {res.wall_time_s:.1f} s; verdict {err.verdict}: "
          + "; ".join(err.reasons))
    for t in err.targets:
        est = "unknown" if t.tre_mm is None else f"{t.tre_mm:.1f} mm (95 % within {t.tre_95_mm:.1f} mm)"
        print(f"  {t.name}: estimated error {est}, {t.verdict}")
    print(f"wrote {out}" + (f" and {tfm}" if tfm else ""))
    return 0
