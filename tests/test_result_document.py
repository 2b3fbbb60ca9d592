"""RESULT.json: one writer (result_document) and one reader (parse_result) for CLI, GUI and planner."""
from __future__ import annotations

import json

import numpy as np
import pytest

from planner.advice.fusion_error import registration_tre_mm
from registration.align.assessment import Assessment
from registration.align.registration_result import RegistrationResult, StartResult
from registration.align.result_document import (RESULT_VERSION, parse_result, read_result_file,
                                                result_document)
from registration.align.uncertainty import assess
from registration.spatial.errors import InputError
from registration.spatial.transforms import rigid_matrix


def _result():
    res = RegistrationResult(rigid_matrix([1, 0, 0, 2.0, 0, 0]), "lc2", 0.2, 0.4, 100, 1.5, np.zeros(3),
                             [StartResult(np.zeros(6), np.eye(4), 0.1, 0.40, 10),
                              StartResult(np.ones(6), rigid_matrix([0, 0, 0, 0.5, 0, 0]), 0.1, 0.395, 10)],
                             [(1, 0, 0.1), (2, 0, 0.2)], [0, 2, 4], np.eye(4), timings_s={"fine_level": 0.12345})
    res.uncertainty = assess(res, {"lesion_1": {"point": [10, 0, 0], "radius_mm": 5.0},
                                   "far": {"point": [300, 0, 0]}},
                             sweep_points_ct=np.array([[0.0, 0, 0], [20.0, 0, 0]]))
    return res


def test_the_document_has_the_cli_fields_and_reads_back(tmp_path):
    res = _result()
    targets = {"lesion_1": {"point": [10, 0, 0], "radius_mm": 5.0}}
    doc = result_document(res, ct_path=tmp_path / "ct.nrrd", sweep_path="s.igs.mha", calibration_path=None,
                          init_source="init", init_file="init.json", targets=targets)
    assert list(doc)[:4] == ["version", "ct", "sweep", "calibration"] and doc["version"] == RESULT_VERSION
    assert doc["ct"] == str(tmp_path / "ct.nrrd") and doc["init"] == {
        "source": "init", "file": "init.json", "reference_to_ct": np.eye(4).tolist()}
    assert doc["targets"] == doc["uncertainty"]["targets"] == [t.to_dict() for t in res.uncertainty.targets]
    assert doc["verdict"] == res.uncertainty.verdict and "landmarks" not in doc
    (tmp_path / "r.json").write_text(json.dumps(doc))
    rec = read_result_file(tmp_path / "r.json")
    assert np.allclose(rec.reference_to_ct, res.reference_to_ct) and rec.method == "lc2"
    assert rec.verdict == res.uncertainty.verdict and isinstance(rec.assessment, Assessment)
    assert rec.assessment.to_dict() == doc["uncertainty"]
    lesion = res.uncertainty.target("lesion_1")
    assert rec.tre_at("lesion_1") == lesion.tre_registration_mm and rec.tre_at("nowhere") is None
    # One TRE for the whole registration: the largest near the sweep ("far" is 280 mm away).
    assert rec.overall_tre_mm() == lesion.tre_registration_mm
    assert registration_tre_mm(doc, "lesion_1") == lesion.tre_registration_mm


def test_landmark_start_reports_the_fit_and_its_predicted_tre_at_the_targets():
    from registration.align.landmarks import register_landmarks
    pts = np.array([[0, 0, 0], [50, 0, 0], [0, 40, 0], [0, 0, 30], [20, 20, 20]], float)
    fit = register_landmarks(pts, pts + np.array([[0.3, 0, 0], [0, -0.2, 0], [0, 0, 0.4], [0.1, 0.1, 0], [0, 0, 0]]))
    doc = result_document(_result(), ct_path="ct", sweep_path="s", calibration_path="c.xml",
                          init_source="landmarks", init_file="pairs.json", landmarks=fit,
                          targets={"lesion_1": {"point": [10, 0, 0]}})
    assert doc["landmarks"]["fre_mm"] == pytest.approx(fit.fre_mm)
    assert doc["landmarks"]["predicted_tre_mm"] == {"lesion_1": pytest.approx(float(fit.predicted_tre([10, 0, 0])))}


def test_an_init_json_and_hand_written_tre_tables_are_read():
    rec = parse_result({"reference_to_ct": np.eye(4).tolist(), "tre_rms_mm": 3.0})
    assert rec.targets == [] and rec.verdict is None and rec.tre_at("any") == 3.0 and rec.overall_tre_mm() == 3.0
    table = parse_result({"targets": {"a": 1.5, "b": {"tre_rms_mm": 2.0}, "c": {"tre_mm": None}}}, need_matrix=False)
    assert [(t.name, t.tre_registration_mm) for t in table.targets] == [("a", 1.5), ("b", 2.0), ("c", None)]
    assert table.reference_to_ct is None
    poor = parse_result({"reference_to_ct": np.eye(4).tolist(), "verdict": "poor", "tre_mm": 2.0,
                         "targets": [{"name": "a", "tre_registration_mm": 1.0}]})
    assert poor.tre_at("a") is None and poor.overall_tre_mm() == 2.0    # a stated TRE stays stated


@pytest.mark.parametrize("doc,match", [
    ({"method": "lc2"}, "no 'reference_to_ct'"),
    ({"reference_to_ct": [[1, 0], [0, 1]]}, "reference_to_ct"),
    ({"reference_to_ct": np.eye(4).tolist(), "targets": [{"name": "a"}, {"tre_registration_mm": 1.0}]},
     'targets\\[1\\] has no "name"'),
    ({"reference_to_ct": np.eye(4).tolist(), "targets": [{"name": "a", "tre_registration_mm": "2 mm"}]},
     'targets\\[0\\]: "tre_registration_mm" is not a number'),
    ({"reference_to_ct": np.eye(4).tolist(), "verdict": "fine"}, "verdict is 'fine'"),
    ({"reference_to_ct": np.eye(4).tolist(), "targets": 3}, '"targets" is neither'),
    ({"reference_to_ct": np.eye(4).tolist(), "uncertainty": {"verdict": "good", "targets": [{}]}},
     'uncertainty.targets\\[0\\] has no "name"'),
])
def test_an_unusable_result_names_the_file_and_the_field(tmp_path, doc, match):
    path = tmp_path / "bad_result.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=match) as err:
        read_result_file(path)
    assert "bad_result.json" in str(err.value)


def test_the_planner_reads_the_tre_through_the_same_parser():
    """fusion_error takes the RESULT dict (from cmd_plan or the GUI session) or a parsed record;
    a malformed row is an InputError naming the RESULT's source, not a silent 'unknown'."""
    doc = {"reference_to_ct": np.eye(4).tolist(), "source": "/data/r.json", "verdict": "check",
           "targets": [{"name": "lesion_1", "tre_registration_mm": 1.7}], "tre_mm": 4.0}
    assert registration_tre_mm(doc, "lesion_1") == pytest.approx(1.7)
    assert registration_tre_mm(doc, "lesion_7") == pytest.approx(4.0)      # the global value
    assert registration_tre_mm(parse_result(doc), "lesion_1") == pytest.approx(1.7)
    assert registration_tre_mm(None, "lesion_1") is None
    with pytest.raises(InputError, match="r.json.*targets\\[0\\] has no \"name\""):
        registration_tre_mm(dict(doc, targets=[{"tre_registration_mm": 1.0}]), "lesion_1")
