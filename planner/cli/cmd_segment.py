"""``ctus segment``: anatomy and clicked lesions of a CT, as a label map the planner reads.

    ctus segment --ct CT [--arterial CT2] [--lesions SEEDS.json] [--lesion NAME=X,Y,Z ...]
                 [--totalsegmentator PATH] --out DIR [--force]

Writes DIR/labels.nrrd on the CT's own grid with DIR/label_names.json
({name: value}; also as the sidecar labels.names.json), DIR/labels.seg.nrrd
(Slicer segmentation: names and colours) and DIR/segmentation.json (what was
found: structures with volume and source, every lesion's diameter, volume,
mean HU and contrast, warnings, timings, ``"reviewed": false``).

The anatomy comes from the automatic segmentation; with ``--totalsegmentator``
(its output folder or multi-label file) its structures, mapped to the standard
names, replace the automatic ones of the same name. Every seeded lesion is
grown from its click (CT LPS mm) inside the liver and keeps the name it was
given (values 21, 22, ... in the order given, SEEDS.json first). SEEDS.json is
``{"lesions": [{"name": "lesion_1", "point": [x, y, z]}]}``. Progress goes to
stderr. Bad input exits 2 with one line naming the file and the fix, checked
before the long work where possible; DIR is written whole or not at all.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from registration.spatial.errors import InputError

DOCUMENT_VERSION = 1


def add_parser(sub):
    p = sub.add_parser("segment", help="segment the anatomy and clicked lesions of a CT into a label map",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--ct", required=True, help="portal-venous CT: DICOM folder or image file")
    p.add_argument("--arterial", metavar="CT2", help="arterial-phase CT of the same exam (hyper-enhancing lesions)")
    p.add_argument("--lesions", metavar="SEEDS.json",
                   help='{"lesions": [{"name": "lesion_1", "point": [x, y, z]}]} in CT LPS mm')
    p.add_argument("--lesion", metavar="NAME=X,Y,Z", action="append", default=[],
                   help="one clicked lesion (CT LPS mm); repeat for more")
    p.add_argument("--totalsegmentator", metavar="PATH",
                   help="TotalSegmentator output (folder of masks or multi-label .nii.gz) used as anatomy")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (written whole or not at all)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    return p


class Progress:
    """``progress(fraction, message)``: a line '<prefix>: [t] message' on stderr per new message."""

    def __init__(self, prefix: str = "ctus segment"):
        self.prefix = prefix
        self.last = None
        self.t0 = time.perf_counter()

    def __call__(self, *args) -> bool:
        message = str(args[-1]) if args else ""
        if message and message != self.last:
            print(f"{self.prefix}: [{time.perf_counter() - self.t0:6.1f} s] {message}", file=sys.stderr,
                  flush=True)
            self.last = message
        return True


def read_seeds_args(seeds_path, clicks) -> list:
    """The seeds of ``--lesions SEEDS.json`` then of every ``--lesion NAME=X,Y,Z``; names unique."""
    from planner.segmentation.lesion_seeds_file import duplicate_names, parse_lesion_arg, read_seeds
    seeds = read_seeds(seeds_path) if seeds_path else []
    seeds += [parse_lesion_arg(text) for text in clicks]
    duplicate = duplicate_names(seeds)
    if duplicate:
        raise InputError(f"lesion name(s) {', '.join(duplicate)} given more than once", path=seeds_path,
                         fix="give every lesion its own name")
    return seeds


def load_arterial(path, ct, progress):
    """The arterial CT on the portal CT's grid (same exam, same scanner frame: resampled by
    physical position, linear, no registration)."""
    import SimpleITK as sitk

    from registration.io.ct_io import load_ct
    from registration.spatial.volume import Volume
    progress(0.0, "loading the arterial CT")
    arterial = load_ct(path)
    if not arterial.same_grid(ct):
        img = sitk.Resample(arterial.to_sitk(), ct.to_sitk(), sitk.Transform(), sitk.sitkLinear, -1000.0)
        arterial = Volume.from_sitk(img, arterial.metadata)
    return arterial


def _document(ct_path, arterial_path, ts_path, ct, labels, sources, lesions, warnings, timings) -> dict:
    from registration.spatial.lesions import structure_table
    rows = structure_table(labels)
    value = {name: v for name, v in labels.names.items()}
    return {
        "version": DOCUMENT_VERSION, "reviewed": False,
        "ct": os.path.abspath(ct_path), "arterial": os.path.abspath(arterial_path) if arterial_path else None,
        "totalsegmentator": os.path.abspath(ts_path) if ts_path else None,
        "grid": {"size_ijk": list(ct.shape_ijk), "spacing_mm": [float(s) for s in ct.spacing],
                 "origin_lps": [float(o) for o in ct.origin]},
        "structures": [{"name": r["name"], "value": r["value"], "source": sources[r["name"]],
                        "volume_ml": round(r["volume_ml"], 3), "n_voxels": r["n_voxels"]} for r in rows],
        "lesions": [dict(les.summary(), value=value[les.name]) for les in lesions],
        "warnings": warnings, "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "files": {"labels": "labels.nrrd", "names": "label_names.json", "slicer": "labels.seg.nrrd"},
    }


def _write_folder(out: str, force: bool, write) -> None:
    """``write(tmp_dir)`` into a fresh folder beside ``out``, then swapped in by renames."""
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="." + os.path.basename(out) + ".", dir=parent)
    old = None
    try:
        write(tmp)
        if os.path.exists(out):
            if not force:
                raise InputError("already exists", path=out, fix="pass --force or choose another --out")
            old = tmp + ".old"
            os.rename(out, old)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old and os.path.exists(old) and not os.path.exists(out):
            os.rename(old, out)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_segmentation(out: str, ct, case, *, ct_path, arterial_path=None, totalsegmentator=None,
                       force: bool = False) -> dict:
    """Write ``case`` (a :class:`~planner.segmentation.auto_labels.SegmentedCase`) as the folder
    ``out`` (labels.nrrd, label_names.json, labels.seg.nrrd, segmentation.json), whole or not at
    all; returns the segmentation.json document."""
    from registration.io.labelmap_io import write_labels
    from registration.io.label_names import save_names_json
    from registration.io.seg_nrrd_write import write_seg_nrrd
    from registration.spatial.atomic_io import atomic_write_text

    labels = case.labels
    document = _document(ct_path, arterial_path, totalsegmentator, ct, labels, case.sources, case.lesions,
                         case.warnings, case.timings_s)

    def write(folder):
        write_labels(labels, os.path.join(folder, "labels.nrrd"))
        save_names_json(labels.names, os.path.join(folder, "label_names.json"))
        write_seg_nrrd(labels, os.path.join(folder, "labels.seg.nrrd"))
        atomic_write_text(os.path.join(folder, "segmentation.json"), json.dumps(document, indent=2) + "\n")
    _write_folder(out, force, write)
    return document


def check_out_folder(out: str, force: bool) -> None:
    """InputError when ``out`` exists (without ``force``) or is not a folder."""
    if os.path.exists(out) and not force:
        raise InputError("already exists", path=out, fix="pass --force to replace it or choose another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError("exists and is not a folder", path=out, fix="choose another --out")


def print_lesions(lesions) -> None:
    """One line per grown lesion on stdout: kind, phase, size, mean HU and contrast."""
    for les in lesions:
        row = les.summary()
        print(f"{row['name']}: {row['kind']} ({row['phase']}), {row['diameter_mm']} mm, {row['volume_ml']} ml, "
              f"mean {row['mean_hu']} HU, contrast {row['contrast_hu']:+} HU")


def run(args) -> int:
    from planner.segmentation.auto_labels import segment_case
    from registration.io.ct_io import load_ct

    out = os.path.abspath(args.out)
    check_out_folder(out, args.force)
    for path, what in ((args.ct, "--ct"), (args.arterial, "--arterial")):
        if path and not os.path.exists(path):
            raise InputError("not found", path=path, fix=f"give {what} as a DICOM folder or an image file")
    if args.totalsegmentator and not os.path.exists(args.totalsegmentator):
        raise InputError("not found", path=args.totalsegmentator,
                         fix="give TotalSegmentator's output folder or its multi-label .nii.gz")
    seeds = read_seeds_args(args.lesions, args.lesion)
    progress = Progress()
    t = time.perf_counter()
    progress(0.0, "loading the CT")
    ct = load_ct(args.ct)
    arterial = load_arterial(args.arterial, ct, progress) if args.arterial else None
    load_s = time.perf_counter() - t
    case = segment_case(ct, seeds, arterial=arterial, totalsegmentator=args.totalsegmentator, progress=progress)
    case.timings_s = {"load_s": load_s, **case.timings_s}
    progress(1.0, f"writing {out}")
    write_segmentation(out, ct, case, ct_path=args.ct, arterial_path=args.arterial,
                       totalsegmentator=args.totalsegmentator, force=args.force)
    print_lesions(case.lesions)
    for w in case.warnings:
        print(f"warning: {w}")
    print(f"wrote {out} ({len(case.labels.names)} structures)")
    sys.stdout.flush()
    return 0
