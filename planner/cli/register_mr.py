"""``ctus register --mr MR``: the MR instead of the CT (called by :mod:`planner.cli.cmd_register`).

    ctus register --mr MR [--mr-series UID] [--n4] [--mr-focus none|liver] --sweep SWEEP [--calibration X]
                  (--init INIT.json | --landmarks PAIRS.json) --out RESULT.json
                  [--targets T.json] [--labels MR_LABELS [--label-names N]] [--mr-to-ct MR_TO_CT.json]

SWEEP may also be a 3D ultrasound volume (.nii/.nii.gz/.nrrd/.mha holding one 3D image): its
slices are the frames, its physical space the Reference frame (registration.io.us_volume).
INIT.json holds ``reference_to_mr`` (Reference mm -> MR LPS mm; a ``reference_to_ct`` key is
read as the same matrix, with a note); PAIRS.json pairs ``"mr"`` (or ``"ct"``) points with
``"reference"`` points; --targets points and --labels lesions are in MR LPS mm. RESULT.json:
:func:`registration.align.mr_us.mr_result_document` (``reference_to_mr``, uncertainty and
verdicts as for a CT; with --mr-to-ct also ``reference_to_ct``). A CT given as --mr, and an MR
given as --ct, are refused (exit 2) with the option to use.
"""
from __future__ import annotations

import json
import os

import numpy as np

from registration.spatial.atomic_io import atomic_write_text
from registration.spatial.errors import InputError
from registration.spatial.transforms import as_matrix

_FIX_INIT = 'write {"reference_to_mr": [[4 numbers] x 4]} (Reference mm -> MR LPS mm)'


