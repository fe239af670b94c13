#!/usr/bin/env bash
# Install into ./.venv with the test tools and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
# -rs: every skip is listed with its reason (under CI=true only optional parts may skip)
exec "${HPT_ROS_VENV:-.venv}/bin/python" -m pytest -q -rs -p no:cacheprovider "$@"
