#!/usr/bin/env bash
# Create ./.venv (if missing) and install hpt_ros into it, editable.
#   scripts/install.sh          runtime dependencies
#   scripts/install.sh dev      plus the test tools (pytest, colcon)
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
extras=""
[ "${1:-}" = "dev" ] && extras="[dev]"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0" -e ".${extras}"
