"""``ctus segment``: bad input exits 2 with one line naming the file, before any long work;
outputs are complete or absent; the written label map, names, Slicer file and report agree."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from planner.cli.main import main
from planner.segmentation.lesion_seeds_file import parse_lesion_arg, read_seeds
from registration.spatial.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _run(argv, capsys):
    code = main(["segment"] + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("ctus segment: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def truth(demo_case):
    return json.loads((demo_case / "truth.json").read_text())


def _seeds_file(tmp_path, truth, names=None) -> Path:
    lesions = [{"name": les["name"], "point": les["centroid_lps"]} for les in truth["lesions"]
               if names is None or les["name"] in names]
    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"lesions": lesions}))
    return path


# --------------------------------------------------------------------------- bad input, exit 2
def test_missing_ct_and_existing_out(tmp_path, capsys, demo_case):
    code, _, err = _run(["--ct", tmp_path / "nope.nrrd", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "nope.nrrd" in _error_line(err)
    (tmp_path / "out").mkdir()
    code, _, err = _run(["--ct", demo_case / "ct_portal.nrrd", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "already exists" in _error_line(err) and "--force" in _error_line(err)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable JSON"),
    ('{"points": []}', 'has no "lesions" list'),
    ('{"lesions": []}', '"lesions" is empty'),
    ('{"lesions": [{"name": "lesion_1"}]}', 'needs "name" and "point"'),
    ('{"lesions": [{"name": "lesion_1", "point": [1, 2]}]}', "is not three numbers"),
    ('{"lesions": [{"name": "lesion 1", "point": [1, 2, 3]}]}', "is not a plain name"),
    ('{"lesions": [{"name": "a", "point": [1, 2, 3]}, {"name": "a", "point": [4, 5, 6]}]}',
     "given more than once"),
])
def test_bad_seeds_file(tmp_path, capsys, demo_case, content, message):
    seeds = tmp_path / "seeds.json"
    seeds.write_text(content)
    code, _, err = _run(["--ct", demo_case / "ct_portal.nrrd", "--lesions", seeds, "--out", tmp_path / "out"],
                        capsys)
    line = _error_line(err)
    assert code == 2 and message in line and "seeds.json" in line
    assert not (tmp_path / "out").exists()


def test_bad_clicks_named_with_their_file(tmp_path, capsys, demo_case, truth):
    ct = demo_case / "ct_portal.nrrd"
    cases = [([-500.0, 0.0, 0.0], "outside the CT"),               # left of the grid
             ([-20.0, -140.0, 0.0], "in air"),                      # in front of the belly
             ([-2.8, 99.6, 23.2], "in bone")]                       # the spine (cortex)
    for point, message in cases:
        seeds = tmp_path / "seeds.json"
        seeds.write_text(json.dumps({"lesions": [{"name": "lesion_1", "point": point}]}))
        code, _, err = _run(["--ct", ct, "--lesions", seeds, "--out", tmp_path / "out"], capsys)
        line = _error_line(err)
        assert code == 2 and message in line and "seeds.json" in line and "lesion_1" in line, line
    code, _, err = _run(["--ct", ct, "--lesion", "lesion_2=1,2", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "not three numbers" in _error_line(err)
    code, _, err = _run(["--ct", ct, "--lesion", "lesion_2", "--out", tmp_path / "out"], capsys)
    assert code == 2 and "NAME=X,Y,Z" in _error_line(err)
    code, _, err = _run(["--ct", ct, "--lesion", "a=1,2,3", "--lesion", "a=4,5,6", "--out", tmp_path / "o"],
                        capsys)
    assert code == 2 and "given more than once" in _error_line(err)
    code, _, err = _run(["--ct", ct, "--totalsegmentator", tmp_path / "ts", "--out", tmp_path / "o"], capsys)
    assert code == 2 and "ts: not found" in _error_line(err)
    assert sorted(os.listdir(tmp_path)) == ["seeds.json"]


def test_seed_parsing(tmp_path):
    seed = parse_lesion_arg("lesion_3=-82.6,2.3,37")
    assert seed.name == "lesion_3" and seed.point_lps == (-82.6, 2.3, 37.0) and seed.path is None
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"lesions": [{"name": "met_a", "point": [1, 2, 3]}]}))
    (seed,) = read_seeds(path)
    assert seed.path == str(path) and "lesion_" in seed.warning()
    with pytest.raises(InputError, match="seeds file not found"):
        read_seeds(tmp_path / "missing.json")


def test_exit_code_2_from_a_subprocess(tmp_path):
    """The console entry point itself: one line on stderr, exit 2."""
    proc = subprocess.run([sys.executable, "-m", "planner.cli.main", "segment", "--ct", str(tmp_path / "x"),
                           "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "ctus segment: error:" in proc.stderr


# --------------------------------------------------------------------------- complete runs
@dataclass
class _FakeAnatomy:
    labels: object
    names: dict
    liver_region: object
    warnings: list = field(default_factory=list)
    timings_s: dict = field(default_factory=dict)


@pytest.fixture
def true_anatomy(monkeypatch, demo_case):
    """segment_anatomy replaced by the demo case's true anatomy (no lesions): the command's own
    work (clicks, lesions, label map, files) is tested without the anatomy's run time."""
    import planner.segmentation.pipeline as pipeline
    from registration.io.labelmap_io import load_labels
    from registration.spatial.volume import LabelMap

    def fake(ct, *, arterial=None, liver_seed_lps=None, progress=None, cancel=None, path=None):
        lm = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
        keep = {n: v for n, v in lm.names.items() if not n.startswith("lesion")}
        arr = np.where(np.isin(lm.array, list(keep.values())), lm.array, 0)
        arr[np.isin(lm.array, [v for n, v in lm.names.items() if n.startswith("lesion")])] = keep["liver"]
        labels = LabelMap(arr, lm.spacing, lm.origin, lm.direction, keep)
        region = np.isin(lm.array, [v for n, v in lm.names.items() if n.startswith("lesion")] + [keep["liver"]])
        return _FakeAnatomy(labels, keep, region, ["a warning from the anatomy"], {"total": 0.0})
    monkeypatch.setattr(pipeline, "segment_anatomy", fake)


