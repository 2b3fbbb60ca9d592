"""Real ultrasound against an MR that is not of the same person: every result is wrong, so the
verdict must never be "good" (issue 18: the verdicts on a real case must stay honest), and the
issue's first attempt (an MR given as --ct with real ultrasound) is refused with a pointer to --mr.

Real data: the in-vivo liver sweep of ../shared/data/liver-us (a volunteer, no MR of them exists);
the MR is the demo patient's. No MR-ultrasound pair of one person is in ../shared/data.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from planner.cli.main import main
from registration.io.sequence_io import load_sweep


@pytest.fixture
def sweep_path(shared_data):
    """The real liver sweep (the test skips when ../shared/data/liver-us is absent)."""
    return shared_data("liver-us", "liver_sweep.igs.mha")


def _placed_in_the_liver(truth, sweep_path) -> np.ndarray:
    """reference_to_mr putting the sweep's imaged centre on the demo MR's liver lesions' centre."""
    sweep = load_sweep(sweep_path)
    i2r, valid = sweep.image_to_reference_all()
    rows, cols = sweep.frames.shape[1:3]
    centre_ref = np.mean([m @ np.array([cols / 2, rows / 2, 0.0, 1.0]) for m in i2r[valid]], axis=0)[:3]
    liver_mr = np.mean([les["centroid_mr"] for les in truth["mr"]["lesions"]], axis=0)
    m = np.eye(4)
    m[:3, 3] = liver_mr - centre_ref
    return m


def test_an_mr_given_as_ct_with_real_ultrasound_points_to_mr(demo_case, sweep_path, tmp_path, capsys):
    truth = json.loads((demo_case / "truth.json").read_text())
    init = _placed_in_the_liver(truth, sweep_path)
    (tmp_path / "init.json").write_text(json.dumps({"reference_to_ct": init.tolist()}))
    rc = main(["register", "--ct", str(demo_case / "mr_hbp.nii.gz"), "--sweep", str(sweep_path),
               "--init", str(tmp_path / "init.json"), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "looks like an MR" in err and "--mr" in err and not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_mr_to_real_ultrasound_of_another_person_is_never_good(demo_case, sweep_path, tmp_path):
    truth = json.loads((demo_case / "truth.json").read_text())
    init = _placed_in_the_liver(truth, sweep_path)
    (tmp_path / "init.json").write_text(json.dumps({"reference_to_mr": init.tolist()}))
    out = tmp_path / "r.json"
    assert main(["register", "--mr", str(demo_case / "mr_hbp.nii.gz"), "--sweep", str(sweep_path),
                 "--init", str(tmp_path / "init.json"), "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["fixed_modality"] == "MR"
    # poor by the estimate itself (the starts disagree), not only by the MR cap at "check"
    assert doc["verdict"] == "poor", (doc["verdict"], doc["uncertainty"]["reasons"])
