"""Label maps with names: NRRD/NIfTI + names file, Slicer ``.seg.nrrd``, DICOM SEG.

All readers return a :class:`~registration.volume.LabelMap` (integer array
``[k, j, i]``, geometry ``(i, j, k)`` in LPS mm, ``names`` = {name: value}).

Names come from the file (``.seg.nrrd`` Segment<N>_Name/_LabelValue/_Layer,
DICOM SEG SegmentSequence) or from a names file:

- ``*.json``: ``{"liver": 5, "lesion_1": 7}`` (DESIGN section 6 names;
  unknown names kept). Strict: every value must occur in the image.
- ``*.txt`` (e.g. TotalSegmentator's ``label_names.txt``): lines
  ``<value> <name>``. This is a model's whole dictionary, so names whose
  value is absent from this image are left out (listed in
  ``metadata['absent_names']``).
- a dict, same rules as JSON; ``names={}`` explicitly means "no names":
  every present value is named ``label_<v>``.
- ``None``: the sidecar ``<stem>.names.json`` written by :func:`write_labels`
  is used if it exists; otherwise InputError (pass --label-names).

Values present in the image but not named are kept as ``label_<v>`` with a
warning in ``metadata['warnings']``. With ``reference`` the label map is
resampled onto the reference grid by physical position (nearest neighbour),
never by index.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
import SimpleITK as sitk

from .ct_io import read_image_checked
from .atomic_io import atomic_write_image
from .errors import InputError
from .volume import LabelMap, Volume

Names = Union[None, str, "os.PathLike[str]", Mapping[str, int]]
_FIX_NAMES = "pass --label-names NAMES.json mapping names to values, e.g. {\"liver\": 1}"


# --------------------------------------------------------------------------- names files
def _check_names(raw, path) -> Dict[str, int]:
    if not isinstance(raw, Mapping):
        raise InputError(f"names must be an object {{name: value}}, got {type(raw).__name__}",
                         path=path, fix=_FIX_NAMES)
    names: Dict[str, int] = {}
    seen: Dict[int, str] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
            raise InputError(f"'{name}' has value {value!r}; label values must be integers > 0",
                             path=path, fix="give each structure a positive integer label value")
        value = int(value)
        if value in seen:
            raise InputError(f"'{seen[value]}' and '{name}' share label value {value}", path=path,
                             fix="give each structure its own value")
        names[str(name)] = seen[value] = value
    return names


def read_names_file(path) -> Tuple[Dict[str, int], bool]:
    """Read a names JSON or ``<value> <name>`` text table -> ({name: value}, strict)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError("names file not found", path=path, fix=_FIX_NAMES)
    try:
        with open(path, "r", encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the names file ({exc})", path=path, fix=_FIX_NAMES) from None
    if path.lower().endswith(".txt"):
        raw = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"^(\d+)[\s,:=]+(\S.*)$", line)
            if not m:
                raise InputError(f"line {n} is not '<value> <name>': {line[:60]!r}", path=path,
                                 fix="write one '<value> <name>' per line")
            raw[m.group(2).strip()] = int(m.group(1))
        return _check_names(raw, path), False
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg}, line {exc.lineno})", path=path,
                         fix=_FIX_NAMES) from None
    return _check_names(raw, path), True


def save_names_json(names: Mapping[str, int], path) -> None:
    """Write {name: value} as JSON, atomically (sorted by value)."""
    from .transforms import atomic_write_text
    names = _check_names(dict(names), path)
    ordered = dict(sorted(names.items(), key=lambda kv: kv[1]))
    atomic_write_text(path, json.dumps(ordered, indent=2) + "\n")


def sidecar_names_path(path) -> str:
    """``labels.nii.gz`` -> ``labels.names.json`` (beside the image)."""
    path = os.fspath(path)
    low = path.lower()
    for suffix in (".seg.nrrd", ".nii.gz", ".nrrd", ".nhdr", ".nii", ".mha", ".mhd"):
        if low.endswith(suffix):
            return path[: -len(suffix)] + ".names.json"
    return os.path.splitext(path)[0] + ".names.json"