def read_json_input(path, what: str):
    """Parsed JSON of an input file; InputError naming ``what`` (the option) when unreadable.
    The one JSON input reader of ``ctus register`` (CT and MR) and ``ctus align``."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError("file not found", path=path, fix=f"check the {what} path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc.__class__.__name__}: {exc})", path=path,
                         fix=f"write the {what} as JSON") from None


def read_init_mr(path) -> np.ndarray:
    """The start ``reference_to_mr`` of an INIT.json (rigid); ``reference_to_ct`` is accepted too."""
    data = read_json_input(path, "--init")
    key = next((k for k in ("reference_to_mr", "reference_to_ct") if isinstance(data, dict) and k in data), None)
    if key is None:
        raise InputError('no "reference_to_mr"', path=path, fix=_FIX_INIT)
    m = as_matrix(data[key], name=f'"{key}"', path=path)
    r = m[:3, :3]
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
        raise InputError(f'"{key}" is not a rigid transform (rotation + translation)', path=path,
                         fix="give a rigid matrix; a mirror or scaling cannot be a patient registration")
    return m


def landmarks_mr(path):
    """Landmark fit of MR points to Reference points: pairs ``{"name", "mr" (or "ct"), "reference"}``."""
    from registration.align.landmarks import register_landmarks

    data = read_json_input(path, "--landmarks")
    pairs = data.get("pairs") if isinstance(data, dict) else None
    if not isinstance(pairs, list) or not pairs:
        raise InputError('no "pairs" list', path=path,
                         fix='write {"pairs": [{"name": ..., "mr": [x,y,z], "reference": [x,y,z]}]}')
    names, fixed, ref = [], [], []
    for i, p in enumerate(pairs):
        key = "mr" if isinstance(p, dict) and "mr" in p else "ct"
        if not isinstance(p, dict) or key not in p or "reference" not in p:
            raise InputError(f'pair {i} needs "mr" and "reference" points', path=path,
                             fix="give both points of every pair (MR LPS mm, Reference mm)")
        names.append(str(p.get("name", f"pair_{i + 1}")))
        fixed.append(p[key])
        ref.append(p["reference"])
    try:
        fixed_a, ref_a = np.asarray(fixed, float), np.asarray(ref, float)
    except (TypeError, ValueError):
        raise InputError("a landmark point is not 3 numbers", path=path, fix="write [x, y, z] in mm") from None
    return register_landmarks(fixed_a, ref_a, fle_mm=data.get("fle_mm"), names=names, path=path)


def read_mr_to_ct(path) -> dict:
    """``MR_TO_CT.json`` of ``ctus align`` -> ``{"matrix", "file", "tre_mm", "verdict"}``."""
    data = read_json_input(path, "--mr-to-ct")
    if not isinstance(data, dict) or "mr_to_ct" not in data:
        raise InputError('no "mr_to_ct"', path=path, fix="give the MR_TO_CT.json written by 'ctus align'")
    return {"matrix": as_matrix(data["mr_to_ct"], name='"mr_to_ct"', path=path), "file": os.fspath(path),
            "tre_mm": data.get("tre_mm"), "verdict": data.get("verdict")}


def refuse_mr_as_ct(ct, path) -> None:
    """InputError when the volume loaded as ``--ct`` is an MR (DICOM Modality or no HU values)."""
    from registration.io.mr_intensity import modality_evidence

    modality, reason = modality_evidence(ct)
    if modality == "MR":
        raise InputError(f"this looks like an MR, not a CT ({reason})", path=path,
                         fix="give it with --mr (ctus register --mr MR ...): a CT's soft-tissue window would "
                             "be applied to MR intensities")


def run_mr(args, rep, *, read_targets, print_summary) -> int:
    """Load, register the MR to the sweep, write RESULT.json; ``rep`` reports progress on stderr;
    ``read_targets`` and ``print_summary`` are ``ctus register``'s own (one reader, one summary)."""
    from registration.align.mr_us import mr_result_document, register_mr_sweep
    from registration.align.targets import targets_from_labels
    from registration.io.labelmap_io import load_labels
    from registration.io.mr_intensity import n4_bias_correct
    from registration.io.mr_io import load_mr
    from registration.io.sequence_io import load_sweep
    from registration.io.us_volume import is_volume_file, load_us_volume_as_sweep

    out = os.fspath(args.out)
    if os.path.exists(out) and not args.force:
        raise InputError("exists already", path=out, fix="pass --force to overwrite it or choose another --out")
    if args.method != "lc2":
        raise InputError(f"--method {args.method} is not available with --mr", fix="use lc2 (the default)")
    landmark_result = landmarks_mr(args.landmarks) if args.landmarks else None
    init = landmark_result.reference_to_ct if landmark_result is not None else read_init_mr(args.init)
    targets = read_targets(args.targets) if args.targets else {}
    mr_to_ct = read_mr_to_ct(args.mr_to_ct) if args.mr_to_ct else None
    rep.stage("loading MR")
    mr = load_mr(args.mr, args.mr_series)
    if args.n4:
        rep.stage("N4 bias-field correction")
        mr, _ = n4_bias_correct(mr)
    if args.labels:
        targets.update(targets_from_labels(load_labels(args.labels, args.label_names, reference=mr)))
    rep.stage("loading sweep")
    if is_volume_file(args.sweep):    # a 3D ultrasound volume: its slices are the frames
        sweep = load_us_volume_as_sweep(args.sweep)
    else:
        sweep = load_sweep(args.sweep, calibration=args.calibration)
    rep.stage("registering (lc2 on the MR)")
    res = register_mr_sweep(mr, sweep, init, progress=rep, seed=args.seed, n_starts=max(1, int(args.starts)),
                            targets=targets, breathing=args.breathing, breath_hold=args.breath_hold,
                            focus=getattr(args, "mr_focus", "none"))
    doc = mr_result_document(res, mr_path=args.mr, sweep_path=args.sweep, calibration_path=args.calibration,
                             init_source="landmarks" if landmark_result is not None else "init",
                             init_file=args.landmarks or args.init, landmarks=landmark_result, targets=targets,
                             mr_to_ct=mr_to_ct)
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    print_summary(res, out)
    return 0
