"""Plan export: schema, Slicer markups v1.0.3 structure, .tfm read back by SimpleITK, PDF, no overwrite."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from registration.spatial.errors import InputError
from registration.spatial.transforms import rigid_matrix
from planner.export.plan_files import load_schema, validate, write_outputs
from planning_phantom import planned_phantom

# Required structure of Slicer's markups-schema-v1.0.3.json (checked against the schema file in
# Slicer/Slicer Modules/Loadable/Markups/Resources/Schema): top level requires "@schema" and
# "markups"; each markup requires "type" from the enum; coordinateSystem LPS|RAS; coordinateUnits
# mm|um; control point position = 3 numbers; positionStatus undefined|preview|defined.
MARKUPS_V103 = {
    "type": "object", "required": ["@schema", "markups"],
    "properties": {
        "@schema": {"type": "string"},
        "markups": {"type": "array", "items": {
            "type": "object", "required": ["type"],
            "properties": {
                "type": {"type": "string", "enum": ["Fiducial", "Line", "Angle", "Curve", "ClosedCurve",
                                                    "Plane", "ROI"]},
                "name": {"type": "string"},
                "coordinateSystem": {"type": "string", "enum": ["LPS", "RAS"]},
                "coordinateUnits": {"type": "string", "enum": ["mm", "um"]},
                "locked": {"type": "boolean"},
                "fixedNumberOfControlPoints": {"type": "boolean"},
                "controlPoints": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"}, "label": {"type": "string"},
                        "description": {"type": "string"},
                        "position": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
                        "positionStatus": {"type": "string", "enum": ["undefined", "preview", "defined"]}}}},
                "display": {"type": "object", "properties": {
                    "color": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1},
                              "minItems": 3, "maxItems": 3}}}}}}}}


@pytest.fixture(scope="module")
def planned():
    return planned_phantom()


REF_TO_CT = rigid_matrix([4.0, -3.0, 10.0, 12.5, -7.0, 3.0], center=(10.0, 20.0, -5.0))


@pytest.fixture(scope="module")
def exported(planned, tmp_path_factory, artifacts_dir):
    ct, lm, res = planned
    out = tmp_path_factory.mktemp("plan")
    written = write_outputs(res, out, ct_metadata={"patient_id": "PAT-0042", "series_description": "portal"},
                            reference_to_ct=REF_TO_CT)
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-png", "-r", "60", written["plan.pdf"], str(artifacts_dir / "plan_report")],
                       check=True)
    return out, written, res


def test_validator_catches_violations():
    schema = load_schema()
    assert validate({}, schema)                                    # missing everything
    assert any("enum" in e or "not in" in e for e in validate({"version": "9"}, schema))
    s = {"type": "object", "properties": {"v": {"$ref": "#/$defs/v3"}}, "$defs": {"v3": {
        "type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}}}
    assert validate({"v": [1, 2, 3]}, s) == []
    assert validate({"v": [1, 2]}, s)
    assert validate({"v": [1, 2, "x"]}, s)
    assert validate(True, {"type": "number"})                      # bool is not a number


def test_schema_lists_every_reason_code():
    """plan_schema.json documents the same codes the planner can write (planner/advice/reasons.py)."""
    from planner.advice.reasons import NO_US_PATH_CODES, REASON_CODES
    from planner.case.case_plan import PLAN_VERSION
    schema = load_schema()
    assert schema["$defs"]["reason_code"]["enum"] == list(REASON_CODES)
    assert schema["$defs"]["lesion"]["properties"]["no_us_path_code"]["enum"] == list(NO_US_PATH_CODES) + [None]
    assert PLAN_VERSION in schema["properties"]["version"]["enum"]


def test_plan_json_matches_schema(exported):
    out, written, _ = exported
    plan = json.loads((out / "plan.json").read_text())
    assert validate(plan, load_schema()) == []
    assert plan["version"] == "1.2"
    assert validate(dict(plan, version="1.1"), load_schema()) == []       # the version tag is not the check
    bad = json.loads(json.dumps(plan))
    bad["lesions"][0]["recommendation"]["reason_codes"] = ["a_new_code"]
    assert validate(bad, load_schema())
    assert plan["coordinate_system"] == "LPS"
    names = {l["name"] for l in plan["lesions"]}
    assert names == {"lesion_sub", "lesion_deep", "lesion_rib"}
    for l in plan["lesions"]:
        for key in ("centroid_ct", "diameter_mm", "depth_mm", "visibility", "recommendation", "trajectories"):
            assert key in l                                          # DESIGN section 6 fields
        rec = l["recommendation"]
        assert len(rec["reason_codes"]) == len(rec["reasons"])
        for t in l["trajectories"]:
            for key in ("entry_ct", "target_ct", "length_mm", "guidance", "clearance_mm"):
                assert key in t


def test_deidentified_by_default(exported, planned, tmp_path):
    out, _, _ = exported
    text = (out / "plan.json").read_text()
    assert "PAT-0042" not in text
    assert json.loads(text)["case"]["deidentified"] is True
    ct, lm, res = planned
    w = write_outputs(res, tmp_path, ct_metadata={"patient_id": "PAT-0042"}, include_patient_id=True, pdf=False)
    assert json.loads(open(w["plan.json"]).read())["case"]["patient_id"] == "PAT-0042"


def test_markups_follow_slicer_schema(exported):
    out, _, res = exported
    mk = json.loads((out / "plan.mrk.json").read_text())
    assert validate(mk, MARKUPS_V103) == []
    assert mk["@schema"].startswith("https://raw.githubusercontent.com/slicer/slicer/master/Modules/"
                                    "Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json")
    lines = [m for m in mk["markups"] if m["type"] == "Line"]
    fids = [m for m in mk["markups"] if m["type"] == "Fiducial"]
    n_paths = sum(len(l["trajectories"]) for l in res.plan["lesions"])
    assert len(lines) == n_paths and n_paths > 0
    assert len(fids) == 1 and len(fids[0]["controlPoints"]) == len(res.plan["lesions"])
    for m in mk["markups"]:
        assert m["coordinateSystem"] == "LPS" and m["coordinateUnits"] == "mm"
        for cp in m["controlPoints"]:
            assert cp["positionStatus"] == "defined" and cp["id"] and cp["label"]
    # Line points are exactly the plan's entry and target (LPS, no RAS flip)
    first = next(t for l in res.plan["lesions"] for t in l["trajectories"])
    assert lines[0]["controlPoints"][0]["position"] == first["entry_ct"]
    assert lines[0]["controlPoints"][1]["position"] == first["target_ct"]


def test_markups_validator_rejects_bad_markups(exported):
    bad = {"@schema": "x", "markups": [{"type": "Line", "coordinateSystem": "XYZ",
                                        "controlPoints": [{"position": [1, 2], "positionStatus": "ok"}]}]}
    errs = validate(bad, MARKUPS_V103)
    assert len(errs) >= 3


def test_tfm_reads_back_with_simpleitk_and_maps_points(exported):
    out, written, _ = exported
    tx = sitk.ReadTransform(written["reference_to_ct.tfm"])
    rng = np.random.default_rng(11)
    for p in rng.uniform(-150, 150, size=(10, 3)):
        expected = (REF_TO_CT @ np.append(p, 1.0))[:3]
        assert np.allclose(tx.TransformPoint(tuple(p)), expected, atol=1e-6)


def test_never_overwrite_without_force(exported, planned):
    out, written, res = exported
    before = (out / "plan.json").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_outputs(res, out, reference_to_ct=REF_TO_CT)
    assert (out / "plan.json").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


def test_force_overwrites(planned, tmp_path):
    ct, lm, res = planned
    write_outputs(res, tmp_path, pdf=False)
    w = write_outputs(res, tmp_path, pdf=False, force=True)
    assert set(w) == {"plan.json", "plan.mrk.json"}


def test_pdf_has_summary_and_a_page_per_lesion(exported, artifacts_dir):
    out, written, res = exported
    data = (out / "plan.pdf").read_bytes()
    assert data.startswith(b"%PDF")
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", written["plan.pdf"]], capture_output=True, text=True).stdout
        pages = int(next(l for l in info.splitlines() if l.startswith("Pages:")).split()[1])
        assert pages == 1 + len(res.plan["lesions"]) + 1      # summary, lesions, registration
        assert sorted(artifacts_dir.glob("plan_report-*.png"))
