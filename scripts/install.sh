#!/usr/bin/env bash
# Create ./.venv (if missing) and install hpt_ros into it, editable.
#   scripts/install.sh          runtime dependencies
#   scripts/install.sh dev      plus the test tools (pytest, colcon)
# The simulated robot renders headless through Mesa (EGL), and the tests compile C++ (the
# AOT torch engine): those Debian packages are installed with apt-get when missing (as
# root, or through sudo when it needs no password).
# torch is pinned so that pip takes the CPU wheel where one is offered; on a GPU
# machine install the CUDA build of the same version first and it is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${HPT_ROS_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  if ! "$PYTHON" -m venv "$VENV" 2>/dev/null; then
    echo "error: '$PYTHON -m venv' failed; on Debian/Ubuntu install it with: sudo apt install python3-venv" >&2
    exit 1
  fi
fi
apt_packages="libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1"
# the tests also run the AOT-compiled torch engine (the bf16 CPU default), which compiles C++
[ "${1:-}" = "dev" ] && apt_packages="$apt_packages g++ python3-dev"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in $apt_packages; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
  if [ "$SUDO" = "none" ]; then
    echo "error: missing Debian packages (Mesa's EGL for the simulated robot; a C++ compiler for the tests):$missing" >&2
    echo "       install them with: sudo apt-get install -y$missing" >&2
    exit 1
  fi
  echo "installing Debian packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
extras=""
[ "${1:-}" = "dev" ] && extras="[dev]"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0" -e ".${extras}"
# the Franka meshes: only the package's asset files are used, its Python dependencies are not needed
"$VENV/bin/python" -m pip install -q --no-deps "dm-robotics-panda==0.4.8"
