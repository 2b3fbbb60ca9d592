#!/usr/bin/env bash
# The whole workflow without a window, on the built-in demo case:
#   demo case (generated once into the per-user cache) -> landmark clicks (simulated, with
#   stated localisation error) -> ctus register (landmarks, then automatic LC2 refinement on
#   the survey sweep) -> ctus plan (visibility, trajectories, recommendation, PDF report).
# Output folder: $CTUS_DEMO_OUT or ./demo-output
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
OUT="${CTUS_DEMO_OUT:-$PWD/demo-output}"
mkdir -p "$OUT"
echo "== demo case (generated on first use, about a minute; cached afterwards)"
CASE=$(python -c "
import sys
from sample_data.case.demo_case import ensure_demo_case
print(ensure_demo_case(progress=lambda stage, f: print(f'   {stage} {100 * f:.0f} %', file=sys.stderr)))
")
echo "   $CASE"
ctus info "$CASE/ct_portal.nrrd" --labels "$CASE/labels.nrrd" --label-names "$CASE/label_names.json" \
  | sed -n '/^Lesions/,$p'
echo "== landmarks: vessel landmarks clicked on CT and ultrasound (simulated clicks)"
python -m sample_data.sweeps.demo_landmarks "$CASE" "$OUT/landmarks.json"
echo "== ctus register (landmarks, then LC2 on the survey sweep)"
ctus register --ct "$CASE/ct_portal.nrrd" --sweep "$CASE/sweep_survey.igs.mha" \
  --calibration "$CASE/PlusDeviceSet_ctus_convex.xml" --landmarks "$OUT/landmarks.json" \
  --labels "$CASE/labels.nrrd" --label-names "$CASE/label_names.json" \
  --out "$OUT/registration.json" --force
echo "== ctus plan"
ctus plan --ct "$CASE/ct_portal.nrrd" --ct-arterial "$CASE/ct_arterial.nrrd" \
  --labels "$CASE/labels.nrrd" --label-names "$CASE/label_names.json" \
  --sweep "$CASE/sweep_survey.igs.mha" --registration "$OUT/registration.json" \
  --out "$OUT/plan" --force
echo
echo "Registration: $OUT/registration.json"
echo "Plan:         $OUT/plan/plan.json  (Slicer markups: $OUT/plan/plan.mrk.json)"
echo "Report:       $OUT/plan/plan.pdf"
