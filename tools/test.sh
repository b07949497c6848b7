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
exec .venv/bin/pytest "$@"