def _dice(a, b) -> float:
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.slow
def test_demo_lesions_written_under_their_names(tmp_path, capsys, demo_case, truth, true_anatomy):
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    seeds = _seeds_file(tmp_path, truth, names={"lesion_1", "lesion_2", "lesion_6"})
    out = tmp_path / "seg"
    click_5 = "lesion_5=" + ",".join(map(str, truth["lesions"][4]["centroid_lps"]))
    code, stdout, err = _run(["--ct", demo_case / "ct_portal.nrrd", "--arterial", demo_case / "ct_arterial.nrrd",
                              "--lesions", seeds, "--lesion", click_5, "--out", out], capsys)
    assert code == 0, err
    assert "ctus segment: [" in err                                 # progress on stderr
    assert sorted(os.listdir(out)) == ["label_names.json", "labels.names.json", "labels.nrrd",
                                       "labels.seg.nrrd", "segmentation.json"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".seg")] == []
    ct = load_ct(demo_case / "ct_portal.nrrd")
    names = json.loads((out / "label_names.json").read_text())
    assert [n for n in names if n.startswith("lesion")] == ["lesion_1", "lesion_2", "lesion_6", "lesion_5"]
    assert [names[n] for n in ("lesion_1", "lesion_2", "lesion_6", "lesion_5")] == [21, 22, 23, 24]
    assert {"liver", "portal_vein", "bone"} <= set(names)
    labels = load_labels(out / "labels.nrrd", out / "label_names.json")
    assert labels.same_grid(ct)
    true = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
    for name in ("lesion_1", "lesion_2", "lesion_5", "lesion_6"):
        assert _dice(labels.mask(name), true.mask(name)) > 0.75, name
    slicer = load_labels(out / "labels.seg.nrrd")
    assert slicer.names == labels.names and np.array_equal(slicer.array, labels.array)
    doc = json.loads((out / "segmentation.json").read_text())
    assert doc["reviewed"] is False and doc["version"] == 1
    rows = {r["name"]: r for r in doc["lesions"]}
    assert rows["lesion_6"]["kind"] == "hyper" and rows["lesion_6"]["phase"] == "arterial"
    assert rows["lesion_1"]["kind"] == "hypo" and rows["lesion_1"]["value"] == 21
    assert abs(rows["lesion_1"]["equivalent_diameter_mm"] - 25.0) < 3.0
    sources = {r["name"]: r["source"] for r in doc["structures"]}
    assert sources["liver"] == "automatic" and sources["lesion_5"] == "lesion"
    assert "a warning from the anatomy" in doc["warnings"]
    assert {"load_s", "anatomy_s", "lesions_s"} <= set(doc["timings_s"])
    assert "lesion_1: hypo" in stdout
    # again without --force: refused, the folder untouched; with --force: replaced
    before = (out / "segmentation.json").read_text()
    code, _, err = _run(["--ct", demo_case / "ct_portal.nrrd", "--lesions", seeds, "--out", out], capsys)
    assert code == 2 and (out / "segmentation.json").read_text() == before
    code, _, err = _run(["--ct", demo_case / "ct_portal.nrrd", "--lesion", "lesion_9=" + ",".join(
        map(str, truth["lesions"][0]["centroid_lps"])), "--out", out, "--force"], capsys)
    assert code == 0, err
    assert [n for n in json.loads((out / "label_names.json").read_text()) if n.startswith("lesion")] == ["lesion_9"]


