#!/usr/bin/env bash
# Set up a fresh machine (as root) and run every check: ruff, mypy --strict, the whole pytest
# suite (unit, netns integration, real dockerd end to end). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
# Everything is installed now: a missing lab prerequisite is a failure, not a skip.
export VXEVT_LAB_REQUIRED=1
exec .venv/bin/pytest "$@"