def _value_counts(arr: np.ndarray) -> Dict[int, int]:
    """{value: voxel count} of a non-negative integer array (bincount when values are small)."""
    if arr.size == 0:
        return {}
    if np.can_cast(arr.dtype, np.intp) and int(arr.max()) < 1 << 20:
        counts = np.bincount(arr.ravel())            # O(n), no sort, no copy for contiguous arrays
        return {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    values, counts = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _present_values(arr: np.ndarray) -> set:
    """Non-zero values present in a non-negative integer label array."""
    return {v for v in _value_counts(arr) if v != 0}


def _apply_names(lm: LabelMap, names: Dict[str, int], strict: bool, path, source) -> LabelMap:
    present = _present_values(lm.array)
    absent = {n: v for n, v in names.items() if v not in present}
    if strict and absent:
        n, v = next(iter(absent.items()))
        raise InputError(f"name '{n}' has value {v}, which does not occur in {source}"
                         + (f" (nor {len(absent) - 1} other name(s))" if len(absent) > 1 else "")
                         + f"; values present: {sorted(present)[:20]}", path=path,
                         fix="correct the value in the names file or remove the name")
    kept = {n: v for n, v in names.items() if v in present}
    warnings = list(lm.metadata.get("warnings", []))
    unnamed = sorted(present - set(kept.values()))
    for v in unnamed:
        kept[f"label_{v}"] = v
    if unnamed and names:
        warnings.append(f"values without a name kept as label_<v>: {unnamed[:20]}")
    md = dict(lm.metadata, warnings=warnings)
    if absent and not strict:
        md["absent_names"] = absent
    return LabelMap(lm.array, lm.spacing, lm.origin, lm.direction, kept, md)


# --------------------------------------------------------------------------- readers
def _read_sitk(path: str) -> sitk.Image:
    return read_image_checked(path, "label map")


def _integer_array(arr: np.ndarray, path) -> np.ndarray:
    if np.issubdtype(arr.dtype, np.integer):
        out = arr
    elif (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
          and np.all(np.mod(arr, 1) == 0) and (arr.size == 0 or np.abs(arr).max() < 2 ** 31)):
        out = arr.astype(np.int32)
    else:
        raise InputError(f"voxels are {arr.dtype} with non-integer values: not a label map",
                         path=path, fix="give an integer label image (0 = background)")
    if out.size and out.min() < 0:
        raise InputError(f"negative label value {int(out.min())}", path=path,
                         fix="label values must be >= 0 (0 = background)")
    return out


def _geometry_from_sitk(img: sitk.Image, path):
    try:
        probe = Volume(np.zeros((1, 1, 1), np.uint8), img.GetSpacing(), img.GetOrigin(),
                       np.array(img.GetDirection()).reshape(3, 3))
    except InputError as exc:
        raise InputError(str(exc), path=path, fix="fix the image header geometry") from None
    return probe.spacing, probe.origin, probe.direction


def _read_plain(path: str) -> LabelMap:
    img = _read_sitk(path)
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"expected a 3D scalar label image, got {img.GetDimension()}D with "
                         f"{img.GetNumberOfComponentsPerPixel()} component(s)", path=path,
                         fix="give one 3D label map (0 = background)")
    spacing, origin, direction = _geometry_from_sitk(img, path)
    arr = _integer_array(sitk.GetArrayFromImage(img), path)
    return LabelMap(arr, spacing, origin, direction, None, {"source": path, "warnings": []})