def test_failure_while_writing_leaves_nothing(tmp_path, capsys, demo_case, truth, true_anatomy, monkeypatch):
    import registration.io.seg_nrrd_write as writer

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(writer, "write_seg_nrrd", broken)
    with pytest.raises(OSError):
        _run(["--ct", demo_case / "ct_portal.nrrd", "--out", tmp_path / "seg"], capsys)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_totalsegmentator_as_anatomy(tmp_path, capsys, shared_data):
    folder = shared_data("ct", "abdomen-20slice")
    out = tmp_path / "seg"
    code, _, err = _run(["--ct", folder / "dicom", "--totalsegmentator", folder / "labels.nii.gz",
                         "--out", out], capsys)
    assert code == 0, err
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    ct = load_ct(folder / "dicom")
    labels = load_labels(out / "labels.nrrd", out / "label_names.json")
    assert labels.same_grid(ct)
    assert 85.0 < float(ct.array[labels.mask("liver")].mean()) < 95.0
    doc = json.loads((out / "segmentation.json").read_text())
    sources = {r["name"]: r["source"] for r in doc["structures"]}
    assert sources["liver"] == "imported" and sources["portal_vein"] == "imported" and sources["bone"] == "imported"
    assert sources.get("autochthon_left") == "imported"                  # unknown names kept


@pytest.mark.slow
def test_demo_end_to_end_with_the_automatic_anatomy(tmp_path, capsys, demo_case, truth):
    """The real pipeline: automatic anatomy, then every demo lesion from a click at its centre,
    grown inside the automatic liver region."""
    from registration.io.ct_io import load_ct
    from registration.io.labelmap_io import load_labels
    out = tmp_path / "seg"
    code, stdout, err = _run(["--ct", demo_case / "ct_portal.nrrd", "--arterial", demo_case / "ct_arterial.nrrd",
                              "--lesions", _seeds_file(tmp_path, truth), "--out", out], capsys)
    assert code == 0, err
    ct = load_ct(demo_case / "ct_portal.nrrd")
    labels = load_labels(out / "labels.nrrd")                   # names from the sidecar labels.names.json
    true = load_labels(demo_case / "labels.nrrd", demo_case / "label_names.json", reference=ct)
    print()
    for les in truth["lesions"]:
        dice = _dice(labels.mask(les["name"]), true.mask(les["name"]))
        print(f"{les['name']} ({les['diameter_mm']} mm): Dice {dice:.3f}")
        if les["diameter_mm"] >= 9.0:
            assert dice >= 0.75, les["name"]
    assert {"body", "liver", "bone", "lung"} <= set(labels.names)


def test_totalsegmentator_alone_when_the_automatic_anatomy_refuses_the_ct(tmp_path, capsys, shared_data,
                                                                          monkeypatch):
    import planner.segmentation.pipeline as pipeline

    def refuses(ct, **kwargs):
        raise InputError("no contrast in the aorta", path=kwargs.get("path"), fix="give a contrast CT")
    monkeypatch.setattr(pipeline, "segment_anatomy", refuses)
    folder = shared_data("ct", "abdomen-20slice")
    code, _, err = _run(["--ct", folder / "dicom", "--out", tmp_path / "a"], capsys)
    assert code == 2 and "no contrast in the aorta" in _error_line(err)
    code, stdout, err = _run(["--ct", folder / "dicom", "--totalsegmentator", folder / "labels.nii.gz",
                              "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "b" / "segmentation.json").read_text())
    assert {r["source"] for r in doc["structures"]} == {"imported"}
    assert any("TotalSegmentator structures are used alone" in w for w in doc["warnings"])


@pytest.mark.slow
def test_real_ct_clicks_in_lung_or_bone_exit_2_and_write_nothing(tmp_path, capsys, shared_data):
    """crlm-1004 (real CT): a click in the right lung and one in a vertebral body (cancellous
    bone, 190 HU: below any bone HU threshold, in the bone label): one line each, naming the
    clicks' file and the lesion, exit 2, no output folder."""
    ct = shared_data("ct", "crlm-1004", "dicom")
    for point, message in (((-102.6, -4.8, -185.0), "is in air, lung or bowel gas"),
                           ((-3.7, 27.1, -275.0), "is in bone")):
        seeds = tmp_path / "seeds.json"
        seeds.write_text(json.dumps({"lesions": [{"name": "lesion_9", "point": point}]}))
        code, _, err = _run(["--ct", ct, "--lesions", seeds, "--out", tmp_path / "seg"], capsys)
        line = _error_line(err)
        assert code == 2 and message in line and "seeds.json" in line and "lesion_9" in line, line
        assert not (tmp_path / "seg").exists()
