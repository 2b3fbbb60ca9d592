#!/usr/bin/env bash
# Set up (idempotent) and run the main job.
# With a display: the desktop app on the built-in demo case.
# Without one (or with --headless): the same workflow on the command line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
headless=0
[ "${1:-}" = "--headless" ] && headless=1
[ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && headless=1
if [ "$headless" = "0" ] && .venv/bin/python -c "import gui.app" 2>/dev/null \
   && grep -q -- "--demo" gui/app.py 2>/dev/null; then
  exec ctus-gui --demo
fi
exec bash scripts/headless_demo.sh
