#!/usr/bin/env bash
# Set up from nothing (or reuse what is there) and run every check CI runs:
# ruff check, ruff format --check, mypy on the packages, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/data_store -x
set -euo pipefail
cd "$(dirname "$0")/.."
FLYWHEEL_BROWSER=1 bash scripts/setup.sh all,dev
export MUJOCO_GL="${MUJOCO_GL:-egl}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
. .venv/bin/activate
echo "== ruff check";          ruff check --no-cache .
echo "== ruff format --check"; ruff format --check --no-cache .
echo "== mypy";                mypy
echo "== pytest";              python -m pytest -q "$@"
