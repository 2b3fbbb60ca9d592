#!/usr/bin/env bash
# Set up everything this project needs on a fresh Debian/Ubuntu machine:
# system packages (when root; otherwise print the exact apt line), the
# virtual environment .venv, the Python packages (with crcmod's C extension
# built so pyigtl's CRC is fast) and the project itself in editable mode.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# orthanc: the real PACS the tests start on loopback (tests/_orthanc.py; its own system service is
# not used); dicom3tools: dciodvfy, which validates the DICOM objects ctus pacs send builds.
APT_PACKAGES="python3-venv python3-dev gcc libc6-dev libgl1 libegl1 libosmesa6 libglib2.0-0 \
libfontconfig1 libdbus-1-3 xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 \
libxcb-render-util0 libxcb-render0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 \
libxkbcommon-x11-0 libxcb-cursor0 poppler-utils orthanc dicom3tools"

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "setup: these system packages are missing; run as root:" >&2
    echo "  sudo apt-get install -y$missing" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.ctus-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ] \
   || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip "setuptools>=64" wheel
  # constraints.txt pins every package to the version the suite last passed with; raise a
  # pin deliberately (edit, run the suite, commit), never by a fresh machine's resolver.
  # crcmod from source so its C extension is built (pyigtl's CRC is 40x slower without it).
  .venv/bin/python -m pip install -q -c constraints.txt --no-binary crcmod crcmod
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[test]"
  touch "$stamp"
fi
.venv/bin/python - <<'PYCHECK'
import crcmod, sys
try:
    import crcmod._crcfunext  # noqa: F401
except ImportError:
    sys.exit("setup: crcmod's C extension did not build (need gcc and python3-dev)")
PYCHECK
# The compiled kernels (registration/align/lc2_kernels.c, registration/spatial/distance_map.c,
# ~20 kB each, built once per source version with the C compiler by
# registration/spatial/native_build.py; without them registration and planning fall back to
# numpy/scipy, slower).
.venv/bin/python - <<'PYKERNELS'
import sys
from registration.align import lc2_kernels
from registration.spatial import distance_map
for name, mod in (("LC2 kernels", lc2_kernels), ("distance transform", distance_map)):
    if not mod.AVAILABLE:
        sys.exit(f"setup: the {name} did not build: {mod.UNAVAILABLE_REASON}")
PYKERNELS
echo "setup: ready (.venv)"
