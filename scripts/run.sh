#!/usr/bin/env bash
# Set up (idempotent) and run the main job.
# With a display: the desktop app on the built-in demo case (ctus-gui --demo).
# Without one (or with --headless): the same workflow on the command line
# (scripts/headless_demo.sh), which prints where the plan and report are.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ "${1:-}" != "--headless" ] && { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; }; then
  exec ctus-gui --demo
fi
exec bash scripts/headless_demo.sh
