#!/usr/bin/env bash
# The workflow without a window: describe the real CT bundled in ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
CT=../shared/data/ct/abdomen-20slice
if [ -d "$CT" ]; then
  ctus info "$CT/dicom" --labels "$CT/labels.nii.gz" --label-names "$CT/label_names.txt"
else
  echo "headless demo: $CT not found (clone with ../shared beside the project)" >&2
  exit 2
fi
