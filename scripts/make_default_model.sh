#!/usr/bin/env bash
# Reproduce the default model models/franka_fr3_feed_dog (what `hpt-ros demo` runs) and its
# closed-loop table: records 150 demonstrations of the scripted feed-dog expert on the
# simulated Franka in simulated time, trains a ResNet-18 on 80 more rendered scenes
# (hpt_ros.train.sim_encoder), trains the tiny HPT over it from the demonstrations, writes hpt.yaml +
# model.safetensors (+ summary.yaml, loss_curve.png), then runs `hpt-ros sim-eval` of the
# expert, the trained and the untrained model on the same 50 held-out scenes (seed 1000)
# and writes the table to models/franka_fr3_feed_dog/sim_eval.md.
#
#   bash scripts/make_default_model.sh                 # about 1.7 hours on 2 free CPU cores (record ~8 min,
#                                                      # encoder ~10 min, image features ~11 min, training ~30 min,
#                                                      # evaluation ~35 min)
#   bash scripts/make_default_model.sh --work runs/dm  # keep the episodes, feature cache, runs, reports and videos
#
# Extra arguments go to `python -m hpt_ros.train.default_model` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$PYTHON" -m hpt_ros.train.default_model --out models/franka_fr3_feed_dog --sim-encoder 80 --evaluate 50 "$@"
