#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite; GUI tests render under Xvfb.
# Extra arguments go to pytest (e.g. scripts/test.sh -k sequence).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=xcb
export PYTHONFAULTHANDLER=1
status=0
xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python -m pytest -p no:cacheprovider "$@" || status=$?
# pytest exit 5 = no tests collected: that is a failure of the suite here.
exit $status
