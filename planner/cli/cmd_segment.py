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

from registration.spatial.errors import CancelledError, InputError, ProjectError

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


class _Progress:
    """``progress(fraction, message)``: a line 'ctus segment: [t] message' on stderr per new message."""

    def __init__(self):
        self.last = None
        self.t0 = time.perf_counter()

    def __call__(self, *args) -> bool:
        message = str(args[-1]) if args else ""
        if message and message != self.last:
            print(f"ctus segment: [{time.perf_counter() - self.t0:6.1f} s] {message}", file=sys.stderr,
                  flush=True)
            self.last = message
        return True


def _seeds(args) -> list:
    from planner.segmentation.lesion_seeds_file import duplicate_names, parse_lesion_arg, read_seeds
    seeds = read_seeds(args.lesions) if args.lesions else []
    seeds += [parse_lesion_arg(text) for text in args.lesion]
    duplicate = duplicate_names(seeds)
    if duplicate:
        raise InputError(f"lesion name(s) {', '.join(duplicate)} given more than once", path=args.lesions,
                         fix="give every lesion its own name")
    return seeds


def _load_arterial(path, ct, progress):
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


def _anatomy(ct, arterial, ts_path, progress, timings, warnings):
    """(automatic AnatomySegmentation or None, imported TotalSegmentator LabelMap or None)."""
    from planner.segmentation.pipeline import segment_anatomy
    imported = None
    if ts_path:
        from planner.segmentation.totalsegmentator_names import to_standard_names
        from registration.io.totalsegmentator import load_totalsegmentator
        t = time.perf_counter()
        progress(0.0, "reading the TotalSegmentator output")
        imported, _ = to_standard_names(load_totalsegmentator(ts_path, reference=ct, progress=progress))
        warnings += [f"TotalSegmentator: {w}" for w in imported.metadata.get("warnings", [])]
        timings["totalsegmentator_s"] = time.perf_counter() - t
    t = time.perf_counter()
    try:
        result = segment_anatomy(ct, arterial=arterial, progress=progress, path=ct.metadata.get("source"))
    except CancelledError:
        raise
    except ProjectError as exc:               # InputError included: a CT the automatic method refuses
        if imported is None:
            raise
        warnings.append(f"automatic anatomy not available ({exc}); the TotalSegmentator structures are used "
                        "alone")
        return None, imported
    timings["anatomy_s"] = time.perf_counter() - t
    prefix = "automatic anatomy: " if imported is not None else ""
    warnings += [prefix + w for w in result.warnings]
    return result, imported


def _grow(ct, arterial, anatomy, imported, seeds, progress, warnings):
    """Every seeded lesion, grown inside TotalSegmentator's liver when given, else inside the
    automatic liver region (the liver with its vessels and lesions)."""
    from planner.segmentation.lesion_grow import grow_lesion
    liver = bone = None
    if anatomy is not None:
        liver = anatomy.liver_region
        bone = anatomy.labels.array == anatomy.names["bone"] if "bone" in anatomy.names else None
    if imported is not None:
        if "liver" in imported.names:
            liver = imported.array == imported.names["liver"]
        if "bone" in imported.names:
            bone = imported.array == imported.names["bone"]
    if seeds and (liver is None or not liver.any()):
        raise InputError("no liver was found, so no lesion can be grown", path=ct.metadata.get("source"),
                         fix="check the CT covers the liver, or give --totalsegmentator with a liver")
    lesions = []
    for seed in seeds:
        progress(0.0, f"growing {seed.name} from ({', '.join(f'{v:.1f}' for v in seed.point_lps)})")
        if seed.warning():
            warnings.append(seed.warning())
        try:
            lesions.append(grow_lesion(ct, seed.point_lps, liver, name=seed.name, arterial=arterial, bone=bone))
        except InputError as exc:
            raise InputError(str(exc), path=seed.path) from None
        warnings += lesions[-1].warnings
    return lesions


def _document(args, ct, labels, sources, lesions, warnings, timings) -> dict:
    from registration.spatial.lesions import structure_table
    rows = structure_table(labels)
    value = {name: v for name, v in labels.names.items()}
    return {
        "version": DOCUMENT_VERSION, "reviewed": False,
        "ct": os.path.abspath(args.ct), "arterial": os.path.abspath(args.arterial) if args.arterial else None,
        "totalsegmentator": os.path.abspath(args.totalsegmentator) if args.totalsegmentator else None,
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


def run(args) -> int:
    from planner.segmentation.lesion_labels import compose_labels
    from planner.segmentation.lesion_seeds_file import check_seeds_on_ct
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import write_labels
    from registration.io.label_names import save_names_json
    from registration.io.seg_nrrd_write import write_seg_nrrd
    from registration.spatial.atomic_io import atomic_write_text

    out = os.path.abspath(args.out)
    if os.path.exists(out) and not args.force:
        raise InputError("already exists", path=out, fix="pass --force to replace it or choose another --out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError("exists and is not a folder", path=out, fix="choose another --out")
    for path, what in ((args.ct, "--ct"), (args.arterial, "--arterial")):
        if path and not os.path.exists(path):
            raise InputError("not found", path=path, fix=f"give {what} as a DICOM folder or an image file")
    if args.totalsegmentator and not os.path.exists(args.totalsegmentator):
        raise InputError("not found", path=args.totalsegmentator,
                         fix="give TotalSegmentator's output folder or its multi-label .nii.gz")
    seeds = _seeds(args)
    progress, timings, warnings = _Progress(), {}, []
    t = time.perf_counter()
    progress(0.0, "loading the CT")
    ct = load_ct(args.ct)
    arterial = _load_arterial(args.arterial, ct, progress) if args.arterial else None
    timings["load_s"] = time.perf_counter() - t
    check_seeds_on_ct(ct, seeds)
    anatomy, imported = _anatomy(ct, arterial, args.totalsegmentator, progress, timings, warnings)
    t = time.perf_counter()
    lesions = _grow(ct, arterial, anatomy, imported, seeds, progress, warnings)
    timings["lesions_s"] = time.perf_counter() - t
    labels, sources, overlap = compose_labels(None if anatomy is None else anatomy.labels, lesions,
                                              imported=imported, grid=ct)
    warnings += overlap
    document = _document(args, ct, labels, sources, lesions, warnings, timings)

    def write(folder):
        write_labels(labels, os.path.join(folder, "labels.nrrd"))
        save_names_json(labels.names, os.path.join(folder, "label_names.json"))
        write_seg_nrrd(labels, os.path.join(folder, "labels.seg.nrrd"))
        atomic_write_text(os.path.join(folder, "segmentation.json"), json.dumps(document, indent=2) + "\n")
    progress(1.0, f"writing {out}")
    _write_folder(out, args.force, write)
    for row in document["lesions"]:
        print(f"{row['name']}: {row['kind']} ({row['phase']}), {row['diameter_mm']} mm, {row['volume_ml']} ml, "
              f"mean {row['mean_hu']} HU, contrast {row['contrast_hu']:+} HU")
    for w in warnings:
        print(f"warning: {w}")
    print(f"wrote {out} ({len(labels.names)} structures)")
    sys.stdout.flush()
    return 0
