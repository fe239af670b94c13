#!/usr/bin/env bash
# Install into ./.venv and run the built-in demo (fake Franka FR3 + policy node over DDS on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec "${HPT_ROS_VENV:-.venv}/bin/hpt-ros" demo "$@"
