"""The issue-16 size case for registration speed: a 512x512x119 CT and 400x320 x 120-frame sweeps.

    .venv/bin/python benchmarks/speed_case.py      # build (cached) and print its folder

Built from the demo case (``sample_data.case.demo_case.ensure_demo_case()``):

* **CT**: the demo's portal-phase CT (440x380x134 at 0.8x0.8x1.5 mm) resampled
  linearly to 512x512x119 at 0.74x0.74x1.6 mm about the same centre (padded with
  air in-plane; 5.6 mm lost at each z end, which holds no liver), written both as
  a gzip-compressed NRRD (``ct.nrrd``) and as a DICOM series (``ct_dicom/``, one
  file per slice), the two forms a CT reaches the product in.
* **Sweeps**: simulated anew with the project's simulator
  (``sample_data.sweeps.tracked_sweeps.make_sweeps``) from the demo's CT and
  labels: a convex probe whose frames are 400x320 pixels (0.63 mm), 120 frames
  per sweep, the survey sweep and the first three lesion sweeps (4 sweeps).

Why simulate rather than crop/resample the demo frames: 120 frames cannot come
from the demo's 100 without inventing frames (and poses) between them, and a
resampled 640x480 frame keeps the finer speckle of the old pixel grid; simulated
frames have the new size's own speckle and exact ground truth. The US is
simulated from the demo's original CT (the anatomy), the registration sees the
resampled one, as a real CT is a sampled image of the patient.

The case is cached beside the demo case (``$CTUS_CACHE_DIR`` or ``~/.cache/ctus``)
under a name holding the demo folder's name and ``CASE_VERSION`` (bump it when
the build changes). ``truth.json`` holds ``reference_to_ct``, the lesions
(centroid LPS mm, diameter) and landmarks of the demo, the liver centroid (the
centre of the benchmark's start perturbations) and the sweeps.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: The issue's CT grid: size (i, j, k) and spacing (mm).
CT_SIZE = (512, 512, 119)
CT_SPACING_MM = (0.74, 0.74, 1.6)
#: The issue's sweeps: frame size (cols, rows), frames per sweep, lesion sweeps besides the survey.
FRAME_COLS, FRAME_ROWS = 400, 320
FRAMES_PER_SWEEP = 120
N_LESION_SWEEPS = 3
CASE_VERSION = 1
PLAN_CASE_VERSION = 1


def _demo_stamp(demo: Path) -> str:
    """The first 8 hex digits of the demo case's content hash (its completion marker): a case
    built from an older demo (the demo is regenerated when sample_data changes) is not reused."""
    marker = demo / "CTUS_CASE_COMPLETE.json"
    try:
        return str(json.loads(marker.read_text())["sha256"])[:8]
    except (OSError, ValueError, KeyError):
        return "unknown"


def _case_dir(demo: Path) -> Path:
    return demo.parent / f"speed-case-v{CASE_VERSION}-{demo.name}-{_demo_stamp(demo)}"


def _plan_case_dir(demo: Path) -> Path:
    return demo.parent / f"plan-case-v{PLAN_CASE_VERSION}-{demo.name}-{_demo_stamp(demo)}"


def resample_ct(ct, size=CT_SIZE, spacing_mm=CT_SPACING_MM):
    """``ct`` (Volume, HU) resampled linearly to ``size`` x ``spacing_mm`` about its centre, air outside."""
    import numpy as np
    import SimpleITK as sitk

    from registration.spatial.volume import Volume

    img = ct.to_sitk()
    centre = ct.index_to_lps((np.asarray(ct.shape_ijk, float) - 1) / 2.0)
    d = np.asarray(ct.direction, float).reshape(3, 3)
    half = (np.asarray(size, float) - 1) / 2.0 * np.asarray(spacing_mm, float)
    origin = centre - d @ half
    out = sitk.Resample(img, [int(v) for v in size], sitk.Transform(), sitk.sitkLinear,
                        [float(v) for v in origin], [float(v) for v in spacing_mm],
                        [float(v) for v in d.ravel()], -1000.0, sitk.sitkInt16)
    vol = Volume.from_sitk(out)
    return Volume(np.round(vol.array).astype(np.int16), vol.spacing, vol.origin, vol.direction,
                  {"source": "speed case"})


def ensure_speed_case(progress=print) -> Path:
    """Folder of the speed case (built once, cached; see the module docstring)."""
    from sample_data.case.demo_case import ensure_demo_case

    demo = ensure_demo_case()
    final = _case_dir(demo)
    if (final / "truth.json").is_file():
        return final
    import numpy as np

    from registration.io.ct_io import load_ct
    from registration.io.dicom_write import write_dicom_series
    from registration.io.labelmap_io import load_labels
    from registration.spatial.atomic_io import atomic_write_image
    from sample_data.simulator.probe import ConvexProbe
    from sample_data.sweeps.tracked_sweeps import make_sweeps

    work = Path(tempfile.mkdtemp(prefix=".speed-case-", dir=demo.parent))
    try:
        truth = json.loads((demo / "truth.json").read_text())
        ct = load_ct(demo / "ct_portal.nrrd")
        labels = load_labels(demo / "labels.nrrd", demo / "label_names.json", reference=ct)
        progress(f"speed case: simulating {N_LESION_SWEEPS + 1} sweeps of {FRAMES_PER_SWEEP} "
                 f"{FRAME_COLS}x{FRAME_ROWS} frames (a few minutes, once)")
        names = [les["name"] for les in truth["lesions"]][:N_LESION_SWEEPS]
        us = make_sweeps(ct, labels, truth, work, seed=int(truth.get("seed", 0)),
                         frames_per_sweep=FRAMES_PER_SWEEP, probe=ConvexProbe(cols=FRAME_COLS, rows=FRAME_ROWS),
                         lesions=names, survey=True)
        progress("speed case: resampling the CT to 512x512x119 at 0.74x0.74x1.6 mm")
        small = resample_ct(ct)
        atomic_write_image(small.to_sitk(), work / "ct.nrrd")
        write_dicom_series(small, work / "ct_dicom", series_description="speed case CT",
                           file_names=lambda k: f"CT{k + 1:04d}.dcm")
        liver = np.argwhere(labels.mask("liver"))[:, ::-1].astype(float).mean(axis=0)
        case_truth = {"reference_to_ct": us["reference_to_ct"], "lesions": truth["lesions"],
                      "landmarks": truth["landmarks"], "liver_centroid_lps": labels.index_to_lps(liver).tolist(),
                      "ultrasound": us, "demo_case": str(demo)}
        (work / "truth.json").write_text(json.dumps(case_truth, indent=1))
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def resample_labels(labels, like):
    """``labels`` (LabelMap) resampled nearest-neighbour onto the grid of ``like`` (Volume), 0 outside."""
    import numpy as np
    import SimpleITK as sitk

    from registration.spatial.volume import LabelMap, Volume

    img = sitk.Resample(labels.to_sitk(), like.to_sitk(), sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    vol = Volume.from_sitk(img)
    return LabelMap(vol.array.astype(np.uint8), vol.spacing, vol.origin, vol.direction, labels.names, {})


def ensure_plan_case(progress=print) -> Path:
    """Folder of the planning case of issue 16 (built once, cached): the demo's 6 lesions on the
    issue's CT grid. ``ct_dicom/`` (portal phase, one file per slice) and ``ct.nrrd``, ``ct_arterial.nrrd``
    (both phases resampled as :func:`resample_ct`), ``labels.nrrd`` (the demo labels resampled
    nearest-neighbour onto that grid) and ``label_names.json``."""
    from sample_data.case.demo_case import ensure_demo_case

    demo = ensure_demo_case()
    final = _plan_case_dir(demo)
    if (final / "label_names.json").is_file():
        return final
    from registration.io.ct_io import load_ct
    from registration.io.dicom_write import write_dicom_series
    from registration.io.labelmap_io import load_labels
    from registration.spatial.atomic_io import atomic_write_image

    work = Path(tempfile.mkdtemp(prefix=".plan-case-", dir=demo.parent))
    try:
        progress("plan case: resampling the demo CTs and labels to 512x512x119 at 0.74x0.74x1.6 mm")
        ct = load_ct(demo / "ct_portal.nrrd")
        small = resample_ct(ct)
        atomic_write_image(small.to_sitk(), work / "ct.nrrd")
        write_dicom_series(small, work / "ct_dicom", series_description="plan case CT",
                           file_names=lambda k: f"CT{k + 1:04d}.dcm")
        atomic_write_image(resample_ct(load_ct(demo / "ct_arterial.nrrd")).to_sitk(), work / "ct_arterial.nrrd")
        labels = load_labels(demo / "labels.nrrd", demo / "label_names.json", reference=ct)
        atomic_write_image(resample_labels(labels, small).to_sitk(), work / "labels.nrrd")
        shutil.copyfile(demo / "label_names.json", work / "label_names.json")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


if __name__ == "__main__":
    print(ensure_plan_case() if sys.argv[1:] == ["plan"] else ensure_speed_case())
