"""The demo case folder: files load back through the project's readers, same
seed gives byte-identical files, the CLI contract, and the per-user cache.

Cases are written on a coarse grid (2.4 x 2.4 x 4.5 mm) to keep these tests fast;
the full-resolution case is timed by `ctus sample` itself.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import sample_data.case.demo_case as case
from planner.cli.main import main as ctus
from sample_data.phantom.build import make_phantom

COARSE = (2.4, 2.4, 4.5)


def _tree_digest(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def coarse_case(tmp_path_factory):
    out = tmp_path_factory.mktemp("case")
    timings = case.write_case(out, seed=1, spacing=COARSE, sweeps=False)
    return out, timings


def test_case_files_and_readme(coarse_case):
    out, timings = coarse_case
    for name in ("ct_arterial.nrrd", "ct_portal.nrrd", "labels.nrrd", "label_names.json",
                 "labels.names.json", "truth.json", "README.txt"):
        assert (out / name).is_file(), name
    assert len(list((out / "ct" / "arterial").glob("CT*.dcm"))) == 45
    assert len(list((out / "ct" / "portal").glob("CT*.dcm"))) == 45
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left"
    assert "phantom" in timings and "dicom" in timings
    assert "patient's right" in (out / "README.txt").read_text()


def test_files_load_back_through_project_readers(coarse_case):
    from registration.io.dicom_series import list_dicom_series
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    out, _ = coarse_case
    ph = make_phantom(1, COARSE)
    for phase, ref in (("arterial", ph.ct_arterial), ("portal", ph.ct_portal)):
        for src in (out / "ct" / phase, out / f"ct_{phase}.nrrd"):
            vol = load_ct(src)
            assert vol.same_grid(ref), src
            assert vol.orientation_letters() == "LPS"
            assert np.array_equal(np.asarray(vol.array, np.int32), ref.array.astype(np.int32)), src
    labels = load_labels(out / "labels.nrrd", out / "label_names.json")
    assert labels.same_grid(ph.labels) and np.array_equal(labels.array, ph.labels.array)
    assert labels.names == ph.labels.names
    for std in ("body", "liver", "portal_vein", "hepatic_vein", "artery", "bone", "lung",
                "gallbladder", "bowel", "kidney", "spleen", "pancreas", "pancreatic_mass"):
        assert std in labels.names
    # the sidecar is found without naming it
    assert load_labels(out / "labels.nrrd").names == ph.labels.names
    # the folder holding both phases lists two series, one per phase
    assert sorted(s.phase_hint for s in list_dicom_series(out / "ct")) == ["arterial",
                                                                           "portal venous"]


def test_dicom_tags_and_phase_hints(coarse_case):
    import pydicom
    from registration.io.dicom_series import list_dicom_series
    out, _ = coarse_case
    hints = {}
    for phase in ("arterial", "portal"):
        (info,) = list_dicom_series(out / "ct" / phase)
        hints[phase] = info
        ds = pydicom.dcmread(sorted((out / "ct" / phase).glob("*.dcm"))[0])
        assert ds.Modality == "CT" and ds.RescaleType == "HU"
        assert ds.ContrastBolusAgent
        assert ds.PatientPosition == "HFS"
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
    a = pydicom.dcmread(sorted((out / "ct" / "arterial").glob("*.dcm"))[0])
    p = pydicom.dcmread(sorted((out / "ct" / "portal").glob("*.dcm"))[0])
    assert "late arterial" in a.SeriesDescription and "portal venous" in p.SeriesDescription
    assert (a.AcquisitionTime, p.AcquisitionTime) == ("100045", "100110")   # 45 s and 70 s
    assert a.StudyInstanceUID == p.StudyInstanceUID
    assert a.FrameOfReferenceUID == p.FrameOfReferenceUID
    assert a.SeriesInstanceUID != p.SeriesInstanceUID
    assert hints["arterial"].phase_hint == "arterial"
    assert hints["portal"].phase_hint == "portal venous"


def test_truth_matches_label_map(coarse_case):
    from registration.io.labelmap_io import load_labels
    out, _ = coarse_case
    truth = json.loads((out / "truth.json").read_text())
    labels = load_labels(out / "labels.nrrd", out / "label_names.json")
    assert truth["seed"] == 1 and truth["frame"].startswith("CT")
    assert len(truth["lesions"]) == 6 and len(truth["landmarks"]) >= 6
    for les in truth["lesions"]:
        m = labels.mask(les["name"])
        kk, jj, ii = np.nonzero(m)
        c = labels.index_to_lps(np.stack([ii, jj, kk], 1).mean(0))
        assert np.allclose(c, les["centroid_lps"], atol=0.01)
        assert les["type"] in ("adenocarcinoma", "net")


def test_same_seed_byte_identical_files(coarse_case, tmp_path):
    out, _ = coarse_case
    again = tmp_path / "again"
    case.write_case(again, seed=1, spacing=COARSE, sweeps=False)
    assert _tree_digest(out) == _tree_digest(again)


def test_cli_refuses_non_empty_folder_and_bad_options(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert ctus(["sample", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "not empty" in err and "--force" in err
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert ctus(["sample", "--out", str(tmp_path / "new"), "--breathing", "30"]) == 2
    assert "0-15 mm" in capsys.readouterr().err
    f = tmp_path / "file"
    f.write_text("x")
    assert ctus(["sample", "--out", str(f)]) == 2
    assert not (tmp_path / "new").exists()


def test_cli_writes_case_with_force(tmp_path, monkeypatch, capsys):
    calls = []
    real = case.write_case

    def coarse(out, **kw):   # same code path, coarse grid, no sweeps: fast
        calls.append(kw)
        kw.update(spacing=COARSE, sweeps=False)
        return real(out, **kw)

    monkeypatch.setattr(case, "write_case", coarse)
    (tmp_path / "old.txt").write_text("x")
    (tmp_path / "sweep_lesion_9.igs.mha").write_text("from an older case")
    assert ctus(["sample", "--out", str(tmp_path), "--seed", "2", "--force", "--no-sweeps"]) == 0
    assert (tmp_path / "old.txt").read_text() == "x"              # not ours: kept
    assert not (tmp_path / "sweep_lesion_9.igs.mha").exists()     # stale case file: removed
    text = capsys.readouterr().out
    assert "demo case written" in text and "phantom" in text and "lesion_6" in text
    assert calls[0]["seed"] == 2
    assert json.loads((tmp_path / "truth.json").read_text())["seed"] == 2
    assert ctus(["info", str(tmp_path / "ct" / "portal"), "--labels", str(tmp_path / "labels.nrrd"),
                 "--label-names", str(tmp_path / "label_names.json")]) == 0
    assert "lesion_1" in capsys.readouterr().out


def test_ensure_demo_case_generates_once_and_is_thread_safe(tmp_path, monkeypatch):
    """The cache mechanics, with a small stand-in writer (the real writer is
    exercised by the tests above): one generation under two threads, reuse,
    regeneration of a damaged case, no temporary folders left."""
    import time
    monkeypatch.setenv("CTUS_CACHE_DIR", str(tmp_path))
    calls = []

    def tiny(out, seed=0, **kw):
        calls.append(out)
        time.sleep(0.3)                      # widen the race window
        (Path(out) / "ct").mkdir()
        (Path(out) / "ct" / "CT0001.dcm").write_bytes(b"x" * 100)
        (Path(out) / "truth.json").write_text(json.dumps({"seed": seed}))
        return {}

    monkeypatch.setattr(case, "write_case", tiny)
    results = []
    threads = [threading.Thread(target=lambda: results.append(case.ensure_demo_case()))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1, "generated more than once"
    assert results == [tmp_path / f"demo-v{case.CASE_VERSION}-seed0"] * 3
    folder = results[0]
    marker = json.loads((folder / case.MARKER).read_text())
    assert marker["seed"] == 0 and len(marker["sha256"]) == 64
    assert marker["files"] == {"ct/CT0001.dcm": 100, "truth.json": len(json.dumps({"seed": 0}))}
    assert case.ensure_demo_case() == folder and len(calls) == 1      # reused
    (folder / "truth.json").write_text("{}")                          # damaged: size differs
    assert case.ensure_demo_case() == folder and len(calls) == 2
    assert json.loads((folder / "truth.json").read_text()) == {"seed": 0}
    monkeypatch.setattr(case, "generator_hash", lambda: "other code")  # generator changed
    assert case.ensure_demo_case() == folder and len(calls) == 3
    assert case.ensure_demo_case() == folder and len(calls) == 3
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == [folder.name]


def test_cancel_leaves_nothing(tmp_path):
    from registration.spatial.errors import CancelledError
    with pytest.raises(CancelledError):
        case.write_case(tmp_path, seed=0, spacing=COARSE, sweeps=False,
                        progress=lambda stage, f: stage != "dicom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_case_with_sweeps_records_reference_to_ct(tmp_path):
    """The sweeps part (sample_data.sweeps.tracked_sweeps) is called and its truth merged; a
    short sweep per lesion keeps this fast."""
    pytest.importorskip("sample_data.sweeps.tracked_sweeps")
    from registration.io.seq_mha_read import read_sequence
    case.write_case(tmp_path, seed=0, spacing=COARSE, sweeps=True,
                    sweep_kwargs={"frames_per_sweep": 8, "lesions": ["lesion_1"]})
    truth = json.loads((tmp_path / "truth.json").read_text())
    r2c = np.asarray(truth["reference_to_ct"])
    assert r2c.shape == (4, 4) and np.allclose(r2c[:3, :3] @ r2c[:3, :3].T, np.eye(3), atol=1e-6)
    files = [s["file"] for s in truth["ultrasound"]["sweeps"]]
    assert "sweep_lesion_1.igs.mha" in files
    for s in truth["ultrasound"]["sweeps"]:
        assert np.allclose(s["reference_to_ct"], r2c)
        sw = read_sequence(tmp_path / s["file"], tmp_path / truth["ultrasound"]["config"])
        assert sw.frames.shape[0] == 8
