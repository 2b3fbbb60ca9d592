"""Small MR volumes and a DICOM MR study for the MR tests (shared by test_mri_io and test_gui_mr_views)."""
from __future__ import annotations

import numpy as np

from registration.io.mr_write import MRSequence, write_mr_series
from registration.spatial.volume import Volume


def _body(shape=(12, 40, 48), spacing=(1.5, 1.5, 3.0), seed=0) -> Volume:
    """A small MR-like volume: a bright ellipsoid (liver-like) in a darker body, air around."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    a = np.where(i ** 2 + j ** 2 < 0.8, 300.0, 0.0)
    a[(i + 0.2) ** 2 / 0.2 + j ** 2 / 0.3 + k ** 2 < 1] = 900.0
    a += rng.normal(0, 10, shape)
    return Volume(np.clip(a, 0, None).astype(np.float32), spacing, (-30.0, -20.0, 5.0))


def _study(tmp_path):
    """A DICOM MR study: T1 pre-contrast, hepatobiliary phase (gadoxetate, 20 min), T2, and a DWI
    series with two b-values at every slice position (one series UID)."""
    vol = _body()
    kw = dict(study_date="20250101", study_uid="1.2.3.1", frame_of_reference_uid="1.2.3.2", patient_id="P")
    write_mr_series(vol, tmp_path / "t1pre", series_description="t1_vibe_fs_tra pre", series_uid="1.2.3.10",
                    acquisition_time="093000", **kw)
    write_mr_series(vol.with_array(vol.array * 1.2), tmp_path / "hbp", series_description="t1_vibe_fs_tra",
                    series_uid="1.2.3.11", contrast_agent="Gadoxetate disodium (Primovist)",
                    contrast_start_time="093100", acquisition_time="095100", **kw)
    write_mr_series(vol, tmp_path / "t2", series_description="ax resp trig",
                    sequence=MRSequence("*tse2d1", "SE", "SK", 90.0, 2500.0, 150.0), series_uid="1.2.3.12",
                    acquisition_time="094000", **kw)
    for b, sub in ((50, "dwi_b50"), (800, "dwi_b800")):
        write_mr_series(vol, tmp_path / sub, series_description="ep2d_diff b50 b800",
                        sequence=MRSequence(f"*ep_b{b}t", "EP", "SK", 60.0, 5000.0, 90.0), series_uid="1.2.3.13",
                        acquisition_time="094500", file_names=lambda n, b=b: f"B{b}_{n:03d}.dcm", **kw)
    return vol
