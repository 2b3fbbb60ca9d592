"""`ctus info` on real data, JSON output, and one clear line with exit 2 on bad input."""
import json
import subprocess
import sys

import pytest

from planner.cli.main import main


def run_cli(*args):
    r = subprocess.run([sys.executable, "-m", "planner.cli.main", *map(str, args)], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def test_info_on_real_ct_with_labels(shared_data, capsys):
    d = shared_data("ct", "abdomen-20slice")
    rc = main(["info", str(d / "dicom"), "--labels", str(d / "labels.nii.gz"),
               "--label-names", str(d / "label_names.txt"), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    ct = report["ct"]
    assert ct["size_ijk"] == [512, 512, 20]
    assert ct["spacing_mm"] == pytest.approx([0.977, 0.977, 2.0], abs=0.01)
    assert ct["orientation"] == "LPS" and ct["orientation_itk"] == "RAI"
    assert ct["hu_range"][0] <= -1000 and ct["hu_range"][1] > 500
    assert len(report["series"]) == 1
    names = {s["name"]: s for s in report["labels"]["structures"]}
    assert 500 < names["liver"]["volume_ml"] < 900  # 20 slices of a liver


def test_info_text_output(shared_data, capsys):
    d = shared_data("ct", "abdomen-20slice")
    assert main(["info", str(d / "dicom")]) == 0
    out = capsys.readouterr().out
    assert "512 x 512 x 20" in out and "LPS" in out and "HU range" in out


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing", "not found"),
    (lambda p: p, "DICOM"),                                     # empty folder
    (lambda p: (p / "notes.txt").write_text("hello") and p, "DICOM"),  # folder of non-DICOM files
])
def test_info_bad_input_one_line_exit_2(tmp_path, make, needle):
    target = make(tmp_path)
    rc, out, err = run_cli("info", target)
    assert rc == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert needle.lower() in lines[0].lower()
    assert str(tmp_path) in lines[0]


def test_info_label_names_without_labels(shared_data, tmp_path):
    d = shared_data("ct", "abdomen-20slice")
    names = tmp_path / "names.json"
    names.write_text('{"liver": 5}')
    rc, _, err = run_cli("info", d / "dicom", "--label-names", names)
    assert rc == 2 and "--labels" in err


def test_usage_error_is_exit_2():
    rc, _, err = run_cli("info")
    assert rc == 2 and "usage" in err


def test_info_lists_several_series_and_describes_the_chosen_one(tmp_path, capsys):
    import numpy as np
    from registration.io.dicom_write import write_dicom_series
    from registration.spatial.volume import Volume
    vol = Volume(np.full((4, 8, 8), 40, np.int16), (0.8, 0.8, 2.0), (-10, -10, 0))
    write_dicom_series(vol, tmp_path / "a", series_description="Pancreas - arterial 45s",
                       contrast_agent="Iohexol", acquisition_time="101000")
    write_dicom_series(vol.with_array(vol.array + 60), tmp_path / "b",
                       series_description="Pancreas - portal venous 70s", contrast_agent="Iohexol",
                       acquisition_time="101025")
    assert main(["info", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "ct" not in report and len(report["series"]) == 2 and "--series" in report["choose"]
    uid = [s for s in report["series"] if "portal" in s["series_description"]][0]["series_uid"]
    assert main(["info", str(tmp_path), "--series", uid, "--json"]) == 0
    ct = json.loads(capsys.readouterr().out)["ct"]
    assert ct["hu_range"] == [100.0, 100.0]
