#!/usr/bin/env bash
# Install into ./.venv with the test tools and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
exec "${HPT_ROS_VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider "$@"