def _read_slicer_seg(path: str) -> LabelMap:
    """Slicer segmentation: 3D (one layer) or layers as pixel components (4D list axis)."""
    img = _read_sitk(path)
    if img.GetDimension() != 3:
        raise InputError(f"expected 3 spatial dimensions, got {img.GetDimension()}", path=path,
                         fix="save the segmentation again from Slicer")
    spacing, origin, direction = _geometry_from_sitk(img, path)
    keys = set(img.GetMetaDataKeys())
    indices = sorted({int(m.group(1)) for k in keys for m in [re.match(r"^Segment(\d+)_Name$", k)] if m})
    if not indices:
        raise InputError("no Segment<N>_Name fields in the header", path=path,
                         fix="save it from Slicer as .seg.nrrd, or give a plain label map with "
                             "--label-names")
    arr = sitk.GetArrayFromImage(img)
    if arr.ndim == 3:
        arr = arr[..., None]                     # one layer
    arr = _integer_array(arr, path)
    n_layers = arr.shape[-1]
    out = np.zeros(arr.shape[:3], np.int32)   # layers may be renumbered above their max
    names: Dict[str, int] = {}
    used: set = set()
    warnings: List[str] = []
    for n in indices:
        def field(name, default=None):
            return img.GetMetaData(f"Segment{n}_{name}").strip() if f"Segment{n}_{name}" in keys else default
        seg_name = field("Name") or f"segment_{n}"
        try:
            value = int(field("LabelValue", "1"))
            layer = int(field("Layer", str(n if n_layers > 1 else 0)))
        except ValueError:
            raise InputError(f"Segment{n} has a non-integer LabelValue or Layer", path=path,
                             fix="save the segmentation again from Slicer") from None
        if not 0 <= layer < n_layers or value <= 0:
            raise InputError(f"Segment{n} '{seg_name}': layer {layer} / value {value} do not "
                             f"match the {n_layers} layer(s) in the file", path=path,
                             fix="save the segmentation again from Slicer")
        voxels = arr[..., layer] == value
        new = value if value not in used else max(used | {value}) + 1   # layers may reuse values
        if np.any(out[voxels]):
            warnings.append(f"segment '{seg_name}' overlaps earlier segments; it wins there")
        out[voxels] = new
        used.add(new)
        name = seg_name if seg_name not in names else f"{seg_name}_{n}"
        names[name] = new
    lm = LabelMap(out, spacing, origin, direction, None,
                  {"source": path, "format": "seg.nrrd", "warnings": warnings})
    return _apply_names(lm, names, False, path, "the segmentation")


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_") or "segment"


