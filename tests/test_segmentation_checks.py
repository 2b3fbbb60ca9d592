"""Bad input to the automatic anatomy: a clear InputError or a stated warning, never a silent empty liver.

The bad CTs are made from the real ones: cut to a few slices, HU remapped as
a CT without contrast would read, a chest-only crop, slices deleted from a
DICOM series, values saved without the -1024 intercept.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from planner.segmentation.pipeline import segment_anatomy
from registration.io.ct_io import load_ct
from registration.spatial.errors import CancelledError, InputError

DATA = Path(os.environ.get("CTUS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _data(*parts) -> Path:
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p}")
    return p


@pytest.fixture(scope="module")
def crlm():
    return load_ct(_data("ct", "crlm-1004", "dicom"))


def test_five_slices_are_refused_before_any_work(crlm):
    few = crlm.with_array(crlm.array[15:20].copy())
    with pytest.raises(InputError, match=r"only 5 slice\(s\) covering 20 mm.*load the whole CT series") as e:
        segment_anatomy(few)
    assert "crlm-1004" in str(e.value)


def test_values_without_the_hu_intercept_are_refused(crlm):
    raw = crlm.with_array((crlm.array.astype(np.int32) + 3024).astype(np.int16))   # stored values
    with pytest.raises(InputError, match="do not look like Hounsfield units"):
        segment_anatomy(raw)


@pytest.mark.slow
def test_non_contrast_ct_is_refused_with_the_measured_hu(crlm):
    """Soft tissue and blood as they read without contrast (liver ~60 HU, muscle ~50, aorta ~45):
    the real CT's soft-tissue range compressed towards 40 HU; fat, air and bone unchanged."""
    a = crlm.array.astype(np.float32)
    soft = (a >= -20) & (a <= 300)
    a[soft] = 40.0 + (a[soft] - 40.0) * 0.25
    plain = crlm.with_array(a.astype(np.int16))
    with pytest.raises(InputError, match=r"no contrast enhancement: liver \d+ HU vs muscle \d+ HU") as e:
        segment_anatomy(plain)
    assert "portal-venous series" in str(e.value)


@pytest.mark.slow
def test_chest_only_ct_says_only_the_dome_is_in_view(crlm):
    """crlm slices 31-40: heart and lungs, with the liver's real dome on the lowest four slices.
    The dome is segmented (it is liver, kept out of the heart) and the result says that only a
    part of the liver is in view; nothing of the heart is taken for liver."""
    chest = crlm.with_array(crlm.array[31:].copy())
    result = segment_anatomy(chest)
    per_slice = result.liver_region.sum(axis=(1, 2))
    ml = result.liver_region.sum() * np.prod(chest.spacing) / 1000.0
    assert 0.0 < ml < 500.0 and not per_slice[5:].any()           # the dome only, below the heart
    assert any(re.match(r"only \d+ ml of liver in view", w) and "a chest CT shows its dome" in w
               for w in result.warnings), result.warnings
    assert any("reaches the lowest slice" in w for w in result.warnings)
    assert "heart" in result.names
    assert not (result.liver_region & (result.labels.array == result.names["heart"])).any()


@pytest.mark.slow
def test_slices_of_mixed_spacing_are_resampled_and_said(tmp_path):
    src = _data("ct", "abdomen-20slice", "dicom")
    files = sorted(p for p in src.iterdir() if p.is_file())
    gap = tmp_path / "gap"
    gap.mkdir()
    # delete two neighbouring slices in the middle of the series (by position, not file name)
    from registration.io.dicom_series import list_dicom_series
    ordered = list_dicom_series(src)[0].files
    drop = {os.path.abspath(ordered[9]), os.path.abspath(ordered[10])}
    for f in files:
        if os.path.abspath(f) not in drop:
            shutil.copy(f, gap / f.name)
    ct = load_ct(gap)
    assert any("non-uniform slice spacing (2.000..6.000 mm)" in w for w in ct.metadata["warnings"])
    result = segment_anatomy(ct)
    assert any(w.startswith("CT: non-uniform slice spacing") for w in result.warnings), result.warnings
    assert result.liver_region.sum() * np.prod(ct.spacing) / 1000.0 > 400.0


def test_progress_can_cancel(crlm):
    calls = []

    def progress(fraction, message):
        calls.append((fraction, message))
        return False

    with pytest.raises(CancelledError):
        segment_anatomy(crlm, progress=progress)
    assert len(calls) == 1 and 0.0 < calls[0][0] < 1.0
