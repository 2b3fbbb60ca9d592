"""File loading for the window: thin calls into the engine readers, run in workers.

Every function raises :class:`~registration.spatial.errors.InputError` naming the
file, what is wrong and how to fix it. No Qt here, so the workers can call
them from any thread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from registration.spatial.errors import InputError
from registration.spatial.volume import LabelMap, Volume

# The label map's box may differ from the CT's by about one voxel (rounding of origins and
# extents between tools) before it counts as segmented from another CT.
_BOX_TOLERANCE_VOXELS = 1.01
# Progress fractions of a load shown in the window (reading starts, labels resampled).
_PROGRESS_READING = 0.05
_PROGRESS_RESAMPLING = 0.6


def list_series(folder):
    from registration.io.dicom_series import list_dicom_series
    return list_dicom_series(folder)


def load_ct(path, series_uid: Optional[str] = None, progress=None) -> Volume:
    from registration.io.ct_io import load_ct as _load_ct
    if progress:
        progress(_PROGRESS_READING, f"reading {Path(path).name}")
    vol = _load_ct(path, series_uid=series_uid)
    vol.metadata.setdefault("source", str(path))
    return vol


def check_labels_match(labels: LabelMap, ct: Volume, path) -> None:
    """Raise if the label map does not cover the same physical box as the CT."""
    if labels.same_grid(ct):
        return
    lo_l, hi_l = labels.bounds_lps()
    lo_c, hi_c = ct.bounds_lps()
    tol = float(max(ct.spacing.max(), labels.spacing.max())) * _BOX_TOLERANCE_VOXELS
    if np.any(np.abs(lo_l - lo_c) > tol) or np.any(np.abs(hi_l - hi_c) > tol):
        raise InputError(
            "the label map does not match the CT: it covers LPS "
            f"{np.round(lo_l, 1).tolist()}..{np.round(hi_l, 1).tolist()} mm, the CT "
            f"{np.round(lo_c, 1).tolist()}..{np.round(hi_c, 1).tolist()} mm", path=path,
            fix="choose the label map segmented from this CT (same series)")


def load_labels(path, names_path=None, reference: Optional[Volume] = None, progress=None) -> LabelMap:
    """Label map + names (engine reader), checked against the CT ``reference`` and put on its grid.

    The check comes first so that a label map of another CT is refused with a
    reason instead of being silently resampled into emptiness.
    """
    from registration.io.label_resample import resample_labels_to
    from registration.io.labelmap_io import load_labels as _load_labels
    if progress:
        progress(_PROGRESS_READING, f"reading {Path(path).name}")
    labels = _load_labels(path, names_path, None)
    labels.metadata.setdefault("source", str(path))
    if reference is None or labels.same_grid(reference):
        return labels
    check_labels_match(labels, reference, path)
    if progress:
        progress(_PROGRESS_RESAMPLING, "resampling the labels onto the CT grid")
    return resample_labels_to(labels, reference)


def load_sweep(path, calibration=None, progress=None):
    """Sweep with a checked Image -> Reference chain (InputError if it has none)."""
    from registration.io.sequence_io import load_sweep as _load_sweep
    if progress:
        progress(_PROGRESS_READING, f"reading {Path(path).name}")
    sweep = _load_sweep(path, calibration=calibration)
    if not sweep.has_images:
        raise InputError("the sequence has no images (tracker-only recording)", path=path,
                         fix="open a sweep recorded with video frames")
    sweep.require_image_to_reference()
    if sweep.fan_mask is None:
        from registration.spatial.fan_mask import detect_fan_mask
        sweep = sweep.with_fan_mask(detect_fan_mask(sweep.frames))
    return sweep