def _read_dicom_seg(path: str, ds) -> LabelMap:
    """DICOM SEG (binary or fractional): frames placed by their ImagePositionPatient."""
    try:
        segs = {int(s.SegmentNumber): str(s.get("SegmentLabel", f"segment {s.SegmentNumber}"))
                for s in ds.SegmentSequence}
        shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
        frames = ds.PerFrameFunctionalGroupsSequence

        def group(fg, name):
            if name in fg:
                return fg[name].value[0]
            if shared is not None and name in shared:
                return shared[name].value[0]
            raise KeyError(name)
        iops = np.array([[float(v) for v in group(f, "PlaneOrientationSequence").ImageOrientationPatient]
                         for f in frames])
        iop = iops[0]
        measures = group(frames[0], "PixelMeasuresSequence")
        ps = [float(v) for v in measures.PixelSpacing]
        between = measures.get("SpacingBetweenSlices", None)
        ipp = np.array([[float(v) for v in group(f, "PlanePositionSequence").ImagePositionPatient]
                        for f in frames])
        seg_of_frame = [int(group(f, "SegmentIdentificationSequence").ReferencedSegmentNumber)
                        for f in frames]
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom/numpy raise many types on malformed SEG objects
        raise InputError(f"malformed DICOM SEG ({type(exc).__name__}: {str(exc)[:100]})", path=path,
                         fix="export the segmentation again (e.g. with dcmqi or Slicer)") from None
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.shape[0] != len(frames) or len(ps) != 2 or min(ps) <= 0:
        raise InputError(f"{pixels.shape[0]} frames of pixels for {len(frames)} frame descriptions",
                         path=path, fix="export the segmentation again")
    if iops.shape[1:] != (6,) or not np.allclose(iops, iop, atol=1e-4):
        raise InputError("frames have different orientations", path=path,
                         fix="export the segmentation on the CT's (parallel) slices")
    norms = np.linalg.norm(iop[:3]), np.linalg.norm(iop[3:])
    row, col = iop[:3] / max(norms[0], 1e-12), iop[3:] / max(norms[1], 1e-12)
    if not (min(norms) > 0.5 and np.all(np.isfinite(iop)) and abs(row @ col) <= 1e-3):
        raise InputError(f"ImageOrientationPatient {iop.tolist()} is not orthogonal", path=path,
                         fix="export the segmentation again")
    normal = np.cross(row, col)
    d = np.column_stack([row, col, normal])
    local = ipp @ d                                  # (u, v, t) per frame, mm
    t = np.unique(np.round(local[:, 2], 4))
    if between is not None and float(between) > 0:
        dz = float(between)
    elif len(t) > 1:
        dz = float(np.min(np.diff(t)))
    else:
        dz = 1.0
    lo = local.min(axis=0)
    idx = (local - lo) / np.array([ps[1], ps[0], dz])
    if np.max(np.abs(idx - np.round(idx))) > 0.05:
        raise InputError("frame positions do not lie on one voxel grid", path=path,
                         fix="export the segmentation again on the CT's grid")
    idx = np.round(idx).astype(int)
    rows, cols = pixels.shape[1:]
    out = np.zeros((idx[:, 2].max() + 1, idx[:, 1].max() + rows, idx[:, 0].max() + cols), np.uint16)
    fractional = str(ds.get("SegmentationType", "BINARY")).upper() == "FRACTIONAL"
    threshold = float(ds.get("MaximumFractionalValue", 255)) / 2 if fractional else 0
    warnings: List[str] = []
    for f, (i0, j0, k) in enumerate(idx):
        on = pixels[f] > threshold
        target = out[k, j0:j0 + rows, i0:i0 + cols]
        if np.any(target[on]):
            warnings.append(f"segments overlap in frame {f + 1}; the later segment wins")
        target[on] = seg_of_frame[f]
    names = {}
    for number, label in sorted(segs.items()):
        name = _slug(label)
        names[name if name not in names else f"{name}_{number}"] = number
    origin = d @ lo
    lm = LabelMap(out, (ps[1], ps[0], dz), origin, d, None,
                  {"source": path, "format": "dicom-seg", "warnings": warnings,
                   "segment_labels": segs, "referenced_series_uids": _referenced_series(ds)})
    return _apply_names(lm, names, False, path, "the DICOM SEG")


def _referenced_series(ds) -> List[str]:
    try:
        return [str(item.SeriesInstanceUID) for item in ds.get("ReferencedSeriesSequence", [])]
    except Exception:  # optional information: a damaged reference must not block the labels
        return []


def resample_labels_to(lm: LabelMap, reference: Volume) -> LabelMap:
    """``lm`` on ``reference``'s grid by physical position (nearest neighbour), never by index.

    Warns (in ``metadata['warnings']``) for structures that lose over half their volume.
    """
    if lm.same_grid(reference):
        return lm
    top = int(lm.array.max()) if lm.array.size else 0
    src = sitk.GetImageFromArray(lm.array.astype(np.uint16 if top < 65536 else np.int64, copy=False))
    src.SetSpacing(tuple(map(float, lm.spacing)))
    src.SetOrigin(tuple(map(float, lm.origin)))
    src.SetDirection(tuple(map(float, lm.direction.reshape(-1))))
    ref = sitk.Image([int(s) for s in reference.shape_ijk], sitk.sitkUInt8)  # geometry only
    ref.SetSpacing(tuple(map(float, reference.spacing)))
    ref.SetOrigin(tuple(map(float, reference.origin)))
    ref.SetDirection(tuple(map(float, reference.direction.reshape(-1))))
    out = sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, src.GetPixelID())
    arr = sitk.GetArrayFromImage(out)
    warnings = list(lm.metadata.get("warnings", []))
    before, after = _value_counts(lm.array), _value_counts(arr)
    for name, v in lm.names.items():
        # compare physical volumes: voxel sizes differ between the grids
        vol_before = before.get(v, 0) * np.prod(lm.spacing)
        vol_after = after.get(v, 0) * np.prod(reference.spacing)
        if vol_before > 0 and vol_after < 0.5 * vol_before:
            warnings.append(f"'{name}': {100 * (1 - vol_after / vol_before):.0f} % of its volume "
                            "lies outside the reference grid")
    md = dict(lm.metadata, warnings=warnings, resampled_to_reference=True)
    return LabelMap(arr, reference.spacing, reference.origin, reference.direction, lm.names, md)


