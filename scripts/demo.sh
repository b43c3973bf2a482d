#!/usr/bin/env bash
# Set up from nothing (or reuse what is there) and run the flywheel demo on the simulated arm.
# Embedded defaults: no Redis, PostgreSQL or GPU needed. Extra arguments go to `flywheel demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh all,dev
export MUJOCO_GL="${MUJOCO_GL:-egl}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/flywheel demo "$@"
