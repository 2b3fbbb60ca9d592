"""TotalSegmentator outputs read as one named label map (its own structure names).

TotalSegmentator (Wasserthal et al., Radiology: AI 2023) writes either

- a folder of per-structure binary masks, one NIfTI per structure named after
  it (``liver.nii.gz``, ``portal_vein_and_splenic_vein.nii.gz``, ``rib_left_7.nii.gz``
  ...), all on the input CT's grid; most are empty for a given scan; or
- with ``--ml``, one multi-label NIfTI. Its names come, in this order, from a
  names file given by the caller (``<value> <name>`` lines such as its
  ``label_names.txt``, or JSON ``{name: value}``), from the label table that
  TotalSegmentator stores in a NIfTI header extension (a CaretExtension XML
  ``<Label Key="5" ...><![CDATA[liver]]></Label>``), or from a
  ``label_names.txt`` / ``label_names.json`` / ``<stem>.names.json`` beside the file.

The result keeps TotalSegmentator's names (mapping them to the project's
standard names is the planner's business); names of empty masks, or of values
absent from the image, are listed in ``metadata['absent_names']``. With
``reference`` (the CT) the label map is resampled onto the CT's grid by
physical position (nearest neighbour), never by index: TotalSegmentator's
NIfTI direction often differs from the DICOM CT's. Arrays are ``[k, j, i]``,
geometry ``(i, j, k)`` in LPS mm.
"""
from __future__ import annotations

import gzip
import html
import os
import re
import struct
from typing import Dict, List, Optional

import numpy as np
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

from .ct_io import read_image_checked
from .ct_progress import ProgressFn, _report
from .label_image_readers import _geometry_from_sitk, _integer_array, _read_plain
from .label_names import _apply_names, _check_names, read_names_file, sidecar_names_path
from .label_resample import resample_labels_to

_NIFTI = (".nii.gz", ".nii")
_MAX_HEADER_BYTES = 64 << 20          # a NIfTI header with extensions larger than this is not a label table
_SIDECARS = ("label_names.txt", "label_names.json")
_FIX_NAMES = ("pass the names of the labels (TotalSegmentator's label_names.txt, lines '<value> <name>', "
              "or JSON {name: value})")


