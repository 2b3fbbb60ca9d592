"""Write the demo case folder, and keep one generated copy in a per-user cache.

Case folder layout (all geometry LPS mm; same seed -> byte-identical files):

- ``ct/arterial/``, ``ct/portal/``: DICOM CT series (one file per slice,
  ``CT0001.dcm`` ...; UIDs derived from the seed, fixed study date, acquisition
  times 45 s and 70 s after a nominal injection at 10:00:00)
- ``ct_arterial.nrrd``, ``ct_portal.nrrd``: the same volumes (int16 HU)
- ``labels.nrrd`` + ``label_names.json`` (and ``labels.names.json``, the
  sidecar the label reader finds by itself)
- ``sweep_*.igs.mha`` + ``PlusDeviceSet_*.xml``: tracked sweeps (sample_data.sweeps.tracked_sweeps)
- ``sweep_*_deformed.igs.mha``: sweeps of the liver deformed between CT and scan
  (sample_data.sweeps.deformed_sweeps; issue 19), after the static ones
- ``truth.json``: lesions, landmarks, and per sweep the true ``reference_to_ct``; for the
  deformed sweeps the organ field (``ultrasound.deformation``), the best rigid fits and
  per-target displaced positions (``ultrasound.deformed_sweeps``); the MR's truth under
  ``mr`` (written last, so every other key is as before)
- ``mr_hbp.nii.gz`` and ``mr/hbp/``: a liver MR of the same patient (hepatobiliary-phase T1,
  another breath-hold, one metastasis the CT does not show; sample_data.phantom.mr), NIfTI
  and DICOM MR series (issue 18); ``ctus sample --no-mr`` leaves it out
- ``README.txt``

Everything is generated in a hidden temporary folder inside the target and
moved into place at the end, so a failure leaves no half-written case.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from pydicom.uid import generate_uid

from registration.spatial.atomic_io import atomic_write_image, atomic_write_text
from registration.spatial.errors import CancelledError
from sample_data.phantom import build as P

CASE_VERSION = 1
#: Deformed sweeps in a case (a survey and two lesion sweeps; 0 with ``ctus sample --no-deformed``).
DEFORMED_SWEEPS = 3
MARKER = "CTUS_CASE_COMPLETE.json"
STUDY_DATE = "20250314"
INJECTION = (10, 0, 0)
CONTRAST_AGENT = "Iohexol 350 mgI/ml, 100 ml IV at 4 ml/s"

Progress = Optional[Callable[[str, float], object]]
# what a case folder holds: replaced as a whole by write_case
CASE_PATTERNS = ("sweep_*.igs.mha", "PlusDeviceSet_*.xml", "ct_*.nrrd", "labels.nrrd",
                 "label_names.json", "labels.names.json", "truth.json", "README.txt", "mr_*.nii.gz")


def _tm(delay_s: int) -> str:
    h, m, s = INJECTION
    t = h * 3600 + m * 60 + s + int(delay_s)
    return f"{t // 3600:02d}{(t % 3600) // 60:02d}{t % 60:02d}"


def _uid(seed: int, *parts) -> str:
    """A valid DICOM UID that depends only on the seed and the given parts."""
    return generate_uid(entropy_srcs=["ctus-demo", str(seed)] + [str(p) for p in parts])


def _write_dicom(vol, folder: Path, seed: int, phase: str, series_number: int) -> list:
    """DICOM series via the project's writer, reproducible: every UID derives from the
    seed, the dates and times are fixed, the file names are ours."""
    from registration.io.dicom_write import write_dicom_series

    info = P.PHASES[phase]
    return write_dicom_series(
        vol, folder, series_description=info["description"], contrast_agent=CONTRAST_AGENT,
        acquisition_time=_tm(info["delay_s"]), series_uid=_uid(seed, "series", phase),
        study_uid=_uid(seed, "study"), frame_of_reference_uid=_uid(seed, "frame"),
        patient_id=f"CTUS-DEMO-{seed}", patient_name="CTUS^Demo", series_number=series_number,
        file_names=lambda k: f"CT{k + 1:04d}.dcm",
        sop_instance_uids=lambda k: _uid(seed, "sop", phase, k),
        study_date=STUDY_DATE, study_time=_tm(0), contrast_start_time=_tm(0),
        extra_tags={"ContrastBolusRoute": "IV", "PatientPosition": "HFS", "PatientSex": "M",
                    "PatientAge": "064Y", "BodyPartExamined": "ABDOMEN",
                    "Manufacturer": "ctus synthetic phantom"})


def _write_nrrd(vol, path: Path) -> None:
    atomic_write_image(vol.to_sitk(), path)


def _readme(truth: dict, seed: int, breathing_mm: float, with_sweeps: bool, deformed: int = 0) -> str:
    lines = [
        "ctus demo case: synthetic pancreatic-cancer patient with liver metastases",
        f"generator: sample_data (case version {CASE_VERSION}), seed {seed}, breathing {breathing_mm} mm",
        "",
        "Patient: supine, head first. Coordinates: DICOM LPS mm (x patient left, y posterior,",
        "z superior); the liver is on the patient's right (negative x).",
        "",
        "ct/arterial, ct/portal   DICOM CT series, pancreas protocol late arterial (45 s) and",
        "                         portal venous (70 s); ct_arterial.nrrd / ct_portal.nrrd the same",
        "labels.nrrd              label map on the CT grid; names in label_names.json",
        "truth.json               lesions (type, diameter, centroid, segment, notes), vessel",
        "                         landmarks, and for the sweeps the true reference_to_ct",
    ]
    if with_sweeps:
        lines.append("sweep_*.igs.mha          tracked ultrasound sweeps (PLUS sequence metafiles);"
                     " calibration in the PlusDeviceSet XML")
        if deformed:
            lines.append("sweep_*_deformed.igs.mha the liver deformed between CT and scan (smooth organ field of"
                         " 5-10 mm plus probe")
            lines.append("                         compression); truth.json: ultrasound.deformation and"
                         " .deformed_sweeps (true displaced targets)")
    lines += ["", "Lesions:"]
    for les in truth["lesions"]:
        lines.append(f"  {les['name']}: {les['type']}, {les['diameter_mm']:.0f} mm, segment "
                     f"{les['segment']}, centroid {les['centroid_lps']} {' '.join(les['notes'])}")
    if "mr" in truth:
        from sample_data.case.demo_mr import readme_lines
        lines += readme_lines(truth["mr"])
    lines += ["", "Synthetic data: not a real patient. Do not use for clinical decisions.", ""]
    return "\n".join(lines)


def write_case(out_dir, seed: int = 0, breathing_mm: float = 0.0, progress: Progress = None, *,
               spacing=(0.8, 0.8, 1.5), sweeps: bool = True, sweep_kwargs: Optional[dict] = None,
               deformed: int = DEFORMED_SWEEPS, mr: bool = True) -> Dict[str, float]:
    """Generate the demo case into ``out_dir`` (created if needed; files of a
    previous case there are replaced). Returns the timings per stage (s).

    ``progress(stage, fraction)`` is called between stages; returning False
    cancels (CancelledError, nothing written). ``sweeps=False`` writes only the
    CT part (tests); ``deformed``: how many deformed sweeps follow the static ones
    (0: none); ``sweep_kwargs`` go to ``sample_data.sweeps.tracked_sweeps.make_sweeps``;
    ``mr``: also the liver MR (:mod:`sample_data.case.demo_mr`; after everything else, from its
    own random stream, so the other files are the same with or without it).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: Dict[str, float] = {}
    t = [time.perf_counter()]

    def stage(name: str, fraction: float) -> None:
        now = time.perf_counter()
        timings[name] = round(now - t[0], 2)
        t[0] = now
        if progress is not None and progress(name, fraction) is False:
            raise CancelledError(f"demo case generation cancelled after {name}")

    tmp = Path(tempfile.mkdtemp(prefix=".ctus-case-", dir=out_dir))
    try:
        ph = P.make_phantom(seed, spacing)
        timings.update({f"phantom_{k}": v for k, v in ph.timings_s.items()})
        stage("phantom", 0.3)
        _write_dicom(ph.ct_arterial, tmp / "ct" / "arterial", seed, "arterial", 2)
        _write_dicom(ph.ct_portal, tmp / "ct" / "portal", seed, "portal", 3)
        stage("dicom", 0.45)
        _write_nrrd(ph.ct_arterial, tmp / "ct_arterial.nrrd")
        _write_nrrd(ph.ct_portal, tmp / "ct_portal.nrrd")
        from registration.io.label_names import save_names_json
        from registration.io.labelmap_io import write_labels
        write_labels(ph.labels, tmp / "labels.nrrd")
        save_names_json(ph.labels.names, tmp / "label_names.json")
        stage("nrrd", 0.55)
        truth = dict(ph.truth)
        truth["files"] = {"ct_dicom": {"arterial": "ct/arterial", "portal": "ct/portal"},
                          "ct": {"arterial": "ct_arterial.nrrd", "portal": "ct_portal.nrrd"},
                          "labels": "labels.nrrd", "label_names": "label_names.json"}
        truth["breathing_mm"] = float(breathing_mm)
        if sweeps:
            from sample_data.sweeps.tracked_sweeps import make_sweeps
            kwargs = dict({"deformed": int(deformed)}, **(sweep_kwargs or {}))
            us = make_sweeps(ph.ct_portal, ph.labels, truth, tmp, seed=seed,
                             breathing_mm=breathing_mm, **kwargs)
            for s in us.get("sweeps", []):
                s.setdefault("reference_to_ct", us["reference_to_ct"])
            truth["ultrasound"] = us
            truth["reference_to_ct"] = us["reference_to_ct"]
            stage("sweeps", 0.95)
        if mr:
            from sample_data.case.demo_mr import write_mr
            truth["mr"] = write_mr(ph, truth, tmp, seed)
            stage("mr", 0.98)
        atomic_write_text(tmp / "truth.json", json.dumps(truth, indent=1, sort_keys=False) + "\n")
        n_deformed = len(truth.get("ultrasound", {}).get("deformed_sweeps", []))
        atomic_write_text(tmp / "README.txt", _readme(truth, seed, breathing_mm, sweeps, n_deformed))
        new = set(os.listdir(tmp))
        # files of an older case here (e.g. more sweeps) would contradict the new truth
        for pattern in CASE_PATTERNS:
            for old in out_dir.glob(pattern):
                if old.name not in new and old.is_file():
                    old.unlink()
        for entry in sorted(new):
            dst = out_dir / entry
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            os.replace(tmp / entry, dst)
        stage("finish", 1.0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return timings


# -- per-user cache -----------------------------------------------------------------

def cache_root() -> Path:
    env = os.environ.get("CTUS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ctus"


def _manifest(folder: Path) -> dict:
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MARKER:
            files[p.relative_to(folder).as_posix()] = p.stat().st_size
    return files


def generator_hash() -> str:
    """sha256 of the generator's source (sample_data/**/*.py): a cached case made by
    other code than the one running now is regenerated, without relying on
    someone remembering to bump CASE_VERSION."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for p in sorted(root.rglob("*.py")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _is_complete(folder: Path, seed: int) -> bool:
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if (marker.get("case_version") != CASE_VERSION or marker.get("seed") != seed
            or marker.get("generator_sha256") != generator_hash()):
        return False
    files = marker.get("files") or {}
    return bool(files) and all((folder / n).is_file() and (folder / n).stat().st_size == size
                               for n, size in files.items())


def _digest(folder: Path, files: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        with open(folder / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def ensure_demo_case(progress: Progress = None, seed: int = 0) -> Path:
    """Path of the cached demo case, generating it once if needed.

    Cache: ``$CTUS_CACHE_DIR`` or ``~/.cache/ctus``, folder
    ``demo-v<version>-seed<seed>``. A case is reused when its completion
    marker matches: version, seed, the generator's source hash, and every
    file present with its recorded size (the content hash is recorded too). Concurrent
    callers are safe: generation happens in a private temporary folder that is
    renamed into place; a loser of the race uses the winner's folder.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"demo-v{CASE_VERSION}-seed{seed}"
    if _is_complete(final, seed):
        return final
    lock = open(root / f".demo-v{CASE_VERSION}-seed{seed}.lock", "a+")
    try:
        try:
            import fcntl
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # one generator at a time; others wait
        except ImportError:  # pragma: no cover - not on Linux
            pass
        if _is_complete(final, seed):
            return final
        work = Path(tempfile.mkdtemp(prefix=f".demo-v{CASE_VERSION}-seed{seed}-", dir=root))
        try:
            write_case(work, seed=seed, progress=progress)
            files = _manifest(work)
            marker = {"case_version": CASE_VERSION, "phantom_version": P.VERSION, "seed": seed,
                      "generator_sha256": generator_hash(), "files": files,
                      "sha256": _digest(work, files)}
            atomic_write_text(work / MARKER, json.dumps(marker, indent=1) + "\n")
            if final.exists():  # stale or incomplete: move aside, then remove
                stale = Path(tempfile.mkdtemp(prefix=".stale-", dir=root))
                os.replace(final, stale / "case")
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(work, final)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
    finally:
        lock.close()
    return final
