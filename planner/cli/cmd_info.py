"""``ctus info PATH [--series UID] [--labels L [--label-names N]] [--json]``

Prints what a radiologist needs to trust the data before planning on it:
the series found (with phase hints), size, spacing, origin, direction,
orientation letters, HU range, and for a label map the structure table and
the lesion table.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import Volume

_PERCENTILE_SAMPLE_VOXELS = 2_000_000   # HU percentiles from an even subsample of about this many
_HU_PERCENTILES = (1, 99)
_ITK_LETTER = {"L": "R", "R": "L", "P": "A", "A": "P", "S": "I", "I": "S"}   # "from" vs "to" naming


def add_parser(sub):
    p = sub.add_parser("info", help="describe a CT (DICOM folder or image file) and its label map",
                       description=__doc__)
    p.add_argument("path", help="DICOM folder, or .nrrd/.nii/.nii.gz/.mha/.mhd image")
    p.add_argument("--series", metavar="UID", help="series instance UID to load when the folder has several")
    p.add_argument("--labels", metavar="L", help="label map (NRRD, NIfTI, .seg.nrrd, DICOM SEG)")
    p.add_argument("--label-names", metavar="N", help="names JSON {name: value} for --labels")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    return p


def _series_rows(path):
    from registration.io.dicom_series import list_dicom_series
    if not os.path.isdir(path):
        return []
    return list_dicom_series(path)


def describe_volume(vol: Volume) -> dict:
    arr = vol.array
    lo, hi = vol.bounds_lps()
    finite = arr[np.isfinite(arr)] if np.issubdtype(arr.dtype, np.floating) else arr
    p1, p99 = np.percentile(finite[:: max(1, finite.size // _PERCENTILE_SAMPLE_VOXELS)],
                            list(_HU_PERCENTILES))
    letters = vol.orientation_letters()
    itk = "".join(_ITK_LETTER[c] for c in letters)
    return {
        "size_ijk": list(vol.shape_ijk),
        "spacing_mm": [round(float(s), 6) for s in vol.spacing],
        "origin_lps_mm": [round(float(o), 4) for o in vol.origin],
        "direction": np.round(vol.direction, 6).tolist(),
        "orientation": letters,
        "orientation_itk": itk,
        "extent_lps_mm": {"min": np.round(lo, 2).tolist(), "max": np.round(hi, 2).tolist()},
        "field_of_view_mm": [round(float(n * s), 1) for n, s in zip(vol.shape_ijk, vol.spacing)],
        "hu_range": [float(finite.min()), float(finite.max())],
        "hu_p1_p99": [float(p1), float(p99)],
        "dtype": str(arr.dtype),
        "metadata": {k: v for k, v in vol.metadata.items() if k != "patient_id" and _jsonable(v)},
    }


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return True
    except (TypeError, ValueError):
        return False


def run(args) -> int:
    from registration.io.ct_io import load_ct
    path = args.path
    if not os.path.exists(path):
        raise InputError("path not found", path=path,
                         fix="give a DICOM folder or an image file (.nrrd, .nii, .nii.gz, .mha)")
    series = _series_rows(path)
    report = {"path": os.path.abspath(path), "series": [_series_dict(s) for s in series]}
    if len(series) > 1 and not args.series:
        # Several phases in one folder: list them and let the user pick (nothing is guessed).
        report["choose"] = "several series: describe one with --series UID"
        _emit(report, args.json)
        return 0
    ct = load_ct(path, series_uid=args.series)
    report["ct"] = describe_volume(ct)
    if args.labels:
        from registration.io.labelmap_io import load_labels
        from registration.spatial.lesions import lesion_table, structure_table
        labels = load_labels(args.labels, args.label_names, reference=ct)
        report["labels"] = {"path": os.path.abspath(args.labels),
                            "structures": structure_table(labels),
                            "lesions": lesion_table(labels, ct)}
    elif args.label_names:
        raise InputError("--label-names given without --labels", path=args.label_names,
                         fix="add --labels LABELMAP")
    _emit(report, args.json)
    return 0


def _emit(report: dict, as_json: bool) -> None:
    if as_json:
        json.dump(report, sys.stdout, indent=2, default=_to_builtin)
        sys.stdout.write("\n")
    else:
        _print_text(report)


def _to_builtin(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _series_dict(s) -> dict:
    d = s.as_dict()
    return {k: _to_builtin(v) if isinstance(v, (np.generic, np.ndarray)) else v for k, v in d.items()}


def _fmt(v, nd=2):
    return "(" + ", ".join(f"{float(x):.{nd}f}" for x in v) + ")"


def _print_text(r: dict) -> None:
    out = sys.stdout.write
    out(f"{r['path']}\n")
    if r["series"]:
        out(f"\nSeries in folder: {len(r['series'])}\n")
        out(f"  {'description':40s} {'phase hint':16s} {'t (s)':>7s} {'files':>5s}  uid\n")
        for s in r["series"]:
            t = s.get("time_from_first_s")
            t = "" if t is None else f"{t:7.0f}"
            out(f"  {str(s.get('series_description') or '-')[:40]:40s} {str(s.get('phase_hint'))[:16]:16s} "
                f"{t:>7s} {s.get('n_files', ''):>5}  {s.get('series_uid')}\n")
    if "ct" not in r:
        out(f"\n{r['choose']}\n")
        return
    c = r["ct"]
    md = c["metadata"]
    out("\nLoaded image\n")
    if md.get("series_description"):
        out(f"  series:       {md['series_description']} (phase hint: {md.get('phase_hint', 'unknown')})\n")
    out(f"  size (i,j,k): {c['size_ijk'][0]} x {c['size_ijk'][1]} x {c['size_ijk'][2]} voxels\n")
    out(f"  spacing:      {_fmt(c['spacing_mm'], 3)} mm\n")
    out(f"  field of view:{_fmt(c['field_of_view_mm'], 1)} mm\n")
    out(f"  origin (LPS): {_fmt(c['origin_lps_mm'], 2)} mm\n")
    d = np.array(c["direction"])
    out(f"  direction:    i {_fmt(d[:, 0], 3)}  j {_fmt(d[:, 1], 3)}  k {_fmt(d[:, 2], 3)}\n")
    out(f"  orientation:  {c['orientation']} (axes point to; ITK/Slicer name: {c['orientation_itk']})\n")
    out(f"  extent (LPS): {_fmt(c['extent_lps_mm']['min'], 1)} .. {_fmt(c['extent_lps_mm']['max'], 1)} mm\n")
    out(f"  HU range:     {c['hu_range'][0]:.0f} .. {c['hu_range'][1]:.0f} "
        f"(1st-99th percentile {c['hu_p1_p99'][0]:.0f} .. {c['hu_p1_p99'][1]:.0f})\n")
    for w in md.get("warnings", []) or []:
        out(f"  WARNING:      {w}\n")
    if "labels" in r:
        lab = r["labels"]
        out(f"\nLabel map {lab['path']}\n")
        out(f"  {'structure':22s} {'value':>5s} {'voxels':>9s} {'volume ml':>10s}\n")
        for s in lab["structures"]:
            derived = " (derived)" if s.get("derived") else ""
            out(f"  {s['name'][:22]:22s} {s['value']:>5} {s['n_voxels']:>9} {s['volume_ml']:>10.1f}{derived}\n")
        out(f"\nLesions: {len(lab['lesions'])}\n")
        if lab["lesions"]:
            out(f"  {'name':14s} {'centroid LPS (mm)':>28s} {'vol ml':>7s} {'eq.diam':>8s} {'max diam':>8s} "
                f"{'HU mean±sd':>12s}\n")
            for l in lab["lesions"]:
                hu = "" if l.get("mean_hu") is None else f"{l['mean_hu']:.0f}±{l['std_hu']:.0f}"
                out(f"  {l['name'][:14]:14s} {_fmt(l['centroid_lps'], 1):>28s} {l['volume_ml']:7.2f} "
                    f"{l['equivalent_diameter_mm']:7.1f}mm {l['max_diameter_mm']:7.1f}mm {hu:>12s}\n")
