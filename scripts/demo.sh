#!/usr/bin/env bash
# Install atlaslink into .venv and run it on the embedded SQLite database with demo data.
# Extra arguments go to `atlaslink demo` (e.g. --host 0.0.0.0 --port 8080).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
exec .venv/bin/atlaslink demo "$@"
