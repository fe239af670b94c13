#!/usr/bin/env bash
# Reproduce the default model models/franka_fr3_feed_dog (what `hpt-ros demo` runs):
# records scripted feed-dog demonstrations of the fake FR3 in simulated time, trains the
# tiny HPT from them and writes hpt.yaml + model.safetensors (+ summary.yaml, loss_curve.png).
#
#   bash scripts/make_default_model.sh                       # defaults: about 7 minutes on 2 CPU cores, 24 MB
#   bash scripts/make_default_model.sh --trunk liruiw/hpt-small --episodes 60 --steps 6000
#
# Extra arguments go to `python -m hpt_ros.train.default_model` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
exec "$PYTHON" -m hpt_ros.train.default_model --out models/franka_fr3_feed_dog "$@"