def load_totalsegmentator(path, *, names=None, reference: Optional[Volume] = None,
                          progress: Optional[ProgressFn] = None) -> LabelMap:
    """Read a TotalSegmentator folder of masks or multi-label NIfTI (see the module docstring).

    ``names``: a names file path (multi-label only). ``progress(fraction, message)``
    is called per mask file; returning False cancels (CancelledError).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("not found", path=path,
                         fix="give TotalSegmentator's output folder or its multi-label .nii.gz")
    if os.path.isdir(path):
        if names is not None:
            raise InputError("a names file is only used with a multi-label file", path=os.fspath(names),
                             fix="give the folder alone: its file names are the structure names")
        lm = _read_folder(path, progress)
    else:
        if not path.lower().endswith(_NIFTI):
            raise InputError("not a NIfTI file", path=path,
                             fix="give TotalSegmentator's output folder or its multi-label .nii.gz")
        lm = _read_multilabel(path, names)
    if reference is not None:
        lm = resample_labels_to(lm, reference)
    return lm


# --------------------------------------------------------------------------- folder of masks
def _structure_name(file_name: str) -> str:
    low = file_name.lower()
    suffix = next(s for s in _NIFTI if low.endswith(s))
    return file_name[: -len(suffix)]


def _read_folder(folder: str, progress: Optional[ProgressFn]) -> LabelMap:
    files = sorted(f for f in os.listdir(folder)
                   if f.lower().endswith(_NIFTI) and os.path.isfile(os.path.join(folder, f)))
    if not files:
        raise InputError("no .nii.gz masks in the folder", path=folder,
                         fix="give the folder TotalSegmentator wrote (one <structure>.nii.gz per structure)")
    out: Optional[np.ndarray] = None
    grid = None
    names: Dict[str, int] = {}
    absent: List[str] = []
    warnings: List[str] = []
    for n, file_name in enumerate(files):
        _report(progress, n / len(files), f"reading {file_name}")
        file_path = os.path.join(folder, file_name)
        img = read_image_checked(file_path, "mask")
        if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"expected a 3D mask, got {img.GetDimension()}D", path=file_path,
                             fix="give TotalSegmentator's folder of per-structure masks")
        geometry = _geometry_from_sitk(img, file_path)
        mask = _integer_array(sitk.GetArrayFromImage(img), file_path) > 0
        if out is None:
            out, grid = np.zeros(mask.shape, np.uint16), (mask.shape,) + geometry
        elif not _same_grid(grid, (mask.shape,) + geometry):
            raise InputError(f"is not on the grid of {files[0]}", path=file_path,
                             fix="give the masks of one TotalSegmentator run (all on the CT's grid)")
        name = _structure_name(file_name)
        if not mask.any():
            absent.append(name)
            continue
        value = len(names) + 1
        if np.any(out[mask]):
            warnings.append(f"'{name}' overlaps earlier masks; it wins there")
        out[mask] = value
        names[name] = value
    _report(progress, 1.0, f"read {len(files)} masks")
    shape, spacing, origin, direction = grid
    return LabelMap(out, spacing, origin, direction, names,
                    {"source": folder, "format": "totalsegmentator folder", "warnings": warnings,
                     "absent_names": absent})


def _same_grid(a, b, tol: float = 1e-3) -> bool:
    return a[0] == b[0] and all(np.allclose(x, y, atol=tol) for x, y in zip(a[1:], b[1:]))


# --------------------------------------------------------------------------- multi-label file
def _read_multilabel(path: str, names) -> LabelMap:
    lm = _read_plain(path)
    source = None
    if names is not None:
        table, strict = read_names_file(names)
        source = os.fspath(names)
    else:
        table, strict = header_label_table(path), False
        if table:
            source = "NIfTI header extension"
        else:
            sidecar = _find_sidecar(path)
            if sidecar is None:
                raise InputError("has no label names (no label table in its header, no "
                                 "label_names.txt beside it)", path=path, fix=_FIX_NAMES)
            table, strict = read_names_file(sidecar)
            source = sidecar
    where = path if source == "NIfTI header extension" else source
    table = _check_names(table, where)
    lm.metadata.update(format="totalsegmentator multi-label", names_source=source)
    return _apply_names(lm, table, strict, where, os.path.basename(path))


def _find_sidecar(path: str) -> Optional[str]:
    folder = os.path.dirname(os.path.abspath(path))
    for candidate in [os.path.join(folder, s) for s in _SIDECARS] + [sidecar_names_path(path)]:
        if os.path.isfile(candidate):
            return candidate
    return None


def header_label_table(path) -> Dict[str, int]:
    """{name: value} from the CaretExtension label table in a NIfTI-1/2 header extension
    (as TotalSegmentator writes it), or {} when there is none."""
    path = os.fspath(path)
    for content in _nifti_extensions(path):
        text = content.decode("utf-8", errors="replace")
        if "<LabelTable" not in text:
            continue
        table: Dict[str, int] = {}
        for attrs, body in re.findall(r"<Label\b([^>]*)>(.*?)</Label>", text, flags=re.S):
            key = re.search(r'\bKey\s*=\s*"(-?\d+)"', attrs)
            m = re.fullmatch(r"\s*<!\[CDATA\[(.*?)\]\]>\s*", body, flags=re.S)
            name = (m.group(1) if m else html.unescape(body)).strip()
            if key and int(key.group(1)) > 0 and name:
                table[name] = int(key.group(1))
        return table
    return {}


def _nifti_extensions(path: str) -> List[bytes]:
    """Raw contents of the header extensions of a .nii / .nii.gz file (header bytes only)."""
    opener = gzip.open if path.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(544)
            endian, version = _nifti_kind(head, path)
            if version == 1:
                vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
                first = 348
            else:
                vox_offset = int(struct.unpack(endian + "q", head[168:176])[0])
                first = 540
            if len(head) < first + 4 or head[first] == 0 or vox_offset <= first + 4:
                return []
            if vox_offset > _MAX_HEADER_BYTES:
                raise InputError(f"header claims {vox_offset} bytes of extensions", path=path,
                                 fix="check the file is a NIfTI label map")
            data = head + f.read(vox_offset - len(head))
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"cannot read the NIfTI header ({exc})", path=path,
                         fix="check the file is complete and not corrupted") from None
    out, pos = [], first + 4
    while pos + 8 <= min(len(data), vox_offset):
        size, _code = struct.unpack(endian + "ii", data[pos:pos + 8])
        if size < 8 or pos + size > len(data):
            break                                   # malformed extension: ignore the rest
        out.append(data[pos + 8:pos + size].rstrip(b"\0 \n"))
        pos += size
    return out


def _nifti_kind(head: bytes, path: str):
    for endian in ("<", ">"):
        if len(head) >= 4:
            size = struct.unpack(endian + "i", head[:4])[0]
            if size == 348:
                return endian, 1
            if size == 540:
                return endian, 2
    raise InputError("not a NIfTI file (bad header size)", path=path,
                     fix="give TotalSegmentator's .nii.gz output")
