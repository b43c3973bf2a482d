#!/usr/bin/env bash
# Set up .venv with the project and its extras, from nothing or on top of what is there.
# Usage: scripts/setup.sh [EXTRAS]   (default: all,dev)
# Idempotent: when pyproject.toml and constraints.txt have not changed since the last run, it only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-all,dev}"
PYTHON="${PYTHON:-python3}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# MuJoCo renders headless through EGL (Mesa); pyrealsense2 needs libusb. Debian packages; installed only when missing.
apt_pkgs=(libegl-mesa0 libgl1-mesa-dri libglx-mesa0 libusb-1.0-0)
if [ "${FLYWHEEL_BROWSER:-0}" = 1 ]; then apt_pkgs+=(chromium chromium-driver); fi
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "vla-flywheel needs Python >= 3.11"'
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.flywheel-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing vla-flywheel[$extras] (torch pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[$extras]"
  echo "$want" > "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__)' 2>/dev/null || .venv/bin/python --version)"
