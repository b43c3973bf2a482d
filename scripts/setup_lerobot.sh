#!/usr/bin/env bash
# Set up .venv-lerobot: lerobot 0.4.4 (the last release for Python 3.11), for the checks against lerobot itself.
# Usage: scripts/setup_lerobot.sh          (needs .venv from scripts/setup.sh; installs Debian's ffmpeg if missing)
#
# Never mixed with the project's venv: lerobot wants torchvision, which breaks torch 2.13 (and transformers) there.
# - torch 2.14.1 + torchvision 0.29.1: the pair on the package index for Python 3.11 here (a CUDA build; runs on CPU);
# - lerobot 0.4.4 without its pins (it pins torch < 2.11), then its own dependencies with torchcodec 0.14 (decodes
#   its videos with Debian's ffmpeg) and the Feetech SDK (the SO-100/SO-101 motor bus);
# - .venv-lerobot sees this checkout and, after its own packages, .venv's (site.addsitedir in a .pth), so the
#   project's code runs there as it is, with lerobot's versions of what both install.
# Idempotent: when this script has not changed since the last run, it only checks. About 5.5 GB, 2-3 min.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv-lerobot"
[ -x .venv/bin/python ] || { echo "[setup-lerobot] run scripts/setup.sh first (.venv is missing)" >&2; exit 1; }
PYTHON="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "this recipe is for Python 3.11 (lerobot 0.4.4)"'

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v ffmpeg >/dev/null 2>&1; then
  echo "[setup-lerobot] installing Debian's ffmpeg (torchcodec decodes lerobot's videos with it)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg
fi

stamp="$VENV/.flywheel-lerobot-installed"
want="$(sha256sum < "$0" | cut -c1-16) $ROOT"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup-lerobot] ready: $("$VENV/bin/python" -c 'import importlib.metadata as m; print("lerobot", m.version("lerobot"), "torch", m.version("torch"))')"
  exit 0
fi

[ -x "$VENV/bin/python" ] || { echo "[setup-lerobot] creating .venv-lerobot"; "$PYTHON" -m venv "$VENV"; }
pins=(torch==2.14.1 torchvision==0.29.1 "torchcodec==0.14.*")
echo "[setup-lerobot] installing torch 2.14.1, torchvision 0.29.1 and lerobot 0.4.4 into .venv-lerobot"
"$VENV/bin/python" -m pip install -q --upgrade pip packaging
"$VENV/bin/python" -m pip install -q "${pins[@]}"
"$VENV/bin/python" -m pip install -q --no-deps lerobot==0.4.4
# lerobot's own requirements, less the three it pins to releases that do not exist for this torch
reqs="$(mktemp)"
trap 'rm -f "$reqs"' EXIT
"$VENV/bin/python" - > "$reqs" <<'EOF'
import importlib.metadata as m
from packaging.requirements import Requirement

for line in m.requires("lerobot") or []:
    req = Requirement(line)
    if req.marker is not None and "extra" in str(req.marker):
        continue
    if req.name in ("torch", "torchvision", "torchcodec"):
        continue
    print(str(req).split(";")[0].strip())
EOF
mapfile -t deps < "$reqs"
[ ${#deps[@]} -gt 5 ] || { echo "[setup-lerobot] could not read lerobot's requirements" >&2; exit 1; }
# transformers: lerobot's transformers-dep extra; without it lerobot would import .venv's newer one, which needs a
# newer huggingface_hub than lerobot allows
"$VENV/bin/python" -m pip install -q "${deps[@]}" "${pins[@]}" 'feetech-servo-sdk>=1.0.0,<2.0.0' 'transformers>=4.57.1,<5.0.0'

# triton (GPU kernels, a dependency of the CUDA torch) bundles an LLVM that clashes with Mesa's llvmpipe, which
# renders MuJoCo (EGL): in one process, whichever loads second crashes (segfault, or an EGL error). torch runs on
# the CPU without it, so a LeRobot policy can drive the simulated arm.
"$VENV/bin/python" -m pip uninstall -y -q triton

site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
main_site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
printf '%s\n' "$ROOT" > "$site/flywheel_project.pth"
echo "import site; site.addsitedir('$main_site')" > "$site/zz_flywheel_venv.pth"

"$VENV/bin/python" -c '
import torch, torchvision, lerobot, robot_agent, data_store
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from lerobot.robots.so_follower import SO101Follower
assert torch.__version__.startswith("2.14.1"), torch.__version__
' || { echo "[setup-lerobot] .venv-lerobot does not import lerobot, torch 2.14.1 and the project" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup-lerobot] ready: lerobot $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("lerobot"))') in .venv-lerobot"
