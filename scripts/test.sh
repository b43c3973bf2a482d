#!/usr/bin/env bash
# Set up from nothing (or reuse what is there) and run every check CI runs:
# ruff check, ruff format --check, mypy on the packages, pytest, then tests/ros under .venv-ros (rclpy) and
# tests/against_lerobot under .venv-lerobot (lerobot 0.4.4).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/data_store -x (tests/ros... and tests/against_lerobot...
# run under their own venvs).
set -euo pipefail
cd "$(dirname "$0")/.."
FLYWHEEL_BROWSER=1 bash scripts/setup.sh all,dev
bash scripts/setup_ros.sh       # ROS 2 Jazzy's rclpy from wheels, for tests/ros
bash scripts/setup_lerobot.sh   # lerobot 0.4.4 with its own torch, for tests/against_lerobot
export MUJOCO_GL="${MUJOCO_GL:-egl}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
. .venv/bin/activate
echo "== ruff check";          ruff check --no-cache .
echo "== ruff format --check"; ruff format --check --no-cache .
echo "== mypy";                mypy
if [ $# -gt 0 ] && [[ "$1" == tests/ros* ]]; then
  echo "== pytest (rclpy)";    exec .venv-ros/bin/python -m pytest -q "$@"
fi
if [ $# -gt 0 ] && [[ "$1" == tests/against_lerobot* ]]; then
  echo "== pytest (lerobot)";  exec .venv-lerobot/bin/python -m pytest -q "$@"
fi
echo "== pytest";              python -m pytest -q --durations=20 "$@"   # the 20 slowest: where the suite's time goes
if [ $# -eq 0 ]; then
  echo "== pytest tests/ros (rclpy, .venv-ros)"; .venv-ros/bin/python -m pytest -q tests/ros
  echo "== pytest tests/against_lerobot (lerobot 0.4.4, .venv-lerobot)"
  .venv-lerobot/bin/python -m pytest -q tests/against_lerobot
fi