def load_labels(path, names: Names = None, reference: Optional[Volume] = None) -> LabelMap:
    """Load a label map with names (see the module docstring for the rules).

    ``reference`` (usually the CT): when its grid differs, the labels are
    resampled onto it by physical position, nearest neighbour.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path=path, fix="give an existing label map file")
    if os.path.isdir(path):
        raise InputError("is a folder, not a label map file", path=path,
                         fix="give a .nrrd, .nii(.gz), .seg.nrrd or DICOM SEG (.dcm) file")
    low = path.lower()
    from_file = True
    if low.endswith(".seg.nrrd"):
        lm = _read_slicer_seg(path)
    elif low.endswith((".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")):
        lm = _read_plain(path)
        from_file = False
    else:
        import pydicom
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # any pydicom failure on foreign bytes means "not DICOM"
            raise InputError("not a supported label map (.nrrd, .nii, .nii.gz, .seg.nrrd, DICOM SEG)",
                             path=path, fix="convert it to NRRD or NIfTI with a names JSON") from None
        if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.66.4":
            raise InputError(f"DICOM file of class {ds.get('SOPClassUID', 'unknown')} is not a "
                             "segmentation (SEG)", path=path, fix="give the DICOM SEG object")
        lm = _read_dicom_seg(path, ds)
    if names is not None or not from_file:
        if names is None:
            sidecar = sidecar_names_path(path)
            if not os.path.isfile(sidecar):
                raise InputError("the label map has no structure names", path=path, fix=_FIX_NAMES)
            names = sidecar
        if isinstance(names, Mapping):
            table, strict = _check_names(dict(names), "names"), True
        else:
            table, strict = read_names_file(names)
        lm = _apply_names(LabelMap(lm.array, lm.spacing, lm.origin, lm.direction, None, lm.metadata),
                          table, strict, os.fspath(names) if not isinstance(names, Mapping) else path,
                          os.path.basename(path))
    if reference is not None:
        refs = lm.metadata.get("referenced_series_uids") or []
        ct_uid = reference.metadata.get("series_uid")
        if refs and ct_uid and not str(ct_uid).startswith("no-uid") and ct_uid not in refs:
            lm.metadata.setdefault("warnings", []).append(
                f"the segmentation references series {', '.join(refs)}, not the loaded CT series "
                f"{ct_uid}: check it belongs to this CT")
        lm = resample_labels_to(lm, reference)
    return lm


def write_labels(labelmap: LabelMap, path) -> str:
    """Write a label map (.nrrd, .nii, .nii.gz) and ``<stem>.names.json`` beside it, atomically.

    Returns the names JSON path.
    """
    path = os.fspath(path)
    low = path.lower()
    suffix = next((s for s in (".nii.gz", ".nrrd", ".nii") if low.endswith(s) and not
                   low.endswith(".seg.nrrd")), None)
    if suffix is None:
        raise InputError("unsupported label map extension", path=path,
                         fix="write .nrrd, .nii or .nii.gz")
    arr = labelmap.array
    top = int(arr.max()) if arr.size else 0
    dtype = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int32
    img = sitk.GetImageFromArray(arr.astype(dtype, copy=False))
    img.SetSpacing(tuple(map(float, labelmap.spacing)))
    img.SetOrigin(tuple(map(float, labelmap.origin)))
    img.SetDirection(tuple(map(float, labelmap.direction.reshape(-1))))
    names_path = sidecar_names_path(path)
    save_names_json(labelmap.names, names_path)
    atomic_write_image(img, path)
    return names_path
